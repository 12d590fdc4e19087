//! Podman backend for bottle: [`ContainerRuntime`] and [`ContainerAdmin`] on
//! the libpod REST API through `podman-api` 0.11.
//!
//! ```no_run
//! use bottle_podman::PodmanRuntime;
//! use bottle_runtime::{ContainerRuntime, CopyEntry, ExecRequest};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), bottle_runtime::Error> {
//! // None: $CONTAINER_HOST, else the rootless socket, else /run/podman/podman.sock.
//! let podman = PodmanRuntime::connect(None, Duration::from_secs(30))?;
//! let out = podman
//!     .exec("my-bottle", ExecRequest::new(["cat"]).user("1000").stdin(b"hi".to_vec()))
//!     .await?;
//! assert_eq!(out.stdout, b"hi");
//! podman
//!     .copy("my-bottle", &[CopyEntry::dir("/home/node/.ssh", 0o700, 1000, 1000)])
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Podman facts this backend relies on (checked against Podman 4.3.1):
//! - `adjust_api_version()` is never called: it costs a `/libpod/version`
//!   round trip (~330 ms, see below) and on 4.3 reads that answer's top-level
//!   Docker-compatible `ApiVersion` "1.41", so every later path would be
//!   `/v1.41/libpod/…`, below libpod's MinAPIVersion 4.0.0. The crate's
//!   built-in 4.3.1 prefix is used as is.
//! - exec create on a stopped container answers 500 "container state improper",
//!   on a paused one 409: both become [`Error::ContainerNotRunning`].
//! - A missing program is not an API error: the exec starts, runc's message
//!   arrives on stderr and the exec's exit code is 127 (126 for a file that
//!   is not executable). An unknown user or an empty argv is refused by exec
//!   create: [`Error::ExecStart`]. This is the reference the Docker backend
//!   normalises its start failures to (conformance `check_missing_binary`).
//! - stdin is written while output is read, then the writer is closed
//!   (half-close of the hijacked connection, via podman-api's
//!   `Multiplexer::split`); Podman passes that EOF on to the process.
//! - A process that exits without reading all of its stdin: Podman resets
//!   conmon's attach socket, appends `Error: … connection reset by peer` to
//!   stderr (removed here) and, in about half the runs, drops the process's
//!   queued stdout/stderr. The exit code is always right. Processes that read
//!   their stdin to EOF are not affected.
//! - The exit code lives only in the exec session, which Podman removes
//!   `exit_command_delay` after the exit (5 s in CI's containers.conf). So at
//!   most 8 execs run at once per runtime (Podman serialises a container's
//!   exec calls on its lock: 50 at once took up to 4.8 s each here), and an
//!   exec still streaming after 1 s polls its session for the code.
//! - `stop()` is SIGKILL plus wait: podman-api's stop option `Timeout` is
//!   ignored by Podman (it reads `timeout`), which made every stop take 10 s,
//!   and Podman 4.3 cannot stop a paused container.
//! - `remove()` of a container whose network namespace another container
//!   joined fails (Podman: "has dependent containers"): remove that one first.
//! - `version()` uses `_ping` (under 1 ms); `/libpod/version` takes ~330 ms
//!   on every call because Podman runs `conmon --version` and the OCI
//!   runtime's `--version` to answer it. There is no first-request penalty
//!   otherwise (podman-api opens a new connection per request; ~2 ms first,
//!   under 1 ms after).
//! - `copy` uploads to the Docker-compatible `/containers/{id}/archive`, where
//!   Podman's `copyUIDGID` defaults to false, so the archive's uid/gid are
//!   kept. (On the `/libpod/` path it defaults to true and chowns everything to
//!   the container's user.) Podman would also write into a stopped
//!   container, so `copy` inspects first and refuses one that is not running.

