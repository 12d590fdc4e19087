//! The line protocol of the scripts in [`crate::scripts`]: every line they
//! print is `WORD` or `WORD REST`, the words are [`word`]'s, and each
//! script's output is read here, in one place, into a typed struct.
//!
//! The container can print anything (a user's file name, a symlink's
//! target, a planted program's output), so reading is strict: a line no
//! reader knows is an error naming the line (cut short), never
//! skipped; lists are bounded; numbers are parsed, not trusted. The scripts'
//! text uses the words literally; `tests::every_word_the_scripts_print_is_known`
//! checks both directions.

use crate::{ProcessReport, Untrusted};

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod tests;

/// The words that start the scripts' lines.
pub(crate) mod word {
    pub const DONE: &str = "done";
    pub const MISSING: &str = "missing";
    pub const UNTRUSTED: &str = "untrusted";
    pub const OS: &str = "os";
    pub const UID: &str = "uid";
    pub const GID: &str = "gid";
    pub const REMOVED: &str = "removed";
    pub const KEY: &str = "key";
    pub const AGENT_STARTED: &str = "agent-started";
    pub const AGENT_REUSED: &str = "agent-reused";
    pub const AGENT_UNUSABLE: &str = "agent-unusable";
    pub const GUARD_MISSING: &str = "guard-missing";
    pub const FORWARDER_STARTED: &str = "forwarder-started";
    pub const FORWARDER_REUSED: &str = "forwarder-reused";
    pub const ESCALATION: &str = "escalation";
    pub const ESCALATION_CHECKED: &str = "escalation-checked";
    pub const AGENT: &str = "agent";
    pub const FORWARDER: &str = "forwarder";
    pub const STAT: &str = "stat";
    pub const ABSENT: &str = "absent";
    pub const CONTENT: &str = "content";
    pub const END_CONTENT: &str = "end-content";
    pub const KEYSTATE: &str = "keystate";
    pub const KEYFILE: &str = "keyfile";
    pub const KEYSCAN_INCOMPLETE: &str = "keyscan-incomplete";
    pub const PUBLIC_RC: &str = "public-rc";
    pub const PUBLIC_KEY: &str = "public-key";
    pub const PRIVATE_RC: &str = "private-rc";
    pub const DENIED: &str = "denied";
    pub const READABLE: &str = "readable";
    pub const STOPPED: &str = "stopped";
    pub const TOOL: &str = "tool";
    pub const USER: &str = "user";
    pub const HOME: &str = "home";
    pub const SSH_VERSION: &str = "ssh-version";
    pub const NETNS: &str = "netns";
    pub const GIT_CONFIG_THEIRS: &str = "git-config-theirs";
    pub const NOT_CLEAN: &str = "not-clean";

    /// Every word, for the test that holds the scripts to them.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        DONE,
        MISSING,
        UNTRUSTED,
        OS,
        UID,
        GID,
        REMOVED,
        KEY,
        AGENT_STARTED,
        AGENT_REUSED,
        AGENT_UNUSABLE,
        GUARD_MISSING,
        FORWARDER_STARTED,
        FORWARDER_REUSED,
        ESCALATION,
        ESCALATION_CHECKED,
        AGENT,
        FORWARDER,
        STAT,
        ABSENT,
        CONTENT,
        END_CONTENT,
        KEYSTATE,
        KEYFILE,
        KEYSCAN_INCOMPLETE,
        PUBLIC_RC,
        PUBLIC_KEY,
        PRIVATE_RC,
        DENIED,
        READABLE,
        STOPPED,
        TOOL,
        USER,
        HOME,
        SSH_VERSION,
        NETNS,
        GIT_CONFIG_THEIRS,
        NOT_CLEAN,
    ];
}

/// Most entries kept of a list the container chooses the length of.
const MAX_ITEMS: usize = 256;
/// Most reasons kept for "not trusted" (each is a line of an error).
const MAX_UNTRUSTED: usize = 20;

/// Why a script's output could not be read: the offending line, cut to
/// 200 characters. Its bytes are kept as the container printed them, as
/// in every error of this crate: a terminal sink escapes them (bottlectl
/// does, at its output), `--json` and library callers get the real text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable(pub String);

