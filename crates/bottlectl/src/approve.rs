//! `bottlectl approve CONTAINER ID [--for DURATION]` and `bottlectl deny
//! CONTAINER ID`: answer a signature the guard holds (`Approve` in the
//! manifest), found with `bottlectl audit --follow` as `pending`.

use crate::failure::Failure;
use crate::output::Out;
use bottle::ssh::audit::Decision;
use bottle::ssh::sidecar::AgentLayout;
use bottle::Selection;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The bottle (name or id)
    pub container: String,
    /// The pending record's id (from `bottlectl audit`)
    pub id: String,
    /// Also let later signatures of the same key and destination (or
    /// namespace) through without asking, for DURATION (`10m`, `1h`)
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::audit::parse_since)]
    pub grant: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The bottle (name or id)
    pub container: String,
    /// The pending record's id (from `bottlectl audit`)
    pub id: String,
}

/// Exit 0 when answered; 2 when no request of that id waits in that
/// container (unknown, already answered, timed out); 3 on engine errors.
pub async fn run(
    out: &Out,
    sel: &Selection,
    agent: &AgentLayout,
    container: &str,
    id: &str,
    decision: Decision,
) -> Result<u8, Failure> {
    let doing = match decision {
        Decision::Deny => "cannot deny a request in",
        Decision::Allow { .. } => "cannot approve a request in",
    };
    let (_, holder) = bottle::ssh::audit::locate(sel.admin.as_ref(), agent, container)
        .await
        .map_err(|e| crate::ssh_failure(e, None, doing, container))?;
    let answered = bottle::ssh::audit::answer(sel.runtime.as_ref(), &holder, id, decision)
        .await
        .map_err(|e| crate::ssh_failure(e, None, doing, container))?;
    if !answered {
        return Err(Failure::plain(
            2,
            format!(
                "no request `{id}` waits in container `{container}`: unknown, already answered, \
                 or timed out (see `bottlectl audit {container}`)"
            ),
        ));
    }
    let what = match decision {
        Decision::Deny => "denied".to_string(),
        Decision::Allow { grant: None } => "approved".to_string(),
        Decision::Allow { grant: Some(s) } => {
            format!("approved, and the same key and destination for {s} s")
        }
    };
    if out.json {
        out.json_value(
            &serde_json::json!({"ok": true, "container": container, "id": id, "answer": what}),
        );
    } else {
        out.step(&format!(
            "{what}: request `{id}` in container `{container}`"
        ));
    }
    Ok(0)
}

/// The grant in seconds (at most a day).
pub fn grant_seconds(d: Option<Duration>) -> Result<Option<u32>, Failure> {
    match d {
        None => Ok(None),
        Some(d) if d.as_secs() >= 1 && d.as_secs() <= 86_400 => Ok(Some(d.as_secs() as u32)),
        Some(_) => Err(Failure::plain(
            2,
            "--for must be between 1 second and a day",
        )),
    }
}

/// `bottlectl approve`: settings, engine, then the work.
pub async fn approve_command(
    cli: &crate::cli::Cli,
    matches: &clap::ArgMatches,
    out: &crate::output::Out,
    args: &ApproveArgs,
) -> Result<u8, crate::failure::Failure> {
    use crate::{approve, load_config, select};
    let grant = approve::grant_seconds(args.grant)?;
    let config = load_config(cli, matches)?;
    let sel = select(&config.settings, Some(&args.container), out).await?;
    let agent = bottle::session::agent_layout(&config.settings);
    let decision = bottle::ssh::audit::Decision::Allow { grant };
    approve::run(out, &sel, &agent, &args.container, &args.id, decision).await
}

/// `bottlectl deny`: settings, engine, then the work.
pub async fn deny_command(
    cli: &crate::cli::Cli,
    matches: &clap::ArgMatches,
    out: &crate::output::Out,
    args: &DenyArgs,
) -> Result<u8, crate::failure::Failure> {
    use crate::{approve, load_config, select};
    let config = load_config(cli, matches)?;
    let sel = select(&config.settings, Some(&args.container), out).await?;
    let agent = bottle::session::agent_layout(&config.settings);
    let decision = bottle::ssh::audit::Decision::Deny;
    approve::run(out, &sel, &agent, &args.container, &args.id, decision).await
}
