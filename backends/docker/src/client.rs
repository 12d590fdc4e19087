//! Connection, lazy version negotiation, timeouts and error mapping.

use crate::context::{is_loopback_addr, DockerEndpoint, TlsFiles, DEFAULT_ENDPOINT};
use bollard::errors::Error as BollardError;
use bollard::{Docker, API_DEFAULT_VERSION};
use bottle_runtime::{BoxError, Engine, Error, Result};
use bottle_tunnel::{SshTarget, SshTunnel};
use std::future::Future;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Where the engine listens, parsed once in `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Socket path without the `unix://` prefix.
    Unix(String),
    /// `tcp://host:port` or `http://host:port`, as given.
    Http(String),
    /// `tcp://host:port` with TLS: the server verified against `tls.ca`.
    Https(String, TlsFiles),
    /// `ssh://[user@]host[:port][/socket]`: the remote socket (default
    /// `/var/run/docker.sock`) forwarded by one ssh process.
    Ssh(SshTarget),
}

/// The remote socket of an `ssh://` endpoint without a path (as the docker CLI
/// writes them; it runs `docker system dial-stdio` there, which uses the same).
pub(crate) const SSH_REMOTE_SOCKET: &str = "/var/run/docker.sock";

/// A Docker runtime: implements [`ContainerRuntime`](bottle_runtime::ContainerRuntime)
/// and [`ContainerAdmin`](bottle_runtime::ContainerAdmin).
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub struct DockerRuntime {
    pub(crate) endpoint: String,
    transport: Transport,
    pub(crate) timeout: Duration,
    /// The client after API version negotiation (one `/version` round trip,
    /// done on first use so that `connect` never touches the engine).
    client: OnceCell<Docker>,
    /// For `ssh://`: the one ssh process, started on first use and ended
    /// when the runtime is dropped.
    tunnel: Option<SshTunnel>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("negotiated", &self.client.initialized())
            .finish()
    }
}

impl DockerRuntime {
    /// Create a runtime for `endpoint`, or for [`default_endpoint`](Self::default_endpoint)
    /// when `None`.
    ///
    /// Accepts `unix:///path`, a bare absolute socket path, `tcp://host:port`
    /// and `http://host:port`. Does not contact the engine: the first call that
    /// cannot connect fails with [`Error::Unreachable`] naming the endpoint.
    /// Every engine call is bounded by `timeout` ([`Error::Timeout`]); for
    /// `exec` that is the whole run of the process.
    pub fn connect(endpoint: Option<&str>, timeout: Duration) -> Result<DockerRuntime> {
        let raw = match endpoint {
            Some(e) => e.trim().to_string(),
            None => Self::default_endpoint().0,
        };
        Self::connect_with(&raw, None, timeout)
    }

    /// Create a runtime for a resolved endpoint (see [`resolve`](crate::resolve)):
    /// a `tcp://` host with [`TlsFiles`] speaks TLS, verifying the engine's
    /// certificate against the CA and presenting the client certificate.
    /// Each TLS file must be readable now (else [`Error::InvalidRequest`]
    /// naming it); the engine is still not contacted. A plain `tcp://` host
    /// that is not loopback is logged as a warning.
    pub fn connect_endpoint(endpoint: &DockerEndpoint, timeout: Duration) -> Result<DockerRuntime> {
        Self::connect_with(endpoint.host.trim(), endpoint.tls.as_ref(), timeout)
    }

