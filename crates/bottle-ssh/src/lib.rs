//! The SSH provisioner: gives a container's unprivileged user working SSH
//! through an agent it can ask for signatures but cannot read keys from.
//!
//! It talks to the container only through
//! [`ContainerRuntime`](bottle_runtime::ContainerRuntime), so it works
//! the same on Docker and Podman.
//!
//! - [`validate`]: checks a [`Plan`] and loads its keys (reads key files, no
//!   other I/O). Every plan error names the entry and the field.
//! - [`provision`]: validate, then two execs at once — whatever the number
//!   of keys. As root: checks (tools, user, home), the in-container lock,
//!   agent, forwarder, keys over stdin, then the agent's identities are
//!   listed and compared with the plan. As the user: the same checks, then
//!   `~/.ssh`, `config` and `known_hosts` (root never writes under the
//!   user's home). Either changes nothing when a check fails.
//! - [`verify`]: checks the end state from inside the container, partly as
//!   the user; returns a [`VerifyReport`].
//! - [`deprovision`]: stops what provision started and removes what it wrote.
//! - [`list_keys`]: what the agent holds, as the user sees it, with the
//!   remaining lifetime and restriction provision recorded.
//!
//! Keys: OpenSSH ed25519 / ECDSA / RSA, legacy PEM RSA and PKCS#8 RSA,
//! plain or encrypted. Encrypted keys need a [`Passphrase`] provider in
//! [`Options`] ([`validate_with`], [`provision_with`], [`verify_with`]);
//! passphrases are asked and checked before the container is touched.
//! Security-key (`sk-`) and DSA keys are refused with the reason.
//!
//! Agent constraints per entry: `Lifetime` (like `ssh-add -t`); `Confirm =
//! true` is refused. Every key whose entries all pin `KnownHostKey` is loaded
//! destination-restricted (`restrict-destination-v00@openssh.com`, like
//! `ssh-add -h user@host`) to those entries' `User`s at their `Hostname`s
//! and host keys, unless an entry
//! says `Restrict = false`; a key that cannot be restricted is a warning in
//! [`ProvisionReport::warnings`], or an error with [`Options::strict`].
//! Restricted keys need OpenSSH 8.9+ as the client in the container.
//!
//! Errors: [`Error::class`] ([`ErrorClass`]: the input, a refusal, or the
//! engine or container); `bottlectl` turns it into its exit code.
//!
//! In the container (with the default [`Target`]):
//!
//! | Path | Mode, owner | What |
//! |---|---|---|
//! | `~/.ssh` | 700, user | made by the user's exec: the user must be able to create it (or own it) |
//! | `~/.ssh/config` | 600, user | one `Host` block per entry ([`render_config`]) |
//! | `~/.ssh/known_hosts` | 600, user | only when an entry has `KnownHostKey` |
//! | `~/.ssh/bottle-<hex>.pub` | 600, user | each key's public half ([`render_public_keys`]), named by the `Host` blocks that use it; for a `CertificateAuthority` entry, the certificate |
//! | `~/.ssh/bottle-signing.gitconfig`, `~/.ssh/bottle-allowed-signers` | 600, user | with `[signing]`: git's signing settings and allowed signers |
//! | `~/.ssh/bottle-ssh-keygen` | 700, user | with `[signing]`: `ssh-keygen` with `SSH_AUTH_SOCK` set to the public socket, for `gpg.ssh.program` |
//! | `~/.config/git/config` | 600, user | with `[signing]`, only when absent or bottle's: an include of the gitconfig above |
//! | `/run/claude-bottle-agent.sock` | 600, root | `ssh-agent -D -P '!*' -a …`, run as root (no PKCS#11/FIDO middleware) |
//! | `/run/claude-bottle-agent-public.sock` | 666, root | `bottle-guard serve`, the only path to the agent (`guard = "off"`: a `socat` relay) |
//! | `/run/claude-bottle/` ([`STATE_DIR`]) | 700, root | `agent.pid`, `forwarder.pid`, `keys` (per key: lifetime deadline, restriction hosts, certificate), `lock/` |
//!
//! Key bytes never touch the container's filesystem, argv or environment.
//!
//! ```no_run
//! # async fn demo(rt: &dyn bottle_runtime::ContainerRuntime) -> Result<(), bottle_ssh::Error> {
//! use bottle_ssh::{Plan, Target};
//! let plan: Plan = Plan::default(); // usually parsed from the manifest
//! let report = bottle_ssh::provision(rt, "my-bottle", &plan, &Target::default()).await?;
//! assert!(bottle_ssh::verify(rt, "my-bottle", &plan, &Target::default()).await?.ok());
//! # Ok(()) }
//! ```

