//! The SSH provisioner: gives a container's unprivileged user working SSH
//! through an agent it can ask for signatures but cannot read keys from.
//!
//! It talks to the container only through [`ContainerRuntime`], so it works
//! the same on Docker and Podman.
//!
//! - [`validate`]: checks a [`Plan`] and loads its keys (reads key files, no
//!   other I/O). Every plan error names the entry and the field.
//! - [`provision`]: validate, then one exec (preflight: tools, user, home;
//!   takes the in-container lock), one copy (`~/.ssh/config`, `known_hosts`,
//!   the state list) and one exec (agent, forwarder, keys over stdin, then the
//!   agent's identities are listed and compared with the plan) — whatever the
//!   number of keys.
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
//! `ssh-add -h`) to those entries' `Hostname`s and host keys, unless an entry
//! says `Restrict = false`; a key that cannot be restricted is a warning in
//! [`ProvisionReport::warnings`], or an error with [`Options::strict`].
//! Restricted keys need OpenSSH 8.9+ as the client in the container.
//!
//! Errors: [`Error::is_plan_error`] / [`Error::exit_code`] (2 = plan or
//! target, 3 = engine or container).
//!
//! In the container (with the default [`Target`]):
//!
//! | Path | Mode, owner | What |
//! |---|---|---|
//! | `~/.ssh` | 700, user | |
//! | `~/.ssh/config` | 600, user | one `Host` block per entry ([`render_config`]) |
//! | `~/.ssh/known_hosts` | 600, user | only when an entry has `KnownHostKey` |
//! | `/run/claude-bottle-agent.sock` | 600, root | `ssh-agent -D -a …`, run as root |
//! | `/run/claude-bottle-agent-public.sock` | 666, root | `socat` forwarder to the agent |
//! | `/run/claude-bottle/` ([`STATE_DIR`]) | 700, root | `agent.pid`, `forwarder.pid`, `files`, `keys` (per key: lifetime deadline, restriction hosts), `lock/` |
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
mod ecdsa_fix;
mod error;
mod keys;
mod listing;
mod plan;
mod render;
mod scripts;
mod validate;

#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod tests;

pub use error::{Error, Missing};
pub use keys::{Options, Passphrase};
pub use listing::{list_keys, AgentKey};
pub use plan::{Gate, Lifetime, Plan, SshEntry, Target};
pub use render::{render_config, render_known_hosts};
/// The key crate this one parses keys with, for callers that inspect keys.
pub use ssh_key;
pub use validate::{
    validate, validate_target, validate_with, Destination, LoadedKey, ValidEntry, ValidatedPlan,
};

use bottle_runtime::{ContainerRuntime, CopyEntry, ExecOutput, ExecRequest};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Root-only directory in the container holding what deprovision needs:
/// `files` (paths written), `agent.pid`, `forwarder.pid`, the lock, and
/// `keys` (what the agent protocol does not report).
pub const STATE_DIR: &str = "/run/claude-bottle";

/// A key loaded into the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    pub aliases: Vec<String>,
    pub algorithm: String,
    pub fingerprint: String,
    pub comment: String,
    /// Agent lifetime in seconds, if limited.
    pub lifetime: Option<u32>,
    /// Hostnames the key is restricted to; empty when unrestricted.
    pub restricted_to: Vec<String>,
}

/// A file or directory written into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    /// Octal permission string, e.g. `600`.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
}

/// One step and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    pub name: &'static str,
    pub millis: u64,
}

/// A process the provisioner runs in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    /// True when this run started it; false when a live one was reused.
    pub started: bool,
}

/// What [`provision`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionReport {
    pub container: String,
    pub keys: Vec<KeyReport>,
    pub files: Vec<FileReport>,
    /// Files from an earlier run that this plan no longer needs, now removed.
    pub removed: Vec<String>,
    pub agent: ProcessReport,
    pub forwarder: ProcessReport,
    pub steps: Vec<StepReport>,
    /// Not errors, but the user should know (e.g. a key that cannot be
    /// destination-restricted).
    pub warnings: Vec<String>,
}

/// One verify check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// A check by name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// What [`deprovision`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DeprovisionReport {
    pub container: String,
    pub stopped_agent: Option<u32>,
    pub stopped_forwarder: Option<u32>,
    pub removed: Vec<String>,
}

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

