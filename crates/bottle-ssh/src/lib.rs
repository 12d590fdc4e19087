//! The SSH provisioner: gives a container's unprivileged user working SSH
//! through an agent it can ask for signatures but cannot read keys from.
//!
//! It talks to the container only through [`ContainerRuntime`], so it works
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
//! Errors: [`Error::is_plan_error`] / [`Error::exit_code`] (2 = plan or
//! target, 3 = engine or container).
//!
//! In the container (with the default [`Target`]):
//!
//! | Path | Mode, owner | What |
//! |---|---|---|
//! | `~/.ssh` | 700, user | made by the user's exec: the user must be able to create it (or own it) |
//! | `~/.ssh/config` | 600, user | one `Host` block per entry ([`render_config`]) |
//! | `~/.ssh/known_hosts` | 600, user | only when an entry has `KnownHostKey` |
//! | `~/.ssh/bottle-<hex>.pub` | 600, user | each key's public half ([`render_public_keys`]), named by the `Host` blocks that use it |
//! | `/run/claude-bottle-agent.sock` | 600, root | `ssh-agent -D -a …`, run as root |
//! | `/run/claude-bottle-agent-public.sock` | 666, root | `socat` forwarder to the agent |
//! | `/run/claude-bottle/` ([`STATE_DIR`]) | 700, root | `agent.pid`, `forwarder.pid`, `keys` (per key: lifetime deadline, restriction hosts), `lock/` |
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
mod preflight;
mod render;
mod scripts;
mod validate;

#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod tests;

pub use error::{Error, Missing, Untrusted};
pub use keys::{Options, Passphrase};
pub use listing::{list_keys, AgentKey};
pub use plan::{Gate, Lifetime, Plan, SshEntry, Target};
pub use preflight::{preflight, Preflight};
pub use render::{
    public_key_file, render_config, render_known_hosts, render_public_keys, FILE_MARK,
};
/// The key crate this one parses keys with, for callers that inspect keys.
pub use ssh_key;
pub use validate::{
    validate, validate_target, validate_with, Destination, LoadedKey, ValidEntry, ValidatedPlan,
};

use bottle_runtime::{ContainerRuntime, ExecOutput, ExecRequest};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Root-only directory in the container holding what deprovision needs:
/// `agent.pid`, `forwarder.pid`, the lock, and
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
        self.push(name, since.elapsed());
    }
    fn push(&mut self, name: &'static str, took: std::time::Duration) {
        let millis = took.as_millis() as u64;
        tracing::debug!(step = name, millis, "bottle-ssh step finished");
        self.0.push(StepReport { name, millis });
    }
}

/// The user's numeric ids, as the user's exec reports them.
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

/// Tools the root exec of provision needs: the product's three and the
/// shell's helpers.
fn root_tools() -> Vec<&'static str> {
    let mut tools = vec!["ssh-agent", "ssh-add", "socat"];
    tools.extend(scripts::CORE_TOOLS.iter().copied());
    tools
}

/// `missing …` lines of either provision exec, or a protocol error for a
/// line it does not know.
fn parse_missing(
    step: &'static str,
    container: &str,
    target: &Target,
    stdout: &str,
    missing: &mut Vec<Missing>,
) -> Result<(), Error> {
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("missing") {
            continue;
        }
        let m = match (words.next(), words.next()) {
            (Some("tool"), Some(t)) => Missing::Tool(t.to_string()),
            (Some("user"), _) => Missing::User(target.user.clone()),
            (Some("home"), _) => Missing::Home(target.home.clone()),
            _ => return Err(protocol(step, container, line.to_string())),
        };
        if !missing.contains(&m) {
            missing.push(m);
        }
    }
    Ok(())
}

/// The `os ID ID_LIKE…` line of the root exec: `/etc/os-release`'s words,
/// unquoted, only those made of `[a-z0-9._-]`.
fn os_words(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("os "))
        .flat_map(str::split_whitespace)
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

/// `untrusted PATH WHY` lines of a root script (at most 20 kept: the
/// container chooses how many it prints).
fn parse_untrusted(stdout: &str) -> Vec<Untrusted> {
    let mut out: Vec<Untrusted> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("untrusted ") else {
            continue;
        };
        let (path, reason) = rest.split_once(' ').unwrap_or((rest, "not trusted"));
        let u = Untrusted {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if !out.contains(&u) && out.len() < 20 {
            out.push(u);
        }
    }
    out
}