impl Unreadable {
    pub(crate) fn line(what: &str, line: &str) -> Unreadable {
        let shown: String = line.chars().take(200).collect();
        let cut = if shown.len() < line.len() { "…" } else { "" };
        Unreadable(format!("{what}: `{shown}`{cut}"))
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Parsed<T> = Result<T, Unreadable>;

/// `WORD REST` (REST empty for a bare word).
fn split(line: &str) -> (&str, &str) {
    line.split_once(' ').unwrap_or((line, ""))
}

/// Lines split on `\n` only (a `\r` is part of a line, as the script
/// printed it), without the empty piece after a final newline.
fn lines(stdout: &str) -> impl Iterator<Item = &str> {
    let text = stdout.strip_suffix('\n').unwrap_or(stdout);
    text.split('\n').filter(move |_| !stdout.is_empty())
}

fn number<T: std::str::FromStr>(what: &str, line: &str, text: &str) -> Parsed<T> {
    text.parse().map_err(|_| Unreadable::line(what, line))
}

fn push_bounded<T: PartialEq>(list: &mut Vec<T>, item: T, max: usize) {
    if list.len() < max && !list.contains(&item) {
        list.push(item);
    }
}

/// Something a script found absent (a [`crate::Missing`] once the target
/// names the user and home).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Absent {
    Tool(String),
    User,
    Home,
}

/// What every root script reports first: paths it will not trust, what is
/// missing, the image's `os-release` words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trust {
    pub untrusted: Vec<Untrusted>,
    pub missing: Vec<Absent>,
    pub os: Vec<String>,
}

impl Trust {
    /// The script refused: it found something untrusted or missing, and
    /// changed nothing.
    pub(crate) fn refuses(&self) -> bool {
        !self.untrusted.is_empty() || !self.missing.is_empty()
    }

