//! [`deprovision`]: stop what provision started and remove what it wrote.

use crate::provision::lock_token;
use crate::{
    protocol, root_tools, script_error, scripts, unreadable, untrusted_error, validate_target,
    DeprovisionReport, Error, Target, STATE_DIR,
};
use bottle_runtime::{ContainerRuntime, ExecRequest};

/// Stop the agent and forwarder this crate started (only if their recorded
/// pids still run them), remove both sockets and the state directory (one
/// root exec) and, at the same time as the user, the files provision wrote
/// in `~/.ssh` that still carry [`FILE_MARK`](crate::FILE_MARK) (and `~/.ssh` if that leaves
/// it empty). Deprovisioning twice is harmless.
pub async fn deprovision(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
) -> Result<DeprovisionReport, Error> {
    // The guard's records first: the state directory goes with them.
    let audit = crate::audit::read(rt, container, None).await;
    let mut report = deprovision_checking(rt, container, target, &root_tools(false)).await?;
    report.keep_audit(audit);
    Ok(report)
}

impl DeprovisionReport {
    /// The records read before the removal, or why they could not be.
    pub(crate) fn keep_audit(&mut self, read: Result<Vec<crate::audit::Record>, Error>) {
        match read {
            Ok(records) => self.audit = records,
            Err(e) => self.audit_unread = Some(bottle_runtime::error_chain(&e)),
        }
    }
}

/// [`deprovision`], with root's trust check over `tools` (the layout's).
pub(crate) async fn deprovision_checking(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
    tools: &[&str],
) -> Result<DeprovisionReport, Error> {
    let both = Parts {
        root: true,
        user: true,
    };
    deprovision_parts(rt, container, target, tools, both).await
}

/// Which of deprovision's two execs to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts {
    /// Root's: processes, sockets, the state directory.
    pub root: bool,
    /// The user's: the files in the user's home.
    pub user: bool,
}

/// [`deprovision_checking`] for `parts` only (both at once when both).
pub(crate) async fn deprovision_parts(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
    tools: &[&str],
    parts: Parts,
) -> Result<DeprovisionReport, Error> {
    const STEP: &str = "deprovision";
    validate_target(target)?;
    let token = lock_token();
    let mut args = vec![
        STATE_DIR,
        &target.agent_socket,
        &target.public_socket,
        &token,
    ];
    args.extend(tools.iter().copied());
    let root = ExecRequest::script(&scripts::deprovision(), args).user("0");
    let user = ExecRequest::script(&scripts::deprovision_user(), [target.home.as_str()])
        .user(target.user.as_str());
    let run = |wanted: bool, request: ExecRequest| async move {
        match wanted {
            true => Some(rt.exec(container, request).await),
            false => None,
        }
    };
    let (root, user) = futures_util::join!(run(parts.root, root), run(parts.user, user));
    let mut report = DeprovisionReport {
        container: container.to_string(),
        ..Default::default()
    };
    for (is_root, out) in [(true, root), (false, user)] {
        let Some(out) = out else { continue };
        let out = out.map_err(Error::runtime(STEP))?;
        let read = protocol::deprovision(&out.stdout_lossy());
        // Only root's own script reports on root's environment.
        if let (true, Ok(r)) = (is_root, &read) {
            if let Some(e) = untrusted_error(container, &r.trust) {
                return Err(e);
            }
        }
        if !out.success() {
            return Err(script_error(STEP, container, &out));
        }
        let read = read.map_err(|e| unreadable(STEP, container, e))?;
        if !read.done
            || (!is_root && (read.stopped_agent.is_some() || read.stopped_forwarder.is_some()))
        {
            return Err(script_error(STEP, container, &out));
        }
        if is_root {
            report.stopped_agent = read.stopped_agent;
            report.stopped_forwarder = read.stopped_forwarder;
        }
        report.removed.extend(read.removed);
    }
    Ok(report)
}