/// The [`scripts::ESCALATION`] lines: how the user could become root
/// (`sudo` or a setuid/setgid program's path), at most 20; `None` when the
/// check did not run to the end.
fn parse_escalation(stdout: &str) -> Option<Vec<String>> {
    if !stdout.lines().any(|l| l == "escalation-checked") {
        return None;
    }
    let how = stdout
        .lines()
        .filter_map(|l| match l.strip_prefix("escalation ")? {
            "sudo" => Some("passwordless sudo (`sudo -n true` succeeds)".to_string()),
            rest => rest
                .strip_prefix("setuid ")
                .map(|p| format!("setuid/setgid-root program {p}")),
        })
        .take(20)
        .collect();
    Some(how)
}

fn escalation_warning(how: &[String]) -> String {
    format!(
        "the user can become root ({}): root in the bottle can read the agent's keys; \
         remove the escalation from the image (or use --strict to refuse)",
        how.join("; ")
    )
}

fn untrusted_error(container: &str, stdout: &str) -> Option<Error> {
    let untrusted = parse_untrusted(stdout);
    (!untrusted.is_empty()).then(|| Error::UntrustedInContainer {
        container: container.to_string(),
        untrusted,
    })
}

fn ssh_dir(target: &Target) -> String {
    format!("{}/.ssh", target.home.trim_end_matches('/'))
}

/// Text as whole lines for a line-framed stdin: the count and the bytes
/// (with a final newline).
fn framed(text: &str) -> (usize, String) {
    let mut text = text.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    (text.lines().count(), text)
}

/// The root exec of provision (checks, lock, key record, agent, forwarder,
/// keys); see [`scripts::provision`].
fn load_keys_request(
    target: &Target,
    mode: &str,
    token: &str,
    record: &str,
    message: &[u8],
) -> ExecRequest {
    let (lines, record) = framed(record);
    let lines = lines.to_string();
    let mut args = vec![
        target.user.as_str(),
        target.home.as_str(),
        STATE_DIR,
        &target.agent_socket,
        &target.public_socket,
        mode,
        token,
        &lines,
    ];
    args.extend(root_tools());
    // Built in place so no copy of the key bytes is left unzeroized.
    let mut stdin = zeroize::Zeroizing::new(Vec::with_capacity(record.len() + message.len()));
    stdin.extend_from_slice(record.as_bytes());
    stdin.extend_from_slice(message);
    ExecRequest::script(&scripts::provision(), args)
        .user("0")
        .stdin(std::mem::take(&mut *stdin))
}

