//! The `ContainerRuntime` trait: one small abstraction over container engines.
//!
//! Everything above this crate (the SSH provisioner, `bottlectl`) talks to a
//! container only through [`ContainerRuntime`], so it behaves the same on Docker
//! and Podman. The required methods are the minimum an engine must provide;
//! convenience lives in provided methods so backends cannot drift apart.
//!
//! This crate has no engine dependency: backends live in `bottle-docker` and
//! `bottle-podman`.
//!
//! ```
//! use bottle_runtime::{CopyEntry, ExecRequest};
//!
//! // A script gets its values as positional parameters, never interpolated.
//! let req = ExecRequest::script("printf '%s' \"$1\"", ["hello; rm -rf /"]).user("1000");
//! assert_eq!(req.argv[0], "/bin/sh");
//! assert_eq!(req.argv[4], "hello; rm -rf /");
//!
//! let config = CopyEntry::file("/home/node/.ssh/config", b"Host x\n".to_vec(), 0o600, 1000, 1000);
//! assert_eq!(config.mode, 0o600);
//! ```

mod admin;
mod capabilities;
mod error;
mod events;
pub mod file;
mod filter;
mod names;
mod redact;
mod tarball;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod types;

pub use admin::{ContainerAdmin, ContainerDetails, NetworkMode, RunSpec};
pub use capabilities::Capabilities;
pub use error::{error_chain, error_texts, BoxError, Error, Result};
pub use events::{ContainerEvent, EventAction, EventStream, MAX_EVENT_FIELD};
pub use filter::ContainerFilter;
pub use names::check_docker_style_ref;
pub use redact::redact_url;
pub use tarball::build_tar;
pub use types::{
    ContainerInfo, ContainerState, CopyEntry, Engine, EngineInfo, EntryKind, ExecOutput,
    ExecRequest, OutputStream,
};

use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

