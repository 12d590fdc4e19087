//! Where each backend would reach its engine, without connecting: the
//! default endpoints, the contexts and connections the user has (for
//! `doctor`), containerd's namespace.

use crate::backends::{backend, chosen_from, BACKENDS};
use crate::{Engine, Settings, CONTAINERD};
use serde::Serialize;

/// A Docker context or Podman connection the user has, and whether
/// selection uses it: for `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedEndpoint {
    pub engine: Engine,
    /// `context` or `connection`.
    pub kind: &'static str,
    pub name: String,
    /// Its endpoint, when it could be read.
    pub endpoint: Option<String>,
    /// Whether `settings` reach the engine through it.
    pub used: bool,
    /// Why it is (not) used, or why it cannot be read.
    pub why: String,
}

/// Every Docker context (`$DOCKER_CONFIG/contexts`) and Podman connection
/// (`podman-connections.json`, containers.conf) and whether `settings` use
/// it, by comparing with the endpoint each engine would be reached at.
pub fn named_endpoints(settings: &Settings) -> Vec<NamedEndpoint> {
    let mut out = Vec::new();
    for b in BACKENDS {
        let named = b.named_endpoints();
        if named.is_empty() {
            continue;
        }
        let chosen = chosen_from(b.engine(), settings);
        for n in named {
            let (endpoint, read_error) = match n.endpoint {
                Ok(e) => (Some(e), None),
                Err(e) => (None, Some(e)),
            };
            let (used, why) = match (&chosen, read_error) {
                (_, Some(e)) => (false, e),
                (Ok(from), None) if n.marks.iter().any(|m| m == from) => {
                    (true, format!("selected ({from})"))
                }
                (Ok(from), None) => (false, format!("not used: the endpoint comes from {from}")),
                (Err(e), None) => (false, format!("not used: {e}")),
            };
            out.push(NamedEndpoint {
                engine: b.engine(),
                kind: n.kind,
                name: n.name,
                endpoint,
                used,
                why,
            });
        }
    }
    out
}

/// The endpoint an engine uses without a `host` setting, and why (`None`
/// when it is not built in).
pub fn default_endpoint(engine: Engine) -> Option<(String, &'static str)> {
    backend(engine).map(|b| b.default_endpoint())
}

/// The containerd namespace `settings` select: the `namespace` setting,
/// else `CONTAINERD_NAMESPACE`, else `default` (`None` when built without
/// containerd). Errors name it: a container in another namespace is not
/// found.
pub fn containerd_namespace(settings: &Settings) -> Option<String> {
    backend(CONTAINERD).and_then(|b| b.namespace(settings))
}
