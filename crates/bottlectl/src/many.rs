//! `provision|verify|deprovision|keys` on several containers: names and
//! `--filter` matches, run concurrently (at most `--jobs` at once), live
//! progress on a terminal, a summary table or one JSON line per container.
//!
//! Each container runs in its own task with its own result: an error (or a
//! panic) in one never stops the others. The exit code is the highest of
//! the containers' codes, 0 when all succeeded.

use crate::failure::Failure;
use crate::output::{deprovision_json, engine_json, provision_json, verify_json, Out};
use crate::safe;
use bottle::config::Manifest;
use bottle::runtime::ContainerFilter;
use bottle::ssh::sidecar::AgentLayout;
use bottle::ssh::{Options, Target};
use bottle::Selection;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What to do on each container.
pub enum Op {
    Provision { manifest: Manifest, strict: bool },
    Verify { manifest: Manifest, strict: bool },
    Deprovision,
    Keys,
}

impl Op {
    fn doing(&self) -> &'static str {
        match self {
            Op::Provision { .. } => "provisioning",
            Op::Verify { .. } => "verifying",
            Op::Deprovision => "deprovisioning",
            Op::Keys => "listing the keys of",
        }
    }
}

/// One container's result.
struct Outcome {
    container: String,
    code: u8,
    /// The summary row's last column (human).
    detail: String,
    /// Its `--json` line.
    json: serde_json::Value,
    /// Shown on stderr after the run (provision's warnings).
    warnings: Vec<String>,
}

/// Everything the tasks share.
struct Shared {
    sel: Selection,
    op: Op,
    target: Target,
    agent: AgentLayout,
    /// Setting `guard = "off"`.
    unguarded: bool,
    prompt: Arc<crate::keys::Prompt>,
}

/// Where provision puts things: the target in the bottle, and where the
/// agent runs (settings `agent`, `agent_image`).
pub struct Placement {
    pub target: Target,
    pub agent: AgentLayout,
    /// Setting `guard = "off"`: a plain relay instead of bottle-guard.
    pub unguarded: bool,
}

/// In the `sidecar` layout, before a provision or deprovision: remove the
/// sidecars of bottles removed without `deprovision` (Docker lets a bottle
/// go while its sidecar runs; Podman refuses). Logged; a failure here never
/// fails the run.
pub async fn remove_orphaned_sidecars(out: &Out, sel: &Selection, agent: &AgentLayout) {
    if !matches!(agent, AgentLayout::Sidecar { .. }) {
        return;
    }
    match bottle::ssh::sidecar::remove_orphans(sel.admin.as_ref()).await {
        Ok(removed) => {
            for name in removed {
                out.step(&format!(
                    "removed agent sidecar `{}`: its bottle no longer exists",
                    safe::field(&name)
                ));
            }
        }
        Err(e) => {
            tracing::warn!(error = %bottle::error_chain(&e), "cannot look for orphaned agent sidecars")
        }
    }
}

/// `deprovision` in the agent layout (the sidecar too, when it is this
/// bottle's); the guard's records it read first
/// are kept on this machine ([`crate::audit::keep`]).
pub async fn deprovision_in(
    sel: &Selection,
    agent: &AgentLayout,
    container: &str,
    target: &Target,
) -> Result<(bottle::ssh::DeprovisionReport, crate::audit::Kept), bottle::ssh::Error> {
    let id = match sel.runtime.inspect(container).await {
        Ok(info) => info.id,
        Err(_) => String::new(),
    };
    let report = bottle::session::deprovision_in(sel, agent, container, target).await?;
    let kept = crate::audit::keep(&report, &id, container);
    Ok((report, kept))
}

/// A container to work on: shown by `name`, reached by `id` when a filter
/// matched it. Working by the listed id keeps the operation on the very
/// container the filter matched: a name can be taken by another container
/// after the listing, and a full 64-hex *name* is resolved by the engine as
/// the id of a different container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub id: Option<String>,
}