struct Steps(Vec<StepReport>);

impl Steps {
    fn done(&mut self, name: &'static str, since: Instant) {
        let millis = since.elapsed().as_millis() as u64;
        tracing::debug!(step = name, millis, "bottle-ssh step finished");
        self.0.push(StepReport { name, millis });
    }
}

/// The user's numeric ids, from the preflight.
#[derive(Debug, Clone, Copy)]
struct Ids {
    uid: u32,
    gid: u32,
}

fn parse_ids(step: &'static str, container: &str, stdout: &str) -> Result<Ids, Error> {
    let field = |name: &str| -> Option<u32> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    match (field("uid"), field("gid")) {
        (Some(uid), Some(gid)) => Ok(Ids { uid, gid }),
        _ => Err(protocol(step, container, "no uid/gid for the target user")),
    }
}

/// A token naming one provision's hold on the in-container lock (not a
/// secret: it only tells this provision's two execs apart from another's).
fn lock_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}

async fn preflight(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
    token: &str,
) -> Result<Ids, Error> {
    const STEP: &str = "preflight";
    let mut args = vec![target.user.as_str(), target.home.as_str(), STATE_DIR, token];
    args.extend(["ssh-agent", "ssh-add", "socat"]);
    args.extend(scripts::CORE_TOOLS.iter().copied());
    let out = rt
        .exec_script(container, &scripts::preflight(), &args, None)
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, container, &out));
    }
    let stdout = out.stdout_lossy();
    let mut missing = Vec::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("missing") {
            continue;
        }
        match (words.next(), words.next()) {
            (Some("tool"), Some(t)) => missing.push(Missing::Tool(t.to_string())),
            (Some("user"), _) => missing.push(Missing::User(target.user.clone())),
            (Some("home"), _) => missing.push(Missing::Home(target.home.clone())),
            _ => return Err(protocol(STEP, container, line.to_string())),
        }
    }
    if !missing.is_empty() {
        return Err(Error::MissingInContainer {
            container: container.to_string(),
            missing,
        });
    }
    if !stdout.lines().any(|l| l == "ok") {
        return Err(protocol(STEP, container, "preflight did not finish"));
    }
    parse_ids(STEP, container, &stdout)
}

fn ssh_dir(target: &Target) -> String {
    format!("{}/.ssh", target.home.trim_end_matches('/'))
}

/// The files a provision writes, as copy entries (user's files plus the
/// root-only state list).
fn plan_files(plan: &ValidatedPlan, target: &Target, ids: Ids, now: u64) -> Vec<CopyEntry> {
    let dir = ssh_dir(target);
    let mut entries = vec![
        CopyEntry::dir(&dir, 0o700, ids.uid, ids.gid),
        CopyEntry::file(
            format!("{dir}/config"),
            render_config(plan, target).into_bytes(),
            0o600,
            ids.uid,
            ids.gid,
        ),
    ];
    if let Some(kh) = render_known_hosts(plan) {
        entries.push(CopyEntry::file(
            format!("{dir}/known_hosts"),
            kh.into_bytes(),
            0o600,
            ids.uid,
            ids.gid,
        ));
    }
    // Files first, the directory last, so deprovision can rmdir it.
    let mut list = String::new();
    for e in entries.iter().skip(1) {
        list.push_str(&e.path);
        list.push('\n');
    }
    list.push_str(&dir);
    list.push('\n');
    entries.push(CopyEntry::dir(STATE_DIR, 0o700, 0, 0));
    entries.push(CopyEntry::file(
        format!("{STATE_DIR}/files.new"),
        list.into_bytes(),
        0o600,
        0,
        0,
    ));
    entries.push(CopyEntry::file(
        format!("{STATE_DIR}/{KEYS_FILE}"),
        key_state(plan, now).into_bytes(),
        0o600,
        0,
        0,
    ));
    entries
}

/// Root-only record of what the agent protocol does not report: per key,
/// `FINGERPRINT DEADLINE HOSTS` (unix seconds or `-`; comma-separated
/// restriction hostnames or `-`).
const KEYS_FILE: &str = "keys";

