//! A library consumer: pick an engine, read a plan, provision, verify.
//!
//! ```text
//! cargo run -p bottle-ssh --example provision -- docker my-bottle plan.toml
//! ```
//!
//! `plan.toml` holds the manifest's `[gate]` and `[[ssh]]` tables:
//!
//! ```toml
//! [gate]
//! host = "127.0.0.1"
//! ports = { github = 2201 }
//!
//! [[ssh]]
//! Host = "github"
//! Hostname = "github.com"
//! User = "git"
//! IdentityFile = "/home/me/.ssh/id_ed25519"
//! KnownHostKey = "ssh-ed25519 AAAAC3Nza…"
//! ```

use bottle_runtime::ContainerRuntime;
use bottle_ssh::{Plan, Target};
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [engine, container, plan_path] = args.as_slice() else {
        eprintln!("usage: provision <docker|podman> <container> <plan.toml>");
        return ExitCode::from(2);
    };
    let timeout = Duration::from_secs(60);
    // The provisioner only sees `&dyn ContainerRuntime`: the engine is the
    // caller's choice.
    let rt: Box<dyn ContainerRuntime> = match engine.as_str() {
        "docker" => match bottle_docker::DockerRuntime::connect(None, timeout) {
            Ok(rt) => Box::new(rt),
            Err(e) => return fail(&e, 3),
        },
        "podman" => match bottle_podman::PodmanRuntime::connect(None, timeout) {
            Ok(rt) => Box::new(rt),
            Err(e) => return fail(&e, 3),
        },
        other => {
            eprintln!("unknown engine `{other}` (docker or podman)");
            return ExitCode::from(2);
        }
    };
    let plan: Plan = match std::fs::read_to_string(plan_path)
        .map_err(|e| e.to_string())
        .and_then(|text| toml::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("{plan_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let target = Target::default();
    match bottle_ssh::provision(rt.as_ref(), container, &plan, &target).await {
        Ok(report) => println!("{}", serde_json::to_string_pretty(&report).unwrap()),
        Err(e) => return fail(&e, code_of(&e)),
    }
    match bottle_ssh::verify(rt.as_ref(), container, &plan, &target).await {
        Ok(report) => {
            for c in &report.checks {
                println!(
                    "{} {}: {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(&e, code_of(&e)),
    }
}

/// This example's exit codes, as bottlectl's: 2 input or refusal, 3 container.
fn code_of(e: &bottle_ssh::Error) -> u8 {
    match e.class() {
        bottle_ssh::ErrorClass::Container => 3,
        _ => 2,
    }
}

fn fail(e: &dyn std::error::Error, code: u8) -> ExitCode {
    eprintln!("error: {}", bottle_runtime::error_chain(e));
    ExitCode::from(code)
}
