//! The `sidecar` agent layout: ssh-agent runs as root in a companion
//! container joined to the bottle's network namespace, never in the bottle.
//!
//! - The sidecar (`<bottle>-bottle-agent`, labelled [`LABEL_FOR`] = the
//!   bottle's id) is made from the bottle's own image (or
//!   [`AgentLayout::Sidecar`]'s image), with no mounts, no extra
//!   capabilities and no network of its own
//!   (`--network container:<bottle>`).
//! - In the sidecar: `ssh-agent -D -P '!*' -a /run/claude-bottle-agent.sock` and a
//!   `socat` forwarder listening on the abstract Unix socket
//!   `@claude-bottle-agent-<id12>`. The key stream goes only into that
//!   container's exec stdin.
//! - In the bottle: a `socat` relay as root from the public socket
//!   (`/run/claude-bottle-agent-public.sock`, what `IdentityAgent` names) to
//!   the abstract socket. It carries agent requests and answers only; no key
//!   byte passes through the bottle. The user's files are written as in
//!   the `bottle` layout.
//!
//! Abstract sockets belong to a network namespace, which the two containers
//! share; OpenSSH's `IdentityAgent`/`SSH_AUTH_SOCK` takes a path only, hence
//! the relay. See docs/security.md, "The agent outside the bottle".

use crate::protocol::{self, ProvisionRoot};
use crate::provision::{key_state, lock_token, user_files_request};
use crate::scripts::Write;
use crate::{
    agent, error, missing_of, protocol as protocol_error, render_config, render_known_hosts,
    render_public_keys, script_error, scripts, unix_now, unreadable, untrusted_error,
    validate_target, validate_with, Check, DeprovisionReport, Error, KeyReport, Options, Plan,
    ProvisionReport, StepReport, Target, VerifyReport, STATE_DIR,
};
use bottle_runtime::{
    ContainerAdmin, ContainerDetails, ContainerFilter, ContainerInfo, ExecRequest, NetworkMode,
    RunSpec,
};
use std::time::Instant;

/// Where the agent runs: `bottle` (root in the bottle, the default) or
/// `sidecar` (a companion container; `image` `None`: the bottle's image).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AgentLayout {
    #[default]
    Bottle,
    Sidecar {
        image: Option<String>,
    },
}

/// The label naming the bottle (its id) a sidecar serves.
pub const LABEL_FOR: &str = "io.claude-bottle.agent-for";
/// The label holding the bottle's start time the sidecar was made for: a
/// restarted bottle has a new network namespace, so a new sidecar.
pub const LABEL_STARTED: &str = "io.claude-bottle.agent-for-started";

/// The sidecar's name for a bottle named `bottle`.
pub fn sidecar_name(bottle: &str) -> String {
    format!("{bottle}-bottle-agent")
}

/// The abstract socket's name (without the leading NUL) for a bottle id.
fn abstract_name(bottle_id: &str) -> String {
    let short: String = bottle_id.chars().take(12).collect();
    format!("claude-bottle-agent-{short}")
}

/// Programs the sidecar's root exec runs.
/// `relay`: guard off, a socat on the abstract socket.
fn sidecar_tools(relay: bool) -> Vec<&'static str> {
    let mut tools = vec!["ssh-agent", "ssh-add"];
    if relay {
        tools.push("socat");
    }
    tools.extend(scripts::CORE_TOOLS.iter().copied());
    tools
}

/// Programs the bottle's relay exec runs.
fn relay_tools() -> Vec<&'static str> {
    let mut tools = vec!["socat"];
    tools.extend(scripts::CORE_TOOLS.iter().copied());
    tools
}

/// What the bottle needs in this layout: the relay's tools and `ssh-add`
/// (verify lists the user's socket with it), never `ssh-agent`.
fn bottle_tools() -> Vec<&'static str> {
    let mut tools = relay_tools();
    tools.push("ssh-add");
    tools
}

/// `owns_abstract PID NAME`: PID holds the listening abstract socket @NAME
/// of this network namespace (`/proc/net/unix` is per namespace).
const OWNS_ABSTRACT: &str = concat!("\n", include_str!("scripts/sidecar/owns_abstract.sh"));

/// Root in the sidecar: `$1` state, `$2` agent socket, `$3` abstract name,
/// `$4` `reuse`|`fresh`, `$5` lock token, `$6` the guard's SHA-256 (`off`:
/// a socat relay instead), `$7`
/// lines of guard policy, `$8…` tools. Stdin: the policy's lines, then
/// agent protocol messages (key material), relayed to the agent only.
/// Prints provision's words (trust, `guard-missing`, `agent-*`,
/// `forwarder-*`, `key`, `done`) and `netns NS`. The forwarder is the
/// guard, listening on `@NAME`.
pub(crate) fn agent_script() -> String {
    format!(
        "{}{}{}{OWNS_ABSTRACT}{AGENT_BODY}",
        scripts::HELPERS,
        scripts::TRUST,
        scripts::LOAD_KEYS
    )
}