use async_trait::async_trait;
use bottle_runtime::{
    build_tar, Capabilities, ContainerAdmin, ContainerFilter, ContainerInfo, ContainerRuntime,
    ContainerState, CopyEntry, Engine, EngineInfo, Error, ExecOutput, ExecRequest, NetworkMode,
    OutputStream, Result, RunSpec,
};
use futures_util::{AsyncWriteExt, StreamExt};
use podman_api::conn::TtyChunk;
use podman_api::models::ContainerStatus;
use podman_api::opts::{
    ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts,
    ContainerWaitOpts, ExecCreateOpts, ExecStartOpts, ImageImportOpts,
};
use podman_api::Podman;
use std::fmt;
use std::future::Future;
use std::time::Duration;

mod connection;
mod events;

pub use connection::{
    read_connections, resolve, Connection, Connections, PodmanEndpoint, PodmanEnv,
};

const ENGINE: Engine = Engine::Podman;
const ROOTFUL_SOCKET: &str = "unix:///run/podman/podman.sock";

/// Execs in flight at once per runtime. Podman runs every exec call of a
/// container under that container's lock, and removes an exited session (and
/// with it the only record of its exit code) `exit_command_delay` after the
/// exit. Dozens of concurrent execs queue on the lock long enough for the
/// session to be gone before its inspect is served; a bound keeps the queue
/// short.
const MAX_CONCURRENT_EXECS: usize = 8;

/// A Podman engine reached over its REST API socket.
pub struct PodmanRuntime {
    podman: Podman,
    endpoint: String,
    timeout: Duration,
    exec_slots: tokio::sync::Semaphore,
    /// For `ssh://`: the one ssh process forwarding the remote socket.
    tunnel: Option<bottle_tunnel::SshTunnel>,
}