fn key_state(plan: &ValidatedPlan, now: u64) -> String {
    let mut out = String::new();
    for k in &plan.keys {
        let deadline = k
            .lifetime
            .map_or("-".to_string(), |l| (now + u64::from(l)).to_string());
        let hosts = if k.destinations.is_empty() {
            "-".to_string()
        } else {
            k.destinations
                .iter()
                .map(|d| d.hostname.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(&format!("{} {deadline} {hosts}\n", k.fingerprint));
    }
    out
}

/// One line of the keys state file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyState {
    deadline: Option<u64>,
    hosts: Vec<String>,
}

fn parse_key_state<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, KeyState)> {
    lines
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (fp, deadline, hosts) = (w.next()?, w.next()?, w.next()?);
            Some((
                fp.to_string(),
                KeyState {
                    deadline: deadline.parse().ok(),
                    hosts: if hosts == "-" {
                        Vec::new()
                    } else {
                        hosts.split(',').map(str::to_string).collect()
                    },
                },
            ))
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse_pid(
    step: &'static str,
    container: &str,
    stdout: &str,
    what: &str,
) -> Result<ProcessReport, Error> {
    for (suffix, started) in [("-started ", true), ("-reused ", false)] {
        let prefix = format!("{what}{suffix}");
        if let Some(pid) = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        {
            return Ok(ProcessReport { pid, started });
        }
    }
    Err(protocol(step, container, format!("no {what} pid reported")))
}

/// Provision SSH access in a running container: see the crate docs.
///
/// Validates the plan and target first; a bad plan never touches the
/// container. Runtime calls: exec (preflight), copy, exec (agent + keys);
/// one more exec only when a reused agent does not end up holding the keys
/// (the user can `LOCK` it through the forwarder): it is then replaced.
pub async fn provision(
    rt: &dyn ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
) -> Result<ProvisionReport, Error> {
    provision_with(rt, container, plan, target, &Options::default()).await
}

/// [`provision`] with a passphrase source for encrypted keys and strict
/// destination restriction. Every passphrase is asked (and checked) before
/// the container is touched.
pub async fn provision_with(
    rt: &dyn ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
) -> Result<ProvisionReport, Error> {
    let mut steps = Steps(Vec::new());
    let t = Instant::now();
    validate_target(target)?;
    let valid = validate_with(plan, opts)?;
    let message = agent::load_keys_message(&valid.keys).map_err(|reason| Error::Plan {
        entry: "ssh".into(),
        field: "IdentityFile".into(),
        reason,
    })?;
    steps.done("validate", t);

    let t = Instant::now();
    let token = lock_token();
    let ids = preflight(rt, container, target, &token).await?;
    steps.done("preflight", t);

    let t = Instant::now();
    let entries = plan_files(&valid, target, ids, unix_now());
    if let Err(e) = rt.copy(container, &entries).await {
        // Best effort: free the lock now rather than after it goes stale.
        let _ = rt
            .exec_script(container, &scripts::release(), &[STATE_DIR, &token], None)
            .await;
        return Err(Error::runtime("copy files")(e));
    }
    steps.done("copy files", t);

    // A live agent is reused. If it does not end up holding the plan's keys
    // (the user can LOCK it through the forwarder), one more exec replaces it.
    let mut attempt = 0;
    let (stdout, agent, forwarder) = loop {
        attempt += 1;
        let (step, mode) = if attempt == 1 {
            ("load keys", "reuse")
        } else {
            ("load keys (new agent)", "fresh")
        };
        let t = Instant::now();
        let request = ExecRequest::script(
            &scripts::provision(),
            [
                STATE_DIR,
                &target.agent_socket,
                &target.public_socket,
                mode,
                &token,
            ],
        )
        .user("0")
        .stdin(message.to_vec());
        let out = match rt.exec(container, request).await {
            Ok(out) => out,
            Err(e) => {
                // As after a failed copy: free the lock now rather than make
                // the next run wait 60 s for it to go stale. Not after a
                // timeout: the script may still be running under the lock.
                if !matches!(e, bottle_runtime::Error::Timeout { .. }) {
                    let _ = rt
                        .exec_script(container, &scripts::release(), &[STATE_DIR, &token], None)
                        .await;
                }
                return Err(Error::runtime(step)(e));
            }
        };
        steps.done(step, t);
        if !out.success() {
            return Err(script_error(step, container, &out));
        }
        let stdout = out.stdout_lossy();
        if !stdout.lines().any(|l| l == "done") {
            return Err(protocol(step, container, "the script did not finish"));
        }
        let agent = parse_pid(step, container, &stdout, "agent")?;
        let forwarder = parse_pid(step, container, &stdout, "forwarder")?;
        let mut actual: Vec<String> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("key "))
            .map(str::to_string)
            .collect();
        actual.sort();
        let expected = valid.fingerprints();
        if actual == expected {
            break (stdout, agent, forwarder);
        }
        // A fresh agent that does not hold the keys will not do better.
        if attempt >= 2 || agent.started {
            return Err(Error::AgentMismatch {
                container: container.to_string(),
                expected,
                actual,
            });
        }
        tracing::warn!(
            container,
            "the agent does not hold the plan's keys (locked?); starting a new one"
        );
    };
    drop(message);

    let files = entries
        .iter()
        .filter(|e| !e.path.starts_with(STATE_DIR))
        .map(|e| FileReport {
            path: e.path.clone(),
            mode: format!("{:o}", e.mode),
            uid: e.uid,
            gid: e.gid,
        })
        .collect();
    Ok(ProvisionReport {
        container: container.to_string(),
        keys: valid
            .keys
            .iter()
            .map(|k| KeyReport {
                aliases: k.aliases.clone(),
                algorithm: k.algorithm.clone(),
                fingerprint: k.fingerprint.clone(),
                comment: k.comment.clone(),
                lifetime: k.lifetime,
                restricted_to: k.destinations.iter().map(|d| d.hostname.clone()).collect(),
            })
            .collect(),
        warnings: valid.warnings.clone(),
        files,
        removed: stdout
            .lines()
            .filter_map(|l| l.strip_prefix("removed "))
            .map(str::to_string)
            .collect(),
        agent,
        forwarder,
        steps: steps.0,
    })
}

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check the end state from inside the container: processes, sockets,
/// files (content, mode, owner), and — as the user — what the public socket
/// lists, that the private socket and the agent's `/proc` files are closed
/// to it, and that no private key file exists.
///
/// Two execs: one as root, one as the user.
pub async fn verify(
    rt: &dyn ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
) -> Result<VerifyReport, Error> {
    verify_with(rt, container, plan, target, &Options::default()).await
}

