//! `bottlectl`: provision SSH access inside a running container, on Docker or
//! Podman.
//!
//! ```text
//! bottlectl provision CONTAINER --manifest bottle.toml
//! bottlectl verify CONTAINER --manifest bottle.toml   # exit 1 on violations
//! bottlectl deprovision CONTAINER
//! bottlectl keys CONTAINER                            # what the agent holds
//! bottlectl provision --filter label=team=ci --jobs 4  # many at once
//! bottlectl watch --filter label=bottle -m bottle.toml # keep them provisioned
//! bottlectl doctor [CONTAINER]
//! bottlectl config
//! bottlectl demo
//! bottlectl version                                   # and the engines' versions
//! bottlectl completions bash|zsh|fish|powershell
//! bottlectl man [--dir DIR]
//! ```
//!
//! Exit codes: 0 success; 1 verify found violations; 2 usage, configuration
//! or manifest error; 3 engine or container error; 130 `demo` interrupted.
//! With several containers: the highest of their codes.
//! See `docs/cli.md`.

mod approve;
mod audit;
mod cli;
mod demo;
mod deprovision;
mod doctor;
mod exit;
mod failure;
mod keys;
mod many;
mod output;
mod provision;
mod safe;
mod ship;
mod verify;
mod watch;

use bottle::config::{load, load_manifest, Config, GuardChoice, Manifest, Overrides, Sources};
use bottle::Selection;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use cli::{Cli, Command};
use failure::Failure;
use output::Out;
use std::process::ExitCode;

/// `CLAUDE_BOTTLE_*` variables that are CLI switches, not settings.
const CLI_ENV: &[&str] = &[
    "CLAUDE_BOTTLE_JSON",
    "CLAUDE_BOTTLE_QUIET",
    "CLAUDE_BOTTLE_VERBOSE",
    "CLAUDE_BOTTLE_MANIFEST",
];

fn main() -> ExitCode {
    let hardened = harden();
    let color = cli::color_from_args(std::env::args_os());
    let matches = match Cli::command().color(color).try_get_matches() {
        Ok(m) => m,
        // clap prints usage errors itself and exits 2 (0 for --help/--version).
        Err(e) => e.exit(),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let stderr_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let out = Out::new(
        cli.json,
        cli.quiet,
        cli.verbose,
        cli::use_color(cli.color, stderr_tty),
        stderr_tty,
    );
    init_tracing(cli.verbose, cli.quiet, out.color);
    if let Err(e) = hardened {
        tracing::warn!("cannot keep key bytes out of core dumps: {e}");
    }

    // Offline commands: no settings, no engine, no async runtime.
    match &cli.command {
        Command::Completions(args) => return ship::completions(args.shell, &out),
        Command::Man(args) => return ship::man(args.dir.as_deref(), &out),
        _ => {}
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let f = Failure::new(3, "cannot start the async runtime", &e);
            f.report(&out);
            return ExitCode::from(3);
        }
    };
    let code = match runtime.block_on(run(&cli, &matches, &out)) {
        Ok(code) => code,
        Err(f) => {
            f.report(&out);
            f.code
        }
    };
    ExitCode::from(code)
}

/// First thing, before any key or passphrase is read: no core file (a crash
/// would write decrypted keys to disk) and, on Linux, not dumpable (no
/// same-uid ptrace or `/proc/<pid>/mem` read; `/proc/<pid>` becomes root's).
fn harden() -> std::io::Result<()> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, none)?;
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

fn init_tracing(verbose: u8, quiet: bool, color: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // Only our crates get chatty at -v; engine clients stay at warn.
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,bottle={level},bottlectl={level}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose >= 2)
        .with_ansi(color)
        .try_init();
}

/// Whether a global flag was given on the command line (not via its
/// environment variable: the settings' env layer reads those, so `config`
/// shows the right origin).
fn from_command_line(matches: &ArgMatches, id: &str) -> bool {
    let m = match matches.subcommand() {
        Some((_, sub)) if sub.value_source(id).is_some() => sub,
        _ => matches,
    };
    m.value_source(id) == Some(ValueSource::CommandLine)
}