const AGENT_BODY: &str = concat!("\n", include_str!("scripts/sidecar/agent.sh"));

/// Root in the bottle: `$1` state, `$2` agent socket (of a `bottle`
/// layout, stopped), `$3` public socket, `$4` abstract name, `$5` lock
/// token, `$6` lines of key record, `$7` [`Write`](scripts::Write), `$8…`
/// tools. Stdin: the key record (fingerprints, deadlines, hosts: nothing
/// secret). Starts the relay `UNIX-LISTEN:PUBLIC` → `ABSTRACT-CONNECT:NAME`;
/// prints trust words, then `not-clean` (and changes nothing: `if-clean`
/// with the state directory or a socket there), or `netns NS`, `removed
/// PATH`, `forwarder-started|forwarder-reused PID`, `done`.
pub(crate) fn relay_script() -> String {
    format!("{}{}{RELAY_BODY}", scripts::HELPERS, scripts::TRUST)
}

/// Step names the bottle's two execs report errors under.
const RELAY: &str = "start the relay";
const FILES: &str = "write files";

const RELAY_BODY: &str = concat!("\n", include_str!("scripts/sidecar/relay.sh"));

/// Root in the sidecar, for verify: `$1` state, `$2` agent socket, `$3`
/// abstract name, `$4` `guard`|`off` (the forwarder to expect), `$5…` tools. Prints trust words, `netns NS`, `agent PID
/// alive|dead`, `forwarder PID alive|dead`, `key SHA256:…`, `done`.
pub(crate) fn verify_script() -> String {
    format!(
        "{}{}{OWNS_ABSTRACT}{VERIFY_BODY}",
        scripts::HELPERS,
        scripts::TRUST
    )
}

const VERIFY_BODY: &str = concat!("\n", include_str!("scripts/sidecar/verify.sh"));

fn sidecar_error(bottle: &str, sidecar: &str, reason: impl Into<String>) -> Error {
    Error::Sidecar {
        container: bottle.to_string(),
        sidecar: sidecar.to_string(),
        reason: reason.into(),
    }
}

/// The bottle as the sidecar needs it: running, with a network namespace
/// of its own that can be shared.
async fn bottle_details(
    admin: &dyn ContainerAdmin,
    bottle: &str,
) -> Result<ContainerDetails, Error> {
    let d = admin
        .details(bottle)
        .await
        .map_err(Error::runtime("inspect the bottle"))?;
    if !d.info.is_running() {
        return Err(Error::Runtime {
            step: "inspect the bottle",
            source: bottle_runtime::Error::ContainerNotRunning {
                engine: admin.engine(),
                container: bottle.to_string(),
                state: d.info.state.to_string(),
            },
        });
    }
    let name = sidecar_name(&d.info.name);
    // The host's network namespace: an abstract socket there is open to
    // every process on the host.
    if d.network == "host" {
        return Err(sidecar_error(
            bottle,
            &name,
            "the bottle uses the host's network (--network host): its agent socket would be \
             reachable from every process on the host; use the bottle layout or another network",
        ));
    }
    Ok(d)
}

/// The sidecar as found: absent, ours and current, ours but stale, or not ours.
enum Found {
    Absent,
    Current(ContainerDetails),
    Stale(ContainerDetails),
}

async fn find_sidecar(
    admin: &dyn ContainerAdmin,
    bottle: &ContainerDetails,
    name: &str,
) -> Result<Found, Error> {
    let d = match admin.details(name).await {
        Ok(d) => d,
        Err(bottle_runtime::Error::ContainerNotFound { .. }) => return Ok(Found::Absent),
        Err(e) => return Err(Error::runtime("inspect the agent sidecar")(e)),
    };
    if d.labels.get(LABEL_FOR) != Some(&bottle.info.id) {
        return Err(sidecar_error(
            &bottle.info.name,
            name,
            format!(
                "a container by that name exists and is not this bottle's agent \
                 (no label {LABEL_FOR}={}); refusing to use or remove it",
                bottle.info.id
            ),
        ));
    }
    let joined = d.network == format!("container:{}", bottle.info.id);
    let current =
        d.info.is_running() && joined && d.labels.get(LABEL_STARTED) == Some(&bottle.started_at);
    Ok(if current {
        Found::Current(d)
    } else {
        Found::Stale(d)
    })
}

/// Create the sidecar (no mounts, no extra capabilities, the bottle's
/// network namespace), from `image` or the bottle's own.
async fn create_sidecar(
    admin: &dyn ContainerAdmin,
    bottle: &ContainerDetails,
    name: &str,
    image: Option<&str>,
) -> Result<ContainerInfo, Error> {
    let image = image.unwrap_or(&bottle.image).to_string();
    let exists = admin
        .image_exists(&image)
        .await
        .map_err(Error::runtime("look up the agent image"))?;
    if !exists {
        return Err(sidecar_error(
            &bottle.info.name,
            name,
            format!("image `{}` does not exist", image.escape_debug()),
        ));
    }
    let mut spec = RunSpec::new(
        image,
        [
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
        ],
    );
    spec.name = Some(name.to_string());
    spec.user = "0".into();
    spec.network = NetworkMode::Container(bottle.info.id.clone());
    spec.labels = vec![
        (LABEL_FOR.into(), bottle.info.id.clone()),
        (LABEL_STARTED.into(), bottle.started_at.clone()),
    ];
    admin.run(&spec).await.map_err(|e| {
        sidecar_error(
            &bottle.info.name,
            name,
            format!("the engine did not create it: {e}"),
        )
    })
}