/// The user's exec of provision (`~/.ssh`, `config`, `known_hosts` and
/// one public key file per key, as the user); see [`scripts::user_files`].
fn user_files_request(
    target: &Target,
    config: &str,
    known_hosts: Option<&str>,
    public_keys: &[(String, String)],
) -> ExecRequest {
    let (config_lines, config) = framed(config);
    let (known_lines, known) = framed(known_hosts.unwrap_or(""));
    let (config_lines, known_lines) = (config_lines.to_string(), known_lines.to_string());
    let npub = public_keys.len().to_string();
    let mut args = vec![target.home.as_str(), &config_lines, &known_lines, &npub];
    args.extend(public_keys.iter().map(|(name, _)| name.as_str()));
    // The root exec's tools too: both execs must agree on "nothing missing".
    args.extend(root_tools());
    let mut stdin = format!("{config}{known}");
    for (_, text) in public_keys {
        stdin.push_str(text);
    }
    ExecRequest::script(&scripts::user_files(), args)
        .user(target.user.as_str())
        .stdin(stdin.into_bytes())
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
            k.restricted_to().join(",")
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
/// container. Runtime calls: two execs at once (root: checks, lock, agent,
/// keys; the user: its `~/.ssh` files); one more exec only when a reused agent does not end up holding the keys
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

    let token = lock_token();
    let record = key_state(&valid, unix_now());
    let config = render_config(&valid, target);
    let known_hosts = render_known_hosts(&valid);
    let public_keys = render_public_keys(&valid);

    // Strict: refuse before changing anything when the user can become
    // root (one more exec, as the user, first).
    if opts.strict {
        let out = rt
            .exec(
                container,
                ExecRequest::script(scripts::ESCALATION, Vec::<&str>::new())
                    .user(target.user.as_str()),
            )
            .await
            .map_err(Error::runtime("check escalation"))?;
        let how = parse_escalation(&out.stdout_lossy())
            .ok_or_else(|| script_error("check escalation", container, &out))?;
        if !how.is_empty() {
            return Err(Error::UserCanBecomeRoot {
                container: container.to_string(),
                how,
            });
        }
    }

    // Two execs at once: root (checks, lock, agent, keys over stdin) and
    // the user (its own ~/.ssh files). Each checks the same tools and home
    // first and changes nothing when something is missing. The root one is
    // started first, so call order stays deterministic for wrappers.
    let timed = |request: ExecRequest| async move {
        let t = Instant::now();
        let out = rt.exec(container, request).await;
        (out, t.elapsed())
    };
    let root_request = load_keys_request(target, "reuse", &token, &record, &message);
    let user_request = user_files_request(target, &config, known_hosts.as_deref(), &public_keys);
    let ((root, root_took), (user, user_took)) =
        futures_util::join!(timed(root_request), timed(user_request));
    let (root_step, user_step, retry_step) = ("load keys", "write files", "load keys (new agent)");
    steps.push(root_step, root_took);
    steps.push(user_step, user_took);

    // What root will not trust, then a missing tool, user or home, are the
    // most useful errors: report them from either exec before anything else.
    if let Some(e) = root
        .as_ref()
        .ok()
        .and_then(|out| untrusted_error(container, &out.stdout_lossy()))
    {
        return Err(e);
    }
    let mut missing = Vec::new();
    for (step, out) in [(root_step, &root), (user_step, &user)] {
        if let Ok(out) = out {
            parse_missing(step, container, target, &out.stdout_lossy(), &mut missing)?;
        }
    }
    if !missing.is_empty() {
        let os = root
            .as_ref()
            .map(|out| os_words(&out.stdout_lossy()))
            .unwrap_or_default();
        let os: Vec<&str> = os.iter().map(String::as_str).collect();
        return Err(Error::MissingInContainer {
            container: container.to_string(),
            hint: error::install_hint(&os, &missing),
            missing,
        });
    }
    let root = root.map_err(Error::runtime(root_step))?;
    let user = user.map_err(Error::runtime(user_step))?;
    if !user.success() {
        return Err(script_error(user_step, container, &user));
    }
    let user_stdout = user.stdout_lossy();
    if !user_stdout.lines().any(|l| l == "done") {
        return Err(protocol(user_step, container, "the script did not finish"));
    }
    let ids = parse_ids(user_step, container, &user_stdout)?;

    // A live agent is reused. If it does not end up holding the plan's keys
    // (the user can LOCK it through the forwarder), one more exec replaces it.
    let mut attempt = 1;
    let mut out = root;
    let (stdout, agent, forwarder) = loop {
        let step = if attempt == 1 { root_step } else { retry_step };
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
        // `agent-unusable`: a reused agent did not accept the key stream.
        let unusable = stdout.lines().any(|l| l == "agent-unusable");
        if actual == expected && !unusable {
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
        attempt += 1;
        let t = Instant::now();
        out = rt
            .exec(
                container,
                load_keys_request(target, "fresh", &token, &record, &message),
            )
            .await
            .map_err(Error::runtime(retry_step))?;
        steps.done(retry_step, t);
    };
    drop(message);

    let dir = ssh_dir(target);
    let file = |path: String, mode: &str| FileReport {
        path,
        mode: mode.to_string(),
        uid: ids.uid,
        gid: ids.gid,
    };
    let mut files = vec![
        file(dir.clone(), "700"),
        file(format!("{dir}/config"), "600"),
    ];
    if known_hosts.is_some() {
        files.push(file(format!("{dir}/known_hosts"), "600"));
    }
    for (name, _) in &public_keys {
        files.push(file(format!("{dir}/{name}"), "600"));
    }
    let removed = user_stdout
        .lines()
        .chain(stdout.lines())
        .filter_map(|l| l.strip_prefix("removed "))
        .map(str::to_string)
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
                restricted_to: k.restricted_to(),
            })
            .collect(),
        warnings: {
            let mut w = valid.warnings.clone();
            match parse_escalation(&user_stdout) {
                Some(how) if !how.is_empty() => w.push(escalation_warning(&how)),
                Some(_) => {}
                None => w.push("could not check whether the user can become root".to_string()),
            }
            w
        },
        files,
        removed,
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

/// A window of a key's public-key bytes as the agent stream carries them
/// (ed25519 point, RSA modulus, ECDSA point), without NUL or newline (argv
/// and line framing), 12 to 24 bytes, as `printf` octal escapes and a
/// newline; `None` when no such window exists. Public bytes: finding them
/// raw in a file means a captured key stream, not a key file's text.
fn scan_pattern(k: &LoadedKey) -> Option<String> {
    use ssh_key::public::KeyData;
    let public = k.private.public_key();
    let bytes: &[u8] = match public.key_data() {
        KeyData::Ed25519(pk) => pk.as_ref(),
        KeyData::Rsa(rsa) => rsa.n.as_bytes(),
        KeyData::Ecdsa(ec) => ec.as_sec1_bytes(),
        _ => return None,
    };
    let window = bytes
        .split(|b| *b == 0 || *b == b'\n')
        .max_by_key(|run| run.len())
        .filter(|run| run.len() >= 12)?;
    let window = &window[..window.len().min(24)];
    let mut out: String = window.iter().map(|b| format!("\\{b:03o}")).collect();
    out.push('\n');
    Some(out)
}

