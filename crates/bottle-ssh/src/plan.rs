//! What to provision: the `[gate]` and `[[ssh]]` tables of a manifest.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything the SSH provisioner needs to know about what to set up.
/// Field names follow the manifest (`bottle.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Optional: without it each `Host` points straight at its `Hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// One entry per SSH alias, in the order they are rendered.
    #[serde(default)]
    pub ssh: Vec<SshEntry>,
}

/// Where the bottle reaches the SSH gate, and its listen port per alias.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub host: String,
    /// One listen port per ssh alias, no more, no less. `i64` so that
    /// out-of-range values reach validation and get a clear error.
    pub ports: BTreeMap<String, i64>,
}

/// One `Host` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshEntry {
    /// The alias used inside the bottle.
    #[serde(rename = "Host")]
    pub host: String,
    /// The real upstream; `HostKeyAlias` and `known_hosts` use it.
    #[serde(rename = "Hostname")]
    pub hostname: String,
    #[serde(rename = "User")]
    pub user: String,
    /// Private key on the machine running the provisioner.
    #[serde(rename = "IdentityFile")]
    pub identity_file: PathBuf,
    /// Pins the upstream host key, e.g. `ssh-ed25519 AAAA…`.
    #[serde(
        rename = "KnownHostKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub known_host_key: Option<String>,
    /// Upstream port when there is no gate (default 22).
    #[serde(rename = "Port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// Where things go inside the container. Comes from configuration
/// (`container_home`, `user`, `agent_socket`, `public_socket`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Target {
    /// The unprivileged user's name.
    pub user: String,
    /// That user's home directory in the container.
    pub home: String,
    /// Root-only socket of the in-container ssh-agent.
    pub agent_socket: String,
    /// World-connectable forwarder socket the user's ssh talks to.
    pub public_socket: String,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            user: "node".into(),
            home: "/home/node".into(),
            agent_socket: "/run/claude-bottle-agent.sock".into(),
            public_socket: "/run/claude-bottle-agent-public.sock".into(),
        }
    }
}