    /// Takes the line if it is one of these; `Ok(false)` when it is not.
    fn take(&mut self, line: &str) -> Parsed<bool> {
        let (w, rest) = split(line);
        match w {
            word::UNTRUSTED => {
                let (path, reason) = rest.split_once(' ').unwrap_or((rest, "not trusted"));
                let u = Untrusted {
                    path: path.to_string(),
                    reason: reason.to_string(),
                };
                push_bounded(&mut self.untrusted, u, MAX_UNTRUSTED);
            }
            word::MISSING => {
                let absent = match split(rest) {
                    ("tool", t) if !t.is_empty() && !t.contains(' ') => Absent::Tool(t.into()),
                    ("user", "") => Absent::User,
                    ("home", "") => Absent::Home,
                    _ => return Err(Unreadable::line("unknown `missing` line", line)),
                };
                push_bounded(&mut self.missing, absent, MAX_ITEMS);
            }
            word::OS => self.os = os_words(rest),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `/etc/os-release`'s `ID` and `ID_LIKE` words, unquoted, only those made
/// of `[a-z0-9._-]` (the file is the container's), at most 8.
fn os_words(rest: &str) -> Vec<String> {
    rest.split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
        .filter(|w| {
            !w.is_empty()
                && w.len() <= 32
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
        .map(str::to_string)
        .take(8)
        .collect()
}

/// How the user could become root, from the [`crate::scripts::ESCALATION`]
/// lines; `None` until `escalation-checked` is seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Escalation {
    checked: bool,
    how: Vec<String>,
}

impl Escalation {
    fn take(&mut self, line: &str) -> Parsed<bool> {
        match split(line) {
            (word::ESCALATION_CHECKED, "") => self.checked = true,
            (word::ESCALATION, "sudo") => push_bounded(
                &mut self.how,
                "passwordless sudo (`sudo -n true` succeeds)".to_string(),
                MAX_UNTRUSTED,
            ),
            (word::ESCALATION, rest) => match rest.strip_prefix("setuid ") {
                Some(path) => push_bounded(
                    &mut self.how,
                    format!("setuid/setgid-root program {path}"),
                    MAX_UNTRUSTED,
                ),
                None => return Err(Unreadable::line("unknown `escalation` line", line)),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The ways found (empty: none); `None` when the check did not finish.
    pub fn result(self) -> Option<Vec<String>> {
        self.checked.then_some(self.how)
    }
}

/// The target user's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Default)]
struct IdLines {
    uid: Option<u32>,
    gid: Option<u32>,
}

impl IdLines {
    /// `uid N` / `gid N`; an empty value (no such user) leaves it unset.
    fn take(&mut self, line: &str) -> Parsed<bool> {
        let (w, rest) = split(line);
        let slot = match w {
            word::UID => &mut self.uid,
            word::GID => &mut self.gid,
            _ => return Ok(false),
        };
        if !rest.is_empty() {
            *slot = Some(number("bad id", line, rest)?);
        }
        Ok(true)
    }
    fn ids(&self) -> Option<Ids> {
        Some(Ids {
            uid: self.uid?,
            gid: self.gid?,
        })
    }
}

/// The root exec of provision ([`crate::scripts::provision`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProvisionRoot {
    pub trust: Trust,
    pub agent: Option<ProcessReport>,
    pub forwarder: Option<ProcessReport>,
    /// `SHA256:…` fingerprints the agent holds, as listed.
    pub keys: Vec<String>,
    /// A reused agent did not accept the key stream.
    pub agent_unusable: bool,
    /// The guard is not in the state directory yet: nothing was done.
    pub guard_missing: bool,
    pub removed: Vec<String>,
    /// An `if-clean` run found an earlier provision's state: nothing changed.
    pub not_clean: bool,
    pub done: bool,
}

fn process(what: &str, line: &str, rest: &str, started: bool) -> Parsed<Option<ProcessReport>> {
    Ok(Some(ProcessReport {
        pid: number(what, line, rest)?,
        started,
    }))
}

pub(crate) fn provision_root(stdout: &str) -> Parsed<ProvisionRoot> {
    let mut r = ProvisionRoot::default();
    for line in lines(stdout) {
        if r.trust.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => r.done = true,
            (word::AGENT_STARTED, pid) => r.agent = process("bad pid", line, pid, true)?,
            (word::AGENT_REUSED, pid) => r.agent = process("bad pid", line, pid, false)?,
            (word::FORWARDER_STARTED, pid) => r.forwarder = process("bad pid", line, pid, true)?,
            (word::FORWARDER_REUSED, pid) => r.forwarder = process("bad pid", line, pid, false)?,
            (word::AGENT_UNUSABLE, "") => r.agent_unusable = true,
            (word::GUARD_MISSING, "") => r.guard_missing = true,
            (word::NOT_CLEAN, "") => r.not_clean = true,
            (word::KEY, fp) if fp.starts_with("SHA256:") && !fp.contains(' ') => {
                push_bounded(&mut r.keys, fp.to_string(), MAX_ITEMS)
            }
            (word::REMOVED, path) if !path.is_empty() => {
                push_bounded(&mut r.removed, path.to_string(), MAX_ITEMS)
            }
            _ => return Err(Unreadable::line("unexpected line from root", line)),
        }
    }
    if r.not_clean && r.done {
        return Err(Unreadable(
            "root reported both `not-clean` and `done`".into(),
        ));
    }
    if r.guard_missing && (r.agent.is_some() || r.forwarder.is_some() || !r.keys.is_empty()) {
        return Err(Unreadable(
            "root reported `guard-missing` beside a running agent or forwarder".into(),
        ));
    }
    Ok(r)
}

/// The guard's delivery ([`crate::scripts::deliver_guard`]): what root
/// would not trust (and so did not write), then `done`.
pub(crate) fn delivered(stdout: &str) -> Parsed<Trust> {
    let mut trust = Trust::default();
    let mut done = false;
    for line in lines(stdout) {
        if trust.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => done = true,
            _ => return Err(Unreadable::line("unexpected line from root", line)),
        }
    }
    if !done {
        return Err(Unreadable("the delivery did not finish".into()));
    }
    if !trust.missing.is_empty() {
        return Err(Unreadable("the delivery found a tool missing".into()));
    }
    Ok(trust)
}

/// `netns net:[INODE]`: the network namespace a script ran in.
fn netns(line: &str, rest: &str) -> Parsed<String> {
    let inode = rest
        .strip_prefix("net:[")
        .and_then(|r| r.strip_suffix(']'))
        .filter(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()));
    match inode {
        Some(_) => Ok(rest.to_string()),
        None => Err(Unreadable::line("bad network namespace", line)),
    }
}

/// The sidecar's agent exec and the bottle's relay exec
/// ([`crate::sidecar`]): [`provision_root`]'s lines and `netns NS`.
pub(crate) fn sidecar_exec(stdout: &str) -> Parsed<(ProvisionRoot, Option<String>)> {
    let mut ns = None;
    let mut rest = String::new();
    for line in lines(stdout) {
        match split(line) {
            (word::NETNS, v) => ns = Some(netns(line, v)?),
            _ => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    Ok((provision_root(&rest)?, ns))
}

/// verify's exec in the sidecar: trust lines, `agent PID alive|dead`,
/// `forwarder PID alive|dead`, `key SHA256:…`, `netns NS`, `done`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SidecarState {
    pub trust: Trust,
    pub agent: Liveness,
    pub forwarder: Liveness,
    pub keys: Vec<String>,
    pub netns: Option<String>,
    pub done: bool,
}

pub(crate) fn sidecar_state(stdout: &str) -> Parsed<SidecarState> {
    let mut r = SidecarState::default();
    for line in lines(stdout) {
        if r.trust.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => r.done = true,
            (word::NETNS, v) => r.netns = Some(netns(line, v)?),
            (w @ (word::AGENT | word::FORWARDER), rest) => {
                let live = match rest.split_once(' ') {
                    Some((pid, "alive")) if pid.bytes().all(|b| b.is_ascii_digit()) => Liveness {
                        pid: pid.to_string(),
                        alive: true,
                    },
                    Some((pid, "dead"))
                        if pid == "none" || pid.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        Liveness {
                            pid: pid.to_string(),
                            alive: false,
                        }
                    }
                    _ => return Err(Unreadable::line("bad process line", line)),
                };
                if w == word::AGENT {
                    r.agent = live;
                } else {
                    r.forwarder = live;
                }
            }
            (word::KEY, fp) if fp.starts_with("SHA256:") && !fp.contains(' ') => {
                push_bounded(&mut r.keys, fp.to_string(), MAX_ITEMS)
            }
            _ => return Err(Unreadable::line("unexpected line from the sidecar", line)),
        }
    }
    Ok(r)
}

/// The user's exec of provision ([`crate::scripts::user_files`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UserFiles {
    pub missing: Vec<Absent>,
    pub ids: Option<Ids>,
    pub removed: Vec<String>,
    pub escalation: Option<Vec<String>>,
    /// `~/.config/git/config` is the user's own: not touched ([signing]).
    pub git_config_theirs: bool,
    /// An `if-clean` run found files where it writes: nothing changed.
    pub not_clean: bool,
    pub done: bool,
}

pub(crate) fn user_files(stdout: &str) -> Parsed<UserFiles> {
    let mut r = UserFiles::default();
    let mut trust = Trust::default();
    let mut ids = IdLines::default();
    let mut escalation = Escalation::default();
    for line in lines(stdout) {
        // The user's own exec reports nothing about trust: only `missing`.
        if split(line).0 == word::MISSING {
            trust.take(line)?;
            continue;
        }
        if ids.take(line)? || escalation.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => r.done = true,
            (word::GIT_CONFIG_THEIRS, "") => r.git_config_theirs = true,
            (word::NOT_CLEAN, "") => r.not_clean = true,
            (word::REMOVED, path) if !path.is_empty() => {
                push_bounded(&mut r.removed, path.to_string(), MAX_ITEMS)
            }
            _ => {
                return Err(Unreadable::line(
                    "unexpected line from the user's exec",
                    line,
                ))
            }
        }
    }
    if r.not_clean && r.done {
        return Err(Unreadable(
            "the user's exec reported both `not-clean` and `done`".into(),
        ));
    }
    r.missing = trust.missing;
    r.ids = ids.ids();
    r.escalation = escalation.result();
    Ok(r)
}

