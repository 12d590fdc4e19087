//! Docker backend for bottle: [`DockerRuntime`] implements
//! [`ContainerRuntime`](bottle_runtime::ContainerRuntime) and
//! [`ContainerAdmin`](bottle_runtime::ContainerAdmin) on [bollard].
//!
//! - `connect` never talks to the engine. The first call negotiates the API
//!   version once (Docker 20.10 speaks 1.41, older than bollard's default) and
//!   an engine that does not answer gives [`Error::Unreachable`](bottle_runtime::Error::Unreachable)
//!   naming the endpoint.
//! - Every call is bounded by the timeout given to `connect`.
//! - [`resolve`] picks the endpoint as the docker CLI does (a host setting,
//!   `DOCKER_HOST`, a named context from `$DOCKER_CONFIG/contexts`, the
//!   default socket) and [`DockerRuntime::connect_endpoint`] reaches it; a
//!   `tcp://` endpoint with TLS material (`DOCKER_TLS_VERIFY` +
//!   `DOCKER_CERT_PATH`, or the context's) always verifies the engine's
//!   certificate (bollard's rustls transport). An `ssh://[user@]host[:port]`
//!   endpoint (remote socket `/var/run/docker.sock` unless a path follows)
//!   is reached through one system `ssh` forwarding that socket
//!   ([`bottle_tunnel`]), started on first use and ended with the runtime.
//! - `exec` keeps stdout and stderr apart (binary safe), delivers stdin then
//!   EOF, and reports the exit code Docker records. Once the output ends,
//!   stdin the process never read is dropped, not pushed on (Docker can keep
//!   that write blocked for many seconds).
//! - A program that cannot be started is not a Rust error, and is normalised
//!   to what Podman reports: Docker 20.10 says exit 126 for every start
//!   failure with its `OCI runtime exec failed: …` message on stdout; this
//!   backend moves that message to stderr and reports 127 when the program
//!   was not found (missing path, not in `$PATH`), 126 otherwise (e.g. not
//!   executable). Only an exec Docker never started (pid 0) is touched.
//!   A user or group the container does not know is
//!   [`Error::ExecStart`](bottle_runtime::Error::ExecStart) with Docker's
//!   `unable to find user …` message as its source, as on Podman (Docker
//!   itself starts such an exec and reports exit 126).
//! - `copy` is one `PUT /containers/{id}/archive?path=/` of
//!   [`build_tar`](bottle_runtime::build_tar); Docker keeps the archive's
//!   numeric modes and owners and creates missing parents (root, 0755).
//!   Docker would also write into a stopped or paused container, so `copy`
//!   inspects first (one sub-millisecond round trip) and refuses one that is
//!   not running with [`Error::ContainerNotRunning`](bottle_runtime::Error::ContainerNotRunning).
//!
//! ```no_run
//! use bottle_docker::DockerRuntime;
//! use bottle_runtime::{ContainerRuntime, CopyEntry, ExecRequest};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), bottle_runtime::Error> {
//! let (endpoint, why) = DockerRuntime::default_endpoint();
//! println!("using {endpoint} ({why})");
//! let docker = DockerRuntime::connect(None, Duration::from_secs(30))?;
//!
//! let out = docker
//!     .exec("my-bottle", ExecRequest::new(["id", "-u"]).user("1000"))
//!     .await?;
//! assert_eq!(out.stdout_lossy().trim(), "1000");
//!
//! docker
//!     .copy(
//!         "my-bottle",
//!         &[
//!             CopyEntry::dir("/home/node/.ssh", 0o700, 1000, 1000),
//!             CopyEntry::file("/home/node/.ssh/config", b"Host x\n".to_vec(), 0o600, 1000, 1000),
//!         ],
//!     )
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod client;
mod context;
mod events;
mod runtime;

pub use client::DockerRuntime;
pub use context::{
    context_names, read_context, resolve, DockerEndpoint, DockerEnv, TlsFiles, DEFAULT_CONTEXT,
};

/// How to make Docker answer at `endpoint`, chosen because of `from`
/// (`DOCKER_HOST`, `default`, …): the fix `doctor` prints.
pub fn start_hint(from: &str, endpoint: &str) -> String {
    match from {
        "DOCKER_HOST" => format!("DOCKER_HOST={endpoint} does not answer: fix or unset it"),
        _ => "sudo systemctl enable --now docker.socket (or set DOCKER_HOST)".into(),
    }
}
