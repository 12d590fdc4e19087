//! Command-line arguments.

use bottle::runtime::ContainerFilter;
use bottle::RuntimeChoice;
use clap::{Args, ColorChoice, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "bottlectl",
    version,
    // Subcommands carry the version too (their man pages show it).
    propagate_version = true,
    about = "Provision SSH access inside a running container (Docker or Podman)",
    after_help = "Exit codes: 0 success, 1 verify found violations, 2 usage/configuration/manifest error, 3 engine or container error, 130 demo interrupted (Ctrl-C). With several containers: the highest of theirs (0 when all succeeded)."
)]
pub struct Cli {
    /// Container engine: auto, docker, podman or containerd (auto never picks containerd) [setting: runtime]
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_RUNTIME", value_parser = parse_runtime)]
    pub runtime: Option<RuntimeChoice>,

    /// Engine endpoint, e.g. unix:///run/podman/podman.sock [setting: host]
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_HOST", value_name = "URI")]
    pub host: Option<String>,

    /// Docker context from $DOCKER_CONFIG/contexts (after --host and DOCKER_HOST; default: DOCKER_CONTEXT, then Docker's currentContext) [setting: context]
    #[arg(
        long,
        global = true,
        env = "CLAUDE_BOTTLE_CONTEXT",
        value_name = "NAME"
    )]
    pub context: Option<String>,

    /// Podman system connection from podman-connections.json or containers.conf (after --host and CONTAINER_HOST; default: CONTAINER_CONNECTION, then Podman's default connection) [setting: connection]
    #[arg(
        long,
        global = true,
        env = "CLAUDE_BOTTLE_CONNECTION",
        value_name = "NAME"
    )]
    pub connection: Option<String>,

    /// containerd namespace, e.g. k8s.io for a Kubernetes node's pods (default: CONTAINERD_NAMESPACE, then default) [setting: namespace]
    #[arg(
        long,
        global = true,
        env = "CLAUDE_BOTTLE_NAMESPACE",
        value_name = "NAME"
    )]
    pub namespace: Option<String>,

    /// Where ssh-agent runs: bottle (as root in the bottle) or sidecar (in a companion container sharing the bottle's network namespace, out of reach of root in the bottle) [setting: agent]
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_AGENT", value_name = "LAYOUT", value_parser = parse_agent)]
    pub agent: Option<bottle::config::AgentChoice>,

    /// The sidecar's image (default: the bottle's own) [setting: agent_image]
    #[arg(
        long,
        global = true,
        env = "CLAUDE_BOTTLE_AGENT_IMAGE",
        value_name = "IMAGE"
    )]
    pub agent_image: Option<String>,

    /// bottle-guard between the bottle and the agent: on, or off (a plain relay: every request reaches the agent; verify reports the bottle unguarded) [setting: guard]
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_GUARD", value_name = "on|off", value_parser = parse_guard)]
    pub guard: Option<bottle::config::GuardChoice>,

    /// Extra configuration file, above the system and user files
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More logging on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, env = "CLAUDE_BOTTLE_VERBOSE")]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(
        short,
        long,
        global = true,
        env = "CLAUDE_BOTTLE_QUIET",
        conflicts_with = "verbose",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub quiet: bool,

    /// One JSON object on stdout instead of human output
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_JSON",
          action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,

    /// When to use colour on stderr and in help: auto (a terminal and no NO_COLOR), always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

fn parse_runtime(s: &str) -> Result<RuntimeChoice, String> {
    s.parse()
}

fn parse_agent(s: &str) -> Result<bottle::config::AgentChoice, String> {
    s.parse()
}

fn parse_guard(s: &str) -> Result<bottle::config::GuardChoice, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Provision everything the manifest names into a running container
    Provision(ManifestArgs),
    /// Check a provisioned container against the manifest (exit 1 on violations)
    Verify(ManifestArgs),
    /// Stop the agent and forwarder and remove what provision wrote
    Deprovision(ContainerArg),
    /// What the agent holds, as the user sees it: type, bits, fingerprint, comment, lifetime left, restriction
    Keys(ContainerArg),
    /// The guard's record of every request to the agent: what was signed, for which host or namespace, what was refused and why
    Audit(crate::audit::AuditArgs),
    /// Let a signature the guard holds for approval through (its id from `audit`)
    Approve(crate::approve::ApproveArgs),
    /// Refuse a signature the guard holds for approval
    Deny(crate::approve::DenyArgs),
    /// Keep matching containers provisioned: those running now and each that starts, restarts or is unpaused
    Watch(WatchArgs),
    /// Which engines answer, which one auto picks and why; with CONTAINER, whether it is ready
    Doctor(DoctorArgs),
    /// Every effective setting, its value and the layer it came from
    Config,
    /// End to end on a throwaway bottle and sshd gate, removed afterwards
    Demo(DemoArgs),
    /// This program's version and the engines that answer, with theirs
    Version,
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command into a directory
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Target shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write bottlectl.1 and bottlectl-COMMAND.1 here instead of printing bottlectl.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(flatten)]
    pub targets: Targets,
    /// The manifest (what to provision)
    #[arg(
        short,
        long,
        env = "CLAUDE_BOTTLE_MANIFEST",
        default_value = "bottle.toml",
        value_name = "FILE"
    )]
    pub manifest: PathBuf,
    /// Fail when a key cannot be destination-restricted (an entry without KnownHostKey)
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Which containers, in Docker's syntax: label=KEY, label=KEY=VALUE,
    /// name=REGEX (repeatable; labels must all match, names any)
    #[arg(long, value_name = "FILTER", value_parser = parse_filter, required = true)]
    pub filter: Vec<ContainerFilter>,
    /// The manifest, one for the whole watch
    #[arg(
        short,
        long,
        env = "CLAUDE_BOTTLE_MANIFEST",
        default_value = "bottle.toml",
        value_name = "FILE"
    )]
    pub manifest: PathBuf,
    /// Fail when a key cannot be destination-restricted (an entry without KnownHostKey)
    #[arg(long)]
    pub strict: bool,
    /// At most N provisions at once [default: the number of CPUs]
    #[arg(short, long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// After SIGINT/SIGTERM, how long running provisions may finish
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub grace: u64,
    /// Also print every provisioned bottle's guard records (action `audit`), as they come
    #[arg(long)]
    pub audit: bool,
}