    fn connect_with(raw: &str, tls: Option<&TlsFiles>, timeout: Duration) -> Result<DockerRuntime> {
        let invalid = |reason| Error::InvalidRequest {
            engine: Engine::Docker,
            container: String::new(),
            operation: "connect",
            reason,
        };
        let (endpoint, mut transport) = parse_endpoint(raw).map_err(invalid)?;
        // Shown in every error from here on: never with a password.
        let endpoint = bottle_runtime::redact_url(&endpoint).into_owned();
        match (&transport, tls) {
            (Transport::Http(addr), Some(files)) => {
                check_tls_files(files, &endpoint).map_err(invalid)?;
                // http:// is tcp://: bollard would take an http:// address
                // with TLS files as plain HTTP.
                let addr = match addr.strip_prefix("http://") {
                    Some(rest) => format!("tcp://{rest}"),
                    None => addr.clone(),
                };
                transport = Transport::Https(addr, files.clone());
            }
            // TLS was asked for; another transport would silently drop it.
            (_, Some(_)) => {
                return Err(invalid(format!(
                    "TLS material was given for `{endpoint}`, which is not a tcp:// address"
                )))
            }
            (Transport::Http(addr), _) if !is_loopback_addr(addr) => {
                tracing::warn!(
                    endpoint = %endpoint,
                    "plain tcp to a non-loopback address: the engine's API (root on that host) is unauthenticated and unencrypted; use TLS (DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH) or a context with TLS material"
                );
            }
            _ => {}
        }
        let tunnel = match &transport {
            Transport::Ssh(target) => Some(SshTunnel::new(target.clone()).map_err(invalid)?),
            _ => None,
        };
        Ok(DockerRuntime {
            endpoint,
            transport,
            timeout,
            client: OnceCell::new(),
            tunnel,
        })
    }

    /// The endpoint `connect(None, ..)` uses and why: `($DOCKER_HOST, "DOCKER_HOST")`
    /// when that is set and not empty, else `("unix:///var/run/docker.sock", "default")`.
    pub fn default_endpoint() -> (String, &'static str) {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.trim().is_empty() => (host.trim().to_string(), "DOCKER_HOST"),
            _ => (DEFAULT_ENDPOINT.to_string(), "default"),
        }
    }

    /// Whether calls go through an ssh tunnel.
    pub(crate) fn is_tunnelled(&self) -> bool {
        self.tunnel.is_some()
    }

    /// The negotiated client, connecting on first use. A failed attempt is
    /// not cached: the next call tries again.
    pub(crate) async fn client(&self, container: &str) -> Result<&Docker> {
        if let Some(tunnel) = &self.tunnel {
            tunnel
                .ready(self.timeout)
                .await
                .map_err(|e| self.unreachable(e))?;
        }
        self.client
            .get_or_try_init(|| async {
                let docker = self.build_client().map_err(|e| self.unreachable(e))?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|e| self.negotiation_failed(e, container))
            })
            .await
    }

    fn build_client(&self) -> Result<Docker, BollardError> {
        // bollard's own timeout is whole seconds; ours (tokio) fires first.
        let secs = self.timeout.as_secs().saturating_add(2);
        match &self.transport {
            Transport::Unix(path) => Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION),
            Transport::Ssh(_) => match &self.tunnel {
                Some(t) => Docker::connect_with_unix(
                    &t.local_socket().to_string_lossy(),
                    secs,
                    API_DEFAULT_VERSION,
                ),
                None => Err(BollardError::SocketNotFoundError(self.endpoint.clone())),
            },
            Transport::Http(addr) => Docker::connect_with_http(addr, secs, API_DEFAULT_VERSION),
            Transport::Https(addr, tls) => Docker::connect_with_ssl(
                addr,
                &tls.key,
                &tls.cert,
                &tls.ca,
                secs,
                API_DEFAULT_VERSION,
            ),
        }
    }

    /// Run one engine operation under the configured timeout.
    pub(crate) async fn timed<T, F>(
        &self,
        container: &str,
        operation: &'static str,
        fut: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error(container, operation)),
        }
    }

    pub(crate) fn timeout_error(&self, container: &str, operation: &'static str) -> Error {
        Error::Timeout {
            engine: Engine::Docker,
            container: container.to_string(),
            operation,
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
        }
    }

    /// A `/version` that fails other than by connecting or timing out: the
    /// endpoint answers, but not as Docker's API (plain HTTP to a TLS port,
    /// some other service). Named with the endpoint, never "container ``".
    fn negotiation_failed(&self, err: BollardError, container: &str) -> Error {
        // Through ssh (the login worked: `ready` passed), no response at all
        // is the forward failing at the remote end: its socket is missing
        // or refuses, and ssh closes or resets the channel.
        if let Some(tunnel) = &self.tunnel {
            if is_connect_error(&err) || matches!(err, BollardError::HyperLegacyError { .. }) {
                return Error::Unreachable {
                    engine: Engine::Docker,
                    endpoint: self.endpoint.clone(),
                    source: format!(
                        "the remote socket {} is unreachable or missing (the ssh login worked; GET /version: {err})",
                        tunnel.target().socket
                    )
                    .into(),
                };
            }
        }
        if is_connect_error(&err) || matches!(err, BollardError::RequestTimeoutError) {
            return self.classify(err, container, "version negotiation");
        }
        Error::Unreachable {
            engine: Engine::Docker,
            endpoint: self.endpoint.clone(),
            source: format!("the endpoint answers, but not as Docker's API (GET /version: {err})")
                .into(),
        }
    }

    fn unreachable(&self, source: impl Into<BoxError>) -> Error {
        Error::connect_failed(Engine::Docker, &self.endpoint, source.into())
    }

    /// Map errors that do not depend on the container: unreachable engine,
    /// bollard's own timeout, and everything else as `Api`.
    pub(crate) fn classify(
        &self,
        err: BollardError,
        container: &str,
        operation: &'static str,
    ) -> Error {
        if is_connect_error(&err) {
            return self.unreachable(err);
        }
        if matches!(err, BollardError::RequestTimeoutError) {
            return self.timeout_error(container, operation);
        }
        Error::Api {
            engine: Engine::Docker,
            container: container.to_string(),
            operation,
            source: err.into(),
        }
    }

    /// Map an error from a call on `container`: 404 is a missing container,
    /// 409 "is not running"/"is paused" a container that is not running (its
    /// state is looked up here, on the error path only).
    pub(crate) async fn container_error(
        &self,
        err: BollardError,
        container: &str,
        operation: &'static str,
    ) -> Error {
        match status_of(&err) {
            Some((404, _)) => Error::ContainerNotFound {
                engine: Engine::Docker,
                container: container.to_string(),
            },
            Some((409, message)) if is_not_running_message(message) => {
                let state = self.state_for_error(container, message).await;
                Error::ContainerNotRunning {
                    engine: Engine::Docker,
                    container: container.to_string(),
                    state,
                }
            }
            _ => self.classify(err, container, operation),
        }
    }

    /// Best-effort state for a `ContainerNotRunning` error.
    async fn state_for_error(&self, container: &str, message: &str) -> String {
        let fallback = if message.contains("is paused") {
            "paused"
        } else {
            "not running"
        };
        let Ok(docker) = self.client(container).await else {
            return fallback.to_string();
        };
        let inspected = tokio::time::timeout(
            self.timeout,
            docker.inspect_container(
                container,
                None::<bollard::query_parameters::InspectContainerOptions>,
            ),
        )
        .await;
        match inspected {
            Ok(Ok(info)) => info
                .state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| fallback.to_string()),
            _ => fallback.to_string(),
        }
    }
}

