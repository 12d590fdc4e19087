//! Command-line arguments.

use bottle::RuntimeChoice;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "bottlectl",
    version,
    about = "Provision SSH access inside a running container (Docker or Podman)",
    after_help = "Exit codes: 0 success, 1 verify found violations, 2 usage/configuration/manifest error, 3 engine or container error."
)]
pub struct Cli {
    /// Container engine: auto, docker or podman [setting: runtime]
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_RUNTIME", value_parser = parse_runtime)]
    pub runtime: Option<RuntimeChoice>,

    /// Engine endpoint, e.g. unix:///run/podman/podman.sock [setting: host]
    #[arg(long, global = true, env = "CLAUDE_BOTTLE_HOST", value_name = "URI")]
    pub host: Option<String>,

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

    #[command(subcommand)]
    pub command: Command,
}

fn parse_runtime(s: &str) -> Result<RuntimeChoice, String> {
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
    /// Which engines answer, which one auto picks and why; with CONTAINER, whether it is ready
    Doctor(DoctorArgs),
    /// Every effective setting, its value and the layer it came from
    Config,
    /// End to end on a throwaway bottle and sshd gate, removed afterwards
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Container name or id
    pub container: String,
    /// The manifest (what to provision)
    #[arg(
        short,
        long,
        env = "CLAUDE_BOTTLE_MANIFEST",
        default_value = "bottle.toml",
        value_name = "FILE"
    )]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub struct ContainerArg {
    /// Container name or id
    pub container: String,
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
