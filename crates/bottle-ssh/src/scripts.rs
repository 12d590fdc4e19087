//! Shell scripts run in the container. Every value arrives as a positional
//! parameter (`$1`, …); nothing from a plan is ever part of the script text.

use crate::render::FILE_MARK;

/// Shared helpers of root's scripts.
///
/// `is_ours PID START NEEDLE…` is true for a live, non-zombie process that
/// runs as root, started at START (field 22 of `/proc/PID/stat`, recorded
/// with the pid) and whose argv contains every needle: a recorded pid may
/// be stale, or reused after a restart by a process of the user's.
/// `take_lock STATE TOKEN` / `release_lock STATE TOKEN`: the in-container lock.
pub(crate) const HELPERS: &str = concat!("\n", include_str!("scripts/common/helpers.sh"));

/// Root's environment, checked before any root script runs a program
/// (`trust_root STATE AGENT PUBLIC TOOL…` does all of it):
/// `trust_env DIR…` makes `PATH` the fixed system list less every directory
/// that is not trusted, then checks that each DIR (the state and socket
/// directories) is trusted. `check_tools TOOL…` finds each tool on that
/// `PATH` and follows its symlinks, every hop trusted. A path is trusted
/// when it and every directory above it are root-owned and not group- or
/// other-writable; directories are resolved to their physical paths first
/// and a program's symlinks are followed one hop at a time. Problems are printed
/// as `untrusted PATH WHY` or `missing tool NAME`, and set `bad`.
///
/// The trust root is the shell the engine runs (`/bin/sh`) and `stat` and
/// `readlink` from `/usr/bin` or `/bin`, which are checked like the rest.
pub(crate) const TRUST: &str = concat!("\n", include_str!("scripts/common/trust.sh"));

/// What the scripts that load keys (provision, the sidecar's agent exec)
/// share: `lines_into` (counted lines of fd 3 into a file), `agent_up`
/// (reuse or start the agent), and `load_keys AGENT GUARD STARTED`: the
/// key stream (fd 3) into the agent, then
/// `key SHA256:…` for what it holds. With the guard (GUARD its path) it
/// waits for a new agent to listen, writes each key and reads each answer,
/// so root runs neither socat nor ssh-add; without (guard off), socat and
/// ssh-add. Non-zero when the keys did not go in.
pub(crate) const LOAD_KEYS: &str = concat!("\n", include_str!("scripts/common/load_keys.sh"));

/// Programs the scripts use besides the three the product needs.
pub(crate) const CORE_TOOLS: &[&str] = &[
    "id", "sed", "tr", "grep", "cat", "rm", "mkdir", "mv", "chmod", "sleep", "mktemp",
];

/// The user exec's check: `$@` tools to look for (on the user's own PATH:
/// nothing it runs is trusted). Prints `missing tool NAME`; sets `bad`.
const CHECK_TOOLS: &str = concat!("\n", include_str!("scripts/common/check_tools.sh"));

/// The root exec of provision with `guard = "off"` (a guarded bottle's is
/// [`provision_guarded`]): `$1` user, `$2` home, `$3` state dir, `$4`
/// agent socket, `$5` public socket, `$6` `reuse` (keep a live agent) or
/// `fresh` (replace it, e.g. when the user locked it through the forwarder),
/// `$7` lock token, `$8` lines of key record, `$9` `off` (the forwarder is
/// a socat relay, the operator's explicit choice; anything else is
/// refused), `$10` lines of guard policy, `$11…` tools to look for.
/// Stdin: the key record's lines, the policy's lines, then agent protocol
/// messages (key material), relayed to the agent only.
/// Prints `missing tool|user|home [NAME]` and `untrusted PATH WHY`, then
/// `os ID ID_LIKE…` (and changes nothing: the key stream is never read), or
/// `agent-started|agent-reused PID`, `agent-unusable` (a reused agent
/// would not take the keys: ask again with `fresh`),
/// `forwarder-started|forwarder-reused PID`, `key SHA256:…` (what the agent
/// holds afterwards), `done`. Holds the in-container lock while it runs.
pub(crate) fn provision() -> String {
    format!("{HELPERS}{TRUST}{LOAD_KEYS}{PROVISION_HEAD}{PROVISION_BODY}")
}

const PROVISION_HEAD: &str = concat!("\n", include_str!("scripts/provision/head.sh"));

const PROVISION_BODY: &str = concat!("\n", include_str!("scripts/provision/body.sh"));