/// The sidecar for `bottle` from what [`find_sidecar`] found: created or
/// replaced as needed; true when made now.
async fn ensure_sidecar(
    admin: &dyn ContainerAdmin,
    bottle: &ContainerDetails,
    name: &str,
    found: Found,
    image: Option<&str>,
) -> Result<(ContainerInfo, bool), Error> {
    match found {
        Found::Current(d) => Ok((d.info, false)),
        Found::Stale(d) => {
            tracing::info!(sidecar = %name, "replacing the agent sidecar (the bottle restarted or it stopped)");
            admin
                .remove(&d.info.id)
                .await
                .map_err(Error::runtime("remove the stale agent sidecar"))?;
            Ok((create_sidecar(admin, bottle, name, image).await?, true))
        }
        Found::Absent => Ok((create_sidecar(admin, bottle, name, image).await?, true)),
    }
}

fn framed_count(text: &str) -> (String, String) {
    let mut text = text.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    (text.lines().count().to_string(), text)
}

/// What the sidecar's agent exec is given, whatever its mode.
struct AgentLoad<'a> {
    /// The abstract socket's name.
    name: &'a str,
    token: &'a str,
    /// The guard's SHA-256, or `off` (see [`crate::provision::guard_arg`]).
    guard: &'a str,
    /// The guard's policy (see [`crate::provision::guard_policy`]).
    policy: &'a str,
    /// The agent protocol messages that load the keys.
    message: &'a [u8],
}

fn agent_request(target: &Target, load: &AgentLoad<'_>, mode: &str) -> ExecRequest {
    let (policy_lines, policy) = framed_count(load.policy);
    let message = load.message;
    let mut args = vec![
        STATE_DIR,
        target.agent_socket.as_str(),
        load.name,
        mode,
        load.token,
        load.guard,
        &policy_lines,
    ];
    args.extend(sidecar_tools(load.guard == crate::provision::GUARD_OFF));
    ExecRequest::script(&agent_script(), args)
        .user("0")
        .stdin(crate::provision::key_stdin(&[policy.as_bytes(), message]))
}

