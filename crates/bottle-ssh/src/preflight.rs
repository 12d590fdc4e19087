//! `preflight`: what `provision` checks in a container before it sends a
//! key, without changing anything, for `bottlectl doctor` and callers that
//! want to know first. Root's part uses only trusted programs (see
//! [`crate::scripts`]); the escalation check runs as the user.

use crate::error::install_hint;
use crate::{
    missing_of, protocol, root_tools, script_error, scripts, unreadable, validate_target, Error,
    Missing, Target, Untrusted,
};
use bottle_runtime::{ContainerRuntime, ExecRequest};
use serde::Serialize;

/// What [`preflight`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {
    /// Paths root's scripts will not trust; when not empty, provision
    /// refuses and nothing below `tools` was looked at.
    pub untrusted: Vec<Untrusted>,
    /// Programs not on root's trusted `PATH`, the user or its home.
    pub missing: Vec<Missing>,
    /// How to install what is missing on the image's distribution.
    pub install_hint: Option<String>,
    /// Each program found, and where (`ssh` included).
    pub tools: Vec<(String, String)>,
    /// The user's uid, when the user exists.
    pub uid: Option<u32>,
    /// The first line of `ssh -V`, when it ran.
    pub ssh_version: Option<String>,
    /// How the user could become root; `None` when the check could not run.
    pub escalation: Option<Vec<String>>,
}

/// Check the container as provision would, changing nothing: one exec as
/// root, then one as the user (when it exists).
pub async fn preflight(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
) -> Result<Preflight, Error> {
    preflight_with(rt, container, target, &crate::Options::default()).await
}

/// [`preflight`] for a provision with `opts`: with
/// [`Options::unguarded`](crate::Options::unguarded) the relay's `socat`
/// is needed too.
pub async fn preflight_with(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
    opts: &crate::Options<'_>,
) -> Result<Preflight, Error> {
    preflight_checking(rt, container, target, &root_tools(opts.unguarded)).await
}

/// [`preflight`], with root's trust check over `tools` (the layout's).
pub(crate) async fn preflight_checking(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
    tools: &[&str],
) -> Result<Preflight, Error> {
    const STEP: &str = "preflight";
    validate_target(target)?;
    let mut args = crate::provision::target_args(target);
    args.extend(tools.iter().copied());
    let out = rt
        .exec(
            container,
            ExecRequest::script(&scripts::preflight_root(), args).user("0"),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, container, &out));
    }
    let root = protocol::preflight_root(&out.stdout_lossy())
        .map_err(|e| unreadable(STEP, container, e))?;
    if !root.done {
        return Err(script_error(STEP, container, &out));
    }
    let mut missing = missing_of(&root.trust.missing, target);
    if root.uid == Some(None) {
        missing.push(Missing::User(target.user.clone()));
    }
    if root.home == Some(false) {
        missing.push(Missing::Home(target.home.clone()));
    }
    let os: Vec<&str> = root.trust.os.iter().map(String::as_str).collect();
    let mut report = Preflight {
        untrusted: root.trust.untrusted.clone(),
        install_hint: install_hint(&os, &missing),
        tools: root.tools.clone(),
        uid: root.uid.flatten(),
        ssh_version: root.ssh_version.clone().flatten(),
        escalation: None,
        missing,
    };
    if report.uid.is_some() {
        let out = rt
            .exec(
                container,
                ExecRequest::script(scripts::ESCALATION, Vec::<&str>::new())
                    .user(target.user.as_str()),
            )
            .await
            .map_err(Error::runtime(STEP))?;
        report.escalation = protocol::escalation(&out.stdout_lossy())
            .map_err(|e| unreadable(STEP, container, e))?;
    }
    Ok(report)
}