/// A process verify found recorded: its pid (`none` when there is no
/// record) and whether it is still ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Liveness {
    pub pid: String,
    pub alive: bool,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            pid: "none".into(),
            alive: false,
        }
    }
}

/// `stat MODE UID GID RAWMODE PATH`, with the content when root read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    pub path: String,
    /// Octal permission string, e.g. `600`.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub kind: &'static str,
    /// The file's bytes as root read them (bounded by the script), lines
    /// joined with `\n`, for regular files.
    pub content: Option<String>,
}

/// The file type in `stat -c %f`'s raw mode (hex), named as GNU `%F` does
/// with `_` for spaces.
pub(crate) fn file_kind(raw_hex: &str) -> &'static str {
    match u32::from_str_radix(raw_hex, 16).map(|m| m & 0o170000) {
        Ok(0o140000) => "socket",
        Ok(0o120000) => "symbolic_link",
        Ok(0o100000) => "regular_file",
        Ok(0o060000) => "block_device",
        Ok(0o040000) => "directory",
        Ok(0o020000) => "character_device",
        Ok(0o010000) => "fifo",
        _ => "unknown",
    }
}

/// One line of provision's key record: `FINGERPRINT DEADLINE HOSTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyState {
    pub fingerprint: String,
    /// Unix seconds when the agent forgets the key.
    pub deadline: Option<u64>,
    /// Restriction hostnames; empty when unrestricted.
    pub hosts: Vec<String>,
    /// Further words (what later versions record per key).
    pub extra: Vec<String>,
}