/// [`crate::provision_with`] in the `sidecar` layout: the agent in a
/// companion container of `bottle` (created, reused, or replaced when the
/// bottle restarted), a relay in the bottle. `image`: the sidecar's image,
/// `None` for the bottle's own. A bottle on the host's network, a missing
/// image, a container by the sidecar's name that is not ours, or an engine
/// that will not create it: an error, the bottle unchanged. A sidecar made
/// now is created and loads the keys while the bottle's part runs, that
/// part writing only where nothing is yet; if the load fails, it is undone.
pub async fn provision(
    admin: &dyn ContainerAdmin,
    bottle: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
    image: Option<&str>,
) -> Result<ProvisionReport, Error> {
    let mut steps = Vec::new();
    let mut step = |name: &'static str, since: Instant| {
        steps.push(StepReport {
            name,
            millis: since.elapsed().as_millis() as u64,
        })
    };
    let t = Instant::now();
    validate_target(target)?;
    let mut valid = validate_with(plan, opts)?;
    crate::provision::holds_need_the_guard(&valid, opts)?;
    let guard = crate::provision::guard_arg(bottle, opts)?;
    let details = bottle_details(admin, bottle).await?;
    crate::certificate::certify(&mut valid, admin.engine().name(), bottle, unix_now())?;
    let message = agent::load_keys_message(&valid.keys).map_err(|reason| Error::Plan {
        entry: "ssh".into(),
        field: "IdentityFile".into(),
        reason,
    })?;
    step("validate", t);

    let side_name = sidecar_name(&details.info.name);
    let found = find_sidecar(admin, &details, &side_name).await?;
    // A sidecar to make (none, or a stale one) has never held the keys.
    let fresh = !matches!(found, Found::Current(_));
    let stale = match &found {
        Found::Stale(d) => Some(d.info.id.clone()),
        _ => None,
    };
    let name = abstract_name(&details.info.id);
    let token = lock_token();

    let expected = valid.fingerprints();
    let policy = if opts.unguarded {
        String::new()
    } else {
        crate::provision::guard_policy(&valid)
    };
    let load = |side: String, side_name: String, created: bool| {
        let (name, token, message, expected) = (&name, &token, &message, &expected);
        let policy = &policy;
        async move {
            let load = AgentLoad {
                name,
                token,
                guard,
                policy,
                message,
            };
            let result = load_in_sidecar(admin, &side, &side_name, target, &load).await;
            let result = result.and_then(|(report, ns)| {
                let mut actual = report.keys.clone();
                actual.sort();
                if actual != *expected {
                    return Err(Error::AgentMismatch {
                        container: side_name.clone(),
                        expected: expected.clone(),
                        actual,
                    });
                }
                Ok((report, ns))
            });
            if result.is_err() && created {
                let _ = admin.remove(&side).await;
            }
            result
        }
    };
    // The bottle's part: the relay as root, the user's files as the user.
    let record = key_state(&valid, unix_now());
    let (nrecord, record) = framed_count(&record);
    let relay_request = |write: Write| {
        let mut args = vec![
            STATE_DIR,
            target.agent_socket.as_str(),
            target.public_socket.as_str(),
            name.as_str(),
            token.as_str(),
            nrecord.as_str(),
            write.arg(),
        ];
        args.extend(relay_tools());
        ExecRequest::script(&relay_script(), args)
            .user("0")
            .stdin(record.clone().into_bytes())
    };
    let config = render_config(&valid, target);
    let known_hosts = render_known_hosts(&valid);
    let public_keys = render_public_keys(&valid);
    let signing_files = crate::signing::render_files(valid.signing.as_ref(), target);
    let user_request = |write: Write| {
        user_files_request(
            write,
            target,
            &config,
            known_hosts.as_deref(),
            &public_keys,
            &signing_files,
            &bottle_tools(),
        )
    };
    // A sidecar made now that cannot hold the keys (a missing image, one
    // without ssh-agent, its abstract name taken) must leave the bottle as
    // it was. Meanwhile the bottle's execs write only where nothing is yet
    // (`if-clean`), so what they wrote can be undone; where something was,
    // they run again once the sidecar holds the keys. A reused sidecar has
    // held them before: `always`.
    let write = if fresh { Write::IfClean } else { Write::Always };
    let in_bottle = async {
        let t = Instant::now();
        let out = futures_util::join!(
            admin.exec(bottle, relay_request(write)),
            admin.exec(bottle, user_request(write))
        );
        (out, t.elapsed())
    };
    let in_sidecar = async {
        let t = Instant::now();
        let made = ensure_sidecar(admin, &details, &side_name, found, image).await;
        let made_took = t.elapsed();
        let t = Instant::now();
        let out = match made {
            Ok((info, created)) => load(info.id.clone(), info.name.clone(), created)
                .await
                .map(|loaded| (loaded, info.id)),
            Err(e) => Err(e),
        };
        (out, made_took, t.elapsed())
    };
    let ((loaded, made_took, side_took), ((mut relay, mut user), mut bottle_took)) =
        futures_util::join!(in_sidecar, in_bottle);
    let relay_state = relay
        .as_ref()
        .ok()
        .and_then(|o| protocol::sidecar_exec(&o.stdout_lossy()).ok())
        .map(|(r, _)| Written::of(r.not_clean, r.trust.refuses()));
    let user_state = user
        .as_ref()
        .ok()
        .and_then(|o| protocol::user_files(&o.stdout_lossy()).ok())
        .map(|u| Written::of(u.not_clean, !u.missing.is_empty()));
    if fresh {
        if let Err(e) = loaded {
            // Lost a race to make it (another sidecar of this bottle's is
            // there): the winner's provision owns the bottle's state now
            // (it found this one's and runs its parts again).
            let raced = match find_sidecar(admin, &details, &side_name).await {
                Ok(Found::Current(_)) => true,
                Ok(Found::Stale(d)) => Some(d.info.id) != stale,
                _ => false,
            };
            if raced {
                return Err(e);
            }
            let parts = crate::deprovision::Parts {
                root: relay_state.unwrap_or(Written::Maybe) == Written::Maybe,
                user: user_state.unwrap_or(Written::Maybe) == Written::Maybe,
            };
            if parts.root || parts.user {
                let undone = crate::deprovision::deprovision_parts(
                    admin,
                    bottle,
                    target,
                    &bottle_tools(),
                    parts,
                )
                .await;
                if let Err(undo) = undone {
                    tracing::warn!(%bottle, error = %undo, "could not undo the bottle's part of a failed provision");
                }
            }
            return Err(e);
        }
        let again = |state: Option<Written>| state == Some(Written::NotClean);
        if again(relay_state) || again(user_state) {
            let t = Instant::now();
            let rerun = |wanted: bool, request: ExecRequest| async move {
                match wanted {
                    true => Some(admin.exec(bottle, request).await),
                    false => None,
                }
            };
            let (r, u) = futures_util::join!(
                rerun(again(relay_state), relay_request(Write::Always)),
                rerun(again(user_state), user_request(Write::Always))
            );
            relay = r.unwrap_or(relay);
            user = u.unwrap_or(user);
            bottle_took += t.elapsed();
        }
    }
    steps.push(StepReport {
        name: "agent sidecar",
        millis: made_took.as_millis() as u64,
    });
    steps.push(StepReport {
        name: "load keys (sidecar)",
        millis: side_took.as_millis() as u64,
    });
    steps.push(StepReport {
        name: "relay and files (bottle)",
        millis: bottle_took.as_millis() as u64,
    });
    let ((mut report, mut side_ns), side) = loaded?;
    let read = read_bottle_part(bottle, target, relay, user);
    if read.is_err() && fresh {
        // Keys the bottle cannot use: not left in a container of their own.
        let _ = admin.remove(&side).await;
    }
    let (relay_report, bottle_ns, user_report) = read?;
    // A reused sidecar in another namespace than the labels said (the
    // engine reused a start time, a hand-made change): replaced once.
    if bottle_ns.is_some() && bottle_ns != side_ns && !fresh {
        tracing::warn!(sidecar = %side_name, "the agent sidecar is in another network namespace; replacing it");
        admin
            .remove(&side)
            .await
            .map_err(Error::runtime("remove the stale agent sidecar"))?;
        let replaced = create_sidecar(admin, &details, &side_name, image).await?;
        (report, side_ns) = load(replaced.id.clone(), replaced.name.clone(), true).await?;
    }
    drop(message);
    if bottle_ns.is_none() || bottle_ns != side_ns {
        return Err(sidecar_error(
            bottle,
            &side_name,
            format!(
                "does not share the bottle's network namespace (sidecar {side_ns:?}, bottle {bottle_ns:?})"
            ),
        ));
    }
    let ids = user_report
        .ids
        .ok_or_else(|| protocol_error(FILES, bottle, "no uid/gid for the target user"))?;
    let forwarder = relay_report
        .forwarder
        .clone()
        .ok_or_else(|| protocol_error(RELAY, bottle, "no relay pid reported"))?;
    let agent = report
        .agent
        .clone()
        .ok_or_else(|| protocol_error("load keys (sidecar)", &side_name, "no agent pid"))?;

    let files = crate::provision::files_written(
        target,
        ids,
        known_hosts.is_some(),
        &public_keys,
        valid.signing.is_some(),
        user_report.git_config_theirs,
    );
    let mut warnings = valid.warnings.clone();
    if details.privileged {
        warnings.push(format!(
            "the bottle is privileged: root in it can reach the agent sidecar `{side_name}`'s \
             memory; keys are out of its reach only in an unprivileged bottle"
        ));
    }
    if valid.signing.is_some() && user_report.git_config_theirs {
        warnings.push(crate::signing::theirs_warning(target));
    }
    let mut removed: Vec<String> = user_report.removed.clone();
    removed.extend(relay_report.removed.iter().cloned());
    Ok(ProvisionReport {
        container: bottle.to_string(),
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
        warnings,
        files,
        removed,
        agent,
        forwarder,
        steps,
    })
}

