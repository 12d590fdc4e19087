use crate::Engine;
use std::time::Duration;

/// A boxed source error from an engine client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way a runtime call can fail. Messages name the engine and, where
/// there is one, the container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine did not answer at the endpoint tried.
    #[error("{engine} is unreachable at {endpoint}")]
    Unreachable {
        engine: Engine,
        endpoint: String,
        #[source]
        source: BoxError,
    },

    /// No container by that name or id.
    #[error("{engine}: no container named `{container}`")]
    ContainerNotFound { engine: Engine, container: String },

    /// The container exists but is not running (stopped, paused, …).
    #[error("{engine}: container `{container}` is not running (state: {state})")]
    ContainerNotRunning {
        engine: Engine,
        container: String,
        state: String,
    },

    /// The engine refused to create or start an exec.
    #[error("{engine}: could not start `{program}` in container `{container}`")]
    ExecStart {
        engine: Engine,
        container: String,
        program: String,
        #[source]
        source: BoxError,
    },

    /// A call took longer than the configured timeout.
    #[error("{engine}: {operation} on container `{container}` timed out after {timeout:?} (endpoint {endpoint})")]
    Timeout {
        engine: Engine,
        container: String,
        operation: &'static str,
        endpoint: String,
        timeout: Duration,
    },

    /// The request itself is invalid (e.g. a relative path in `copy`).
    #[error("{engine}: invalid {operation} request for container `{container}`: {reason}")]
    InvalidRequest {
        engine: Engine,
        container: String,
        operation: &'static str,
        reason: String,
    },

    /// Any other error from the engine's API.
    #[error("{engine}: {operation} on container `{container}` failed")]
    Api {
        engine: Engine,
        container: String,
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// The engine this error came from.
    pub fn engine(&self) -> Engine {
        match self {
            Error::Unreachable { engine, .. }
            | Error::ContainerNotFound { engine, .. }
            | Error::ContainerNotRunning { engine, .. }
            | Error::ExecStart { engine, .. }
            | Error::Timeout { engine, .. }
            | Error::InvalidRequest { engine, .. }
            | Error::Api { engine, .. } => *engine,
        }
    }

    /// True when the engine itself could not be reached (as opposed to an
    /// error about a container).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_engine_and_container() {
        let e = Error::ContainerNotRunning {
            engine: Engine::Podman,
            container: "bottle-1".into(),
            state: "exited".into(),
        };
        assert_eq!(
            e.to_string(),
            "Podman: container `bottle-1` is not running (state: exited)"
        );
        let e = Error::Unreachable {
            engine: Engine::Docker,
            endpoint: "unix:///nope.sock".into(),
            source: "connection refused".into(),
        };
        assert_eq!(e.to_string(), "Docker is unreachable at unix:///nope.sock");
        assert!(e.is_unreachable());
    }
}
