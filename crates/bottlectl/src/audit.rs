//! `bottlectl audit CONTAINER… [--filter F] [--since DURATION] [--follow]`:
//! the guard's records of every request, read from the bottle (layout
//! `bottle`) or its sidecar, as an escaped table or JSON lines; `--follow`
//! polls each container every half second until interrupted.

use crate::failure::Failure;
use crate::output::Out;
use crate::safe;
use bottle::ssh::audit::Record;
use bottle::ssh::sidecar::AgentLayout;
use bottle::Selection;
use clap::Args;
use serde_json::json;
use std::time::{Duration, SystemTime};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub targets: crate::cli::Targets,
    /// Only records of the last DURATION (`30s`, `10m`, `2h`)
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<Duration>,
    /// Keep printing new records until interrupted
    #[arg(long)]
    pub follow: bool,
}

pub fn parse_since(s: &str) -> Result<Duration, String> {
    if let Some(h) = s.strip_suffix('h') {
        let h: u64 = h.parse().map_err(|_| format!("`{s}` is not a duration"))?;
        return Ok(Duration::from_secs(h * 3600));
    }
    bottle::config::parse_duration(s)
}

/// How often `--follow` asks each container.
const POLL: Duration = Duration::from_millis(500);

/// One container's records: where they are and the last one shown.
struct Source {
    name: String,
    id: String,
    tail: bottle::ssh::audit::Tail,
    /// The last error shown (shown again only when it changes).
    failing: Option<String>,
}

pub async fn run(
    out: &Out,
    sel: &Selection,
    agent: &AgentLayout,
    args: &AuditArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<u8, Failure> {
    let members =
        crate::many::resolve(sel, &args.targets.containers, &args.targets.filter, out).await?;
    let since = args
        .since
        .map(|d| bottle::ssh::audit::rfc3339(SystemTime::now() - d));
    let mut sources = Vec::new();
    let mut code = 0;
    for m in members {
        let reference = m.id.clone().unwrap_or_else(|| m.name.clone());
        match bottle::ssh::audit::locate(sel.admin.as_ref(), agent, &reference).await {
            Ok((id, holder)) => sources.push(Source {
                name: m.name,
                id,
                tail: bottle::ssh::audit::Tail::new(holder),
                failing: None,
            }),
            Err(e) => {
                code = 3;
                crate::ssh_failure(e, None, "cannot read the audit records of", &m.name)
                    .report(out);
            }
        }
    }
    // Everything so far, container by container.
    for s in &mut sources {
        if let Err(f) = poll(out, sel, s, since.as_deref()).await {
            code = 3;
            f.report(out);
        }
    }
    if !args.follow || sources.is_empty() {
        return Ok(code);
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(code),
            () = tokio::time::sleep(POLL) => {}
        }
        let polls = sources.iter_mut().map(|s| async {
            let result = poll(out, sel, s, since.as_deref()).await;
            (s, result)
        });
        for (s, result) in futures_util::future::join_all(polls).await {
            match result {
                Ok(()) => s.failing = None,
                // A bottle that stops is asked again; its error once.
                Err(f) => {
                    let why = f.causes.join(": ");
                    if s.failing.as_deref() != Some(why.as_str()) {
                        out.step(&format!("note: {} ({why}); asking again", f.message));
                        s.failing = Some(why);
                    }
                }
            }
        }
    }
}

/// Print the records after the last one shown.
async fn poll(
    out: &Out,
    sel: &Selection,
    s: &mut Source,
    since: Option<&str>,
) -> Result<(), Failure> {
    let records =
        s.tail.next(sel.runtime.as_ref()).await.map_err(|e| {
            crate::ssh_failure(e, None, "cannot read the audit records of", &s.name)
        })?;
    for r in records {
        // RFC 3339 in UTC with fixed digits: the text orders as the time.
        if since.is_some_and(|t| r.time.as_str() < t) {
            continue;
        }
        print(out, &s.name, &s.id, &r);
    }
    Ok(())
}

/// A record as `audit --json` prints it: its fields, the container's id
/// and its name.
fn record_json(r: &Record, id: &str, name: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(r).unwrap_or_default();
    value["container"] = json!(id);
    value["name"] = json!(name);
    value
}

