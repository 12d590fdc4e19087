//! What goes into `~/.ssh/config` and `~/.ssh/known_hosts`.

use crate::plan::Target;
use crate::validate::ValidatedPlan;

/// First line of every file provision writes in the user's `~/.ssh`: how a
/// later provision or deprovision tells its own file (to replace or remove)
/// from one the user wrote.
pub const FILE_MARK: &str =
    "# Written by bottle: replaced by each provision, removed by deprovision.";

/// The `config` file: [`FILE_MARK`], then one block per entry, in plan
/// order, each followed by a blank line. Every value was checked by
/// [`crate::validate`].
pub fn render_config(plan: &ValidatedPlan, target: &Target) -> String {
    let mut out = format!("{FILE_MARK}\n");
    for e in &plan.entries {
        out.push_str(&format!(
            "Host {}\n HostName {}\n User {}\n Port {}\n IdentityAgent {}\n HostKeyAlias {}\n CheckHostIP no\n\n",
            e.alias,
            e.connect_host,
            e.user,
            e.connect_port,
            target.public_socket,
            e.hostname
        ));
    }
    out
}

/// The `known_hosts` file ([`FILE_MARK`], then one line per pinned key), or
/// `None` when no entry pins a host key. `HostKeyAlias` makes ssh look keys
/// up by `Hostname` alone (no port).
pub fn render_known_hosts(plan: &ValidatedPlan) -> Option<String> {
    let mut lines = String::new();
    for e in &plan.entries {
        if let Some(k) = &e.known_host_key {
            lines.push_str(&format!("{} {}\n", e.hostname, k));
        }
    }
    (!lines.is_empty()).then(|| format!("{FILE_MARK}\n{lines}"))
}
