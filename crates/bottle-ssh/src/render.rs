//! What goes into `~/.ssh/config` and `~/.ssh/known_hosts`.

use crate::plan::Target;
use crate::validate::ValidatedPlan;

/// The `config` file: one block per entry, in plan order, each followed by a
/// blank line. Every value was checked by [`crate::validate`].
pub fn render_config(plan: &ValidatedPlan, target: &Target) -> String {
    let mut out = String::new();
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

/// The `known_hosts` file, or `None` when no entry pins a host key.
/// `HostKeyAlias` makes ssh look keys up by `Hostname` alone (no port).
pub fn render_known_hosts(plan: &ValidatedPlan) -> Option<String> {
    let mut out = String::new();
    for e in &plan.entries {
        if let Some(k) = &e.known_host_key {
            out.push_str(&format!("{} {}\n", e.hostname, k));
        }
    }
    (!out.is_empty()).then_some(out)
}
