//! Human output (steps on stderr, results on stdout) and `--json`.

use crate::safe;
use bottle::config::{Config, Manifest};
use bottle::ssh::{DeprovisionReport, ProvisionReport, VerifyReport};
use bottle::Selection;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Out {
    pub json: bool,
    pub quiet: bool,
    /// ANSI colour on stderr (`--color`, `NO_COLOR`, terminal).
    pub color: bool,
    /// Spinners: stderr is a terminal, no `--json`, `-q` or `-v` (log lines
    /// would tear a spinner's line; at -v the logs show progress).
    pub progress: bool,
}

/// The colour decision for code that has no `Out` at hand (error rendering).
static STDERR_COLOR: AtomicBool = AtomicBool::new(false);

pub fn stderr_color() -> bool {
    STDERR_COLOR.load(Ordering::Relaxed)
}

/// A spinner for one long step; cleared from the terminal when dropped.
/// Inert (draws nothing) when progress output is off.
pub struct Spinner(Option<ProgressBar>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(pb) = self.0.take() {
            pb.finish_and_clear();
        }
    }
}

impl Out {
    pub fn new(json: bool, quiet: bool, verbose: u8, color: bool, stderr_tty: bool) -> Out {
        STDERR_COLOR.store(color, Ordering::Relaxed);
        Out {
            json,
            quiet,
            color,
            progress: stderr_tty && !json && !quiet && verbose == 0,
        }
    }