pub(crate) fn status_of(err: &BollardError) -> Option<(u16, &str)> {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Some((*status_code, message.as_str())),
        _ => None,
    }
}

/// Docker 20.10 answers exec on a stopped container with 409 "Container … is
/// not running" and on a paused one with 409 "Container … is paused, unpause
/// the container before exec".
fn is_not_running_message(message: &str) -> bool {
    message.contains("is not running") || message.contains("is paused")
}

fn is_connect_error(err: &BollardError) -> bool {
    use std::io::ErrorKind;
    match err {
        BollardError::SocketNotFoundError(_) => true,
        BollardError::HyperLegacyError { err } => err.is_connect(),
        BollardError::IOError { err } => matches!(
            err.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::NotFound
                | ErrorKind::PermissionDenied
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
        ),
        _ => false,
    }
}

/// Each TLS file must be a readable file: bollard reads the client key only
/// during the handshake, where a missing one would just send no certificate.
fn check_tls_files(tls: &TlsFiles, endpoint: &str) -> std::result::Result<(), String> {
    for (what, path) in [
        ("CA certificate", &tls.ca),
        ("client certificate", &tls.cert),
        ("client key", &tls.key),
    ] {
        if let Err(e) =
            bottle_runtime::file::read_regular(path, bottle_runtime::file::MAX_CONFIG_FILE)
        {
            return Err(format!(
                "the TLS {what} {} for {endpoint} {e}",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Normalise an endpoint to its URI form and pick the transport.
pub(crate) fn parse_endpoint(raw: &str) -> std::result::Result<(String, Transport), String> {
    if let Some(path) = raw.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!("`{raw}`: a unix socket path must be absolute"));
        }
        return Ok((raw.to_string(), Transport::Unix(path.to_string())));
    }
    if raw.starts_with('/') {
        return Ok((format!("unix://{raw}"), Transport::Unix(raw.to_string())));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            if rest.is_empty() {
                return Err(format!("`{raw}` has no host"));
            }
            return Ok((raw.to_string(), Transport::Http(raw.to_string())));
        }
    }
    if raw.starts_with("ssh://") {
        let target = SshTarget::parse(raw, Some(SSH_REMOTE_SOCKET))?;
        return Ok((target.url(), Transport::Ssh(target)));
    }
    Err(format!(
        "unsupported Docker endpoint `{}` (expected unix:///path, tcp://host:port, http://host:port or ssh://[user@]host[:port])",
        bottle_tunnel::escape(raw)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        assert_eq!(
            parse_endpoint("unix:///var/run/docker.sock").unwrap(),
            (
                "unix:///var/run/docker.sock".to_string(),
                Transport::Unix("/var/run/docker.sock".to_string())
            )
        );
        assert_eq!(
            parse_endpoint("/tmp/d.sock").unwrap().0,
            "unix:///tmp/d.sock"
        );
        assert_eq!(
            parse_endpoint("tcp://127.0.0.1:2375").unwrap().1,
            Transport::Http("tcp://127.0.0.1:2375".to_string())
        );
        let (uri, t) = parse_endpoint("ssh://root@127.0.0.1:2222").unwrap();
        assert_eq!(uri, "ssh://root@127.0.0.1:2222/var/run/docker.sock");
        assert!(matches!(t, Transport::Ssh(_)));
        for bad in [
            "ssh://-oProxyCommand=x",
            "unix://relative.sock",
            "tcp://",
            "docker.sock",
            "",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn connect_is_lazy_and_rejects_bad_schemes() {
        // A socket that does not exist is not an error until first use.
        let rt = DockerRuntime::connect(Some("unix:///nonexistent.sock"), Duration::from_secs(1))
            .unwrap();
        assert_eq!(rt.endpoint, "unix:///nonexistent.sock");
        let err = DockerRuntime::connect(Some("ftp://x"), Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidRequest {
                    operation: "connect",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn tls_files_are_checked_at_connect_and_named() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "cert.pem"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let ep = DockerEndpoint {
            host: "tcp://127.0.0.1:1".into(),
            from: "DOCKER_HOST".into(),
            context: None,
            tls: Some(TlsFiles::in_dir(dir.path())),
        };
        let err = DockerRuntime::connect_endpoint(&ep, Duration::from_secs(1)).unwrap_err();
        let key = dir.path().join("key.pem");
        assert!(
            err.to_string()
                .contains(&format!("TLS client key {}", key.display())),
            "{err}"
        );
        std::fs::write(&key, b"x").unwrap();
        let rt = DockerRuntime::connect_endpoint(&ep, Duration::from_secs(1)).unwrap();
        assert!(matches!(rt.transport, Transport::Https(..)));
        // http:// with TLS material is TLS, never plain HTTP.
        let http = DockerEndpoint {
            host: "http://127.0.0.1:1".into(),
            ..ep.clone()
        };
        let rt = DockerRuntime::connect_endpoint(&http, Duration::from_secs(1)).unwrap();
        assert_eq!(
            rt.transport,
            Transport::Https("tcp://127.0.0.1:1".into(), TlsFiles::in_dir(dir.path()))
        );
        // TLS material for a unix socket: refused, not dropped.
        let unix = DockerEndpoint {
            host: "unix:///nonexistent.sock".into(),
            ..ep
        };
        let err = DockerRuntime::connect_endpoint(&unix, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("TLS material"), "{err}");
    }

    #[test]
    fn not_running_messages() {
        assert!(is_not_running_message("Container abc is not running"));
        assert!(is_not_running_message(
            "Container abc is paused, unpause the container before exec"
        ));
        assert!(!is_not_running_message("conflict: name in use"));
    }
}