/// Programs verify's root part runs besides provision's.
const VERIFY_TOOLS: [&str; 3] = ["find", "head", "stat"];

/// The file type in `stat -c %f`'s raw mode (hex), named as GNU `%F` does
/// with `_` for spaces.
fn file_kind(raw_hex: &str) -> &'static str {
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
    let mut args = vec![
        STATE_DIR,
        &target.agent_socket,
        &target.public_socket,
        &target.user,
        &target.home,
    ];
    args.extend(root_tools());
    args.extend(VERIFY_TOOLS);
    let patterns: String = valid.keys.iter().filter_map(scan_pattern).collect();
    let out = rt
        .exec_script(
            container,
            &scripts::verify_root(),
            &args,
            Some(patterns.as_bytes()),
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
    // Nothing else is looked at when root's environment is not trusted:
    // the script stops before running any program of the container's.
    let untrusted = parse_untrusted(&root);
    let mut missing = Vec::new();
    parse_missing(STEP, container, target, &root, &mut missing)?;
    let mut problems: Vec<String> = untrusted.iter().map(ToString::to_string).collect();
    problems.extend(missing.iter().map(|m| format!("missing {m}")));
    checks.push(check(
        "root's programs and directories are trusted",
        problems.is_empty(),
        if problems.is_empty() {
            "PATH, tools, state and socket directories root-owned, not group/other-writable"
                .to_string()
        } else {
            problems.join("; ")
        },
    ));
    if !problems.is_empty() {
        return Ok(VerifyReport { checks });
    }
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

    // stat MODE UID GID RAWMODE PATH, then for files: content PATH, |line…, end-content
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
            let (mode, uid, gid, raw, p) = (w.next()?, w.next()?, w.next()?, w.next()?, w.next()?);
            (p == path).then(|| {
                (
                    mode.to_string(),
                    uid.parse().unwrap_or(u32::MAX),
                    gid.parse().unwrap_or(u32::MAX),
                    file_kind(raw).to_string(),
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
    let mut expect_pub: Vec<(String, String)> = Vec::new();
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
    for (name, text) in render_public_keys(&valid) {
        expect_pub.push((format!("{dir}/{name}"), sha256_hex(text.as_bytes())));
    }
    for (path, sum) in expect_pub {
        let (ok, detail) = match stat_of(&path) {
            None => (false, "absent".to_string()),
            Some((m, u, g, k, s)) => (
                m == "600" && u == ids.uid && g == ids.gid && k == "regular_file" && s == sum,
                format!(
                    "{k} {m} {u}:{g}{}",
                    if s == sum {
                        ""
                    } else {
                        ", content differs from the plan"
                    }
                ),
            ),
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
            (true, None) => format!(
                "none under /root /home /tmp /run /var/tmp and {}",
                target.home
            ),
        },
    ));

    let out = rt
        .exec(
            container,
            ExecRequest::script(
                &scripts::verify_user(),
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
        let want: Vec<String> = k.restricted_to();
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
    checks.push(match parse_escalation(&user) {
        None => check("the user cannot become root", false, "could not check"),
        Some(how) if how.is_empty() => check(
            "the user cannot become root",
            true,
            "no passwordless sudo, no setuid/setgid-root program outside the allow-list",
        ),
        Some(how) => check("the user cannot become root", false, how.join("; ")),
    });
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
/// pids still run them), remove both sockets and the state directory (one
/// root exec) and, at the same time as the user, the files provision wrote
/// in `~/.ssh` that still carry [`FILE_MARK`] (and `~/.ssh` if that leaves
/// it empty). Deprovisioning twice is harmless.
pub async fn deprovision(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
) -> Result<DeprovisionReport, Error> {
    const STEP: &str = "deprovision";
    validate_target(target)?;
    let token = lock_token();
    let mut args = vec![
        STATE_DIR,
        &target.agent_socket,
        &target.public_socket,
        &token,
    ];
    args.extend(root_tools());
    let root = ExecRequest::script(&scripts::deprovision(), args).user("0");
    let user = ExecRequest::script(&scripts::deprovision_user(), [target.home.as_str()])
        .user(target.user.as_str());
    let (root, user) = futures_util::join!(rt.exec(container, root), rt.exec(container, user));
    let mut stdout = String::new();
    for (is_root, out) in [(true, root), (false, user)] {
        let out = out.map_err(Error::runtime(STEP))?;
        let text = out.stdout_lossy();
        // Only root's own script reports on root's environment.
        if let Some(e) = is_root.then(|| untrusted_error(container, &text)).flatten() {
            return Err(e);
        }
        if !out.success() || !text.lines().any(|l| l == "done") {
            return Err(script_error(STEP, container, &out));
        }
        stdout.push_str(&text);
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
