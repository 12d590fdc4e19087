//! Docker through bollard (`bottle-docker`): its endpoint chosen as the
//! docker CLI does, contexts included.

use super::{config_error, handles, resolved, Backend, Handles, Named, Where};
use crate::SelectError;
use bottle_config::Settings;
use bottle_docker::{DockerEndpoint, DockerEnv, DockerRuntime, DEFAULT_CONTEXT};
use bottle_runtime::Engine;
use std::time::Duration;

pub(crate) struct Docker;

impl Backend for Docker {
    fn engine(&self) -> Engine {
        Engine::Docker
    }

    fn default_endpoint(&self) -> (String, &'static str) {
        DockerRuntime::default_endpoint()
    }

    fn locate(&self, settings: &Settings) -> Result<Where, SelectError> {
        let ep = bottle_docker::resolve(
            settings.host.as_deref(),
            settings.context.as_deref(),
            &DockerEnv::from_process(),
        )
        .map_err(|reason| config_error(Engine::Docker, reason))?;
        let tls = ep.tls.is_some() && ep.host.starts_with("tcp://");
        let mut at = Where::new(ep.host.clone(), ep.from.clone(), ep);
        if tls {
            at.transport = "tcp+tls".into();
        }
        Ok(at)
    }

    fn connect(&self, at: &Where, timeout: Duration) -> Result<Handles, SelectError> {
        let ep: &DockerEndpoint = resolved(at);
        handles(
            Engine::Docker,
            &at.endpoint,
            DockerRuntime::connect_endpoint(ep, timeout),
        )
    }

    fn start_hint(&self, from: &str, endpoint: &str) -> String {
        bottle_docker::start_hint(from, endpoint)
    }

    fn named_by(&self, settings: &Settings) -> Option<String> {
        settings.context.as_ref().map(|c| format!("context {c}"))
    }

    fn user_named(&self, from: &str) -> Option<String> {
        if from == "DOCKER_HOST" {
            return Some("DOCKER_HOST is set".into());
        }
        match from.strip_prefix("context ") {
            Some(name) if name != DEFAULT_CONTEXT => {
                Some(format!("Docker context `{name}` is selected"))
            }
            _ => None,
        }
    }

    fn named_endpoints(&self) -> Vec<Named> {
        let env = DockerEnv::from_process();
        let Some(dir) = &env.config_dir else {
            return Vec::new();
        };
        bottle_docker::context_names(dir)
            .into_iter()
            .map(|name| {
                let endpoint = if name == DEFAULT_CONTEXT {
                    bottle_docker::resolve(None, Some(&name), &DockerEnv::default())
                } else {
                    bottle_docker::read_context(dir, &name)
                };
                let mut marks = vec![format!("context {name}")];
                if name == DEFAULT_CONTEXT {
                    marks.push("default".into());
                }
                Named {
                    kind: "context",
                    name,
                    endpoint: endpoint.map(|e| e.host),
                    marks,
                }
            })
            .collect()
    }
}