impl Member {
    /// What the engine is asked for.
    fn reference(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

/// The named containers, then the filters' matches not named already
/// (by name or id), in the engine's order (by name).
pub async fn resolve(
    sel: &Selection,
    containers: &[String],
    filters: &[ContainerFilter],
    out: &Out,
) -> Result<Vec<Member>, Failure> {
    let mut members: Vec<Member> = Vec::new();
    for c in containers {
        if !members.iter().any(|m| m.name == *c) {
            members.push(Member {
                name: c.clone(),
                id: None,
            });
        }
    }
    if filters.is_empty() {
        return Ok(members);
    }
    let shown = filters
        .iter()
        .map(|f| format!("--filter {f}"))
        .collect::<Vec<_>>()
        .join(" ");
    let listed = sel
        .runtime
        .list(filters)
        .await
        .map_err(|e| Failure::new(3, &format!("cannot list containers ({shown})"), &e))?;
    if listed.is_empty() {
        out.step(&format!("note: no running container matches {shown}"));
    }
    for c in listed {
        if !members.iter().any(|m| m.name == c.name || m.name == c.id) {
            members.push(Member {
                name: c.name,
                id: Some(c.id),
            });
        }
    }
    Ok(members)
}

/// Run `op` on every container; returns the exit code.
pub async fn run(
    out: &Out,
    sel: Selection,
    op: Op,
    placement: Placement,
    prompt: Arc<crate::keys::Prompt>,
    containers: Vec<Member>,
    jobs: usize,
) -> u8 {
    if containers.is_empty() {
        // `resolve` said why; nothing failed.
        return 0;
    }
    out.step(&format!(
        "{} {} container(s), at most {jobs} at once",
        op.doing(),
        containers.len()
    ));
    if matches!(op, Op::Provision { .. } | Op::Deprovision) {
        remove_orphaned_sidecars(out, &sel, &placement.agent).await;
    }
    let shared = Arc::new(Shared {
        sel,
        op,
        target: placement.target,
        agent: placement.agent,
        unguarded: placement.unguarded,
        prompt,
    });
    let slots = Arc::new(Semaphore::new(jobs.max(1)));
    let multi = out
        .progress
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, member) in containers.iter().enumerate() {
        let bar = multi.as_ref().map(|m| m.add(bar(out.color, &member.name)));
        let (shared, slots, member) = (shared.clone(), slots.clone(), member.clone());
        let name = member.name.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            if let Some(b) = &bar {
                b.reset_elapsed();
                b.set_message(format!("{}: {}", safe::field(&name), shared.op.doing()));
            }
            let outcome = one(&shared, &member).await;
            if let Some(b) = &bar {
                let result = if outcome.code == 0 { "done" } else { "failed" };
                b.finish_with_message(format!("{}: {result}", safe::field(&name)));
            }
            (index, outcome)
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = containers.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, outcome)) => {
                if out.json {
                    // Each line as its container finishes.
                    out.json_value(&outcome.json);
                }
                outcomes[index] = Some(outcome);
            }
            // A panic is ours, not the container's: named below as such.
            Err(e) => tracing::error!("a container's task failed: {e}"),
        }
    }
    if let Some(m) = &multi {
        let _ = m.clear();
    }
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .zip(&containers)
        .map(|(o, member)| {
            o.unwrap_or_else(|| {
                let name = &member.name;
                let f = Failure::plain(3, format!("internal error while working on `{name}`"));
                let outcome = failed(member, f);
                if out.json {
                    out.json_value(&outcome.json);
                }
                outcome
            })
        })
        .collect();
    summary(out, &outcomes);
    outcomes.iter().map(|o| o.code).max().unwrap_or(0)
}