/// A key record line; `None` for one this crate did not write.
pub(crate) fn key_state(line: &str) -> Option<KeyState> {
    let mut w = line.split(' ');
    let (fp, deadline, hosts) = (w.next()?, w.next()?, w.next()?);
    if !fp.starts_with("SHA256:") || hosts.is_empty() {
        return None;
    }
    let extra = w.take(8).map(str::to_string).collect();
    Some(KeyState {
        fingerprint: fp.to_string(),
        deadline: match deadline {
            "-" => None,
            d => Some(d.parse().ok()?),
        },
        hosts: if hosts == "-" {
            Vec::new()
        } else {
            hosts.split(',').map(str::to_string).collect()
        },
        extra,
    })
}

/// The record as [`crate::scripts::KEYS_ROOT`] prints it (lines this crate
/// did not write are left out).
pub(crate) fn key_record(stdout: &str) -> Vec<KeyState> {
    lines(stdout)
        .filter_map(key_state)
        .take(MAX_ITEMS)
        .collect()
}

/// The root part of verify ([`crate::scripts::verify_root`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VerifyRoot {
    pub trust: Trust,
    pub ids: Option<Ids>,
    pub agent: Liveness,
    pub forwarder: Liveness,
    pub files: Vec<Stat>,
    pub keystate: Vec<KeyState>,
    pub keyfiles: Vec<String>,
    /// Why the key search did not finish (grep's exit code or the self-test
    /// that failed).
    pub keyscan_incomplete: Option<String>,
    pub done: bool,
}

impl VerifyRoot {
    pub fn file(&self, path: &str) -> Option<&Stat> {
        self.files.iter().find(|s| s.path == path)
    }
}