mod agent;
pub mod audit;
mod certificate;
mod deprovision;
mod ecdsa_fix;
mod error;
pub mod guard;
mod keys;
mod listing;
mod plan;
mod preflight;
mod protocol;
mod provision;
mod render;
mod reports;
mod scripts;
pub mod sidecar;
mod signing;
mod valid;
mod validate;
mod verify;

#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod module_order_tests;
#[cfg(test)]
mod provision_tests;
#[cfg(test)]
mod tests;

pub use certificate::{DEFAULT_VALIDITY, MAX_VALIDITY};
pub use deprovision::deprovision;
pub use error::{Entry, Error, ErrorClass, Missing, PlanPart, Untrusted};
pub use keys::{Options, Passphrase};
pub use listing::{list_keys, AgentKey};
pub use plan::{Gate, Lifetime, Plan, Signing, SshEntry, Target};
pub use preflight::{preflight, preflight_with, Preflight};
pub use provision::{provision, provision_with};
pub use render::{
    public_key_file, render_config, render_known_hosts, render_public_keys, FILE_MARK,
};
pub use reports::{
    Check, DeprovisionReport, FileReport, KeyReport, ProcessReport, ProvisionReport, StepReport,
    VerifyReport,
};
/// The key crate this one parses keys with, for callers that inspect keys.
pub use ssh_key;
pub use valid::{CertInfo, Destination, LoadedKey, SigningPlan, ValidEntry, ValidatedPlan};
pub use validate::{validate, validate_target, validate_with};
pub use verify::{verify, verify_with};

use bottle_runtime::ExecOutput;

/// Root-only directory in the container holding what deprovision needs:
/// `agent.pid`, `forwarder.pid`, the lock, and
/// `keys` (what the agent protocol does not report).
pub const STATE_DIR: &str = "/run/claude-bottle";

const MAX_STDERR: usize = 2000;

fn script_error(step: &'static str, container: &str, out: &ExecOutput) -> Error {
    let mut stderr = out.stderr_lossy().trim().to_string();
    if stderr.len() > MAX_STDERR {
        let mut cut = MAX_STDERR;
        while !stderr.is_char_boundary(cut) {
            cut -= 1;
        }
        stderr.truncate(cut);
        stderr.push('…');
    }
    Error::Script {
        step,
        container: container.to_string(),
        exit_code: out.exit_code,
        stderr,
    }
}

fn protocol(step: &'static str, container: &str, detail: impl Into<String>) -> Error {
    Error::Protocol {
        step,
        container: container.to_string(),
        detail: detail.into(),
    }
}

/// Tools root's scripts need: ssh-agent, ssh-add (the user's verify lists
/// with it) and the shell's helpers; `socat` only for the plain relay of
/// `guard = "off"` (the guard loads the keys and serves the socket itself).
fn root_tools(relay: bool) -> Vec<&'static str> {
    let mut tools = vec!["ssh-agent", "ssh-add"];
    if relay {
        tools.push("socat");
    }
    tools.extend(scripts::CORE_TOOLS.iter().copied());
    tools
}

/// A script's output that [`protocol`] could not read.
fn unreadable(step: &'static str, container: &str, e: protocol::Unreadable) -> Error {
    protocol(step, container, e.0)
}

/// What a script found absent, named for the target.
fn missing_of(absent: &[protocol::Absent], target: &Target) -> Vec<Missing> {
    let mut out = Vec::new();
    for a in absent {
        let m = match a {
            protocol::Absent::Tool(t) => Missing::Tool(t.clone()),
            protocol::Absent::User => Missing::User(target.user.clone()),
            protocol::Absent::Home => Missing::Home(target.home.clone()),
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Refuse when root's script found something it will not trust.
fn untrusted_error(container: &str, trust: &protocol::Trust) -> Option<Error> {
    (!trust.untrusted.is_empty()).then(|| Error::UntrustedInContainer {
        container: container.to_string(),
        untrusted: trust.untrusted.clone(),
    })
}

/// Root-only record of what the agent protocol does not report: per key,
/// `FINGERPRINT DEADLINE HOSTS` (unix seconds or `-`; comma-separated
/// restriction hostnames or `-`).
const KEYS_FILE: &str = "keys";

fn ssh_dir(target: &Target) -> String {
    format!("{}/.ssh", target.home.trim_end_matches('/'))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