/// [`verify`] with a passphrase source: only needed for encrypted PEM keys
/// (an OpenSSH key's fingerprint is readable without its passphrase).
pub async fn verify_with(
    rt: &dyn ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
) -> Result<VerifyReport, Error> {
    const STEP: &str = "verify";
    validate_target(target)?;
    let valid = validate::validate_inner(plan, opts, false)?;
    let out = rt
        .exec_script(
            container,
            &scripts::verify_root(),
            &[
                STATE_DIR,
                &target.agent_socket,
                &target.public_socket,
                &target.user,
                &target.home,
            ],
            None,
        )
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, container, &out));
    }
    let root = out.stdout_lossy();
    if !root.lines().any(|l| l == "done") {
        return Err(protocol(STEP, container, "the root check did not finish"));
    }
    let mut checks = Vec::new();
    let ids = match parse_ids(STEP, container, &root) {
        Ok(ids) => ids,
        Err(_) => {
            checks.push(check("user", false, format!("no user `{}`", target.user)));
            return Ok(VerifyReport { checks });
        }
    };

    let mut pids = [String::new(), String::new()];
    for (i, what) in ["agent", "forwarder"].into_iter().enumerate() {
        let line = root
            .lines()
            .find_map(|l| l.strip_prefix(what)?.strip_prefix(' '))
            .unwrap_or("none dead");
        let mut w = line.split_whitespace();
        let pid = w.next().unwrap_or("none").to_string();
        let alive = w.next() == Some("alive");
        checks.push(check(
            format!("{what} running"),
            alive,
            format!("pid {pid}"),
        ));
        if alive {
            pids[i] = pid;
        }
    }

    // stat MODE UID GID TYPE PATH, then for files: content PATH, |line…, end-content
    let content_of = |path: &str| -> String {
        let mut out = String::new();
        let mut inside = false;
        for l in root.lines() {
            if inside {
                match l.strip_prefix('|') {
                    Some(line) => {
                        out.push_str(line);
                        out.push('\n');
                    }
                    None => break,
                }
            } else if l.strip_prefix("content ") == Some(path) {
                inside = true;
            }
        }
        out
    };
    let stat_of = |path: &str| -> Option<(String, u32, u32, String, String)> {
        root.lines().find_map(|l| {
            let mut w = l.strip_prefix("stat ")?.splitn(5, ' ');
            let (mode, uid, gid, kind, p) = (w.next()?, w.next()?, w.next()?, w.next()?, w.next()?);
            (p == path).then(|| {
                (
                    mode.to_string(),
                    uid.parse().unwrap_or(u32::MAX),
                    gid.parse().unwrap_or(u32::MAX),
                    kind.to_string(),
                    sha256_hex(content_of(path).as_bytes()),
                )
            })
        })
    };
    let dir = ssh_dir(target);
    let config = render_config(&valid, target);
    let known_hosts = render_known_hosts(&valid);
    // path, file type, mode, uid, gid, sha256 of the content
    type Want<'a> = (String, &'a str, &'a str, u32, u32, Option<String>);
    let expect: Vec<Want> = vec![
        (target.agent_socket.clone(), "socket", "600", 0, 0, None),
        (target.public_socket.clone(), "socket", "666", 0, 0, None),
        (STATE_DIR.to_string(), "directory", "700", 0, 0, None),
        (dir.clone(), "directory", "700", ids.uid, ids.gid, None),
        (
            format!("{dir}/config"),
            "regular_file",
            "600",
            ids.uid,
            ids.gid,
            Some(sha256_hex(config.as_bytes())),
        ),
    ];
    for (path, kind, mode, uid, gid, sum) in expect {
        let (ok, detail) = match stat_of(&path) {
            None => (false, "absent".to_string()),
            Some((m, u, g, k, s)) => {
                let ok = m == mode
                    && u == uid
                    && g == gid
                    && k == kind
                    && sum.as_deref().is_none_or(|want| want == s);
                let content = match &sum {
                    Some(want) if *want != s => ", content differs from the plan",
                    _ => "",
                };
                (ok, format!("{k} {m} {u}:{g}{content}"))
            }
        };
        checks.push(check(format!("file {path}"), ok, detail));
    }
    let kh_path = format!("{dir}/known_hosts");
    let kh = stat_of(&kh_path);
    checks.push(match (&known_hosts, kh) {
        (None, None) => check(format!("file {kh_path}"), true, "absent (no KnownHostKey)"),
        (None, Some(_)) => check(
            format!("file {kh_path}"),
            false,
            "exists but no entry has a KnownHostKey",
        ),
        (Some(_), None) => check(format!("file {kh_path}"), false, "absent"),
        // ssh's UpdateHostKeys appends the server's other host keys (which
        // the server proves with the pinned one): extra lines are fine, a
        // missing pinned line is not.
        (Some(want), Some((m, u, g, k, _))) => {
            let have = content_of(&kh_path);
            let missing = want
                .lines()
                .filter(|l| !have.lines().any(|h| h == *l))
                .count();
            let extra = have
                .lines()
                .filter(|h| !want.lines().any(|l| l == *h))
                .count();
            check(
                format!("file {kh_path}"),
                m == "600" && u == ids.uid && g == ids.gid && k == "regular_file" && missing == 0,
                format!("{k} {m} {u}:{g}, {missing} pinned line(s) missing, {extra} other line(s)"),
            )
        }
    });
    let keyfiles: Vec<&str> = root
        .lines()
        .filter_map(|l| l.strip_prefix("keyfile "))
        .collect();
    let incomplete = root
        .lines()
        .find_map(|l| l.strip_prefix("keyscan-incomplete "));
    checks.push(check(
        "no private key file",
        keyfiles.is_empty() && incomplete.is_none(),
        match (keyfiles.is_empty(), incomplete) {
            (false, _) => keyfiles.join(", "),
            (true, Some(rc)) => format!("the search did not finish (grep exit {rc})"),
            (true, None) => "none under /root /home /tmp /run /var/tmp".to_string(),
        },
    ));

    let out = rt
        .exec(
            container,
            ExecRequest::script(
                scripts::VERIFY_USER,
                [
                    target.agent_socket.as_str(),
                    target.public_socket.as_str(),
                    pids[0].as_str(),
                    pids[1].as_str(),
                ],
            )
            .user(format!("{}:{}", ids.uid, ids.gid)),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    let user = out.stdout_lossy();
    if !out.success() || !user.lines().any(|l| l == "done") {
        return Err(script_error(STEP, container, &out));
    }
    let mut listed: Vec<String> = user
        .lines()
        .filter_map(|l| l.strip_prefix("public-key "))
        .map(str::to_string)
        .collect();
    listed.sort();
    // A key whose recorded lifetime has (about) passed may be gone: the
    // agent's clock started a moment after the recorded one, so within a
    // second of the deadline either way is right.
    let state = parse_key_state(root.lines().filter_map(|l| l.strip_prefix("keystate ")));
    let now = unix_now();
    let expired = |fp: &str| {
        state
            .iter()
            .any(|(f, s)| f == fp && s.deadline.is_some_and(|d| d <= now + 1))
    };
    listed.retain(|fp| !expired(fp));
    let expected: Vec<String> = valid
        .fingerprints()
        .into_iter()
        .filter(|fp| !expired(fp))
        .collect();
    for k in &valid.keys {
        let want: Vec<String> = k.destinations.iter().map(|d| d.hostname.clone()).collect();
        let have = state
            .iter()
            .find(|(f, _)| *f == k.fingerprint)
            .map(|(_, s)| s);
        let (ok, detail) = match have {
            None => (false, "no provision record for this key".to_string()),
            Some(s) if s.hosts != want => (
                false,
                format!("recorded {:?}, the plan wants {want:?}", s.hosts),
            ),
            Some(_) if want.is_empty() => (
                true,
                format!("not destination-restricted: {}", k.unrestricted.join("; ")),
            ),
            Some(_) => (true, format!("restricted to {}", want.join(", "))),
        };
        checks.push(check(
            format!("key {} destination restriction", k.fingerprint),
            ok,
            detail,
        ));
    }
    checks.push(check(
        "public socket lists exactly the plan's keys",
        listed == expected,
        format!("listed {listed:?}, expected {expected:?}"),
    ));
    let private_rc = user
        .lines()
        .find_map(|l| l.strip_prefix("private-rc "))
        .unwrap_or("?");
    // ssh-add exits 2 when it cannot talk to the agent at all.
    checks.push(check(
        "private socket refuses the user",
        private_rc == "2",
        format!("ssh-add -l as uid {} exited {private_rc}", ids.uid),
    ));
    for (i, what) in ["agent", "forwarder"].into_iter().enumerate() {
        if pids[i].is_empty() {
            continue;
        }
        for file in ["mem", "environ"] {
            let path = format!("/proc/{}/{file}", pids[i]);
            let denied = user.lines().any(|l| l == format!("denied {path}"));
            checks.push(check(
                format!("{what} {file} unreadable by the user"),
                denied,
                path,
            ));
        }
    }
    Ok(VerifyReport { checks })
}

/// Stop the agent and forwarder this crate started (only if their recorded
/// pids still run them), remove both sockets, the files provision wrote and
/// the state directory. One root exec. Deprovisioning twice is harmless.
pub async fn deprovision(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
) -> Result<DeprovisionReport, Error> {
    const STEP: &str = "deprovision";
    validate_target(target)?;
    let out = rt
        .exec_script(
            container,
            &scripts::deprovision(),
            &[
                STATE_DIR,
                &target.agent_socket,
                &target.public_socket,
                &lock_token(),
            ],
            None,
        )
        .await
        .map_err(Error::runtime(STEP))?;
    let stdout = out.stdout_lossy();
    if !out.success() || !stdout.lines().any(|l| l == "done") {
        return Err(script_error(STEP, container, &out));
    }
    let pid = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
    };
    Ok(DeprovisionReport {
        container: container.to_string(),
        stopped_agent: pid("stopped agent "),
        stopped_forwarder: pid("stopped forwarder "),
        removed: stdout
            .lines()
            .filter_map(|l| l.strip_prefix("removed "))
            .map(str::to_string)
            .collect(),
    })
}
