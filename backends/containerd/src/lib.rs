//! containerd backend for bottle: [`ContainerdRuntime`] implements
//! [`ContainerRuntime`](bottle_runtime::ContainerRuntime) on containerd's own
//! gRPC API ([`containerd_client`]), not the `ctr` or `nerdctl` command lines.
//!
//! - The endpoint is a unix socket: the `host` setting, else
//!   `CONTAINERD_ADDRESS`, else `/run/containerd/containerd.sock`. Every call
//!   carries one containerd namespace (`default`, `k8s.io` for the CRI
//!   plugin's containers, …).
//! - containerd has ids, not names: a container's name is its
//!   `nerdctl/name` label when it has one (what nerdctl sets), else its id.
//!   Both find it.
//! - `exec` is `Tasks.Exec` in the container's running task with the OCI
//!   process of the container's spec (env, cwd, capabilities) and the
//!   request's argv and user. Output comes through FIFOs in a private (0700)
//!   directory; stdin is written then closed (EOF). containerd can kill an
//!   exec, so an exec that passes `max_output` or the call's timeout is
//!   killed, not left running.
//! - A user (`name`, `uid`, `name:group`, `uid:gid`) is resolved as `docker
//!   exec -u` does, from the container's `/etc/passwd` and `/etc/group`,
//!   read through `/proc/PID/root` of its task with every link resolved
//!   inside that root (`openat2(RESOLVE_IN_ROOT)`), bounded at 1 MiB and
//!   parsed strictly; `HOME` is the user's. This needs the caller to see the
//!   task's pid (the host's pid namespace).
//! - `list` asks containerd for the label filters and matches names (an
//!   unanchored regular expression, as Docker) on the answer; only running
//!   tasks are listed.

mod admin;
mod copy;
mod events;
mod runtime;
mod user;

use bottle_runtime::{Engine, Error, Result};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::OnceCell;

/// This backend's engine name (`--runtime containerd`).
pub const ENGINE: Engine = Engine::Other("containerd");

/// containerd's socket when nothing else is set.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";

/// The namespace when nothing else is set (`ctr`'s and nerdctl's default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// The label nerdctl keeps a container's name in.
pub const NAME_LABEL: &str = "nerdctl/name";

/// A containerd namespace, one socket: see the crate docs.
#[derive(Debug)]
pub struct ContainerdRuntime {
    /// `unix:///…`, as shown.
    endpoint: String,
    socket: PathBuf,
    namespace: String,
    timeout: Duration,
    channel: OnceCell<Channel>,
}

/// Where to connect and why (`--host`, `CONTAINERD_ADDRESS`, `default`).
pub fn default_address() -> (String, &'static str) {
    match std::env::var("CONTAINERD_ADDRESS") {
        Ok(a) if !a.is_empty() => (a, "CONTAINERD_ADDRESS"),
        _ => (DEFAULT_ADDRESS.to_string(), "default"),
    }
}

/// The namespace from `CONTAINERD_NAMESPACE`, else `default`.
pub fn default_namespace() -> (String, &'static str) {
    match std::env::var("CONTAINERD_NAMESPACE") {
        Ok(n) if !n.is_empty() => (n, "CONTAINERD_NAMESPACE"),
        _ => (DEFAULT_NAMESPACE.to_string(), "default"),
    }
}

/// containerd's rule for namespaces (and ids): `[A-Za-z0-9]+` joined by
/// single `.`, `_` or `-`, at most 76 characters.
pub fn check_namespace(namespace: &str) -> std::result::Result<(), String> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 76
        && namespace
            .split(['.', '_', '-'])
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a containerd namespace (letters and digits joined by single `.`, `_` or `-`, at most 76)",
            namespace.escape_debug()
        ))
    }
}

/// How to make containerd answer: the fix `doctor` prints.
pub fn start_hint(from: &str, endpoint: &str) -> String {
    match from {
        "CONTAINERD_ADDRESS" => {
            format!("CONTAINERD_ADDRESS={endpoint} does not answer: fix or unset it")
        }
        _ => "sudo systemctl enable --now containerd (or set CONTAINERD_ADDRESS)".into(),
    }
}

impl ContainerdRuntime {
    /// A runtime for `address` (a socket path or `unix://` URL; `None`: see
    /// [`default_address`]) and `namespace` (`None`: see
    /// [`default_namespace`]). Does not contact containerd; every call is
    /// bounded by `timeout`.
    pub fn connect(
        address: Option<&str>,
        namespace: Option<&str>,
        timeout: Duration,
    ) -> Result<Self> {
        let address = match address {
            Some(a) => a.to_string(),
            None => default_address().0,
        };
        let namespace = match namespace {
            Some(n) => n.to_string(),
            None => default_namespace().0,
        };
        let path = address.strip_prefix("unix://").unwrap_or(&address);
        if !path.starts_with('/') || address.contains("://") && !address.starts_with("unix://") {
            return Err(Error::InvalidRequest {
                engine: ENGINE,
                container: String::new(),
                operation: "connect",
                reason: format!(
                    "containerd's address must be a unix socket path, not `{}`",
                    address.escape_debug()
                ),
            });
        }
        check_namespace(&namespace).map_err(|reason| Error::InvalidRequest {
            engine: ENGINE,
            container: String::new(),
            operation: "connect",
            reason,
        })?;
        Ok(ContainerdRuntime {
            endpoint: format!("unix://{path}"),
            socket: PathBuf::from(path),
            namespace,
            timeout,
            channel: OnceCell::new(),
        })
    }

    /// The containerd namespace every call uses.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The gRPC channel, connected on first use (tonic reconnects after).
    pub(crate) async fn channel(&self) -> Result<Channel> {
        self.channel
            .get_or_try_init(|| async {
                containerd_client::connect(&self.socket)
                    .await
                    .map_err(|e| Error::connect_failed(ENGINE, &self.endpoint, Box::new(e)))
            })
            .await
            .cloned()
    }

    /// A request in this runtime's namespace.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        ns_request(&self.namespace, message)
    }

    /// `fut` bounded by the timeout.
    pub(crate) async fn timed<T>(
        &self,
        container: &str,
        operation: &'static str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                engine: ENGINE,
                container: container.to_string(),
                operation,
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// A gRPC failure: containerd gone is `Unreachable`; anything else an
    /// API error naming the namespace (and the container, when there is one).
    pub(crate) fn status_error(
        &self,
        status: Status,
        container: &str,
        operation: &'static str,
    ) -> Error {
        if is_transport(&status) {
            return Error::Unreachable {
                engine: ENGINE,
                endpoint: self.endpoint.clone(),
                source: Box::new(status),
            };
        }
        Error::Api {
            engine: ENGINE,
            container: container.to_string(),
            operation,
            source: format!(
                "namespace `{}`: {}",
                self.namespace,
                status.message().escape_debug()
            )
            .into(),
        }
    }
}

/// `message` in `namespace` (containerd's `containerd-namespace` header).
pub(crate) fn ns_request<T>(namespace: &str, message: T) -> Request<T> {
    let mut req = Request::new(message);
    // Checked by check_namespace: always a valid header value.
    if let Ok(value) = namespace.parse() {
        req.metadata_mut().insert("containerd-namespace", value);
    }
    req
}

/// containerd did not answer (as opposed to answering with an error).
pub(crate) fn is_transport(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        // tonic reports a broken connection as Unknown with a transport source.
        Code::Unknown => std::error::Error::source(status).is_some(),
        _ => false,
    }
}
