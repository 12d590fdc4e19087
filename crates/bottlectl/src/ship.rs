//! The commands that make bottlectl installable and scriptable: `version`,
//! `completions` and `man`.

use crate::cli::Cli;
use crate::failure::Failure;
use crate::output::Out;
use bottle::config::Config;
use clap::CommandFactory;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `bottlectl version`: ours, then each engine as `doctor` probes it.
/// Informational: exit 0 even when no engine answers.
pub async fn version(out: &Out, config: &Config) -> Result<u8, Failure> {
    let probes = {
        let _spin = out.spinner("probing engines");
        bottle::probe_all(&config.settings, None).await
    };
    if out.json {
        out.json_value(&json!({
            "name": "bottlectl",
            "version": VERSION,
            "engines": probes,
        }));
        return Ok(0);
    }
    let mut text = format!("bottlectl {VERSION}\n");
    for p in &probes {
        match &p.version {
            Some(v) => text.push_str(&format!(
                "{:<7} {} (API {}) at {} (transport {})\n",
                p.engine.name(),
                v,
                p.api_version.as_deref().unwrap_or("?"),
                p.endpoint,
                p.transport
            )),
            None => text.push_str(&format!(
                "{:<7} not answering at {}: {}\n",
                p.engine.name(),
                if p.endpoint.is_empty() {
                    "-"
                } else {
                    &p.endpoint
                },
                p.error.as_deref().unwrap_or("no answer")
            )),
        }
    }
    out.human(&text);
    Ok(0)
}

/// `bottlectl completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell, out: &Out) -> ExitCode {
    let mut cmd = Cli::command();
    // Rendered in memory first: clap_complete panics on a failed write.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "bottlectl", &mut buf);
    emit(&buf, "cannot write the completion script", out)
}

/// `bottlectl man`: bottlectl.1 on stdout, or every page into `dir`.
pub fn man(dir: Option<&Path>, out: &Out) -> ExitCode {
    let cmd = Cli::command();
    let result = match dir {
        None => {
            let mut buf = Vec::new();
            match clap_mangen::Man::new(cmd).render(&mut buf) {
                Ok(()) => return emit(&buf, "cannot write the man page", out),
                Err(e) => Err(Failure::new(3, "cannot render the man page", &e)),
            }
        }
        Some(dir) => write_pages(cmd, dir).map(|written| {
            for p in written {
                out.step(&format!("wrote {}", p.display()));
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.report(out);
            ExitCode::from(f.code)
        }
    }
}

/// Write `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn emit(bytes: &[u8], what: &str, out: &Out) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let f = Failure::new(3, what, &e);
            f.report(out);
            ExitCode::from(f.code)
        }
    }
}

/// One page per command (`bottlectl.1`, `bottlectl-provision.1`, …), as
/// clap_mangen names them; returns the files written.
fn write_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<std::path::PathBuf>, Failure> {
    let fail = |what: String| move |e: std::io::Error| Failure::new(3, &what, &e);
    std::fs::create_dir_all(dir).map_err(fail(format!("cannot create {}", dir.display())))?;
    clap_mangen::generate_to(cmd, dir).map_err(fail(format!(
        "cannot write man pages into {}",
        dir.display()
    )))?;
    let mut written: Vec<_> = std::fs::read_dir(dir)
        .map_err(fail(format!("cannot list {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bottlectl") && n.ends_with(".1"))
        })
        .collect();
    written.sort();
    Ok(written)
}
