//! Human output (steps on stderr, results on stdout) and `--json`.

use bottle::config::{Config, Manifest};
use bottle::ssh::{DeprovisionReport, ProvisionReport, VerifyReport};
use bottle::Selection;
use serde_json::json;

pub struct Out {
    pub json: bool,
    pub quiet: bool,
}

impl Out {
    pub fn new(json: bool, quiet: bool) -> Out {
        Out { json, quiet }
    }

    /// One progress line on stderr (silenced by -q).
    pub fn step(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Result text on stdout, unless --json.
    pub fn human(&self, text: &str) {
        if !self.json {
            print!("{text}");
        }
    }

    pub fn json_value(&self, value: &serde_json::Value) {
        println!("{value}");
    }
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

pub fn provision(out: &Out, sel: &Selection, manifest: &Manifest, report: &ProvisionReport) {
    for s in &report.steps {
        out.step(&format!("  step {:<12} {} ms", s.name, s.millis));
    }
    if out.json {
        out.json_value(&json!({
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
        }));
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
        out.step(&format!(
            "  key  {} {} for {}",
            k.algorithm,
            k.fingerprint,
            k.aliases.join(", ")
        ));
    }
    for f in &report.files {
        out.step(&format!(
            "  file {} (mode {}, {}:{})",
            f.path, f.mode, f.uid, f.gid
        ));
    }
    for r in &report.removed {
        out.step(&format!("  removed stale {r}"));
    }
}

pub fn verify(out: &Out, sel: &Selection, container: &str, report: &VerifyReport) {
    if out.json {
        out.json_value(&json!({
            "ok": report.ok(),
            "engine": engine_json(sel),
            "container": container,
            "checks": report.checks,
        }));
        return;
    }
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for c in &report.checks {
        text.push_str(&format!(
            "{}  {:width$}  {}\n",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
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

pub fn deprovision(out: &Out, sel: &Selection, report: &DeprovisionReport) {
    if out.json {
        out.json_value(&json!({
            "ok": true,
            "engine": engine_json(sel),
            "container": report.container,
            "stopped_agent": report.stopped_agent,
            "stopped_forwarder": report.stopped_forwarder,
            "removed": report.removed,
        }));
        return;
    }
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
        out.step(&format!("  removed {r}"));
    }
}