fn print(out: &Out, name: &str, id: &str, r: &Record) {
    if out.json {
        out.json_value(&record_json(r, id, name));
        return;
    }
    let mut detail = Vec::new();
    if let Some(k) = &r.key {
        detail.push(k.clone());
    }
    if let Some(p) = &r.purpose {
        detail.push(p.clone());
    }
    if let Some(u) = &r.user {
        detail.push(format!("user={u}"));
    }
    if let Some(a) = &r.alias {
        detail.push(format!("alias={a}"));
    }
    if let Some(h) = &r.host_key {
        detail.push(format!("host_key={h}"));
    }
    if let Some(n) = &r.namespace {
        detail.push(format!("namespace={n}"));
    }
    if let Some(h) = &r.hash {
        detail.push(format!("hash={h}"));
    }
    if let Some(why) = &r.reason {
        detail.push(format!("reason: {why}"));
    }
    // Every field may come from the bottle: each is escaped.
    out.human(&format!(
        "{}  {}  {}  {:<12}  {:<5}  {}\n",
        safe::field(&r.time),
        safe::field(name),
        safe::field(&r.id),
        safe::field(&r.request),
        safe::field(&r.decision),
        safe::field(&detail.join(" "))
    ));
}

/// Where `deprovision` kept the records it read before removing them.
#[derive(Debug, Default)]
pub struct Kept {
    pub records: usize,
    pub path: Option<std::path::PathBuf>,
    /// Why they could not be read or written (they are gone).
    pub problem: Option<String>,
}

impl Kept {
    pub fn json(&self) -> serde_json::Value {
        json!({"records": self.records, "path": self.path, "problem": self.problem})
    }

    /// One line for stderr.
    pub fn line(&self, container: &str) -> String {
        match (&self.path, &self.problem) {
            (_, Some(why)) => {
                format!("warning: the audit records of `{container}` are lost: {why}")
            }
            (Some(p), None) => format!(
                "kept {} audit record(s) of `{container}` in {}",
                self.records,
                p.display()
            ),
            (None, None) => format!("no audit records in `{container}`"),
        }
    }
}

/// The directory deprovision keeps records in:
/// `$XDG_STATE_HOME/claude-bottle/audit` (default `~/.local/state/…`).
pub fn kept_dir() -> Option<std::path::PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    env("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".local/state")))
        .map(|d| d.join("claude-bottle").join("audit"))
}

/// Append `report`'s records, as `audit --json` prints them, to
/// `<kept_dir>/<container id>.jsonl` (directory 700, file 600).
pub fn keep(report: &bottle::ssh::DeprovisionReport, id: &str, name: &str) -> Kept {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let mut kept = Kept {
        records: report.audit.len(),
        ..Kept::default()
    };
    if let Some(why) = &report.audit_unread {
        kept.problem = Some(why.clone());
        return kept;
    }
    if report.audit.is_empty() {
        return kept;
    }
    let Some(dir) = kept_dir() else {
        kept.problem = Some("neither XDG_STATE_HOME nor HOME is set".into());
        return kept;
    };
    // The file is named by the engine's id: never by text from elsewhere.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        kept.problem = Some(format!("{id:?} is not a container id"));
        return kept;
    }
    let path = dir.join(format!("{id}.jsonl"));
    let mut text = String::new();
    for r in &report.audit {
        text.push_str(&format!("{}\n", record_json(r, id, name)));
    }
    let written = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .and_then(|()| {
            // Only a regular file of ours is appended to, never a link.
            match std::fs::symlink_metadata(&path) {
                Ok(m) if !m.file_type().is_file() => {
                    return Err(std::io::Error::other("not a regular file"))
                }
                _ => {}
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
        })
        .and_then(|mut f| f.write_all(text.as_bytes()));
    match written {
        Ok(()) => kept.path = Some(path),
        Err(e) => kept.problem = Some(format!("{}: {e}", path.display())),
    }
    kept
}

/// `bottlectl audit`: settings, engine, then the work.
pub async fn command(
    cli: &crate::cli::Cli,
    matches: &clap::ArgMatches,
    out: &crate::output::Out,
    args: &AuditArgs,
) -> Result<u8, crate::failure::Failure> {
    use crate::{audit, load_config, select, watch};
    let signals = watch::signals().map_err(|e| Failure::new(3, "cannot handle signals", &e))?;
    let config = load_config(cli, matches)?;
    let first = args.targets.containers.first().map(String::as_str);
    let sel = select(&config.settings, first, out).await?;
    let agent = bottle::session::agent_layout(&config.settings);
    audit::run(out, &sel, &agent, args, signals).await
}
