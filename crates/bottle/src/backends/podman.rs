//! Podman through podman-api (`bottle-podman`): its endpoint chosen as the
//! podman CLI does, connections included.

use super::{config_error, handles, resolved, Backend, Handles, Named, Where};
use crate::SelectError;
use bottle_config::Settings;
use bottle_podman::{PodmanEndpoint, PodmanEnv, PodmanRuntime};
use bottle_runtime::Engine;
use std::time::Duration;

pub(crate) struct Podman;

impl Backend for Podman {
    fn engine(&self) -> Engine {
        Engine::Podman
    }

    fn default_endpoint(&self) -> (String, &'static str) {
        PodmanRuntime::default_endpoint()
    }

    fn locate(&self, settings: &Settings) -> Result<Where, SelectError> {
        let ep = bottle_podman::resolve(
            settings.host.as_deref(),
            settings.connection.as_deref(),
            &PodmanEnv::from_process(),
        )
        .map_err(|reason| config_error(Engine::Podman, reason))?;
        Ok(Where::new(ep.uri.clone(), ep.from.clone(), ep))
    }

    fn connect(&self, at: &Where, timeout: Duration) -> Result<Handles, SelectError> {
        let ep: &PodmanEndpoint = resolved(at);
        handles(
            Engine::Podman,
            &at.endpoint,
            PodmanRuntime::connect_endpoint(ep, timeout),
        )
    }

    fn start_hint(&self, from: &str, endpoint: &str) -> String {
        bottle_podman::start_hint(from, endpoint)
    }

    fn named_by(&self, settings: &Settings) -> Option<String> {
        settings
            .connection
            .as_ref()
            .map(|c| format!("connection {c}"))
    }

    fn user_named(&self, from: &str) -> Option<String> {
        if from == "CONTAINER_HOST" {
            return Some("CONTAINER_HOST is set".into());
        }
        if let Some(name) = from.strip_prefix("default connection ") {
            return Some(format!("Podman's default connection `{name}` is selected"));
        }
        from.strip_prefix("connection ")
            .map(|name| format!("Podman connection `{name}` is selected"))
    }

    fn named_endpoints(&self) -> Vec<Named> {
        match bottle_podman::read_connections(&PodmanEnv::from_process()) {
            Ok(conns) => conns
                .named
                .iter()
                .map(|(name, c)| Named {
                    kind: "connection",
                    name: name.clone(),
                    endpoint: Ok(c.uri.clone()),
                    marks: vec![
                        format!("connection {name}"),
                        format!("default connection {name}"),
                    ],
                })
                .collect(),
            Err(e) => vec![Named {
                kind: "connection",
                name: String::new(),
                endpoint: Err(e),
                marks: Vec::new(),
            }],
        }
    }
}