/// A guarded provision's one exec, as root: `$1` user, `$2` home, `$3`
/// state dir, `$4` agent socket, `$5` public socket, `$6` `reuse` or
/// `fresh`, `$7` lock token, `$8` the guard's SHA-256, `$9`–`$11` the byte
/// lengths of the key record, the guard policy and the user's part's
/// stdin, `$12` the user's part ([`user_files`]) and `$13…` its arguments.
/// Stdin: those three, then agent protocol messages (key material).
/// Checks root's environment as [`TRUST`] does (root runs only the guard
/// and `ssh-agent`), then runs the guard's `provision`, which does root's
/// work natively and the user's part as the user (its ids dropped before
/// it reads a key). Prints what [`provision`] prints, then `user-part
/// EXIT` and the user's part's own output (see
/// `bottle_guard::root::USER_PART`).
pub(crate) fn provision_guarded() -> String {
    format!("{TRUST}{PROVISION_GUARDED}")
}

const PROVISION_GUARDED: &str = concat!(
    "\n",
    include_str!("scripts/provision_guarded/provision_guarded.sh")
);

/// Root delivers the guard: `$1` state dir, `$2` its SHA-256, `$3` lock
/// token, `$4…` tools. Stdin: the executable. Writes it as
/// `STATE/guard-SHA256` (700, root), removing other versions, once it has
/// checked its own hash; prints `untrusted PATH WHY` (changing nothing),
/// then `done`.
pub(crate) fn deliver_guard() -> String {
    format!("{HELPERS}{TRUST}{DELIVER_GUARD_BODY}")
}

const DELIVER_GUARD_BODY: &str =
    concat!("\n", include_str!("scripts/deliver_guard/deliver_guard.sh"));

/// Run as the user: the ways it could become root that an image commonly
/// offers. Prints `escalation sudo` when `sudo -n true` succeeds (no
/// password asked), `escalation setuid PATH` for each setuid-root or
/// setgid-root program on the usual program directories that the user can
/// run and that is not on the allow-list (programs that need a password or
/// a privilege the user lacks), at most 20; `escalation-checked` when the
/// check ran to the end.
pub(crate) const ESCALATION: &str = concat!("\n", include_str!("scripts/escalation/escalation.sh"));

/// When a provision script may change the container: `Always`, or
/// `IfClean`: only where nothing is yet (no state directory, no sockets,
/// no `~/.ssh`); otherwise it prints `not-clean` and changes nothing.
/// What an `IfClean` run wrote is exactly what the matching deprovision
/// part removes, so a provision that fails elsewhere can undo it and leave
/// the container as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Always,
    IfClean,
}

impl Write {
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Write::Always => "always",
            Write::IfClean => "if-clean",
        }
    }
}

/// The user's exec of provision, run as the user (so nothing under the
/// user's home is ever written by root, whatever the user put there):
/// `$1` [`Write`], `$2` home, `$3` lines of `config`, `$4` lines of
/// `known_hosts` (0: none), `$5` number of public key files N, `$6…` their
/// N names (in `~/.ssh`), the four signing files' line counts, then tools
/// to look for. Stdin: `config`'s lines, then `known_hosts`'s, then each
/// public key file's two lines, then the signing files'. Prints `missing
/// tool|home [NAME]` (and changes nothing), `uid N`, `gid N`, then
/// `not-clean` (and changes nothing) or `removed PATH`, the [`ESCALATION`]
/// lines, `done`.
pub(crate) fn user_files() -> String {
    format!(
        "{USER_FILES_HEAD}{}{CHECK_TOOLS}\nescalation_check() {{{ESCALATION}}}\n{USER_FILES_BODY}echo \"done\"\n",
        is_mine()
    )
}

const USER_FILES_HEAD: &str = concat!("\n", include_str!("scripts/user_files/head.sh"));

const USER_FILES_BODY: &str = concat!("\n", include_str!("scripts/user_files/body.sh"));

/// `is_mine FILE`: FILE is a regular file provision wrote (first line is
/// [`FILE_MARK`], or the second after a `#!` line: a script).
/// The file names the mark `@FILE_MARK@`: the mark itself is Rust's, the
/// one the files are written with.
fn is_mine() -> String {
    format!("\n{}", IS_MINE.replace("@FILE_MARK@", FILE_MARK))
}

const IS_MINE: &str = include_str!("scripts/common/is_mine.sh");