fn bar(color: bool, name: &str) -> ProgressBar {
    let template = if color {
        "{spinner:.cyan} {msg} ({elapsed})"
    } else {
        "{spinner} {msg} ({elapsed})"
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner());
    let pb = ProgressBar::hidden()
        .with_style(style)
        .with_message(format!("{}: waiting", safe::field(name)));
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn failed(member: &Member, f: Failure) -> Outcome {
    let container = member.name.as_str();
    let mut detail = f.message.clone();
    for c in &f.causes {
        detail.push_str(": ");
        detail.push_str(c);
    }
    Outcome {
        container: container.to_string(),
        code: f.code,
        detail,
        json: named(
            json!({ "ok": false, "container": container, "error": f }),
            member,
        ),
        warnings: Vec::new(),
    }
}

/// A JSON line names the container as the operator knows it, and its id
/// when a filter matched it (the reports name what the engine was asked).
fn named(mut json: serde_json::Value, member: &Member) -> serde_json::Value {
    if let Some(o) = json.as_object_mut() {
        o.insert("container".into(), member.name.clone().into());
        if let Some(id) = &member.id {
            o.insert("id".into(), id.clone().into());
        }
    }
    json
}

async fn one(shared: &Shared, member: &Member) -> Outcome {
    let mut outcome = work(shared, member).await;
    outcome.container = member.name.clone();
    outcome.json = named(outcome.json, member);
    outcome
}

async fn work(shared: &Shared, member: &Member) -> Outcome {
    let container = member.reference();
    let rt = shared.sel.runtime.as_ref();
    let target = &shared.target;
    let sel = &shared.sel;
    let opts = |strict: bool| Options {
        passphrase: Some(shared.prompt.as_ref()),
        strict,
        unguarded: shared.unguarded,
    };
    match &shared.op {
        Op::Provision { manifest, strict } => {
            let result = bottle::session::provision_in(
                sel,
                &shared.agent,
                container,
                &manifest.plan,
                target,
                &opts(*strict),
            )
            .await;
            match result {
                Ok(r) => Outcome {
                    container: container.to_string(),
                    code: 0,
                    detail: format!(
                        "{} key(s) loaded, {} file(s) written, agent pid {}",
                        r.keys.len(),
                        r.files.len(),
                        r.agent.pid
                    ),
                    json: provision_json(sel, manifest, &r),
                    warnings: r.warnings.clone(),
                },
                Err(e) => failed(
                    member,
                    crate::ssh_failure(e, Some(manifest), "cannot provision", &member.name),
                ),
            }
        }
        Op::Verify { manifest, strict } => {
            let result = bottle::session::verify_in(
                sel,
                &shared.agent,
                container,
                &manifest.plan,
                target,
                &opts(*strict),
            )
            .await;
            match result {
                Ok(r) => {
                    let failures: Vec<&str> = r.failures().map(|c| c.name.as_str()).collect();
                    let detail = if failures.is_empty() {
                        format!("all {} checks hold", r.checks.len())
                    } else {
                        format!(
                            "{} of {} checks failed: {}",
                            failures.len(),
                            r.checks.len(),
                            failures.join(", ")
                        )
                    };
                    Outcome {
                        container: container.to_string(),
                        code: if r.ok() { 0 } else { 1 },
                        detail,
                        json: verify_json(sel, container, &r),
                        warnings: Vec::new(),
                    }
                }
                Err(e) => failed(
                    member,
                    crate::ssh_failure(e, Some(manifest), "cannot verify", &member.name),
                ),
            }
        }
        Op::Deprovision => match deprovision_in(sel, &shared.agent, container, target).await {
            Ok((r, kept)) => {
                let pid = |p: Option<u32>| p.map_or_else(|| "none".into(), |p| format!("pid {p}"));
                Outcome {
                    container: container.to_string(),
                    code: 0,
                    detail: format!(
                        "agent {}, forwarder {}, {} path(s) removed",
                        pid(r.stopped_agent),
                        pid(r.stopped_forwarder),
                        r.removed.len()
                    ),
                    json: deprovision_json(sel, &r, &kept),
                    warnings: vec![kept.line(&member.name)],
                }
            }
            Err(e) => failed(
                member,
                crate::ssh_failure(e, None, "cannot deprovision", &member.name),
            ),
        },
        Op::Keys => match bottle::ssh::list_keys(rt, container, target).await {
            Ok(keys) => Outcome {
                container: container.to_string(),
                code: 0,
                detail: if keys.is_empty() {
                    "no keys".to_string()
                } else {
                    let fps: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
                    format!("{} key(s): {}", keys.len(), fps.join(", "))
                },
                // The shape of `keys CONTAINER --json`.
                json: json!({
                    "ok": true,
                    "engine": engine_json(sel),
                    "container": container,
                    "keys": keys,
                }),
                warnings: Vec::new(),
            },
            Err(e) => failed(
                member,
                crate::ssh_failure(e, None, "cannot list keys of", &member.name),
            ),
        },
    }
}

/// Warnings on stderr, then the table on stdout (human only): container,
/// result, detail. Everything is escaped: details hold container text.
fn summary(out: &Out, outcomes: &[Outcome]) {
    // The same warning (an unrestricted key of the manifest) once, with
    // the containers it came from.
    let mut warnings: Vec<(&str, Vec<&str>)> = Vec::new();
    for o in outcomes {
        for w in &o.warnings {
            match warnings.iter_mut().find(|(text, _)| text == w) {
                Some((_, from)) => from.push(&o.container),
                None => warnings.push((w, vec![&o.container])),
            }
        }
    }
    for (w, from) in warnings {
        out.step(&format!("warning ({}): {w}", from.join(", ")));
    }
    let result = |o: &Outcome| match o.code {
        0 => "ok".to_string(),
        1 => "violations".to_string(),
        c => format!("error ({c})"),
    };
    let rows: Vec<(String, String, String)> = outcomes
        .iter()
        .map(|o| {
            (
                safe::field(&o.container).into_owned(),
                result(o),
                safe::field(&o.detail).into_owned(),
            )
        })
        .collect();
    let w0 = rows
        .iter()
        .map(|r| r.0.chars().count())
        .chain(["CONTAINER".len()])
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.1.len())
        .chain(["RESULT".len()])
        .max()
        .unwrap_or(0);
    let mut text = format!("{:w0$}  {:w1$}  DETAIL\n", "CONTAINER", "RESULT");
    for (c, r, d) in &rows {
        text.push_str(&format!("{c:w0$}  {r:w1$}  {d}\n"));
    }
    out.human(&text);
    let failed = outcomes.iter().filter(|o| o.code != 0).count();
    out.step(&format!(
        "{} of {} container(s) succeeded",
        outcomes.len() - failed,
        outcomes.len()
    ));
}
