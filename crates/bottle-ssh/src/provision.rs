//! [`provision`]: validate, then two execs at once (root: checks, lock,
//! agent, keys over stdin; the user: its `~/.ssh` files), and one more only
//! when a reused agent does not end up holding the keys.

use crate::protocol::{self, ProvisionRoot, UserFiles};
use crate::{
    agent, error, missing_of, protocol as protocol_error, render_config, render_known_hosts,
    render_public_keys, root_tools, script_error, scripts, ssh_dir, unix_now, unreadable,
    untrusted_error, validate_target, validate_with, Error, FileReport, KeyReport, Options, Plan,
    ProvisionReport, StepReport, Target, ValidatedPlan, STATE_DIR,
};
use bottle_runtime::{ContainerRuntime, ExecOutput, ExecRequest};
use std::time::Instant;

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

/// A token naming one provision's hold on the in-container lock (not a
/// secret: it only tells this provision's two execs apart from another's).
pub(crate) fn lock_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}

pub(crate) fn escalation_warning(how: &[String]) -> String {
    format!(
        "the user can become root ({}): root in the bottle can read the agent's keys; \
         remove the escalation from the image (or use --strict to refuse)",
        how.join("; ")
    )
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

/// A root exec's stdin: `parts` in order, built in one buffer so no copy
/// of the key bytes among them is left unzeroized.
pub(crate) fn key_stdin(parts: &[&[u8]]) -> Vec<u8> {
    let mut stdin =
        zeroize::Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for part in parts {
        stdin.extend_from_slice(part);
    }
    std::mem::take(&mut *stdin)
}

/// The arguments root's provision scripts and preflight begin with: user,
/// home, state directory, agent socket, public socket.
pub(crate) fn target_args(target: &Target) -> Vec<&str> {
    vec![
        target.user.as_str(),
        target.home.as_str(),
        STATE_DIR,
        &target.agent_socket,
        &target.public_socket,
    ]
}

/// The root exec of a `guard = "off"` provision (checks, lock, key record,
/// agent, relay, keys); see [`scripts::provision`].
fn load_keys_request(
    target: &Target,
    mode: &str,
    token: &str,
    record: &str,
    policy: &str,
    message: &[u8],
) -> ExecRequest {
    let (lines, record) = framed(record);
    let (policy_lines, policy) = framed(policy);
    let (lines, policy_lines) = (lines.to_string(), policy_lines.to_string());
    let mut args = target_args(target);
    args.extend([mode, token, &lines, GUARD_OFF, &policy_lines]);
    args.extend(root_tools(true));
    ExecRequest::script(&scripts::provision(), args)
        .user("0")
        .stdin(key_stdin(&[record.as_bytes(), policy.as_bytes(), message]))
}

/// A guarded provision's one exec (see [`scripts::provision_guarded`]):
/// root's part as in [`load_keys_request`], and `user`, the user's part
/// built by [`user_files_request`], which the guard runs as the user.
#[allow(clippy::too_many_arguments)]
fn guarded_request(
    target: &Target,
    guard: &str,
    mode: &str,
    token: &str,
    record: &str,
    policy: &str,
    user: &ExecRequest,
    message: &[u8],
) -> ExecRequest {
    let record = framed(record).1;
    let policy = framed(policy).1;
    let user_stdin: &[u8] = user.stdin.as_deref().map_or(&[], |s| s.as_slice());
    let lengths = [record.len(), policy.len(), user_stdin.len()].map(|n| n.to_string());
    let mut args = target_args(target);
    args.extend([mode, token, guard]);
    args.extend(lengths.iter().map(String::as_str));
    // `sh -c SCRIPT bottle-script ARGS…`: the script and its arguments.
    args.push(&user.argv[2]);
    args.extend(user.argv[4..].iter().map(String::as_str));
    let stdin = key_stdin(&[record.as_bytes(), policy.as_bytes(), user_stdin, message]);
    ExecRequest::script(&scripts::provision_guarded(), args)
        .user("0")
        .stdin(stdin)
}

/// A guarded provision's output as its two parts: root's (everything
/// before the `user-part EXIT` line, the exec's exit code) and the user's
/// (everything after it, EXIT its exit code), when the guard ran it. Both
/// keep the exec's stderr.
pub(crate) fn split_user_part(out: ExecOutput) -> (ExecOutput, Option<ExecOutput>) {
    let mark = [bottle_guard::root::USER_PART.as_bytes(), b" "].concat();
    let at = (0..out.stdout.len())
        .find(|&i| (i == 0 || out.stdout[i - 1] == b'\n') && out.stdout[i..].starts_with(&mark));
    let Some(at) = at else { return (out, None) };
    let rest = &out.stdout[at + mark.len()..];
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let code = std::str::from_utf8(&rest[..end])
        .ok()
        .filter(|c| !c.is_empty() && c.len() <= 3 && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<i64>().ok());
    let user = code.map(|exit_code| ExecOutput {
        exit_code,
        stdout: rest[(end + 1).min(rest.len())..].to_vec(),
        stderr: out.stderr.clone(),
    });
    let root = ExecOutput {
        exit_code: out.exit_code,
        stdout: out.stdout[..at].to_vec(),
        stderr: out.stderr,
    };
    // A malformed mark: root's part is what it is; the user's is absent.
    (root, user)
}

/// The user's exec of provision (`~/.ssh`, `config`, `known_hosts` and
/// one public key file per key, as the user); see [`scripts::user_files`].
pub(crate) fn user_files_request(
    write: scripts::Write,
    target: &Target,
    config: &str,
    known_hosts: Option<&str>,
    public_keys: &[(String, String)],
    signing: &[String; 4],
    tools: &[&str],
) -> ExecRequest {
    let (config_lines, config) = framed(config);
    let (known_lines, known) = framed(known_hosts.unwrap_or(""));
    let (config_lines, known_lines) = (config_lines.to_string(), known_lines.to_string());
    let npub = public_keys.len().to_string();
    let mut args = vec![
        write.arg(),
        target.home.as_str(),
        &config_lines,
        &known_lines,
        &npub,
    ];
    args.extend(public_keys.iter().map(|(name, _)| name.as_str()));
    // [signing]: git settings, allowed signers, the include, the wrapper
    // (0 lines: none).
    let signing: Vec<(String, String)> = signing
        .iter()
        .map(|t| {
            let (n, t) = framed(t);
            (n.to_string(), t)
        })
        .collect();
    args.extend(signing.iter().map(|(n, _)| n.as_str()));
    // The root exec's tools too: both execs must agree on "nothing missing".
    args.extend(tools.iter().copied());
    let mut stdin = format!("{config}{known}");
    for (_, text) in public_keys {
        stdin.push_str(text);
    }
    for (_, text) in &signing {
        stdin.push_str(text);
    }
    ExecRequest::script(&scripts::user_files(), args)
        .user(target.user.as_str())
        .stdin(stdin.into_bytes())
}

/// What the user's exec of provision wrote, for the report (both layouts
/// write the same files).
pub(crate) fn files_written(
    target: &Target,
    ids: crate::protocol::Ids,
    known_hosts: bool,
    public_keys: &[(String, String)],
    signing: bool,
    git_config_theirs: bool,
) -> Vec<FileReport> {
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
    if known_hosts {
        files.push(file(format!("{dir}/known_hosts"), "600"));
    }
    for (name, _) in public_keys {
        files.push(file(format!("{dir}/{name}"), "600"));
    }
    if signing {
        for name in [
            crate::signing::GITCONFIG_FILE,
            crate::signing::ALLOWED_SIGNERS_FILE,
        ] {
            files.push(file(format!("{dir}/{name}"), "600"));
        }
        files.push(file(
            format!("{dir}/{}", crate::signing::KEYGEN_WRAPPER),
            "700",
        ));
        if !git_config_theirs {
            files.push(file(crate::signing::xdg_config(target), "600"));
        }
    }
    files
}

/// Deliver the guard into `container`'s state directory as root (one exec,
/// the executable on stdin; see [`scripts::deliver_guard`]). `shown` names
/// the container in errors; `tools` are what root's scripts run there.
pub(crate) async fn deliver_guard(
    rt: &dyn ContainerRuntime,
    container: &str,
    shown: &str,
    token: &str,
    tools: &[&str],
) -> Result<(), Error> {
    const STEP: &str = "deliver the guard";
    let mut args = vec![STATE_DIR, crate::guard::sha256(), token];
    args.extend(tools);
    let request = ExecRequest::script(&scripts::deliver_guard(), args)
        .user("0")
        .stdin(crate::guard::EXECUTABLE.to_vec());
    let out = rt
        .exec(container, request)
        .await
        .map_err(Error::runtime(STEP))?;
    let trust = protocol::delivered(&out.stdout_lossy());
    if let Some(e) = trust.as_ref().ok().and_then(|t| untrusted_error(shown, t)) {
        return Err(e);
    }
    // A failed delivery stops before `done`: its stderr says why (e.g. a
    // noexec /run), which "did not finish" would hide.
    if !out.success() {
        return Err(script_error(STEP, shown, &out));
    }
    trust.map_err(|e| unreadable(STEP, shown, e))?;
    Ok(())
}

/// [`guard_arg`] for [`Options::unguarded`].
pub(crate) const GUARD_OFF: &str = "off";

/// The forwarder argument of root's scripts: the guard's SHA-256, or `off`
/// when the operator chose [`Options::unguarded`].
pub(crate) fn guard_arg(container: &str, opts: &Options<'_>) -> Result<&'static str, Error> {
    if opts.unguarded {
        return Ok(GUARD_OFF);
    }
    if crate::guard::EXECUTABLE.is_empty() {
        return Err(Error::NoGuard {
            container: container.to_string(),
        });
    }
    Ok(crate::guard::sha256())
}

/// Approvals and limits are the guard's: a plan that has them cannot be
/// provisioned unguarded.
pub(crate) fn holds_need_the_guard(plan: &ValidatedPlan, opts: &Options<'_>) -> Result<(), Error> {
    let held = plan.entries.iter().any(|e| !e.hold.is_empty())
        || plan.signing.as_ref().is_some_and(|s| !s.hold.is_empty());
    if held && opts.unguarded {
        return Err(Error::Plan {
            entry: "ssh".into(),
            field: "Approve".into(),
            reason: "Approve and MaxSignatures need the guard, and guard = \"off\"".into(),
        });
    }
    Ok(())
}

/// What the guard lets each key do (see `bottle_guard::policy`): one
/// `login` line per entry (its key, its `User`, and its pinned host key
/// where the key is destination-restricted: `Restrict = false` lets it go
/// anywhere, as its user), one `sshsig` line for the `[signing]` key
/// (namespace `git`), and one `host` line per pinned host key naming its
/// entries' aliases (what the records show).
pub(crate) fn guard_policy(plan: &ValidatedPlan) -> String {
    let mut out = String::new();
    // For the records: the alias(es) each pinned host key identifies.
    let mut aliases: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for e in &plan.entries {
        out.push_str(&format!("login {} user={}", e.fingerprint, e.user));
        let restricted = plan
            .keys
            .iter()
            .any(|k| k.fingerprint == e.fingerprint && !k.destinations.is_empty());
        let host = e
            .known_host_key
            .as_deref()
            .and_then(|k| ssh_key::PublicKey::from_openssh(k).ok())
            .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string());
        if let Some(host) = host {
            if restricted {
                out.push_str(&format!(" host={host}"));
            }
            aliases.entry(host).or_default().push(&e.alias);
        }
        out.push_str(&e.hold);
        out.push('\n');
    }
    if let Some(s) = &plan.signing {
        out.push_str(&format!(
            "sshsig {} namespace=git{}\n",
            s.fingerprint, s.hold
        ));
    }
    for (host, names) in aliases {
        out.push_str(&format!("host {host}"));
        for n in names {
            out.push_str(&format!(" alias={n}"));
        }
        out.push('\n');
    }
    out
}

/// The key record provision writes (see [`crate::KEYS_FILE`]).
pub(crate) fn key_state(plan: &ValidatedPlan, now: u64) -> String {
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
        // A certificate (public) is kept whole: verify and keys read it back.
        let cert = k
            .issued()
            .map(|c| format!(" {}", crate::certificate::record_word(c)))
            .unwrap_or_default();
        out.push_str(&format!("{} {deadline} {hosts}{cert}\n", k.fingerprint));
    }
    out
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
    let mut valid = validate_with(plan, opts)?;
    crate::certificate::certify(&mut valid, rt.engine().name(), container, unix_now())?;
    let message = agent::load_keys_message(&valid.keys).map_err(|reason| Error::Plan {
        entry: "ssh".into(),
        field: "IdentityFile".into(),
        reason,
    })?;
    steps.done("validate", t);

    holds_need_the_guard(&valid, opts)?;
    let guard = guard_arg(container, opts)?;
    let token = lock_token();
    let record = key_state(&valid, unix_now());
    let policy = if opts.unguarded {
        String::new()
    } else {
        guard_policy(&valid)
    };
    let config = render_config(&valid, target);
    let known_hosts = render_known_hosts(&valid);
    let public_keys = render_public_keys(&valid);
    let signing_files = crate::signing::render_files(valid.signing.as_ref(), target);

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
        let how = protocol::escalation(&out.stdout_lossy())
            .map_err(|e| unreadable("check escalation", container, e))?
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
    // The root exec, in a mode: `reuse` first, `fresh` to replace the agent.
    let load_keys = |mode| load_keys_request(target, mode, &token, &record, &policy, &message);
    let user_request = user_files_request(
        scripts::Write::Always,
        target,
        &config,
        known_hosts.as_deref(),
        &public_keys,
        &signing_files,
        &root_tools(guard == GUARD_OFF),
    );
    let (root_step, user_step, retry_step) = ("load keys", "write files", "load keys (new agent)");
    let guarded = guard != GUARD_OFF;
    // Guarded: one exec, the user's part run by the guard as the user.
    let guarded_exec = |mode| {
        let request = guarded_request(
            target,
            guard,
            mode,
            &token,
            &record,
            &policy,
            &user_request,
            &message,
        );
        async move {
            let t = Instant::now();
            let out = rt.exec(container, request).await;
            let split = out.map(split_user_part);
            (split, t.elapsed())
        }
    };
    let mut delivered = false;
    let (root, user) = if guarded {
        let (mut split, mut took) = guarded_exec("reuse").await;
        // The first provision of a bottle (or a new bottle-guard): deliver
        // it, then provision again.
        let missing = |s: &Result<(ExecOutput, Option<ExecOutput>), _>| {
            s.as_ref().is_ok_and(|(root, _)| {
                protocol::provision_root(&root.stdout_lossy()).is_ok_and(|r| r.guard_missing)
            })
        };
        if missing(&split) {
            delivered = true;
            let t = Instant::now();
            deliver_guard(rt, container, container, &token, &root_tools(false)).await?;
            steps.done("deliver the guard", t);
            (split, took) = guarded_exec("reuse").await;
        }
        steps.push(root_step, took);
        match split {
            Ok((root, user)) => {
                let user = user.unwrap_or(ExecOutput {
                    exit_code: 1,
                    stdout: Vec::new(),
                    stderr: root.stderr.clone(),
                });
                (Ok(root), Ok(user))
            }
            Err(e) => (
                Err(e),
                Ok(ExecOutput {
                    exit_code: 1,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                }),
            ),
        }
    } else {
        let ((root, root_took), (user, user_took)) =
            futures_util::join!(timed(load_keys("reuse")), timed(user_request.clone()));
        steps.push(root_step, root_took);
        steps.push(user_step, user_took);
        (root, user)
    };

    // What root will not trust, then a missing tool, user or home, are the
    // most useful errors: report them from either exec before anything else.
    let root_read = root
        .as_ref()
        .ok()
        .map(|out| protocol::provision_root(&out.stdout_lossy()));
    let user_read = user
        .as_ref()
        .ok()
        .map(|out| protocol::user_files(&out.stdout_lossy()));
    if let Some(Ok(r)) = &root_read {
        if let Some(e) = untrusted_error(container, &r.trust) {
            return Err(e);
        }
    }
    let mut absent = Vec::new();
    if let Some(Ok(r)) = &root_read {
        absent.extend(r.trust.missing.iter().cloned());
    }
    if let Some(Ok(u)) = &user_read {
        absent.extend(u.missing.iter().cloned());
    }
    let missing = missing_of(&absent, target);
    if !missing.is_empty() {
        let os: Vec<&str> = match &root_read {
            Some(Ok(r)) => r.trust.os.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        return Err(Error::MissingInContainer {
            container: container.to_string(),
            hint: error::install_hint(&os, &missing),
            missing,
        });
    }
    let root = root.map_err(Error::runtime(root_step))?;
    let user = user.map_err(Error::runtime(user_step))?;
    // Root's part failed before the guard ran the user's: root's error.
    if guarded && !root.success() {
        return Err(script_error(root_step, container, &root));
    }
    if !user.success() {
        return Err(script_error(user_step, container, &user));
    }
    let user_report: UserFiles = match user_read {
        Some(read) => read.map_err(|e| unreadable(user_step, container, e))?,
        None => unreachable!("the user's exec succeeded"),
    };
    if !user_report.done {
        return Err(protocol_error(
            user_step,
            container,
            "the script did not finish",
        ));
    }
    let ids = user_report
        .ids
        .ok_or_else(|| protocol_error(user_step, container, "no uid/gid for the target user"))?;

    // A live agent is reused. If it does not end up holding the plan's keys
    // (the user can LOCK it through the forwarder), one more exec replaces it.
    let mut attempt = 1;
    let mut out = root;
    let (report, agent, forwarder) = loop {
        let step = if attempt == 1 { root_step } else { retry_step };
        if !out.success() {
            return Err(script_error(step, container, &out));
        }
        let report: ProvisionRoot = protocol::provision_root(&out.stdout_lossy())
            .map_err(|e| unreadable(step, container, e))?;
        if !report.done {
            return Err(protocol_error(step, container, "the script did not finish"));
        }
        // The first provision of a bottle (or a new bottle-guard): deliver
        // it, then load the keys again.
        // Delivered above when the first exec found no guard (an
        // unguarded provision never looks for one).
        if report.guard_missing {
            let why = match delivered {
                true => "the guard is still missing after delivery",
                false => "the guard is missing",
            };
            return Err(protocol_error(step, container, why));
        }
        let agent = report
            .agent
            .clone()
            .ok_or_else(|| protocol_error(step, container, "no agent pid reported"))?;
        let forwarder = report
            .forwarder
            .clone()
            .ok_or_else(|| protocol_error(step, container, "no forwarder pid reported"))?;
        let mut actual = report.keys.clone();
        actual.sort();
        let expected = valid.fingerprints();
        if actual == expected && !report.agent_unusable {
            break (report, agent, forwarder);
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
        let mode = "fresh";
        if guarded {
            let (split, took) = guarded_exec(mode).await;
            let (root, user) = split.map_err(Error::runtime(retry_step))?;
            steps.push(retry_step, took);
            // The user's part ran again, writing the same files.
            match user {
                Some(user) if user.success() || !root.success() => {}
                Some(user) => return Err(script_error(user_step, container, &user)),
                None if !root.success() => {}
                None => {
                    return Err(protocol_error(
                        retry_step,
                        container,
                        "the user's part did not run",
                    ))
                }
            }
            out = root;
            continue;
        }
        let t = Instant::now();
        out = rt
            .exec(container, load_keys(mode))
            .await
            .map_err(Error::runtime(retry_step))?;
        steps.done(retry_step, t);
    };
    drop(message);

    let files = files_written(
        target,
        ids,
        known_hosts.is_some(),
        &public_keys,
        valid.signing.is_some(),
        user_report.git_config_theirs,
    );
    let removed = user_report
        .removed
        .iter()
        .chain(&report.removed)
        .cloned()
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
                certificate: k.issued().map(crate::CertInfo::of),
            })
            .collect(),
        warnings: {
            let mut w = valid.warnings.clone();
            if valid.signing.is_some() && user_report.git_config_theirs {
                w.push(crate::signing::theirs_warning(target));
            }
            match user_report.escalation {
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