/// `preflight`, root part: `$1` user, `$2` home, `$3` state, `$4` agent,
/// `$5` public, `$6…` tools. What provision's root exec checks first, and
/// changes nothing: `untrusted PATH WHY`, `missing tool NAME`, `tool NAME
/// PATH`, `os …`, then (only when root's environment is trusted) `user UID`
/// or `user -`, `home yes|no`, `ssh-version TEXT` or `ssh-version -`, `done`.
pub(crate) fn preflight_root() -> String {
    format!("{TRUST}{PREFLIGHT_ROOT_BODY}")
}

const PREFLIGHT_ROOT_BODY: &str = concat!(
    "\n",
    include_str!("scripts/preflight_root/preflight_root.sh")
);

/// Root part of verify: `$1` state, `$2` agent, `$3` public, `$4` user,
/// `$5` home, `$6` the forwarder to expect (`guard`, or `relay`: the
/// sidecar layout's socat, or a bottle with guard = "off"), `$7…`
/// tools root's scripts run. Stdin: key-scan patterns,
/// one per line as `printf` octal escapes. Prints `untrusted PATH WHY`
/// for root's environment, then the state it finds.
pub(crate) fn verify_root() -> String {
    format!("{HELPERS}{TRUST}{VERIFY_ROOT_BODY}")
}

const VERIFY_ROOT_BODY: &str = concat!("\n", include_str!("scripts/verify_root/verify_root.sh"));

/// User part of verify, run as the user: `$1` agent, `$2` public, `$3`
/// agent pid, `$4` forwarder pid; then [`ESCALATION`].
pub(crate) fn verify_user() -> String {
    format!("{VERIFY_USER_BODY}{ESCALATION}echo \"done\"\n")
}

const VERIFY_USER_BODY: &str = concat!("\n", include_str!("scripts/verify_user/verify_user.sh"));

/// Deprovision, root part: `$1` state, `$2` agent, `$3` public, `$4` lock
/// token, `$5…` tools. Stops the agent and forwarder, removes the sockets
/// and the state. Prints `untrusted PATH WHY` (and changes nothing) when
/// root's environment is not trusted.
pub(crate) fn deprovision() -> String {
    format!("{HELPERS}{TRUST}{DEPROVISION_BODY}")
}

const DEPROVISION_BODY: &str = concat!("\n", include_str!("scripts/deprovision/deprovision.sh"));

/// Deprovision, user part, run as the user: `$1` home. Removes the files
/// provision wrote (those that still start with [`FILE_MARK`]) and
/// `~/.ssh` when that leaves it empty.
pub(crate) fn deprovision_user() -> String {
    format!("{}{DEPROVISION_USER_BODY}", is_mine())
}

const DEPROVISION_USER_BODY: &str = concat!(
    "\n",
    include_str!("scripts/deprovision_user/deprovision_user.sh")
);

/// `list_keys`, root part: `$1` state dir, `$2` keys file name. Prints the
/// record (`FINGERPRINT DEADLINE HOSTS` lines), nothing when there is none.
/// Builtins only: no program of the container's runs as root here.
pub(crate) const KEYS_ROOT: &str = concat!("\n", include_str!("scripts/keys_root/keys_root.sh"));

/// `list_keys`, user part: `$1` public socket. `ssh-add -l`'s own exit code.
pub(crate) const KEYS_USER: &str = concat!("\n", include_str!("scripts/keys_user/keys_user.sh"));

/// Every script, for the lint test (shellcheck, `dash -n`, `busybox sh -n`).
#[cfg(test)]
pub(crate) fn all() -> Vec<(&'static str, String)> {
    vec![
        ("provision", provision()),
        ("provision_guarded", provision_guarded()),
        ("deliver_guard", deliver_guard()),
        ("user_files", user_files()),
        ("verify_root", verify_root()),
        ("preflight_root", preflight_root()),
        ("verify_user", verify_user()),
        ("escalation", ESCALATION.to_string()),
        ("deprovision", deprovision()),
        ("deprovision_user", deprovision_user()),
        ("keys_root", KEYS_ROOT.to_string()),
        ("keys_user", KEYS_USER.to_string()),
        ("sidecar_agent", crate::sidecar::agent_script()),
        ("sidecar_relay", crate::sidecar::relay_script()),
        ("sidecar_verify", crate::sidecar::verify_script()),
    ]
}

#[cfg(test)]
mod host_tests;