impl fmt::Debug for PodmanRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodmanRuntime")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PodmanRuntime {
    /// endpoint: None => $CONTAINER_HOST, else rootless $XDG_RUNTIME_DIR/podman/podman.sock if that socket exists, else unix:///run/podman/podman.sock.
    /// An `ssh://` endpoint uses `CONTAINER_SSHKEY` as its identity, as Podman's client does.
    /// Does not contact the engine (lazy); the first call that fails to connect gives Error::Unreachable naming the endpoint.
    pub fn connect(endpoint: Option<&str>, timeout: Duration) -> Result<PodmanRuntime> {
        let endpoint = match endpoint {
            Some(e) => e.to_string(),
            None => Self::default_endpoint().0,
        };
        if endpoint.starts_with("ssh://") {
            // As Podman's own client: the identity for an ssh:// URI.
            let identity = connection::PodmanEnv::from_process().sshkey;
            return Self::connect_ssh(&endpoint, identity, timeout);
        }
        let podman = Podman::new(&endpoint);
        // Shown in every error from here on: never with a password.
        let endpoint = bottle_runtime::redact_url(&endpoint).into_owned();
        let podman = podman.map_err(|e| Error::Unreachable {
            engine: ENGINE,
            endpoint: endpoint.clone(),
            source: Box::new(e),
        })?;
        Ok(PodmanRuntime {
            podman,
            endpoint,
            timeout,
            exec_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_EXECS),
            tunnel: None,
        })
    }

    /// The endpoint that `connect(None, ..)` would use and why: e.g. (uri, "CONTAINER_HOST") / (uri, "rootless socket") / (uri, "default").
    pub fn default_endpoint() -> (String, &'static str) {
        endpoint_from(
            std::env::var("CONTAINER_HOST").ok(),
            std::env::var_os("XDG_RUNTIME_DIR"),
        )
    }

    /// The timeout each call runs under. For `exec` it covers the whole
    /// call: create, start, the process's run time, and the exit-code inspect.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `fut` under the configured timeout.
    async fn timed<T>(
        &self,
        container: &str,
        operation: &'static str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.tunnel_ready().await?;
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

    /// The generic mapping: unreachable, not found, else `Api`.
    fn map_err(&self, container: &str, operation: &'static str, e: podman_api::Error) -> Error {
        if is_connect_error(&e) {
            return self.unreachable(e);
        }
        if fault(&e).is_some_and(|(code, _)| code == 404) {
            return Error::ContainerNotFound {
                engine: ENGINE,
                container: container.to_string(),
            };
        }
        Error::Api {
            engine: ENGINE,
            container: container.to_string(),
            operation,
            source: Box::new(e),
        }
    }

    fn unreachable(&self, e: podman_api::Error) -> Error {
        Error::connect_failed(ENGINE, &self.endpoint, Box::new(e))
    }

    /// Mapping for exec create/start: state errors become
    /// `ContainerNotRunning` (inspecting only here, to name the state).
    async fn map_exec_err(&self, container: &str, program: &str, e: podman_api::Error) -> Error {
        if is_connect_error(&e) {
            return self.unreachable(e);
        }
        match fault(&e) {
            Some((404, _)) => Error::ContainerNotFound {
                engine: ENGINE,
                container: container.to_string(),
            },
            Some((code, msg)) if code == 409 || is_state_message(msg) => {
                let state = match self.inspect_raw(container).await {
                    Ok(info) => info.state.to_string(),
                    Err(Error::ContainerNotFound { .. }) => {
                        return Error::ContainerNotFound {
                            engine: ENGINE,
                            container: container.to_string(),
                        }
                    }
                    Err(_) if msg.contains("paused") => "paused".to_string(),
                    Err(_) => "not running".to_string(),
                };
                Error::ContainerNotRunning {
                    engine: ENGINE,
                    container: container.to_string(),
                    state,
                }
            }
            _ => Error::ExecStart {
                engine: ENGINE,
                container: container.to_string(),
                program: program.to_string(),
                source: Box::new(e),
            },
        }
    }

    async fn inspect_raw(&self, container: &str) -> Result<ContainerInfo> {
        let data = self
            .podman
            .containers()
            .get(container)
            .inspect()
            .await
            .map_err(|e| self.map_err(container, "inspect", e))?;
        let state = data
            .state
            .as_ref()
            .and_then(|s| s.status.as_deref())
            .unwrap_or("unknown");
        Ok(ContainerInfo {
            id: data.id.clone().unwrap_or_default(),
            name: data
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            state: ContainerState::parse(state),
        })
    }

    async fn exec_inner(&self, container: &str, request: &ExecRequest) -> Result<ExecOutput> {
        let program = request.program();
        let mut create = ExecCreateOpts::builder()
            .command(request.argv.iter().cloned())
            .attach_stdout(true)
            .attach_stderr(true)
            .attach_stdin(request.stdin.is_some());
        if !request.user.is_empty() {
            create = create.user(podman_api::opts::UserOpt::User(request.user.clone()));
        }
        let exec = match self
            .podman
            .containers()
            .get(container)
            .create_exec(&create.build())
            .await
        {
            Ok(exec) => exec,
            Err(e) => return Err(self.map_exec_err(container, program, e).await),
        };
        let mux = match exec.start(&ExecStartOpts::builder().build()).await {
            Ok(Some(mux)) => mux,
            Ok(None) => {
                return Err(Error::ExecStart {
                    engine: ENGINE,
                    container: container.to_string(),
                    program: program.to_string(),
                    source: "exec start returned no stream".into(),
                })
            }
            Err(e) => return Err(self.map_exec_err(container, program, e).await),
        };
        let (reader, writer) = mux.split();
        let mut reader = Box::pin(reader);
        let mut writer = Box::pin(writer);

        // Write and read at once: a process may fill its stdout pipe before it
        // has read all of stdin.
        let write = async {
            if let Some(bytes) = &request.stdin {
                // A process may exit without reading stdin; that is its
                // business, so a broken pipe here is not an error.
                let _ = writer.write_all(bytes).await;
                // Half-close: Podman passes the EOF on to the process's stdin.
                let _ = writer.close().await;
            }
            writer
        };
        let limit = request.max_output;
        let read = async {
            let mut out = ExecOutput::default();
            while let Some(chunk) = reader.next().await {
                let (stream, bytes) = match chunk {
                    Ok(TtyChunk::StdOut(b)) => (OutputStream::Stdout, b),
                    Ok(TtyChunk::StdErr(b)) => (OutputStream::Stderr, b),
                    Ok(TtyChunk::StdIn(_)) => continue,
                    // A process that exits without reading all of stdin makes
                    // Podman close the socket with our bytes unread, which
                    // resets the connection. What Podman sent was read before
                    // the reset; the exit code comes from inspect.
                    Err(e)
                        if request.stdin.is_some()
                            && io_kind(&e) == Some(std::io::ErrorKind::ConnectionReset) =>
                    {
                        tracing::debug!(container, "exec stream reset after unread stdin");
                        break;
                    }
                    Err(e) => {
                        return Err(Error::Api {
                            engine: ENGINE,
                            container: container.to_string(),
                            operation: "exec output",
                            source: Box::new(e),
                        })
                    }
                };
                if !out.append_within(stream, &bytes, limit) {
                    // The caller drops the connection on this error. Podman
                    // has no exec kill: the process lives on (conmon keeps
                    // reading its pipes and discards what no one attached
                    // reads) until it exits or the container stops.
                    return Err(Error::OutputTooLarge {
                        engine: ENGINE,
                        container: container.to_string(),
                        program: program.to_string(),
                        stream,
                        limit,
                    });
                }
            }
            Ok(out)
        };
        // Podman removes an exited exec session `exit_command_delay` after the
        // process exits (5 s in CI's containers.conf), and only the session
        // knows the exit code. Output can still be streaming long after the
        // exit (a slow reader, a busy machine), so a long exec also polls the
        // session meanwhile and keeps the code once it is there.
        let early_exit: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        let watch = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            loop {
                match exec.inspect().await.map(|info| exit_code_of(&info)) {
                    Ok(Some(code)) => {
                        let _ = early_exit.set(code);
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(500)).await,
                    Err(_) => break, // the final inspect reports errors
                }
            }
            std::future::pending::<std::convert::Infallible>().await
        };
        // Without stdin the writer stays open until the output ends: an early
        // half-close is not needed and would only race the stream. A read
        // error ends both at once: stdin the process does not read must not
        // hold it up.
        let write = async { Ok::<_, Error>(write.await) };
        let io = futures_util::future::try_join(write, read);
        let (writer, mut out) = tokio::select! {
            r = io => r?,
            never = watch => match never {},
        };
        drop(writer);
        if strip_attach_reset_noise(&mut out.stderr) && request.stdin.is_some() {
            // Podman 4.3 races here: stdout queued in conmon can be lost too.
            tracing::warn!(
                container,
                program,
                "the process exited without reading all of its stdin; \
                 Podman may have dropped some of its output"
            );
        }
        if let Some(code) = early_exit.get() {
            out.exit_code = *code;
            return Ok(out);
        }

        // The stream ends when the process exits, but the exit code may be
        // recorded a moment later.
        loop {
            let info = exec
                .inspect()
                .await
                .map_err(|e| self.map_err(container, "exec inspect", e))?;
            if let Some(code) = exit_code_of(&info) {
                out.exit_code = code;
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The exit code in an exec inspect answer, once the process has exited.
fn exit_code_of(info: &serde_json::Value) -> Option<i64> {
    if info.get("Running").and_then(|v| v.as_bool()) != Some(false) {
        return None;
    }
    info.get("ExitCode").and_then(|v| v.as_i64())
}

/// When a process exits without reading all of its stdin (or could not be
/// started at all), Podman's attach copier fails on conmon's socket and
/// appends its own error line to the exec's stderr, e.g. `Error: read unixpacket @->/proc/self/fd/16/attach:
/// read: connection reset by peer`. It is not the process's output: remove it.
/// Returns whether it was there.
fn strip_attach_reset_noise(stderr: &mut Vec<u8>) -> bool {
    let body = stderr.strip_suffix(b"\n").unwrap_or(stderr);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = &body[start..];
    let is_noise = line.starts_with(b"Error: ")
        && line.ends_with(b": connection reset by peer")
        && line
            .windows(b"unixpacket @->".len())
            .any(|w| w == b"unixpacket @->")
        && line.windows(b"/attach: ".len()).any(|w| w == b"/attach: ");
    if is_noise {
        stderr.truncate(start);
    }
    is_noise
}

/// Status code and message of an API error answer, if it is one.
fn fault(e: &podman_api::Error) -> Option<(u16, &str)> {
    match e {
        podman_api::Error::Fault { code, message } => Some((code.as_u16(), message.as_str())),
        podman_api::Error::Error(podman_api::conn::Error::Fault { code, message }) => {
            Some((code.as_u16(), message.as_str()))
        }
        _ => None,
    }
}

/// `default_endpoint` on explicit inputs, so it is testable without touching
/// the process environment.
fn endpoint_from(
    container_host: Option<String>,
    xdg_runtime_dir: Option<std::ffi::OsString>,
) -> (String, &'static str) {
    if let Some(host) = container_host.filter(|h| !h.is_empty()) {
        return (host, "CONTAINER_HOST");
    }
    if let Some(dir) = xdg_runtime_dir.filter(|d| !d.is_empty()) {
        let sock = std::path::Path::new(&dir).join("podman/podman.sock");
        if sock.exists() {
            return (format!("unix://{}", sock.display()), "rootless socket");
        }
    }
    (ROOTFUL_SOCKET.to_string(), "default")
}

/// The kind of the I/O error behind a stream error. `IO` is a transparent
/// variant, so the io::Error itself is not in the source chain.
fn io_kind(e: &podman_api::conn::Error) -> Option<std::io::ErrorKind> {
    if let podman_api::conn::Error::IO(io) = e {
        return Some(io.kind());
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

fn is_state_message(msg: &str) -> bool {
    let msg = msg.to_ascii_lowercase();
    msg.contains("container state improper")
        || msg.contains("is paused")
        || msg.contains("not running")
}

/// True when the socket could not be reached at all (missing, refused, no
/// permission), as opposed to an error answer.
fn is_connect_error(e: &podman_api::Error) -> bool {
    if fault(e).is_some() {
        return false;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused
                    | NotFound
                    | PermissionDenied
                    | ConnectionReset
                    | AddrNotAvailable
            ) {
                return true;
            }
        }
        if err.to_string().contains("error trying to connect") {
            return true;
        }
        cur = err.source();
    }
    false
}

#[async_trait]
impl ContainerRuntime for PodmanRuntime {
    fn engine(&self) -> Engine {
        ENGINE
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Podman 4.3 may drop the output of a process that leaves its stdin
    /// unread (see the crate docs): not `output_with_unread_stdin`.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            .with_copy(true)
            .with_list(true)
            .with_events(true)
            .with_event_history(true)
    }

    async fn version(&self) -> Result<EngineInfo> {
        // `_ping`, not `/libpod/version`: the latter runs `conmon --version`
        // and `runc --version` on every call (about 330 ms on Podman 4.3),
        // while `_ping` answers in under a millisecond. Its
        // Libpod-Api-Version header is the Podman version (libpod's current
        // API version is defined as the release version).
        self.timed("", "version", async {
            let ping = self.podman.ping().await.map_err(|e| {
                // Not "no container named ``": something else answers here
                // (Docker's API has no /libpod).
                if !is_connect_error(&e) && fault(&e).is_some_and(|(code, _)| code == 404) {
                    return Error::Unreachable {
                        engine: ENGINE,
                        endpoint: self.endpoint.clone(),
                        source: "the endpoint answers, but not as Podman's API \
                                 (GET /libpod/_ping: 404 Not Found; another engine's socket?)"
                            .into(),
                    };
                }
                // Through ssh, no response at all is the forward failing at
                // the remote end: its socket is missing or refuses.
                if let (Some(tunnel), None) = (&self.tunnel, fault(&e)) {
                    return Error::Unreachable {
                        engine: ENGINE,
                        endpoint: self.endpoint.clone(),
                        source: format!(
                            "the remote socket {} is unreachable or missing (the ssh login worked; GET /libpod/_ping: {e})",
                            tunnel.target().socket
                        )
                        .into(),
                    };
                }
                self.map_err("", "version", e)
            })?;
            Ok(EngineInfo {
                engine: ENGINE,
                endpoint: self.endpoint.clone(),
                version: ping.libpod_api_version.clone(),
                api_version: ping.libpod_api_version,
            })
        })
        .await
    }

    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "inspect", self.inspect_raw(container))
            .await
    }

    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "exec", async {
            let _slot = self.exec_slots.acquire().await.expect("never closed");
            self.exec_inner(container, &request).await
        })
        .await
    }

    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        let tar = build_tar(entries).map_err(|reason| Error::InvalidRequest {
            engine: ENGINE,
            container: container.to_string(),
            operation: "copy",
            reason,
        })?;
        self.timed(container, "copy", async {
            // Podman writes into a stopped container's storage without
            // complaint; the contract says a container that is not running
            // is an error, so check first.
            let info = self.inspect_raw(container).await?;
            if !info.is_running() {
                return Err(Error::ContainerNotRunning {
                    engine: ENGINE,
                    container: container.to_string(),
                    state: info.state.to_string(),
                });
            }
            // One upload of the whole archive at `/`. podman-api's copy_to uses
            // the compat path, where copyUIDGID defaults to false: the
            // archive's numeric owners are kept (see the crate docs).
            self.podman
                .containers()
                .get(container)
                .copy_to("/", tar.into())
                .await
                .map_err(|e| self.map_err(container, "copy", e))
        })
        .await
    }

    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        let query: Vec<ContainerListFilter> = filters
            .iter()
            .map(|f| match f {
                ContainerFilter::Label(k) => ContainerListFilter::LabelKey(k.clone()),
                ContainerFilter::LabelValue(k, v) => {
                    ContainerListFilter::LabelKeyVal(k.clone(), v.clone())
                }
                ContainerFilter::Name(n) => ContainerListFilter::Name(n.clone()),
            })
            .collect();
        let opts = ContainerListOpts::builder()
            .all(false)
            .filter(query)
            .build();
        self.timed("", "list", async {
            let listed = self
                .podman
                .containers()
                .list(&opts)
                .await
                .map_err(|e| self.map_err("", "list", e))?;
            let mut out: Vec<ContainerInfo> = listed
                .into_iter()
                .map(|c| ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    state: ContainerState::parse(c.state.as_deref().unwrap_or("unknown")),
                })
                // The contract is running only, whatever `all: false`
                // includes (Docker's includes paused ones).
                .filter(ContainerInfo::is_running)
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn events(
        &self,
        filters: &[ContainerFilter],
        since: Option<std::time::SystemTime>,
    ) -> Result<bottle_runtime::EventStream> {
        self.events_inner(filters, since).await
    }
}