    /// Start a spinner with `message` on stderr (terminal only).
    pub fn spinner(&self, message: &str) -> Spinner {
        if !self.progress {
            return Spinner(None);
        }
        let template = if self.color {
            "{spinner:.cyan} {msg} ({elapsed})"
        } else {
            "{spinner} {msg} ({elapsed})"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(safe::text(message).into_owned());
        pb.enable_steady_tick(Duration::from_millis(120));
        Spinner(Some(pb))
    }

    /// `text` in bold red when colour is on (for `error:`).
    pub fn paint_error(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1;31m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// One progress line on stderr (silenced by -q).
    pub fn step(&self, line: &str) {
        if !self.quiet {
            eprint_line(line);
        }
    }

    /// Result text on stdout, unless --json; escaped for the terminal.
    pub fn human(&self, text: &str) {
        if !self.json {
            stdout(safe::text(text).as_bytes());
        }
    }

    pub fn json_value(&self, value: &serde_json::Value) {
        stdout(format!("{}\n", safe::json(value)).as_bytes());
    }
}

/// One line on stderr, escaped for the terminal. Like `stdout`: a closed
/// stderr (`2>&1 | head`) must not panic (eprintln! does on EPIPE) and turn
/// the exit code into 101.
pub fn eprint_line(line: &str) {
    eprint_raw(&safe::text(line));
}

/// A line on stderr as it is: only for text we made (our own colours).
pub fn eprint_raw(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Results on stdout. A reader that went away (`| head`) must not turn into
/// a panic (println! panics on EPIPE); the exit code still tells the outcome.
fn stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut lock = std::io::stdout().lock();
    let _ = lock.write_all(bytes).and_then(|()| lock.flush());
}

pub fn engine_json(sel: &Selection) -> serde_json::Value {
    json!({
        "engine": sel.engine().name(),
        "endpoint": sel.endpoint(),
        "version": sel.info.version,
        "why": sel.why,
    })
}

pub fn config(out: &Out, config: &Config) {
    let values = config.origins();
    if out.json {
        out.json_value(&json!({ "settings": values }));
        return;
    }
    let width = values.iter().map(|v| v.key.len()).max().unwrap_or(0);
    let vwidth = values
        .iter()
        .map(|v| v.value.as_deref().unwrap_or("(unset)").len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for v in &values {
        text.push_str(&format!(
            "{:width$}  {:vwidth$}  {}\n",
            v.key,
            v.value.as_deref().unwrap_or("(unset)"),
            v.origin,
        ));
    }
    out.human(&text);
}

/// `provision --json`'s object (one per container with several).
pub fn provision_json(
    sel: &Selection,
    manifest: &Manifest,
    report: &ProvisionReport,
) -> serde_json::Value {
    json!({
        "ok": true,
        "engine": engine_json(sel),
        "manifest": manifest.path,
        "container": report.container,
        "keys": report.keys,
        "files": report.files,
        "removed": report.removed,
        "agent": report.agent,
        "forwarder": report.forwarder,
        "steps": report.steps,
        "warnings": report.warnings,
    })
}

pub fn provision(out: &Out, sel: &Selection, manifest: &Manifest, report: &ProvisionReport) {
    for s in &report.steps {
        out.step(&format!("  step {:<12} {} ms", s.name, s.millis));
    }
    if out.json {
        out.json_value(&provision_json(sel, manifest, report));
        return;
    }
    let started = |p: &bottle::ssh::ProcessReport| if p.started { "started" } else { "reused" };
    out.step(&format!(
        "provisioned container `{}`: {} key(s) loaded, {} file(s) written, agent pid {} ({}), forwarder pid {} ({})",
        report.container,
        report.keys.len(),
        report.files.len(),
        report.agent.pid,
        started(&report.agent),
        report.forwarder.pid,
        started(&report.forwarder),
    ));
    for k in &report.keys {
        let cert = match &k.certificate {
            Some(c) => format!(
                ", certificate {} (serial {}, principals {}, valid until {})",
                safe::field(&c.key_id),
                c.serial,
                safe::field(&c.principals.join(",")),
                c.valid_before
            ),
            None => String::new(),
        };
        out.step(&format!(
            "  key  {} {} for {}{cert}",
            k.algorithm,
            k.fingerprint,
            k.aliases.join(", ")
        ));
    }
    for f in &report.files {
        out.step(&format!(
            "  file {} (mode {}, {}:{})",
            safe::field(&f.path),
            f.mode,
            f.uid,
            f.gid
        ));
    }
    for r in &report.removed {
        out.step(&format!("  removed stale {}", safe::field(r)));
    }
}

/// `verify --json`'s object (one per container with several).
pub fn verify_json(sel: &Selection, container: &str, report: &VerifyReport) -> serde_json::Value {
    json!({
        "ok": report.ok(),
        "engine": engine_json(sel),
        "container": container,
        "checks": report.checks,
    })
}

pub fn verify(out: &Out, sel: &Selection, container: &str, report: &VerifyReport) {
    if out.json {
        out.json_value(&verify_json(sel, container, report));
        return;
    }
    // Names hold paths and details file names found in the container.
    let rows: Vec<_> = report
        .checks
        .iter()
        .map(|c| (c.ok, safe::field(&c.name), safe::field(&c.detail)))
        .collect();
    let width = rows
        .iter()
        .map(|(_, name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (ok, name, detail) in &rows {
        text.push_str(&format!(
            "{}  {:width$}  {}\n",
            if *ok { "ok  " } else { "FAIL" },
            name,
            detail
        ));
    }
    out.human(&text);
    let failed = report.failures().count();
    if failed == 0 {
        out.step(&format!(
            "container `{container}`: all {} checks hold",
            report.checks.len()
        ));
    } else {
        out.step(&format!(
            "container `{container}`: {failed} of {} checks failed",
            report.checks.len()
        ));
    }
}

/// `deprovision --json`'s object (one per container with several).
pub fn deprovision_json(
    sel: &Selection,
    report: &DeprovisionReport,
    kept: &crate::audit::Kept,
) -> serde_json::Value {
    json!({
        "ok": true,
        "engine": engine_json(sel),
        "container": report.container,
        "stopped_agent": report.stopped_agent,
        "stopped_forwarder": report.stopped_forwarder,
        "removed": report.removed,
        "audit": kept.json(),
    })
}

pub fn deprovision(
    out: &Out,
    sel: &Selection,
    report: &DeprovisionReport,
    kept: &crate::audit::Kept,
) {
    if out.json {
        out.json_value(&deprovision_json(sel, report, kept));
        return;
    }
    out.step(&kept.line(&report.container));
    let pid = |p: Option<u32>| {
        p.map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "none running".into())
    };
    out.step(&format!(
        "deprovisioned container `{}`: agent {}, forwarder {}, {} path(s) removed",
        report.container,
        pid(report.stopped_agent),
        pid(report.stopped_forwarder),
        report.removed.len()
    ));
    for r in &report.removed {
        out.step(&format!("  removed {}", safe::field(r)));
    }
}
