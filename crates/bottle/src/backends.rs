//! The backends this build has, one descriptor each: the only place that
//! names a backend crate or a backend feature. A fourth engine is one module
//! and one entry in [`BACKENDS`].

use crate::{error_chain, SelectError};
use bottle_config::Settings;
use bottle_runtime::{ContainerAdmin, ContainerRuntime, Engine, Error as RuntimeError};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "containerd")]
mod containerd;
#[cfg(feature = "docker")]
mod docker;
#[cfg(feature = "podman")]
mod podman;

/// Every backend built in, in `auto`'s order of preference.
pub(crate) static BACKENDS: &[&dyn Backend] = &[
    #[cfg(feature = "docker")]
    &docker::Docker,
    #[cfg(feature = "podman")]
    &podman::Podman,
    #[cfg(feature = "containerd")]
    &containerd::Containerd,
];

/// The engines `auto` may pick, in its order, whether built in or not (one
/// that is not is reported as such).
pub(crate) const AUTO: [Engine; 2] = [Engine::Docker, Engine::Podman];

/// A connected backend as both trait objects.
pub(crate) type Handles = (Arc<dyn ContainerRuntime>, Arc<dyn ContainerAdmin>);

/// What one backend knows: where its engine is for some settings, how to
/// connect there, how to start it, which named endpoints the user has.
/// Each reads its own environment (`DOCKER_*`, `CONTAINER_*`,
/// `CONTAINERD_*`).
pub(crate) trait Backend: Sync {
    fn engine(&self) -> Engine;

    /// The endpoint without a `host` setting, and why.
    fn default_endpoint(&self) -> (String, &'static str);

    /// Where `settings` reach the engine (a configuration problem, e.g. an
    /// unknown context, is an error).
    fn locate(&self, settings: &Settings) -> Result<Where, SelectError>;

    /// Connect to `at` (from [`Self::locate`]).
    fn connect(&self, at: &Where, timeout: Duration) -> Result<Handles, SelectError>;

    /// How to make the engine at `endpoint` (chosen because of `from`)
    /// answer.
    fn start_hint(&self, from: &str, endpoint: &str) -> String;

    /// The setting that named the endpoint, for a probe whose endpoint
    /// could not be chosen (e.g. `context NAME`).
    fn named_by(&self, settings: &Settings) -> Option<String> {
        let _ = settings;
        None
    }

    /// For `auto`: the user named this endpoint (an environment variable,
    /// a context or connection), so it wins over default sockets; with how
    /// to say so.
    fn user_named(&self, from: &str) -> Option<String> {
        let _ = from;
        None
    }

    /// The contexts or connections the user has, for `doctor`.
    fn named_endpoints(&self) -> Vec<Named> {
        Vec::new()
    }

    /// The namespace every call is made in, where the engine has them.
    fn namespace(&self, settings: &Settings) -> Option<String> {
        let _ = settings;
        None
    }
}

/// One context or connection as its backend reads it.
pub(crate) struct Named {
    pub kind: &'static str,
    pub name: String,
    pub endpoint: Result<String, String>,
    /// The `from` values of [`Where`] that mean selection uses it.
    pub marks: Vec<String>,
}

/// Where an engine is reached, and why.
pub(crate) struct Where {
    pub endpoint: String,
    pub from: String,
    /// How: `unix`, `tcp`, `tcp+tls`, `ssh`.
    pub transport: String,
    /// What else the choice depends on, shown after the endpoint (e.g.
    /// containerd's namespace).
    pub note: String,
    /// The backend's own resolved endpoint (e.g. Docker's TLS material).
    pub resolved: Box<dyn Any + Send + Sync>,
}

#[allow(dead_code)] // unused when built with no backend
impl Where {
    /// `transport` from the endpoint's scheme.
    pub fn new(
        endpoint: String,
        from: impl Into<String>,
        resolved: impl Any + Send + Sync,
    ) -> Where {
        let transport = scheme_transport(&endpoint);
        Where {
            endpoint,
            from: from.into(),
            transport,
            note: String::new(),
            resolved: Box::new(resolved),
        }
    }
}

#[allow(dead_code)] // unused when built with no backend
fn scheme_transport(e: &str) -> String {
    match e.split_once("://") {
        Some(("unix", _)) => "unix".into(),
        Some(("tcp" | "http", _)) => "tcp".into(),
        Some((scheme, _)) => scheme.to_string(),
        None if e.starts_with('/') => "unix".into(),
        None => String::new(),
    }
}

/// The backend of `engine`, when built in.
pub(crate) fn backend(engine: Engine) -> Option<&'static dyn Backend> {
    BACKENDS.iter().copied().find(|b| b.engine() == engine)
}

pub(crate) fn built_in(engine: Engine) -> bool {
    backend(engine).is_some()
}

/// The endpoint `engine` is reached at for `settings`.
pub(crate) fn where_for(engine: Engine, settings: &Settings) -> Result<Where, SelectError> {
    backend(engine)
        .ok_or(SelectError::NotBuiltIn(engine))?
        .locate(settings)
}

/// A configuration problem in choosing `engine`'s endpoint (exit 2).
#[allow(dead_code)] // unused when built without Docker and Podman
pub(crate) fn config_error(engine: Engine, reason: String) -> SelectError {
    SelectError::Runtime {
        engine,
        why: "endpoint selection".into(),
        tried: vec![],
        source: Box::new(RuntimeError::InvalidRequest {
            engine,
            container: String::new(),
            operation: "connect",
            reason,
        }),
    }
}

/// One connected backend as both trait objects, or the connect error.
#[allow(dead_code)] // unused when built with no backend
pub(crate) fn handles<R: ContainerAdmin>(
    engine: Engine,
    endpoint: &str,
    connected: Result<R, RuntimeError>,
) -> Result<Handles, SelectError> {
    let rt = Arc::new(connected.map_err(|e| SelectError::Runtime {
        engine,
        why: format!("endpoint {endpoint}"),
        tried: vec![],
        source: Box::new(e),
    })?);
    Ok((rt.clone(), rt))
}

/// `at`'s backend-specific endpoint, as its backend made it.
#[allow(dead_code)] // unused when built with no backend
pub(crate) fn resolved<T: 'static>(at: &Where) -> &T {
    at.resolved
        .downcast_ref()
        .expect("a Where is connected by the backend that located it")
}

/// Used by `doctor` through [`crate::named_endpoints`].
pub(crate) fn chosen_from(engine: Engine, settings: &Settings) -> Result<String, String> {
    match where_for(engine, settings) {
        Ok(at) => Ok(at.from),
        Err(e) => Err(error_chain(&e)),
    }
}