fn overrides(cli: &Cli, matches: &ArgMatches) -> Overrides {
    Overrides {
        runtime: cli
            .runtime
            .filter(|_| from_command_line(matches, "runtime")),
        host: cli
            .host
            .clone()
            .filter(|_| from_command_line(matches, "host")),
        context: cli
            .context
            .clone()
            .filter(|_| from_command_line(matches, "context")),
        connection: cli
            .connection
            .clone()
            .filter(|_| from_command_line(matches, "connection")),
        namespace: cli
            .namespace
            .clone()
            .filter(|_| from_command_line(matches, "namespace")),
        agent: cli.agent.filter(|_| from_command_line(matches, "agent")),
        guard: cli.guard.filter(|_| from_command_line(matches, "guard")),
        agent_image: cli
            .agent_image
            .clone()
            .filter(|_| from_command_line(matches, "agent_image")),
        ..Overrides::default()
    }
}

/// Load settings from the standard layers plus flags.
pub fn load_config(cli: &Cli, matches: &ArgMatches) -> Result<Config, Failure> {
    // `Sources::standard` reads CLAUDE_BOTTLE_CONFIG itself and records it as such.
    let flag = cli
        .config
        .clone()
        .filter(|_| from_command_line(matches, "config"));
    let mut sources = Sources::standard(flag);
    sources.ignored_env = CLI_ENV.iter().map(|s| s.to_string()).collect();
    let config = load(&sources, &overrides(cli, matches))
        .map_err(|e| Failure::new(2, "invalid configuration", &e))?;
    tracing::info!(
        runtime = %config.settings.runtime,
        host = %config
            .settings
            .host
            .as_deref()
            .map_or("(engine default)".into(), bottle::runtime::redact_url),
        container_home = %config.settings.container_home,
        user = %config.settings.user,
        "settings loaded"
    );
    Ok(config)
}

async fn run(cli: &Cli, matches: &ArgMatches, out: &Out) -> Result<u8, Failure> {
    match &cli.command {
        Command::Config => {
            let config = load_config(cli, matches)?;
            output::config(out, &config);
            Ok(0)
        }
        Command::Provision(args) => provision::command(cli, matches, out, args).await,
        Command::Verify(args) => verify::command(cli, matches, out, args).await,
        Command::Deprovision(args) => deprovision::command(cli, matches, out, args).await,
        Command::Keys(args) => keys::command(cli, matches, out, args).await,
        Command::Audit(args) => audit::command(cli, matches, out, args).await,
        Command::Approve(args) => approve::approve_command(cli, matches, out, args).await,
        Command::Deny(args) => approve::deny_command(cli, matches, out, args).await,
        Command::Watch(args) => watch::command(cli, matches, out, args).await,
        Command::Doctor(args) => {
            let config = load_config(cli, matches)?;
            doctor::run(out, &config, args.container.as_deref()).await
        }
        Command::Demo(args) => {
            let config = load_config(cli, matches)?;
            demo::run(out, &config, args).await
        }
        Command::Version => {
            let config = load_config(cli, matches)?;
            ship::version(out, &config).await
        }
        // Handled in main before the runtime starts.
        Command::Completions(_) | Command::Man(_) => Ok(0),
    }
}

/// Several containers (or `--filter`): pick the engine (steered by the
/// first name), resolve the filters there, run `op` on each.
async fn run_many(
    out: &Out,
    config: &Config,
    targets: &cli::Targets,
    op: many::Op,
    prompt: std::sync::Arc<keys::Prompt>,
) -> Result<u8, Failure> {
    let first = targets.containers.first().map(String::as_str);
    let sel = select(&config.settings, first, out).await?;
    let containers = many::resolve(&sel, &targets.containers, &targets.filter, out).await?;
    let placement = placement(&config.settings);
    Ok(many::run(out, sel, op, placement, prompt, containers, targets.jobs()).await)
}

/// Where and how provision puts things, from the settings.
fn placement(settings: &bottle::config::Settings) -> many::Placement {
    many::Placement {
        target: settings.target(),
        agent: bottle::session::agent_layout(settings),
        unguarded: settings.guard == GuardChoice::Off,
    }
}