pub(crate) fn verify_root(stdout: &str) -> Parsed<VerifyRoot> {
    let mut r = VerifyRoot::default();
    let mut ids = IdLines::default();
    let mut reading: Option<(String, String)> = None;
    for line in lines(stdout) {
        if let Some((path, text)) = reading.as_mut() {
            if line == word::END_CONTENT {
                let (path, text) = reading.take().unwrap();
                match r.files.iter_mut().rev().find(|s| s.path == path) {
                    Some(stat) if stat.content.is_none() => stat.content = Some(text),
                    _ => return Err(Unreadable::line("content without its stat", &path)),
                }
            } else if let Some(l) = line.strip_prefix('|') {
                text.push_str(l);
                text.push('\n');
            } else if line.is_empty() {
                // The line the script's `echo` adds after a final newline.
            } else {
                return Err(Unreadable::line(
                    &format!("unexpected line in {path}"),
                    line,
                ));
            }
            continue;
        }
        if r.trust.take(line)? || ids.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => r.done = true,
            (w @ (word::AGENT | word::FORWARDER), rest) => {
                let live = match split(rest) {
                    (pid, "alive") => Liveness {
                        pid: pid.to_string(),
                        alive: true,
                    },
                    (pid, "dead") => Liveness {
                        pid: pid.to_string(),
                        alive: false,
                    },
                    _ => return Err(Unreadable::line("unexpected process line", line)),
                };
                if !live.pid.bytes().all(|b| b.is_ascii_digit()) && live.pid != "none" {
                    return Err(Unreadable::line("bad pid", line));
                }
                if w == word::AGENT {
                    r.agent = live;
                } else {
                    r.forwarder = live;
                }
            }
            (word::STAT, rest) => {
                let mut f = rest.splitn(5, ' ');
                let (Some(mode), Some(uid), Some(gid), Some(raw), Some(path)) =
                    (f.next(), f.next(), f.next(), f.next(), f.next())
                else {
                    return Err(Unreadable::line("short stat line", line));
                };
                if r.files.len() < MAX_ITEMS {
                    r.files.push(Stat {
                        path: path.to_string(),
                        mode: mode.to_string(),
                        uid: number("bad uid", line, uid)?,
                        gid: number("bad gid", line, gid)?,
                        kind: file_kind(raw),
                        content: None,
                    });
                }
            }
            (word::CONTENT, path) if !path.is_empty() => {
                reading = Some((path.to_string(), String::new()))
            }
            (word::ABSENT, path) if !path.is_empty() => {}
            (word::KEYSTATE, rest) => match key_state(rest) {
                Some(k) if r.keystate.len() < MAX_ITEMS => r.keystate.push(k),
                Some(_) => {}
                None => return Err(Unreadable::line("bad key record", line)),
            },
            (word::KEYFILE, path) if !path.is_empty() => {
                push_bounded(&mut r.keyfiles, path.to_string(), MAX_UNTRUSTED)
            }
            (word::KEYSCAN_INCOMPLETE, why) if !why.is_empty() => {
                r.keyscan_incomplete.get_or_insert_with(|| why.to_string());
            }
            _ => return Err(Unreadable::line("unexpected line from root", line)),
        }
    }
    if let Some((path, _)) = reading {
        return Err(Unreadable::line("content not ended", &path));
    }
    r.ids = ids.ids();
    Ok(r)
}

/// The user's part of verify ([`crate::scripts::verify_user`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VerifyUser {
    /// `SHA256:…` fingerprints the public socket lists.
    pub public_keys: Vec<String>,
    /// `ssh-add -l`'s exit code on the private socket.
    pub private_rc: Option<String>,
    /// `/proc/PID/FILE` paths the user could not open.
    pub denied: Vec<String>,
    pub escalation: Option<Vec<String>>,
    pub done: bool,
}

pub(crate) fn verify_user(stdout: &str) -> Parsed<VerifyUser> {
    let mut r = VerifyUser::default();
    let mut escalation = Escalation::default();
    for line in lines(stdout) {
        if escalation.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => r.done = true,
            (word::PUBLIC_RC, _) => {}
            (word::PUBLIC_KEY, fp) if fp.starts_with("SHA256:") && !fp.contains(' ') => {
                push_bounded(&mut r.public_keys, fp.to_string(), MAX_ITEMS)
            }
            (word::PRIVATE_RC, rc) => r.private_rc = Some(rc.to_string()),
            (word::DENIED, path) if path.starts_with("/proc/") => {
                push_bounded(&mut r.denied, path.to_string(), MAX_ITEMS)
            }
            (word::READABLE, path) if path.starts_with("/proc/") => {}
            _ => {
                return Err(Unreadable::line(
                    "unexpected line from the user's exec",
                    line,
                ))
            }
        }
    }
    r.escalation = escalation.result();
    Ok(r)
}