#[async_trait]
impl ContainerAdmin for PodmanRuntime {
    async fn details(&self, container: &str) -> Result<bottle_runtime::ContainerDetails> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "inspect", async {
            let data = self
                .podman
                .containers()
                .get(container)
                .inspect()
                .await
                .map_err(|e| self.map_err(container, "inspect", e))?;
            let host = data.host_config.as_ref();
            let state = data
                .state
                .as_ref()
                .and_then(|s| s.status.as_deref())
                .unwrap_or("unknown");
            Ok(bottle_runtime::ContainerDetails {
                info: ContainerInfo {
                    id: data.id.clone().unwrap_or_default(),
                    name: data
                        .name
                        .as_deref()
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    state: ContainerState::parse(state),
                },
                image: data.image.clone().unwrap_or_default(),
                network: host
                    .and_then(|h| h.network_mode.clone())
                    .unwrap_or_default(),
                labels: data
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                started_at: data
                    .state
                    .as_ref()
                    .and_then(|s| s.started_at)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                privileged: host.and_then(|h| h.privileged).unwrap_or(false),
                mounts: data
                    .mounts
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| m.destination)
                    .chain(
                        host.and_then(|h| h.tmpfs.clone())
                            .unwrap_or_default()
                            .into_keys(),
                    )
                    .collect(),
            })
        })
        .await
    }

    async fn image_exists(&self, reference: &str) -> Result<bool> {
        self.timed(reference, "image exists", async {
            self.podman
                .images()
                .get(reference)
                .exists()
                .await
                .map_err(|e| self.map_err(reference, "image exists", e))
        })
        .await
    }

    async fn import_image(&self, rootfs_tar: Vec<u8>, reference: &str) -> Result<()> {
        self.timed(reference, "image import", async {
            let opts = ImageImportOpts::builder().reference(reference).build();
            self.podman
                .images()
                .import(&opts, rootfs_tar)
                .await
                .map(|_| ())
                .map_err(|e| self.map_err(reference, "image import", e))
        })
        .await
    }

    async fn run(&self, spec: &RunSpec) -> Result<ContainerInfo> {
        let label = spec.name.clone().unwrap_or_else(|| spec.image.clone());
        self.timed(&label, "run", async {
            let netns = match &spec.network {
                NetworkMode::None => podman_api::models::Namespace {
                    nsmode: Some("none".into()),
                    value: None,
                },
                NetworkMode::Container(id) => podman_api::models::Namespace {
                    nsmode: Some("container".into()),
                    value: Some(id.clone()),
                },
            };
            let mut opts = ContainerCreateOpts::builder()
                .image(&spec.image)
                .command(spec.cmd.iter().cloned())
                .net_namespace(netns)
                .labels(spec.labels.iter().cloned());
            if let Some(name) = &spec.name {
                opts = opts.name(name);
            }
            if !spec.user.is_empty() {
                opts = opts.user(&spec.user);
            }
            if spec.read_only {
                opts = opts.read_only_fs(true);
            }
            if !spec.tmpfs.is_empty() {
                opts = opts.mounts(spec.tmpfs.iter().map(|path| {
                    podman_api::models::ContainerMount {
                        destination: Some(path.clone()),
                        // Empty, as on Docker: Podman would copy the image's
                        // directory into it.
                        options: Some(
                            spec.tmpfs_options()
                                .iter()
                                .chain(&["notmpcopyup"])
                                .map(|o| o.to_string())
                                .collect(),
                        ),
                        source: Some("tmpfs".into()),
                        _type: Some("tmpfs".into()),
                        uid_mappings: None,
                        gid_mappings: None,
                    }
                }));
            }
            let created = self
                .podman
                .containers()
                .create(&opts.build())
                .await
                .map_err(|e| Error::Api {
                    engine: ENGINE,
                    container: label.clone(),
                    operation: "create",
                    source: Box::new(e),
                })?;
            let id = created.id;
            self.podman
                .containers()
                .get(&id)
                .start(None)
                .await
                .map_err(|e| self.map_err(&id, "start", e))?;
            self.inspect_raw(&id).await
        })
        .await
    }

    async fn start(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "start", async {
            match self.podman.containers().get(container).start(None).await {
                Ok(()) => Ok(()),
                // 304: already running.
                Err(e) if fault(&e).is_some_and(|(c, _)| c == 304) => Ok(()),
                Err(e) => Err(self.map_err(container, "start", e)),
            }
        })
        .await
    }

    async fn stop(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        // Not the stop endpoint: podman-api 0.11 sends its timeout as
        // `Timeout`, which Podman ignores (it reads `timeout`), so every stop
        // waited the default 10 s; and Podman 4.3 refuses to stop a paused
        // container. SIGKILL (libpod's default signal) works in both states;
        // then wait until the engine has recorded the exit.
        self.timed(container, "stop", async {
            let ctr = self.podman.containers().get(container);
            if let Err(e) = ctr.kill().await {
                let state_error =
                    fault(&e).is_some_and(|(code, msg)| code == 409 || is_state_message(msg));
                if !state_error {
                    return Err(self.map_err(container, "stop", e));
                }
                // Not running: already stopped is fine.
                let info = self.inspect_raw(container).await?;
                return match info.state {
                    ContainerState::Running | ContainerState::Paused => {
                        Err(self.map_err(container, "stop", e))
                    }
                    _ => Ok(()),
                };
            }
            let opts = ContainerWaitOpts::builder()
                .conditions([ContainerStatus::Exited])
                .interval("20ms")
                .build();
            ctr.wait(&opts)
                .await
                .map_err(|e| self.map_err(container, "stop", e))
        })
        .await
    }

    async fn pause(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "pause", async {
            self.podman
                .containers()
                .get(container)
                .pause()
                .await
                .map_err(|e| self.map_err(container, "pause", e))
        })
        .await
    }

    async fn unpause(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "unpause", async {
            self.podman
                .containers()
                .get(container)
                .unpause()
                .await
                .map_err(|e| self.map_err(container, "unpause", e))
        })
        .await
    }

    async fn remove(&self, container: &str) -> Result<()> {
        // A name no container can have: nothing to remove.
        match bottle_runtime::check_docker_style_ref(ENGINE, container) {
            Err(bottle_runtime::Error::ContainerNotFound { .. }) => return Ok(()),
            other => other?,
        }
        self.timed(container, "remove", async {
            let opts = ContainerDeleteOpts::builder()
                .force(true)
                .timeout(0)
                .build();
            match self.podman.containers().get(container).delete(&opts).await {
                Ok(()) => Ok(()),
                Err(e) => match self.map_err(container, "remove", e) {
                    Error::ContainerNotFound { .. } => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }
}

/// How to make Podman answer at `endpoint`, chosen because of `from`
/// (`CONTAINER_HOST`, `rootless socket`, `default`, …): the fix `doctor`
/// prints.
pub fn start_hint(from: &str, endpoint: &str) -> String {
    match from {
        "CONTAINER_HOST" => format!("CONTAINER_HOST={endpoint} does not answer: fix or unset it"),
        "rootless socket" => "systemctl --user enable --now podman.socket".into(),
        _ => "systemctl --user enable --now podman.socket (rootless) or sudo systemctl enable --now podman.socket (or set CONTAINER_HOST)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_reset_noise_is_stripped_and_only_it() {
        let mut e = b"warn: x\nError: write unixpacket @->/proc/self/fd/16/attach: write: connection reset by peer\n".to_vec();
        assert!(strip_attach_reset_noise(&mut e));
        assert_eq!(e, b"warn: x\n");
        let mut e =
            b"Error: read unixpacket @->/proc/self/fd/9/attach: read: connection reset by peer\n"
                .to_vec();
        assert!(strip_attach_reset_noise(&mut e));
        assert!(e.is_empty());
        for keep in [
            &b"Error: connection reset by peer\n"[..],
            b"Error: read unixpacket @->/proc/self/fd/16/attach: read: connection reset by peer\nafter\n",
            b"",
        ] {
            let mut e = keep.to_vec();
            assert!(!strip_attach_reset_noise(&mut e));
            assert_eq!(e, keep);
        }
    }

    #[test]
    fn endpoint_choice() {
        let host = Some("unix:///tmp/elsewhere.sock".to_string());
        assert_eq!(
            endpoint_from(host, None),
            ("unix:///tmp/elsewhere.sock".into(), "CONTAINER_HOST")
        );
        // An empty CONTAINER_HOST counts as unset; a runtime dir without the
        // socket falls through to the rootful default.
        let dir = std::env::temp_dir().join(format!("bottle-podman-ep-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("podman")).unwrap();
        assert_eq!(
            endpoint_from(Some(String::new()), Some(dir.clone().into_os_string())),
            (ROOTFUL_SOCKET.into(), "default")
        );
        // Any file will do: only its existence is checked.
        std::fs::write(dir.join("podman/podman.sock"), b"").unwrap();
        let got = endpoint_from(None, Some(dir.clone().into_os_string()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            got,
            (
                format!("unix://{}", dir.join("podman/podman.sock").display()),
                "rootless socket"
            )
        );
    }

    #[test]
    fn state_messages() {
        assert!(is_state_message(
            "can only create exec sessions on running containers: container state improper"
        ));
        assert!(is_state_message(
            "cannot create exec session as container abc is paused"
        ));
        assert!(!is_state_message("no such container"));
    }
}
