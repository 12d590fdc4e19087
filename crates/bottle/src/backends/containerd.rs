//! containerd through its gRPC API (`bottle-containerd`): an address and a
//! namespace; `auto` never picks it.

use super::{handles, Backend, Handles, Where};
use crate::SelectError;
use bottle_config::Settings;
use bottle_containerd::ContainerdRuntime;
use bottle_runtime::Engine;
use std::time::Duration;

pub(crate) struct Containerd;

/// The namespace setting, kept for connecting.
struct Namespace(Option<String>);

impl Backend for Containerd {
    fn engine(&self) -> Engine {
        crate::CONTAINERD
    }

    fn default_endpoint(&self) -> (String, &'static str) {
        let (address, from) = bottle_containerd::default_address();
        (unix(&address), from)
    }

    fn locate(&self, settings: &Settings) -> Result<Where, SelectError> {
        let (address, from) = match &settings.host {
            Some(h) => (h.clone(), "host setting"),
            None => bottle_containerd::default_address(),
        };
        let mut at = Where::new(unix(&address), from, Namespace(settings.namespace.clone()));
        // Every call is in one namespace, and a container in another is not
        // found: the choice names it.
        let ns = self.namespace(settings).unwrap_or_default();
        at.note = format!(", namespace `{}`", ns.escape_debug());
        Ok(at)
    }

    fn connect(&self, at: &Where, timeout: Duration) -> Result<Handles, SelectError> {
        let Namespace(ns) = super::resolved(at);
        handles(
            crate::CONTAINERD,
            &at.endpoint,
            ContainerdRuntime::connect(Some(&at.endpoint), ns.as_deref(), timeout),
        )
    }

    fn start_hint(&self, from: &str, endpoint: &str) -> String {
        bottle_containerd::start_hint(from, endpoint)
    }

    /// The `namespace` setting, else `CONTAINERD_NAMESPACE`, else `default`.
    fn namespace(&self, settings: &Settings) -> Option<String> {
        Some(match &settings.namespace {
            Some(ns) => ns.clone(),
            None => bottle_containerd::default_namespace().0,
        })
    }
}

fn unix(address: &str) -> String {
    format!("unix://{}", address.trim_start_matches("unix://"))
}