/// Parse the manifest and check the plan and target before any engine call,
/// so input errors exit 2 without needing an engine.
fn read_manifest(
    path: &std::path::Path,
    config: &Config,
    opts: &bottle::ssh::Options<'_>,
    out: &Out,
) -> Result<Manifest, Failure> {
    let manifest = load_manifest(path).map_err(Failure::manifest)?;
    // Before validation, so they are seen even when the plan is refused.
    for w in &manifest.warnings {
        out.step(&format!("warning: {w}"));
    }
    bottle::ssh::validate_with(&manifest.plan, opts)
        .map_err(|e| ssh_failure(e, Some(&manifest), "invalid manifest", ""))?;
    bottle::ssh::validate_target(&config.settings.target())
        .map_err(|e| ssh_failure(e, None, "invalid settings", ""))?;
    tracing::info!(
        manifest = %manifest.path.display(),
        aliases = manifest.plan.ssh.len(),
        "manifest read"
    );
    Ok(manifest)
}

pub async fn select(
    settings: &bottle::Settings,
    container: Option<&str>,
    out: &Out,
) -> Result<Selection, Failure> {
    let sel = bottle::select(settings, container)
        .await
        .map_err(Failure::select)?;
    if sel.engine() == bottle::CONTAINERD {
        if let Some(ns) = bottle::containerd_namespace(settings) {
            let _ = SCOPE.set(format!(" in containerd namespace `{}`", ns.escape_debug()));
        }
    }
    out.step(&format!(
        "engine: {} {} at {} ({})",
        sel.engine(),
        sel.info.version,
        sel.endpoint(),
        sel.why
    ));
    Ok(sel)
}

/// A provisioner error: plan errors point into the manifest when there is one.
pub fn ssh_failure(
    e: bottle::ssh::Error,
    manifest: Option<&Manifest>,
    doing: &str,
    container: &str,
) -> Failure {
    use bottle::config::Location;
    if let (Some(m), true) = (
        manifest,
        matches!(
            e,
            bottle::ssh::Error::Plan { .. } | bottle::ssh::Error::KeyFile { .. }
        ),
    ) {
        use bottle::ssh::PlanPart;
        let field = e.field();
        let loc = match e.part() {
            Some(PlanPart::Ssh(Some(index))) => Location::Ssh(index, field),
            Some(PlanPart::Gate) => match field {
                Some("host") => Location::GateHost,
                Some("ports") | None => Location::GatePorts(None),
                Some(f) => Location::GatePorts(Some(f.strip_prefix("ports.").unwrap_or(f))),
            },
            _ => Location::Ssh(usize::MAX, None),
        };
        return Failure::manifest(m.error_at(loc, e.to_string()));
    }
    let code = exit::for_ssh(&e);
    let what = if container.is_empty() {
        doing.to_string()
    } else {
        let scope = SCOPE.get().map(String::as_str).unwrap_or("");
        format!("{doing} container `{container}`{scope}")
    };
    Failure::new(code, &what, &e)
}

/// Where the selected engine looks for containers, when an engine has
/// more than one place (containerd's namespaces): ` in containerd
/// namespace `NS``, set by [`select`], named by every container's error.
static SCOPE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// A plan error points at its entry's field in the manifest by the
    /// error's typed location, not by reading its text.
    #[test]
    fn plan_errors_point_at_the_entrys_field() {
        let text = "[[ssh]]\nHost = \"a\"\nHostname = \"a.example\"\nUser = \"git\"\nIdentityFile = \"/k\"\n\n\
                    [[ssh]]\nHost = \"b\"\nHostname = \"b.example\"\nUser = \"git\"\nIdentityFile = \"/k\"\n";
        let m = bottle::config::parse_manifest(Path::new("m.toml"), text.into(), None).unwrap();
        let e = bottle::ssh::Error::Plan {
            entry: bottle::ssh::Entry::ssh(1, "b"),
            field: "User".into(),
            reason: "is bad".into(),
        };
        let f = super::ssh_failure(e, Some(&m), "provision", "c");
        assert_eq!(f.code, 2);
        assert!(f.message.contains("m.toml:10:"), "{}", f.message);
        // A label that merely looks like an index is not read as one.
        let e = bottle::ssh::Error::Plan {
            entry: bottle::ssh::Entry::ssh_host("ssh[0]"),
            field: "User".into(),
            reason: "is bad".into(),
        };
        let f = super::ssh_failure(e, Some(&m), "provision", "c");
        assert!(f.message.contains("m.toml:1:"), "{}", f.message);
    }
}
