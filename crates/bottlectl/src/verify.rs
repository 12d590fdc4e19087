//! `verify CONTAINER… --manifest FILE`: check a provisioned container against the manifest (exit 1 on violations).

use crate::cli::{Cli, ManifestArgs};
use crate::failure::Failure;
use crate::output::Out;
use crate::{keys, load_config, many, output, read_manifest, run_many, select, ssh_failure};
use bottle::config::GuardChoice;
use clap::ArgMatches;

pub async fn command(
    cli: &Cli,
    matches: &ArgMatches,
    out: &Out,
    args: &ManifestArgs,
) -> Result<u8, Failure> {
    let config = load_config(cli, matches)?;
    let prompt = std::sync::Arc::new(keys::Prompt::default());
    let opts = bottle::ssh::Options {
        unguarded: config.settings.guard == GuardChoice::Off,
        ..prompt.options(args.strict)
    };
    let manifest = read_manifest(&args.manifest, &config, &opts, out)?;
    let Some(container) = args.targets.single() else {
        let op = many::Op::Verify {
            manifest,
            strict: args.strict,
        };
        return run_many(out, &config, &args.targets, op, prompt.clone()).await;
    };
    let sel = select(&config.settings, Some(container), out).await?;
    let target = config.settings.target();
    let agent = bottle::session::agent_layout(&config.settings);
    let report =
        bottle::session::verify_in(&sel, &agent, container, &manifest.plan, &target, &opts)
            .await
            .map_err(|e| ssh_failure(e, Some(&manifest), "cannot verify", container))?;
    output::verify(out, &sel, container, &report);
    Ok(if report.ok() { 0 } else { 1 })
}