/// A container engine that can run commands in, and copy files into, an
/// already-running container.
///
/// Object safe: use it as `Arc<dyn ContainerRuntime>` or `&dyn ContainerRuntime`.
///
/// Contract every backend keeps (checked by the conformance suite in
/// `integration-tests`):
/// - `exec` runs `argv` directly (no shell), with the given user, and returns
///   the exit code and stdout/stderr kept apart. `stdin`, when given, is
///   delivered byte for byte followed by EOF. A process should read its stdin
///   to the end: Podman 4.3 may drop the output of one that exits with stdin
///   unread (the exit code is still right).
/// - Output is bounded: each stream keeps at most the request's
///   [`max_output`](ExecRequest::max_output) bytes (1 MiB by default). A
///   process that writes more makes `exec` fail with
///   [`Error::OutputTooLarge`] naming the stream, promptly even if it never
///   stops writing: the backend stops reading and drops the exec's
///   connection. Neither engine can kill an exec, so the process may live on
///   in the container (its writes then block or are discarded there).
/// - `copy` writes all entries in one request; afterwards every entry has
///   exactly its mode, uid and gid; missing parent directories are created.
/// - A missing container is [`Error::ContainerNotFound`], a container that is
///   not running is [`Error::ContainerNotRunning`], an engine that does not
///   answer is [`Error::Unreachable`] naming the endpoint tried.
/// - `list` asks the engine's own list API with the filters and returns only
///   running containers (see [`list`](ContainerRuntime::list)).
#[async_trait]
pub trait ContainerRuntime: Send + Sync + Debug + 'static {
    /// Which engine this is.
    fn engine(&self) -> Engine;

    /// The endpoint this runtime talks to, e.g. `unix:///var/run/docker.sock`.
    fn endpoint(&self) -> &str;

    /// What this runtime supports beyond `exec` and `inspect`, declared by
    /// the backend. The default is what the required methods promise
    /// ([`Capabilities::default`]); a wrapper should forward it.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Ping the engine and report its version.
    async fn version(&self) -> Result<EngineInfo>;

    /// Inspect a container by name or id.
    async fn inspect(&self, container: &str) -> Result<ContainerInfo>;

    /// Run a process in a running container and wait for it.
    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput>;

    /// Put files and directories into a container in one request.
    ///
    /// Optional (provisioning does not copy): the default fails with
    /// [`Error::NotSupported`]; a backend that implements it declares
    /// [`Capabilities::copy`].
    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        let _ = (container, entries);
        Err(Error::NotSupported {
            engine: self.engine(),
            operation: "copy files into a container",
        })
    }

    /// The running containers that match `filters`, as the engine's list API
    /// applies them (Docker's `--filter` rules, see [`ContainerFilter`]); no
    /// filters: every running container. Only running ones are listed
    /// (created, paused, exited and dead are left out): only those can be
    /// provisioned. Sorted by name.
    ///
    /// Provided so wrappers written before it keep compiling: the default
    /// fails with [`Error::NotSupported`]. Both backends implement it; a wrapper
    /// around a backend should forward it.
    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        let _ = filters;
        Err(Error::NotSupported {
            engine: self.engine(),
            operation: "list containers",
        })
    }

    /// The lifecycle events of containers (start, restart, pause,
    /// unpause, die, destroy) from about a second before the call (the
    /// subscription reaches the engine a moment after it returns), or
    /// replayed from `since` when given: from the engine's recent history
    /// where it keeps one ([`Capabilities::event_history`]), otherwise as a
    /// `start` of each running container whose task started since then.
    /// Label filters are applied by the
    /// engine's event API; name filters are not (neither engine matches
    /// event names by pattern): a caller confirms a container with
    /// [`list`](ContainerRuntime::list). The stream ends or yields
    /// [`Error::Unreachable`] when the engine goes away, and may also end
    /// while it runs (Podman 4.3 closed one under load): a caller that
    /// needs every event subscribes again with `since` its last one.
    ///
    /// Provided like `list`: the default fails with [`Error::NotSupported`].
    async fn events(
        &self,
        filters: &[ContainerFilter],
        since: Option<SystemTime>,
    ) -> Result<EventStream> {
        let _ = (filters, since);
        Err(Error::NotSupported {
            engine: self.engine(),
            operation: "stream container events",
        })
    }

    /// Run `argv` as root (uid 0).
    async fn exec_root(&self, container: &str, argv: &[&str]) -> Result<ExecOutput> {
        self.exec(container, ExecRequest::new(argv.iter().copied()).user("0"))
            .await
    }

    /// Run a POSIX shell script as root. `args` become `$1`, `$2`, … so that no
    /// value is ever interpolated into the script text. `stdin` is delivered
    /// byte for byte, then EOF.
    async fn exec_script(
        &self,
        container: &str,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput> {
        let mut request = ExecRequest::script(script, args.iter().copied()).user("0");
        if let Some(bytes) = stdin {
            request = request.stdin(bytes.to_vec());
        }
        self.exec(container, request).await
    }

    /// Inspect the container and fail unless it is running.
    async fn require_running(&self, container: &str) -> Result<ContainerInfo> {
        let info = self.inspect(container).await?;
        if info.state == ContainerState::Running {
            Ok(info)
        } else {
            Err(Error::ContainerNotRunning {
                engine: self.engine(),
                container: container.to_string(),
                state: info.state.to_string(),
            })
        }
    }
}

#[async_trait]
impl<T: ContainerRuntime + ?Sized> ContainerRuntime for Arc<T> {
    fn engine(&self) -> Engine {
        (**self).engine()
    }
    fn endpoint(&self) -> &str {
        (**self).endpoint()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn version(&self) -> Result<EngineInfo> {
        (**self).version().await
    }
    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        (**self).inspect(container).await
    }
    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        (**self).exec(container, request).await
    }
    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        (**self).copy(container, entries).await
    }
    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        (**self).list(filters).await
    }
    async fn events(
        &self,
        filters: &[ContainerFilter],
        since: Option<SystemTime>,
    ) -> Result<EventStream> {
        (**self).events(filters, since).await
    }
}