/// The escalation check alone ([`crate::scripts::ESCALATION`]).
pub(crate) fn escalation(stdout: &str) -> Parsed<Option<Vec<String>>> {
    let mut e = Escalation::default();
    for line in lines(stdout) {
        if !e.take(line)? {
            return Err(Unreadable::line(
                "unexpected line from the escalation check",
                line,
            ));
        }
    }
    Ok(e.result())
}

/// Deprovision's root and user parts ([`crate::scripts::deprovision`],
/// [`crate::scripts::deprovision_user`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Deprovision {
    pub trust: Trust,
    pub stopped_agent: Option<u32>,
    pub stopped_forwarder: Option<u32>,
    pub removed: Vec<String>,
    pub done: bool,
}

pub(crate) fn deprovision(stdout: &str) -> Parsed<Deprovision> {
    let mut r = Deprovision::default();
    for line in lines(stdout) {
        if r.trust.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => r.done = true,
            (word::STOPPED, rest) => match split(rest) {
                (word::AGENT, pid) => r.stopped_agent = Some(number("bad pid", line, pid)?),
                (word::FORWARDER, pid) => r.stopped_forwarder = Some(number("bad pid", line, pid)?),
                _ => return Err(Unreadable::line("unexpected line", line)),
            },
            (word::REMOVED, path) if !path.is_empty() => {
                push_bounded(&mut r.removed, path.to_string(), MAX_ITEMS)
            }
            _ => return Err(Unreadable::line("unexpected line from deprovision", line)),
        }
    }
    Ok(r)
}

/// Preflight's root part ([`crate::scripts::preflight_root`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PreflightRoot {
    pub trust: Trust,
    /// Each program found and where.
    pub tools: Vec<(String, String)>,
    /// `Some(None)`: the user does not exist; `None`: not looked at.
    pub uid: Option<Option<u32>>,
    pub home: Option<bool>,
    /// `Some(None)`: ssh did not run.
    pub ssh_version: Option<Option<String>>,
    pub done: bool,
}

pub(crate) fn preflight_root(stdout: &str) -> Parsed<PreflightRoot> {
    let mut r = PreflightRoot::default();
    for line in lines(stdout) {
        if r.trust.take(line)? {
            continue;
        }
        match split(line) {
            (word::DONE, "") => r.done = true,
            (word::TOOL, rest) => match rest.split_once(' ') {
                Some((name, path)) if r.tools.len() < MAX_ITEMS => {
                    r.tools.push((name.to_string(), path.to_string()))
                }
                Some(_) => {}
                None => return Err(Unreadable::line("short tool line", line)),
            },
            (word::USER, "-") => r.uid = Some(None),
            (word::USER, uid) => r.uid = Some(Some(number("bad uid", line, uid)?)),
            (word::HOME, "yes") => r.home = Some(true),
            (word::HOME, "no") => r.home = Some(false),
            (word::SSH_VERSION, "-") => r.ssh_version = Some(None),
            (word::SSH_VERSION, v) => r.ssh_version = Some(Some(v.chars().take(200).collect())),
            _ => return Err(Unreadable::line("unexpected line from root", line)),
        }
    }
    Ok(r)
}

/// One line of `ssh-add -l -E sha256`: `256 SHA256:abc comment (ED25519)`
/// as (bits, fingerprint, comment, type).
pub(crate) fn listing_line(line: &str) -> Option<(u32, &str, &str, &str)> {
    let (bits, rest) = line.split_once(' ')?;
    let (fingerprint, rest) = rest.split_once(' ')?;
    if !fingerprint.starts_with("SHA256:") {
        return None;
    }
    let open = rest.rfind(" (")?;
    let key_type = rest[open + 2..].strip_suffix(')')?;
    Some((bits.parse().ok()?, fingerprint, &rest[..open], key_type))
}

/// `ssh-add -l`'s listing, every line read or the first unreadable one.
pub(crate) fn listing(stdout: &str) -> Parsed<Vec<(u32, &str, &str, &str)>> {
    lines(stdout)
        .filter(|l| !l.is_empty())
        .take(MAX_ITEMS)
        .map(|l| listing_line(l).ok_or_else(|| Unreadable::line("cannot read", l)))
        .collect()
}
