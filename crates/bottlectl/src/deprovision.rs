//! `deprovision CONTAINER…`: stop the agent, remove what provision wrote, keep the records.

use crate::cli::{Cli, ContainerArg};
use crate::failure::Failure;
use crate::output::Out;
use crate::{load_config, many, output, run_many, select, ssh_failure};
use clap::ArgMatches;

pub async fn command(
    cli: &Cli,
    matches: &ArgMatches,
    out: &Out,
    args: &ContainerArg,
) -> Result<u8, Failure> {
    let config = load_config(cli, matches)?;
    let target = config.settings.target();
    bottle::ssh::validate_target(&target)
        .map_err(|e| ssh_failure(e, None, "invalid settings", ""))?;
    let Some(container) = args.targets.single() else {
        let prompt = Default::default();
        return run_many(out, &config, &args.targets, many::Op::Deprovision, prompt).await;
    };
    let sel = select(&config.settings, Some(container), out).await?;
    let agent = bottle::session::agent_layout(&config.settings);
    many::remove_orphaned_sidecars(out, &sel, &agent).await;
    let (report, kept) = many::deprovision_in(&sel, &agent, container, &target)
        .await
        .map_err(|e| ssh_failure(e, None, "cannot deprovision", container))?;
    output::deprovision(out, &sel, &report, &kept);
    Ok(0)
}