#[derive(Debug, Args)]
pub struct ContainerArg {
    #[command(flatten)]
    pub targets: Targets,
}

/// Which containers a command works on. One CONTAINER and no --filter is
/// the single-container command; anything else runs concurrently, one
/// summary row (or JSON line) per container.
#[derive(Debug, Args)]
pub struct Targets {
    /// Container names or ids (several run concurrently)
    #[arg(value_name = "CONTAINER", required_unless_present = "filter")]
    pub containers: Vec<String>,
    /// Also every running container that matches, in Docker's syntax:
    /// label=KEY, label=KEY=VALUE, name=REGEX (repeatable; labels must all
    /// match, names any)
    #[arg(long, value_name = "FILTER", value_parser = parse_filter)]
    pub filter: Vec<ContainerFilter>,
    /// At most N containers at once [default: the number of CPUs]
    #[arg(short, long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

impl Targets {
    /// The one container of a single-container command.
    pub fn single(&self) -> Option<&str> {
        match self.containers.as_slice() {
            [one] if self.filter.is_empty() => Some(one),
            _ => None,
        }
    }

    /// `--jobs`, else the CPUs this process may use.
    pub fn jobs(&self) -> usize {
        self.jobs.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

fn parse_filter(s: &str) -> Result<ContainerFilter, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check this container
    pub container: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Leave the bottle and gate running (they are printed) instead of removing them
    #[arg(long)]
    pub keep: bool,
}

/// The `--color` value from raw arguments, before clap parses them, so that
/// clap's own help and usage errors honour it too. The last one wins.
pub fn color_from_args<I, S>(args: I) -> ColorChoice
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut choice = ColorChoice::Auto;
    let mut take_next = false;
    for arg in args.into_iter().skip(1) {
        let Some(arg) = arg.as_ref().to_str() else {
            take_next = false;
            continue;
        };
        let value = if take_next {
            take_next = false;
            Some(arg)
        } else if arg == "--" {
            break;
        } else if arg == "--color" {
            take_next = true;
            None
        } else {
            arg.strip_prefix("--color=")
        };
        match value {
            Some("always") => choice = ColorChoice::Always,
            Some("never") => choice = ColorChoice::Never,
            Some("auto") => choice = ColorChoice::Auto,
            _ => {}
        }
    }
    choice
}

/// Whether to colour a stream: `always`/`never` win; `auto` needs a
/// terminal, no (non-empty) `NO_COLOR` and a `TERM` other than `dumb`.
pub fn use_color(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
            is_terminal && !no_color && !dumb
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn color_prescan_takes_the_last_value_before_double_dash() {
        let c = |args: &[&str]| color_from_args(args.iter());
        assert_eq!(c(&["bottlectl", "config"]), ColorChoice::Auto);
        assert_eq!(
            c(&["bottlectl", "--color", "always", "config"]),
            ColorChoice::Always
        );
        assert_eq!(
            c(&["bottlectl", "--color=never", "config"]),
            ColorChoice::Never
        );
        assert_eq!(
            c(&["bottlectl", "--color=never", "config", "--color", "always"]),
            ColorChoice::Always
        );
        assert_eq!(c(&["bottlectl", "--", "--color=always"]), ColorChoice::Auto);
        // A bogus value is clap's to reject; the prescan keeps the default.
        assert_eq!(c(&["bottlectl", "--color", "sometimes"]), ColorChoice::Auto);
    }

    #[test]
    fn targets_are_names_and_filters() {
        let targets = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Provision(a)) => Ok(a.targets),
            Ok(Command::Keys(a)) => Ok(a.targets),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        let one = targets(&["bottlectl", "provision", "web"]).unwrap();
        assert_eq!(one.single(), Some("web"));
        let many = targets(&["bottlectl", "keys", "a", "b", "-j", "3"]).unwrap();
        assert_eq!((many.single(), many.jobs()), (None, 3));
        let filtered = targets(&["bottlectl", "keys", "--filter", "label=x=y"]).unwrap();
        assert_eq!(filtered.single(), None);
        assert_eq!(filtered.filter[0].to_string(), "label=x=y");
        assert!(filtered.jobs() >= 1);
        let with_name = targets(&["bottlectl", "keys", "a", "--filter", "name=b"]).unwrap();
        assert_eq!(with_name.single(), None);
        use clap::error::ErrorKind;
        assert_eq!(
            targets(&["bottlectl", "keys"]).unwrap_err(),
            ErrorKind::MissingRequiredArgument
        );
        for bad in [&["--jobs", "0"][..], &["--filter", "status=running"]] {
            let args: Vec<&str> = ["bottlectl", "keys", "a"]
                .iter()
                .chain(bad)
                .copied()
                .collect();
            assert_eq!(
                targets(&args).unwrap_err(),
                ErrorKind::ValueValidation,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn explicit_color_ignores_the_terminal() {
        assert!(use_color(ColorChoice::Always, false));
        assert!(!use_color(ColorChoice::Never, true));
        assert!(!use_color(ColorChoice::Auto, false));
    }
}