/// What a bottle exec of a made-now sidecar's provision did to the bottle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// `not-clean`: an earlier provision's state was there; untouched.
    NotClean,
    /// A refusal (something missing or untrusted): untouched.
    Refused,
    /// It may have written: undone if the provision fails.
    Maybe,
}

impl Written {
    fn of(not_clean: bool, refused: bool) -> Written {
        if not_clean {
            Written::NotClean
        } else if refused {
            Written::Refused
        } else {
            Written::Maybe
        }
    }
}

/// The bottle's two execs read: the relay's report, the bottle's network
/// namespace, the user's files. Refusals first (untrusted, then missing).
fn read_bottle_part(
    bottle: &str,
    target: &Target,
    relay: Result<bottle_runtime::ExecOutput, bottle_runtime::Error>,
    user: Result<bottle_runtime::ExecOutput, bottle_runtime::Error>,
) -> Result<(ProvisionRoot, Option<String>, protocol::UserFiles), Error> {
    let relay_read = relay
        .as_ref()
        .ok()
        .map(|o| protocol::sidecar_exec(&o.stdout_lossy()));
    let user_read = user
        .as_ref()
        .ok()
        .map(|o| protocol::user_files(&o.stdout_lossy()));
    if let Some(Ok((r, _))) = &relay_read {
        if let Some(e) = untrusted_error(bottle, &r.trust) {
            return Err(e);
        }
    }
    let mut absent = Vec::new();
    if let Some(Ok((r, _))) = &relay_read {
        absent.extend(r.trust.missing.iter().cloned());
    }
    if let Some(Ok(u)) = &user_read {
        absent.extend(u.missing.iter().cloned());
    }
    let missing = missing_of(&absent, target);
    if !missing.is_empty() {
        let os: Vec<&str> = match &relay_read {
            Some(Ok((r, _))) => r.trust.os.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        return Err(Error::MissingInContainer {
            container: bottle.to_string(),
            hint: error::install_hint(&os, &missing),
            missing,
        });
    }
    let relay = relay.map_err(Error::runtime(RELAY))?;
    let user = user.map_err(Error::runtime(FILES))?;
    if !relay.success() {
        return Err(script_error(RELAY, bottle, &relay));
    }
    if !user.success() {
        return Err(script_error(FILES, bottle, &user));
    }
    let (relay_report, bottle_ns) = match relay_read {
        Some(r) => r.map_err(|e| unreadable(RELAY, bottle, e))?,
        None => unreachable!("the relay exec succeeded"),
    };
    let user_report = match user_read {
        Some(r) => r.map_err(|e| unreadable(FILES, bottle, e))?,
        None => unreachable!("the user's exec succeeded"),
    };
    if !relay_report.done || !user_report.done {
        return Err(protocol_error(RELAY, bottle, "the script did not finish"));
    }
    Ok((relay_report, bottle_ns, user_report))
}

/// The agent exec in the sidecar, once more with a fresh agent when a
/// reused one will not take the keys (someone `LOCK`ed it through the relay).
async fn load_in_sidecar(
    admin: &dyn ContainerAdmin,
    side: &str,
    side_name: &str,
    target: &Target,
    load: &AgentLoad<'_>,
) -> Result<(ProvisionRoot, Option<String>), Error> {
    const STEP: &str = "load keys (sidecar)";
    let mut mode = "reuse";
    let mut delivered = false;
    loop {
        let out = admin
            .exec(side, agent_request(target, load, mode))
            .await
            .map_err(Error::runtime(STEP))?;
        let read = protocol::sidecar_exec(&out.stdout_lossy());
        if let Ok((r, _)) = &read {
            if let Some(e) = untrusted_error(side_name, &r.trust) {
                return Err(e);
            }
            let missing = missing_of(&r.trust.missing, target);
            if !missing.is_empty() {
                let os: Vec<&str> = r.trust.os.iter().map(String::as_str).collect();
                return Err(Error::MissingInContainer {
                    container: side_name.to_string(),
                    hint: error::install_hint(&os, &missing),
                    missing,
                });
            }
        }
        if !out.success() {
            return Err(script_error(STEP, side_name, &out));
        }
        let (r, ns) = read.map_err(|e| unreadable(STEP, side_name, e))?;
        if !r.done {
            return Err(protocol_error(STEP, side_name, "the script did not finish"));
        }
        if r.guard_missing && !delivered {
            delivered = true;
            crate::provision::deliver_guard(
                admin,
                side,
                side_name,
                load.token,
                &sidecar_tools(false),
            )
            .await?;
            continue;
        }
        if r.guard_missing {
            return Err(protocol_error(
                STEP,
                side_name,
                "the guard is still missing after delivery",
            ));
        }
        if r.agent_unusable && mode == "reuse" {
            mode = "fresh";
            continue;
        }
        return Ok((r, ns));
    }
}

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// [`crate::verify_with`] in the `sidecar` layout: the bottle's part (relay,
/// files, key scan, what the user's socket lists, as in the `bottle`
/// layout, with no agent in the bottle), then the sidecar: ours, running,
/// joined to this start of the bottle, no mounts, agent and forwarder alive
/// and ours, holding the plan's keys.
pub async fn verify(
    admin: &dyn ContainerAdmin,
    bottle: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
) -> Result<VerifyReport, Error> {
    const STEP: &str = "verify (sidecar)";
    let mut report =
        crate::verify::verify_checking(admin, bottle, plan, target, opts, &bottle_tools(), "relay")
            .await?;
    let agent_file = format!("file {}", target.agent_socket);
    for c in &mut report.checks {
        if c.name == agent_file {
            c.name = format!("no agent socket in the bottle ({})", target.agent_socket);
            c.ok = c.detail == "absent";
        } else if c.name == "forwarder running" {
            c.name = "relay running in the bottle".into();
        } else if c.name == "the user cannot become root" && !c.ok {
            // Root in the bottle reaches no key in this layout.
            c.detail = format!("{} (keys are in the agent sidecar)", c.detail);
            c.ok = true;
        }
    }
    report.checks.retain(|c| c.name != "agent running");
    let details = bottle_details(admin, bottle).await?;
    let name = sidecar_name(&details.info.name);
    let sidecar = match find_sidecar(admin, &details, &name).await {
        Ok(Found::Current(d)) => d,
        Ok(Found::Stale(_)) => {
            report.checks.push(check(
                "agent sidecar joined to this start of the bottle",
                false,
                format!("`{name}` is stopped or from an earlier start of the bottle"),
            ));
            return Ok(report);
        }
        Ok(Found::Absent) => {
            report
                .checks
                .push(check("agent sidecar exists", false, format!("no `{name}`")));
            return Ok(report);
        }
        Err(e) => {
            report
                .checks
                .push(check("agent sidecar is ours", false, e.to_string()));
            return Ok(report);
        }
    };
    report.checks.push(check(
        "agent sidecar joined to this start of the bottle",
        true,
        format!("`{name}` running, network {}", sidecar.network),
    ));
    report.checks.push(check(
        "agent sidecar has no mounts and is not privileged",
        sidecar.mounts.is_empty() && !sidecar.privileged,
        format!(
            "mounts {:?}, privileged {}",
            sidecar.mounts, sidecar.privileged
        ),
    ));
    let abs = abstract_name(&details.info.id);
    let guard = if opts.unguarded { "off" } else { "guard" };
    let mut args = vec![STATE_DIR, target.agent_socket.as_str(), abs.as_str(), guard];
    args.extend(sidecar_tools(false));
    let out = admin
        .exec(
            &sidecar.info.id,
            ExecRequest::script(&verify_script(), args).user("0"),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, &name, &out));
    }
    let state =
        protocol::sidecar_state(&out.stdout_lossy()).map_err(|e| unreadable(STEP, &name, e))?;
    let mut problems: Vec<String> = state
        .trust
        .untrusted
        .iter()
        .map(ToString::to_string)
        .collect();
    problems.extend(
        missing_of(&state.trust.missing, target)
            .iter()
            .map(|m| format!("missing {m}")),
    );
    report.checks.push(check(
        "the sidecar's programs and directories are trusted",
        problems.is_empty() && state.done,
        if problems.is_empty() {
            "PATH, tools, state and socket directories root-owned".to_string()
        } else {
            problems.join("; ")
        },
    ));
    for (what, live) in [
        ("agent running in the sidecar", &state.agent),
        ("forwarder running in the sidecar", &state.forwarder),
    ] {
        report
            .checks
            .push(check(what, live.alive, format!("pid {}", live.pid)));
    }
    if !opts.unguarded {
        report.checks.push(check(
            "guard",
            true,
            format!("bottle-guard serves @{abs} in the sidecar"),
        ));
    }
    let mut keys = state.keys.clone();
    keys.sort();
    let valid = crate::validate::validate_inner(plan, opts, false)?;
    let expected = valid.fingerprints();
    report.checks.push(check(
        "the sidecar's agent holds the plan's keys",
        keys == expected,
        format!("holds {keys:?}, expected {expected:?}"),
    ));
    Ok(report)
}

