//! `provision CONTAINER… --manifest FILE`: load the keys and write the files, in one container or many.

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
        let op = many::Op::Provision {
            manifest,
            strict: args.strict,
        };
        return run_many(out, &config, &args.targets, op, prompt.clone()).await;
    };
    let sel = select(&config.settings, Some(container), out).await?;
    out.step(&format!(
        "provisioning container `{}` from {}",
        container,
        manifest.path.display()
    ));
    let target = config.settings.target();
    let agent = bottle::session::agent_layout(&config.settings);
    many::remove_orphaned_sidecars(out, &sel, &agent).await;
    let report =
        bottle::session::provision_in(&sel, &agent, container, &manifest.plan, &target, &opts)
            .await
            .map_err(|e| ssh_failure(e, Some(&manifest), "cannot provision", container))?;
    keys::warnings(out, &report);
    output::provision(out, &sel, &manifest, &report);
    Ok(0)
}
