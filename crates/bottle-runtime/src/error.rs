use crate::{Engine, OutputStream};
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

    /// The endpoint answers, but this process may not use it (e.g. a
    /// socket it lacks the permission to connect to): the engine runs;
    /// starting it again would not help.
    #[error("{engine}: permission denied at {endpoint}")]
    PermissionDenied {
        engine: Engine,
        endpoint: String,
        #[source]
        source: BoxError,
    },

    /// The runtime does not offer this operation (see
    /// [`Capabilities`](crate::Capabilities)).
    #[error("{engine}: this runtime cannot {operation}")]
    NotSupported {
        engine: Engine,
        operation: &'static str,
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
    #[error(
        "{engine}: invalid {operation} request{}: {reason}",
        for_container(container)
    )]
    InvalidRequest {
        engine: Engine,
        container: String,
        operation: &'static str,
        reason: String,
    },

    /// The process wrote more than the request's
    /// [`max_output`](crate::ExecRequest::max_output) to one stream. The
    /// exec's connection was dropped at that point; the output is not kept.
    #[error("{engine}: `{program}` in container `{container}` wrote more than {limit} bytes to {stream} (the exec's limit per stream)")]
    OutputTooLarge {
        engine: Engine,
        container: String,
        program: String,
        stream: OutputStream,
        limit: usize,
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

/// ` for container `NAME``, or nothing for a request about no container
/// (a connection's settings).
fn for_container(container: &str) -> String {
    if container.is_empty() {
        String::new()
    } else {
        format!(" for container `{container}`")
    }
}

impl Error {
    /// The engine this error came from.
    pub fn engine(&self) -> Engine {
        match self {
            Error::Unreachable { engine, .. }
            | Error::PermissionDenied { engine, .. }
            | Error::NotSupported { engine, .. }
            | Error::ContainerNotFound { engine, .. }
            | Error::ContainerNotRunning { engine, .. }
            | Error::ExecStart { engine, .. }
            | Error::Timeout { engine, .. }
            | Error::InvalidRequest { engine, .. }
            | Error::OutputTooLarge { engine, .. }
            | Error::Api { engine, .. } => *engine,
        }
    }

    /// True when the engine itself could not be reached (as opposed to an
    /// error about a container). A refused permission is not this: see
    /// [`Error::PermissionDenied`].
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Timeout { .. })
    }

    /// What a backend reports when connecting fails: [`Error::PermissionDenied`]
    /// when an I/O error in `source`'s chain says so, else
    /// [`Error::Unreachable`].
    pub fn connect_failed(engine: Engine, endpoint: &str, source: BoxError) -> Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*source);
        let mut denied = false;
        while let Some(e) = cause {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
            {
                denied = true;
                break;
            }
            cause = e.source();
        }
        let endpoint = endpoint.to_string();
        if denied {
            Error::PermissionDenied {
                engine,
                endpoint,
                source,
            }
        } else {
            Error::Unreachable {
                engine,
                endpoint,
                source,
            }
        }
    }
}

/// `e` and each of its sources, outermost first: the one place that says
/// how an error chain is shown (bottlectl's causes, `bottle::error_chain`,
/// logs, reports). A source whose text the one before already ends with (a
/// wrapper that prints its cause) is left out; one merely mentioned earlier
/// is kept.
pub fn error_texts(e: &dyn std::error::Error) -> Vec<String> {
    let mut texts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !texts.last().is_some_and(|l| l.ends_with(&text)) {
            texts.push(text);
        }
        cur = s.source();
    }
    texts
}

/// [`error_texts`], `": "`-joined.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    error_texts(e).join(": ")
}

#[cfg(test)]
mod tests {

    /// An error with a text and an optional source.
    #[derive(Debug)]
    struct Link(&'static str, Option<Box<Link>>);
    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Link {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }
    fn chain(texts: &[&'static str]) -> Link {
        texts
            .iter()
            .rev()
            .fold(None, |inner, t| Some(Link(t, inner.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn error_chains_fold_a_repeated_cause_and_keep_a_mentioned_one() {
        // The wrapper prints its cause: shown once.
        let e = chain(&["cannot connect: refused", "refused", "os error 111"]);
        assert_eq!(error_texts(&e), ["cannot connect: refused", "os error 111"]);
        assert_eq!(error_chain(&e), "cannot connect: refused: os error 111");
        // A cause only mentioned in the middle of its parent is its own line.
        let e = chain(&["timed out reading the socket", "timed out"]);
        assert_eq!(error_chain(&e), "timed out reading the socket: timed out");
        assert_eq!(error_chain(&chain(&["alone"])), "alone");
    }
    #[test]
    fn a_refused_permission_is_not_unreachable() {
        #[derive(Debug, thiserror::Error)]
        #[error("connect")]
        struct Wrapper(#[source] std::io::Error);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = super::Error::connect_failed(
            crate::Engine::Docker,
            "unix:///var/run/docker.sock",
            Box::new(Wrapper(denied)),
        );
        assert!(matches!(e, super::Error::PermissionDenied { .. }), "{e:?}");
        assert!(!e.is_unreachable());
        assert!(e
            .to_string()
            .contains("permission denied at unix:///var/run/docker.sock"));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = super::Error::connect_failed(crate::Engine::Podman, "unix:///x", Box::new(refused));
        assert!(e.is_unreachable(), "{e:?}");
    }

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
        let e = Error::OutputTooLarge {
            engine: Engine::Docker,
            container: "bottle-1".into(),
            program: "/bin/sh".into(),
            stream: OutputStream::Stderr,
            limit: 1 << 20,
        };
        assert_eq!(
            e.to_string(),
            "Docker: `/bin/sh` in container `bottle-1` wrote more than 1048576 bytes to stderr (the exec's limit per stream)"
        );
        assert!(!e.is_unreachable());
    }
}