/// [`crate::deprovision`] in the `sidecar` layout: the bottle's relay,
/// state and the user's files, then the sidecar (only when it carries this
/// bottle's label; a foreign container by that name is left alone).
pub async fn deprovision(
    admin: &dyn ContainerAdmin,
    bottle: &str,
    target: &Target,
) -> Result<DeprovisionReport, Error> {
    // The sidecar first, whatever the bottle's state: a stopped bottle's
    // sidecar still holds the keys, reachable from the old namespace.
    let details = admin
        .details(bottle)
        .await
        .map_err(Error::runtime("inspect the bottle"))?;
    let name = sidecar_name(&details.info.name);
    let mut removed = None;
    let mut audit = Ok(Vec::new());
    match admin.details(&name).await {
        Ok(d) if d.labels.get(LABEL_FOR) == Some(&details.info.id) => {
            // The guard's records first: they go with the sidecar.
            if d.info.is_running() {
                audit = crate::audit::read(admin, &d.info.id, None).await;
            }
            admin
                .remove(&d.info.id)
                .await
                .map_err(Error::runtime("remove the agent sidecar"))?;
            removed = Some(format!("container {name}"));
        }
        Ok(_) | Err(bottle_runtime::Error::ContainerNotFound { .. }) => {}
        Err(e) => return Err(Error::runtime("inspect the agent sidecar")(e)),
    }
    let mut report =
        crate::deprovision::deprovision_checking(admin, bottle, target, &bottle_tools()).await?;
    report.removed.extend(removed);
    report.keep_audit(audit);
    Ok(report)
}

