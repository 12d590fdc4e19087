//! `bottlectl watch`: the library's reconciler ([`bottle::watch`]) with the
//! CLI's provision (its manifest, passphrase prompt and exit codes), lines
//! and signals.

use crate::failure::Failure;
use crate::output::Out;
use crate::safe;
use bottle::config::Manifest;
use bottle::runtime::ContainerInfo;
pub use bottle::watch::{follower, renewal_after, retirer, watch, Provided, WatchOptions, Why};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What the watch reports, with the CLI's failures.
pub type Action = bottle::watch::Action<Failure>;
/// A provision of one container, failing with the CLI's failures.
pub type Provision = bottle::watch::Provision<Failure>;

/// One line per action: human on stdout (container text escaped), or a
/// JSON object per line.
pub fn print(out: &Out, action: Action) {
    let (value, line) = render(action);
    if out.json {
        out.json_value(&value);
    } else {
        out.human(&format!("{line}\n"));
    }
}

/// An action's JSON object and its human line (one line: everything from
/// the container or engine is escaped, line breaks included).
fn render(action: Action) -> (serde_json::Value, String) {
    let name = |c: &ContainerInfo| safe::field(&c.name).into_owned();
    let short = |c: &ContainerInfo| c.id.chars().take(12).collect::<String>();
    let (value, line) = match action {
        Action::Connected { running } => (
            json!({"action": "connected", "running": running}),
            format!("connected: {running} matching container(s) running"),
        ),
        Action::Lost { error, retry_in } => (
            json!({"action": "lost", "error": error, "retry_in_ms": retry_in.as_millis() as u64}),
            format!(
                "engine lost: {}; retrying in {:.1}s",
                safe::field(&error),
                retry_in.as_secs_f64()
            ),
        ),
        Action::Provisioned {
            c,
            why,
            secs,
            detail,
            renew_in,
        } => {
            let (verb, after) = match why {
                Why::Renewal => ("renewed", String::new()),
                _ => ("provisioned", format!(" after {why}")),
            };
            let mut value = json!({"action": verb, "ok": true, "container": c.name, "id": c.id,
                   "after": why.to_string(), "seconds": secs, "detail": detail});
            let mut line = format!(
                "{verb} {} ({}){after} in {secs:.2}s: {}",
                name(&c),
                short(&c),
                safe::field(&detail)
            );
            if let Some(r) = renew_in {
                value["renew_in_s"] = json!(r.as_secs_f64());
                line.push_str(&format!("; renewal in {}", seconds(r)));
            }
            (value, line)
        }
        Action::Failed {
            c,
            why,
            failure,
            retry_in,
        } => {
            let mut text = failure.message.clone();
            for cause in &failure.causes {
                text.push_str(": ");
                text.push_str(cause);
            }
            let mut value = json!({"action": "failed", "ok": false, "container": c.name, "id": c.id,
                       "after": why.to_string(), "error": failure});
            let mut line = format!(
                "failed {} ({}) after {why}: {}",
                name(&c),
                short(&c),
                safe::field(&text)
            );
            if let Some(r) = retry_in {
                value["retry_in_ms"] = json!(r.as_millis() as u64);
                line.push_str(&format!("; retrying in {}", seconds(r)));
            }
            (value, line)
        }
        Action::Skipped { c } => (
            json!({"action": "skipped", "container": c.name, "id": c.id}),
            format!(
                "skipped {} ({}): no longer running or matching",
                name(&c),
                short(&c)
            ),
        ),
        Action::Forgot { c, action } => (
            json!({"action": "forgot", "container": c.name, "id": c.id, "after": action.to_string()}),
            format!("forgot {} ({}) after {action}", name(&c), short(&c)),
        ),
        Action::Audit { c, record } => {
            let field = |k: &str| record[k].as_str().unwrap_or("").to_string();
            let mut what = vec![field("request"), field("decision")];
            for k in ["key", "purpose", "user", "alias", "namespace", "reason"] {
                if let Some(v) = record[k].as_str() {
                    what.push(format!("{k}={v}"));
                }
            }
            let line = format!(
                "audit {} ({}): {} {}",
                name(&c),
                short(&c),
                safe::field(&field("time")),
                safe::field(&what.join(" "))
            );
            (
                json!({"action": "audit", "container": c.name, "id": c.id, "record": record}),
                line,
            )
        }
        Action::Retired { c, removed } => (
            json!({"action": "retired", "container": c.name, "id": c.id, "removed": removed}),
            format!(
                "retired {} ({}): removed {}",
                name(&c),
                short(&c),
                safe::field(&removed)
            ),
        ),
        Action::Stopping { running } => (
            json!({"action": "stopping", "running": running}),
            format!("stopping: {running} provision(s) running may finish"),
        ),
        Action::Abandoned { c } => (
            json!({"action": "abandoned", "container": c.name, "id": c.id}),
            format!(
                "abandoned the provision of {} ({}) at shutdown",
                name(&c),
                short(&c)
            ),
        ),
    };
    (value, line)
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The provision function the CLI runs: bottle-ssh on the container's id,
/// with the watch's one manifest (whose certificates set the renewal), in
/// the agent layout of the settings (a sidecar per bottle, replaced when
/// the bottle restarted, in `sidecar`).
pub fn provisioner(
    sel: &bottle::Selection,
    placement: crate::many::Placement,
    manifest: Arc<Manifest>,
    prompt: Arc<crate::keys::Prompt>,
    strict: bool,
) -> Provision {
    let sel = Arc::new(sel.clone());
    let target = Arc::new(placement.target);
    let agent = Arc::new(placement.agent);
    let unguarded = placement.unguarded;
    let renew_in = renewal_after(&manifest.plan);
    Arc::new(move |c: ContainerInfo| {
        let (sel, agent, manifest, target, prompt) = (
            sel.clone(),
            agent.clone(),
            manifest.clone(),
            target.clone(),
            prompt.clone(),
        );
        Box::pin(async move {
            let opts = bottle::ssh::Options {
                passphrase: Some(prompt.as_ref()),
                strict,
                unguarded,
            };
            if matches!(*agent, bottle::ssh::sidecar::AgentLayout::Sidecar { .. }) {
                // A watched bottle removed meanwhile leaves its sidecar (Docker).
                if let Err(e) = bottle::ssh::sidecar::remove_orphans(sel.admin.as_ref()).await {
                    tracing::warn!(error = %bottle::error_chain(&e), "cannot look for orphaned agent sidecars");
                }
            }
            let result =
                bottle::session::provision_in(&sel, &agent, &c.id, &manifest.plan, &target, &opts)
                    .await;
            match result {
                Ok(r) => {
                    let mut detail =
                        format!("{} key(s) loaded, agent pid {}", r.keys.len(), r.agent.pid);
                    for w in &r.warnings {
                        detail.push_str("; warning: ");
                        detail.push_str(w);
                    }
                    Ok(Provided { detail, renew_in })
                }
                Err(e) => Err(crate::ssh_failure(
                    e,
                    Some(&manifest),
                    "cannot provision",
                    &c.name,
                )),
            }
        })
    })
}

/// SIGINT or SIGTERM, registered now (the default action would kill the
/// process mid-provision); the future resolves at the first one.
pub fn signals() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// `bottlectl watch`: settings, engine, then the work.
pub async fn command(
    cli: &crate::cli::Cli,
    matches: &clap::ArgMatches,
    out: &crate::output::Out,
    args: &crate::cli::WatchArgs,
) -> Result<u8, crate::failure::Failure> {
    use crate::{keys, load_config, placement, read_manifest, select, watch};
    // Before anything else: a signal during start-up ends it cleanly too.
    let signals = watch::signals().map_err(|e| Failure::new(3, "cannot handle signals", &e))?;
    let config = load_config(cli, matches)?;
    let prompt = std::sync::Arc::new(keys::Prompt::default());
    // Every passphrase is asked here, at start (cached afterwards).
    let manifest = read_manifest(&args.manifest, &config, &prompt.options(args.strict), out)?;
    let sel = select(&config.settings, None, out).await?;
    let jobs = args.jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let shown: Vec<String> = args
        .filter
        .iter()
        .map(|f| format!("--filter {f}"))
        .collect();
    out.step(&format!(
        "watching {} with {}, at most {jobs} at once",
        shown.join(" "),
        manifest.path.display()
    ));
    let placement = placement(&config.settings);
    let retire = watch::retirer(&sel, &placement.agent);
    let follow = args.audit.then(|| watch::follower(&sel, &placement.agent));
    let provision = watch::provisioner(
        &sel,
        placement,
        std::sync::Arc::new(manifest),
        prompt,
        args.strict,
    );
    let opts = watch::WatchOptions {
        filters: args.filter.clone(),
        jobs,
        grace: std::time::Duration::from_secs(args.grace),
        retire,
        follow,
        ..watch::WatchOptions::default()
    };
    let report = |a| watch::print(out, a);
    Ok(watch::watch(sel.runtime.clone(), opts, provision, &report, signals).await)
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