/// Where `bottle`'s guard records are in this layout: its sidecar (the
/// id), which must carry this bottle's label and be running; the bottle
/// itself may be stopped.
pub async fn record_holder(admin: &dyn ContainerAdmin, bottle: &str) -> Result<String, Error> {
    let details = admin
        .details(bottle)
        .await
        .map_err(Error::runtime("inspect the bottle"))?;
    let name = sidecar_name(&details.info.name);
    // A container by that name without this bottle's label is refused there.
    let sidecar = match find_sidecar(admin, &details, &name).await? {
        Found::Absent => {
            return Err(sidecar_error(
                bottle,
                &name,
                "no agent sidecar: nothing was recorded, or it was removed",
            ))
        }
        Found::Current(d) | Found::Stale(d) => d,
    };
    if !sidecar.info.is_running() {
        return Err(sidecar_error(
            bottle,
            &name,
            "the agent sidecar is not running",
        ));
    }
    Ok(sidecar.info.id)
}

/// When `bottle` stops or dies (`watch`): remove its sidecar, unless the
/// bottle runs again and the sidecar belongs to this start of it. Only a
/// container labelled for this bottle is touched; a bottle already gone is
/// left to [`remove_orphans`]. Returns the removed sidecar's name.
pub async fn retire(admin: &dyn ContainerAdmin, bottle: &str) -> Result<Option<String>, Error> {
    use bottle_runtime::Error as E;
    let details = match admin.details(bottle).await {
        Ok(d) => d,
        Err(E::ContainerNotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::runtime("inspect the bottle")(e)),
    };
    let name = sidecar_name(&details.info.name);
    let sidecar = match find_sidecar(admin, &details, &name).await {
        Ok(Found::Absent) => return Ok(None),
        Ok(Found::Current(_)) if details.info.is_running() => return Ok(None),
        Ok(Found::Current(d) | Found::Stale(d)) => d,
        // Not this bottle's (no label): never removed.
        Err(Error::Sidecar { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match admin.remove(&sidecar.info.id).await {
        Ok(()) | Err(E::ContainerNotFound { .. }) => Ok(Some(name)),
        Err(e) => Err(Error::runtime("remove the agent sidecar")(e)),
    }
}

/// [`crate::preflight`] for the bottle in the `sidecar` layout: the tools
/// it needs here (no `ssh-agent`).
pub async fn preflight(
    rt: &dyn bottle_runtime::ContainerRuntime,
    bottle: &str,
    target: &Target,
) -> Result<crate::Preflight, Error> {
    crate::preflight::preflight_checking(rt, bottle, target, &bottle_tools()).await
}

/// Remove the sidecars whose bottle no longer exists (a bottle removed
/// without `deprovision`): only containers labelled [`LABEL_FOR`] with a
/// full container id, and only when the engine says that container is
/// gone. Returns the removed sidecars' names. An engine that cannot list
/// containers has nothing found.
pub async fn remove_orphans(admin: &dyn ContainerAdmin) -> Result<Vec<String>, Error> {
    use bottle_runtime::Error as E;
    let sidecars = match admin
        .list(&[ContainerFilter::Label(LABEL_FOR.into())])
        .await
    {
        Ok(s) => s,
        Err(E::NotSupported { .. }) => return Ok(vec![]),
        Err(e) => return Err(Error::runtime("list the agent sidecars")(e)),
    };
    let mut removed = Vec::new();
    for sidecar in sidecars {
        let d = match admin.details(&sidecar.id).await {
            Ok(d) => d,
            Err(E::ContainerNotFound { .. }) => continue,
            Err(e) => return Err(Error::runtime("inspect an agent sidecar")(e)),
        };
        // Only what provision wrote: a name or short id could match another container.
        let Some(bottle_id) = d
            .labels
            .get(LABEL_FOR)
            .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            continue;
        };
        match admin.details(bottle_id).await {
            Err(E::ContainerNotFound { .. }) => {}
            Ok(_) => continue,
            Err(e) => return Err(Error::runtime("inspect a sidecar's bottle")(e)),
        }
        tracing::info!(sidecar = %sidecar.name, bottle = %bottle_id, "removing the agent sidecar of a removed bottle");
        match admin.remove(&sidecar.id).await {
            Ok(()) | Err(E::ContainerNotFound { .. }) => removed.push(sidecar.name),
            Err(e) => return Err(Error::runtime("remove an orphaned agent sidecar")(e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_bottle() {
        assert_eq!(sidecar_name("web-1"), "web-1-bottle-agent");
        assert_eq!(
            abstract_name("0123456789abcdef0123"),
            "claude-bottle-agent-0123456789ab"
        );
    }

    #[test]
    fn sidecar_output_is_read_strictly() {
        let (r, ns) = protocol::sidecar_exec(
            "netns net:[4026532301]\nagent-started 41\nkey SHA256:abc\nforwarder-started 42\ndone\n",
        )
        .unwrap();
        assert_eq!(ns.as_deref(), Some("net:[4026532301]"));
        assert_eq!(r.agent.unwrap().pid, 41);
        assert_eq!(r.forwarder.unwrap().pid, 42);
        assert!(r.done);
        // A forged namespace or an unknown line is an error naming it.
        for bad in [
            "netns net:[1] x\ndone\n",
            "netns /proc/1/ns/net\n",
            "agent-started 41\nhello\n",
        ] {
            assert!(protocol::sidecar_exec(bad).is_err(), "{bad:?}");
        }
        let s = protocol::sidecar_state(
            "netns net:[7]\nagent 41 alive\nforwarder none dead\nkey SHA256:abc\ndone\n",
        )
        .unwrap();
        assert!(s.agent.alive && !s.forwarder.alive && s.done);
        assert_eq!(s.keys, ["SHA256:abc"]);
        assert!(protocol::sidecar_state("agent 41 maybe\n").is_err());
        assert!(protocol::sidecar_state("agent x; alive\n").is_err());
    }

    #[test]
    fn the_key_stream_goes_only_to_the_sidecar_agent_exec() {
        let target = Target::default();
        let load = AgentLoad {
            name: "n",
            token: "t",
            guard: "off",
            policy: "",
            message: b"KEYS",
        };
        let r = agent_request(&target, &load, "reuse");
        assert_eq!(r.user, "0");
        assert_eq!(r.stdin.as_deref().map(|s| s.as_slice()), Some(&b"KEYS"[..]));
        // The relay in the bottle only connects to the abstract socket,
        // never to an agent's own socket.
        let relay = relay_script();
        assert!(relay.contains("ABSTRACT-CONNECT:$name"));
        assert!(!relay.contains("UNIX-CONNECT"));
    }
}
