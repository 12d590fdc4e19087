//! Test support (feature `testing`): a scripted [`FakeRuntime`] and a
//! [`Recording`] wrapper around any runtime.
//!
//! Both record every call as a [`Call`]: the container, what was asked
//! (argv and user of an exec, paths of a copy) and how long it took. Stdin
//! is recorded only by length, so a recording never holds key bytes.
//!
//! The fake proves a caller's logic (retries, error mapping, what it does
//! with hostile output) in milliseconds; it proves nothing about an engine.
//!
//! ```
//! # tokio_test_block(async {
//! use bottle_runtime::testing::{output, FakeRuntime};
//! use bottle_runtime::{ContainerRuntime, ExecRequest};
//!
//! let fake = FakeRuntime::new().running("bottle").on_exec(|call| {
//!     Ok(output(0, if call.user == "0" { "root\n" } else { "node\n" }))
//! });
//! let out = fake.exec("bottle", ExecRequest::new(["id", "-un"]).user("0")).await.unwrap();
//! assert_eq!(out.stdout, b"root\n");
//! assert_eq!(fake.calls()[0].exec().unwrap().argv, ["id", "-un"]);
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use crate::{
    Capabilities, ContainerFilter, ContainerInfo, ContainerRuntime, ContainerState, CopyEntry,
    Engine, EngineInfo, Error, ExecOutput, ExecRequest, Result,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An exec as recorded: everything but the stdin bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCall {
    pub container: String,
    pub argv: Vec<String>,
    pub user: String,
    /// How many stdin bytes were sent; `None`: no stdin.
    pub stdin_len: Option<usize>,
    pub max_output: usize,
}

impl ExecCall {
    fn of(container: &str, request: &ExecRequest) -> ExecCall {
        ExecCall {
            container: container.to_string(),
            argv: request.argv.clone(),
            user: request.user.clone(),
            stdin_len: request.stdin.as_ref().map(|s| s.len()),
            max_output: request.max_output,
        }
    }

    /// The script text of an [`ExecRequest::script`] exec.
    pub fn script(&self) -> Option<&str> {
        match self.argv.as_slice() {
            [sh, c, script, ..] if sh == "/bin/sh" && c == "-c" => Some(script),
            _ => None,
        }
    }

    /// The script's positional parameters (`$1`, `$2`, …).
    pub fn script_args(&self) -> &[String] {
        match self.script() {
            Some(_) => &self.argv[4..],
            None => &[],
        }
    }

    /// Whether the script text contains `needle` (false for a non-script).
    pub fn script_contains(&self, needle: &str) -> bool {
        self.script().is_some_and(|s| s.contains(needle))
    }
}

/// What a call asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Version,
    Inspect {
        container: String,
    },
    Exec(ExecCall),
    Copy {
        container: String,
        paths: Vec<String>,
    },
    List {
        filters: Vec<ContainerFilter>,
    },
}

/// One call, how long it took and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub took: Duration,
    /// `Ok(exit code)` for an exec, `Ok(0)` for other calls, or the error's
    /// message.
    pub outcome: std::result::Result<i64, String>,
}

impl Call {
    /// The exec, when this call was one.
    pub fn exec(&self) -> Option<&ExecCall> {
        match &self.op {
            Op::Exec(e) => Some(e),
            _ => None,
        }
    }
}

/// An [`ExecOutput`] with this exit code and stdout (no stderr).
pub fn output(exit_code: i64, stdout: &str) -> ExecOutput {
    ExecOutput {
        exit_code,
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    }
}

type ExecHook = dyn Fn(&ExecCall, Option<&[u8]>) -> Result<ExecOutput> + Send + Sync;
type Intercept = dyn Fn(&ExecCall) -> Option<Result<ExecOutput>> + Send + Sync;
/// What [`Recording::before`] runs before a call is forwarded.
pub type BeforeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;
type Before = dyn Fn(&Op) -> BeforeFuture + Send + Sync;

/// Bytes a [`Recording`] kept when asked to ([`Recording::keep_bytes`]):
/// zeroized when dropped, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Kept {
    /// The exec's user, or the copied file's path.
    pub who: String,
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kept({}, {} bytes)", self.who, self.bytes.len())
    }
}

#[derive(Default)]
struct Log(Mutex<Vec<Call>>);

impl Log {
    fn push<T>(&self, op: Op, since: Instant, result: &Result<T>, code: impl Fn(&T) -> i64) {
        let outcome = match result {
            Ok(v) => Ok(code(v)),
            Err(e) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push(Call {
            op,
            took: since.elapsed(),
            outcome,
        });
    }
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn snapshot(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
}

/// A runtime with scripted answers. Containers are declared with their
/// state; an exec in a missing or stopped one fails as a backend's would,
/// any other exec is answered by the [`on_exec`](FakeRuntime::on_exec)
/// function (default: exit 0, no output).
pub struct FakeRuntime {
    engine: Engine,
    capabilities: Capabilities,
    containers: Mutex<BTreeMap<String, ContainerState>>,
    on_exec: Box<ExecHook>,
    log: Log,
}

impl fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRuntime")
            .field("engine", &self.engine)
            .field("containers", &self.containers)
            .finish_non_exhaustive()
    }
}

impl Default for FakeRuntime {
    fn default() -> Self {
        FakeRuntime::new()
    }
}

impl FakeRuntime {
    /// The endpoint every fake reports.
    pub const ENDPOINT: &'static str = "fake://";

    /// No containers; errors name [`Engine::Docker`] unless
    /// [`engine`](FakeRuntime::engine) says otherwise.
    pub fn new() -> FakeRuntime {
        FakeRuntime {
            engine: Engine::Docker,
            capabilities: Capabilities::default().with_copy(true).with_list(true),
            containers: Mutex::new(BTreeMap::new()),
            on_exec: Box::new(|_, _| Ok(output(0, ""))),
            log: Log::default(),
        }
    }

    /// The engine named in this fake's errors and version.
    pub fn engine(mut self, engine: Engine) -> FakeRuntime {
        self.engine = engine;
        self
    }

    /// Declare a running container.
    pub fn running(self, name: &str) -> FakeRuntime {
        self.container(name, ContainerState::Running)
    }

    /// Declare a container in any state.
    pub fn container(self, name: &str, state: ContainerState) -> FakeRuntime {
        self.containers
            .lock()
            .unwrap()
            .insert(name.to_string(), state);
        self
    }

    /// Change a declared container's state (e.g. it stops between calls).
    pub fn set_state(&self, name: &str, state: ContainerState) {
        self.containers
            .lock()
            .unwrap()
            .insert(name.to_string(), state);
    }

    /// How execs in running containers are answered.
    pub fn on_exec(
        mut self,
        answer: impl Fn(&ExecCall) -> Result<ExecOutput> + Send + Sync + 'static,
    ) -> FakeRuntime {
        self.on_exec = Box::new(move |call, _| answer(call));
        self
    }

    /// How execs are answered, by a function that also sees the stdin
    /// bytes (e.g. one that runs the request as a host process). The
    /// recording still keeps only their length.
    pub fn on_exec_with_stdin(
        mut self,
        answer: impl Fn(&ExecCall, Option<&[u8]>) -> Result<ExecOutput> + Send + Sync + 'static,
    ) -> FakeRuntime {
        self.on_exec = Box::new(answer);
        self
    }

    /// What this fake declares (default: exec as a user, copy, list).
    pub fn capabilities(mut self, capabilities: Capabilities) -> FakeRuntime {
        self.capabilities = capabilities;
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.snapshot()
    }

    /// Every exec so far, in order.
    pub fn execs(&self) -> Vec<ExecCall> {
        self.calls()
            .into_iter()
            .filter_map(|c| c.exec().cloned())
            .collect()
    }

    /// A declared container by name or id: its name and state.
    fn find(&self, container: &str) -> Result<(String, ContainerState)> {
        self.containers
            .lock()
            .unwrap()
            .iter()
            .find(|(name, _)| *name == container || fake_id(name) == container)
            .map(|(name, state)| (name.clone(), state.clone()))
            .ok_or_else(|| Error::ContainerNotFound {
                engine: self.engine,
                container: container.to_string(),
            })
    }

    fn state(&self, container: &str) -> Result<ContainerState> {
        self.find(container).map(|(_, state)| state)
    }

    fn running_or_err(&self, container: &str) -> Result<()> {
        match self.state(container)? {
            ContainerState::Running => Ok(()),
            state => Err(Error::ContainerNotRunning {
                engine: self.engine,
                container: container.to_string(),
                state: state.to_string(),
            }),
        }
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    fn engine(&self) -> Engine {
        self.engine
    }
    fn endpoint(&self) -> &str {
        Self::ENDPOINT
    }
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
    async fn version(&self) -> Result<EngineInfo> {
        let t = Instant::now();
        let r = Ok(EngineInfo {
            engine: self.engine,
            endpoint: Self::ENDPOINT.to_string(),
            version: "0.0.0-fake".to_string(),
            api_version: "0.0".to_string(),
        });
        self.log.push(Op::Version, t, &r, |_| 0);
        r
    }
    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        let t = Instant::now();
        let r = self.find(container).map(|(name, state)| ContainerInfo {
            id: fake_id(&name),
            name,
            state,
        });
        let op = Op::Inspect {
            container: container.to_string(),
        };
        self.log.push(op, t, &r, |_| 0);
        r
    }
    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        let t = Instant::now();
        let call = ExecCall::of(container, &request);
        let stdin = request.stdin.as_deref().map(Vec::as_slice);
        let r = self
            .running_or_err(container)
            .and_then(|()| (self.on_exec)(&call, stdin))
            .and_then(|out| {
                let program = call.argv.first().map_or("", String::as_str);
                bounded(self.engine, container, program, out, call.max_output)
            });
        self.log.push(Op::Exec(call), t, &r, |o| o.exit_code);
        r
    }
    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        let t = Instant::now();
        let r = if self.capabilities.copy {
            self.running_or_err(container)
        } else {
            Err(Error::NotSupported {
                engine: self.engine,
                operation: "copy files into a container",
            })
        };
        let op = Op::Copy {
            container: container.to_string(),
            paths: entries.iter().map(|e| e.path.clone()).collect(),
        };
        self.log.push(op, t, &r, |_| 0);
        r
    }
    /// Running containers whose name matches every `name=` filter
    /// (substring, as Docker's); label filters match nothing (the fake has
    /// no labels).
    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        let t = Instant::now();
        let containers = self.containers.lock().unwrap().clone();
        let r = Ok(containers
            .into_iter()
            .filter(|(_, s)| *s == ContainerState::Running)
            .filter(|(name, _)| {
                filters.iter().all(|f| match f {
                    ContainerFilter::Name(pattern) => name.contains(pattern.as_str()),
                    _ => false,
                })
            })
            .map(|(name, state)| ContainerInfo {
                id: fake_id(&name),
                name,
                state,
            })
            .collect());
        let op = Op::List {
            filters: filters.to_vec(),
        };
        self.log.push(op, t, &r, |_| 0);
        r
    }
}

/// A 64-hex-digit id, as the engines give, derived from the name
/// (FNV-1a, four rounds: distinct for the few names a test declares).
fn fake_id(name: &str) -> String {
    (0u64..4)
        .map(|round| {
            let mut h = 0xcbf2_9ce4_8422_2325u64 ^ round;
            for b in name.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            format!("{h:016x}")
        })
        .collect()
}

/// The backends' output bound, for scripted answers.
fn bounded(
    engine: Engine,
    container: &str,
    program: &str,
    out: ExecOutput,
    limit: usize,
) -> Result<ExecOutput> {
    for (stream, bytes) in [
        (crate::OutputStream::Stdout, &out.stdout),
        (crate::OutputStream::Stderr, &out.stderr),
    ] {
        if bytes.len() > limit {
            return Err(Error::OutputTooLarge {
                engine,
                container: container.to_string(),
                program: program.to_string(),
                stream,
                limit,
            });
        }
    }
    Ok(out)
}

/// Forwards every call to the runtime it wraps and records it. An optional
/// [`intercept`](Recording::intercept) answers chosen execs itself (a fault,
/// a stop), without forwarding them.
pub struct Recording {
    inner: Arc<dyn ContainerRuntime>,
    intercept: Option<Box<Intercept>>,
    before: Option<Box<Before>>,
    keep: bool,
    stdins: Mutex<Vec<Kept>>,
    copied: Mutex<Vec<Kept>>,
    log: Log,
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Recording {
    pub fn new(inner: Arc<dyn ContainerRuntime>) -> Recording {
        Recording {
            inner,
            intercept: None,
            before: None,
            keep: false,
            stdins: Mutex::new(Vec::new()),
            copied: Mutex::new(Vec::new()),
            log: Log::default(),
        }
    }

    /// Run `hook` before every call is forwarded (e.g. stop the container
    /// first); its error becomes the call's result and the call is not
    /// forwarded.
    pub fn before(
        mut self,
        hook: impl Fn(&Op) -> BeforeFuture + Send + Sync + 'static,
    ) -> Recording {
        self.before = Some(Box::new(hook));
        self
    }

    /// Also keep each exec's stdin and each copied file's bytes (for tests
    /// that prove where key bytes go; see [`Kept`]).
    pub fn keep_bytes(mut self) -> Recording {
        self.keep = true;
        self
    }

    /// Each exec's stdin so far, by user ([`keep_bytes`](Self::keep_bytes)).
    pub fn stdins(&self) -> Vec<Kept> {
        self.stdins.lock().unwrap().clone()
    }

    /// Each copied file's bytes so far, by path ([`keep_bytes`](Self::keep_bytes)).
    pub fn copied(&self) -> Vec<Kept> {
        self.copied.lock().unwrap().clone()
    }

    async fn run_before(&self, op: &Op) -> Result<()> {
        match &self.before {
            Some(hook) => hook(op).await,
            None => Ok(()),
        }
    }

    /// How many execs, copies and other calls were made since the last
    /// [`take`](Self::take) (which this clears).
    pub fn take_counts(&self) -> (usize, usize, usize) {
        let calls = self.take();
        let execs = calls.iter().filter(|c| matches!(c.op, Op::Exec(_))).count();
        let copies = calls
            .iter()
            .filter(|c| matches!(c.op, Op::Copy { .. }))
            .count();
        (execs, copies, calls.len() - execs - copies)
    }

    /// Answer an exec instead of forwarding it when `hook` returns `Some`.
    pub fn intercept(
        mut self,
        hook: impl Fn(&ExecCall) -> Option<Result<ExecOutput>> + Send + Sync + 'static,
    ) -> Recording {
        self.intercept = Some(Box::new(hook));
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.snapshot()
    }

    /// Every call so far, clearing the record.
    pub fn take(&self) -> Vec<Call> {
        self.log.take()
    }
}

#[async_trait]
impl ContainerRuntime for Recording {
    fn engine(&self) -> Engine {
        self.inner.engine()
    }
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn version(&self) -> Result<EngineInfo> {
        let t = Instant::now();
        let op = Op::Version;
        let r = match self.run_before(&op).await {
            Ok(()) => self.inner.version().await,
            Err(e) => Err(e),
        };
        self.log.push(op, t, &r, |_| 0);
        r
    }
    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        let t = Instant::now();
        let op = Op::Inspect {
            container: container.to_string(),
        };
        let r = match self.run_before(&op).await {
            Ok(()) => self.inner.inspect(container).await,
            Err(e) => Err(e),
        };
        self.log.push(op, t, &r, |_| 0);
        r
    }
    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        let t = Instant::now();
        let call = ExecCall::of(container, &request);
        if self.keep {
            if let Some(stdin) = &request.stdin {
                self.stdins.lock().unwrap().push(Kept {
                    who: request.user.clone(),
                    bytes: stdin.clone(),
                });
            }
        }
        let op = Op::Exec(call);
        let r = match self.run_before(&op).await {
            Err(e) => Err(e),
            Ok(()) => {
                let Op::Exec(call) = &op else { unreachable!() };
                match self.intercept.as_ref().and_then(|hook| hook(call)) {
                    Some(answer) => answer,
                    None => self.inner.exec(container, request).await,
                }
            }
        };
        self.log.push(op, t, &r, |o| o.exit_code);
        r
    }
    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        let t = Instant::now();
        if self.keep {
            let mut copied = self.copied.lock().unwrap();
            for e in entries {
                if let crate::EntryKind::File(bytes) = &e.kind {
                    copied.push(Kept {
                        who: e.path.clone(),
                        bytes: zeroize::Zeroizing::new(bytes.clone()),
                    });
                }
            }
        }
        let op = Op::Copy {
            container: container.to_string(),
            paths: entries.iter().map(|e| e.path.clone()).collect(),
        };
        let r = match self.run_before(&op).await {
            Ok(()) => self.inner.copy(container, entries).await,
            Err(e) => Err(e),
        };
        self.log.push(op, t, &r, |_| 0);
        r
    }
    /// Forwarded, not recorded (a stream, not a call).
    async fn events(
        &self,
        filters: &[ContainerFilter],
        since: Option<std::time::SystemTime>,
    ) -> Result<crate::EventStream> {
        self.inner.events(filters, since).await
    }
    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        let t = Instant::now();
        let op = Op::List {
            filters: filters.to_vec(),
        };
        let r = match self.run_before(&op).await {
            Ok(()) => self.inner.list(filters).await,
            Err(e) => Err(e),
        };
        self.log.push(op, t, &r, |_| 0);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn fake_fails_like_a_backend_and_records_without_stdin_bytes() {
        block(async {
            let fake = FakeRuntime::new()
                .engine(Engine::Podman)
                .running("up")
                .container("down", ContainerState::Exited);
            let secret = b"PRIVATE".to_vec();
            let out = fake
                .exec("up", ExecRequest::script("cat", ["a"]).stdin(secret))
                .await
                .unwrap();
            assert!(out.success());
            let e = fake.exec("down", ExecRequest::new(["true"])).await;
            assert!(matches!(e, Err(Error::ContainerNotRunning { .. })), "{e:?}");
            let e = fake.exec("gone", ExecRequest::new(["true"])).await;
            assert!(matches!(e, Err(Error::ContainerNotFound { .. })), "{e:?}");
            let calls = fake.calls();
            assert_eq!(calls.len(), 3);
            let first = calls[0].exec().unwrap();
            assert_eq!(first.stdin_len, Some(7));
            assert_eq!(first.script(), Some("cat"));
            assert_eq!(first.script_args(), ["a"]);
            assert!(!format!("{calls:?}").contains("PRIVATE"));
            assert!(calls[2].outcome.as_ref().unwrap_err().contains("gone"));
        })
    }

    #[test]
    fn fake_bounds_scripted_output() {
        block(async {
            let fake = FakeRuntime::new()
                .running("b")
                .on_exec(|_| Ok(output(0, &"x".repeat(100))));
            let e = fake
                .exec("b", ExecRequest::new(["yes"]).max_output(99))
                .await;
            assert!(
                matches!(e, Err(Error::OutputTooLarge { limit: 99, .. })),
                "{e:?}"
            );
        })
    }

    #[test]
    fn recording_intercepts_chosen_execs() {
        block(async {
            let fake = Arc::new(FakeRuntime::new().running("b"));
            let rec = Recording::new(fake.clone())
                .intercept(|call| (call.user == "0").then(|| Ok(output(7, "intercepted"))));
            let root = rec
                .exec("b", ExecRequest::new(["x"]).user("0"))
                .await
                .unwrap();
            assert_eq!(root.exit_code, 7);
            let user = rec
                .exec("b", ExecRequest::new(["x"]).user("1000"))
                .await
                .unwrap();
            assert_eq!(user.exit_code, 0);
            assert_eq!(rec.calls().len(), 2);
            assert_eq!(fake.calls().len(), 1, "only the user's exec was forwarded");
            assert_eq!(rec.take().len(), 2);
            assert!(rec.calls().is_empty());
        })
    }

    #[test]
    fn recording_runs_before_hooks_and_keeps_bytes_out_of_debug() {
        block(async {
            let fake = Arc::new(FakeRuntime::new().running("b"));
            let rec = Recording::new(fake.clone()).keep_bytes().before(|op| {
                let refuse = matches!(op, Op::Exec(c) if c.user == "0");
                Box::pin(async move {
                    if refuse {
                        Err(Error::NotSupported {
                            engine: Engine::Docker,
                            operation: "root",
                        })
                    } else {
                        Ok(())
                    }
                })
            });
            let e = rec
                .exec(
                    "b",
                    ExecRequest::new(["x"]).user("0").stdin(b"SECRET".to_vec()),
                )
                .await;
            assert!(matches!(e, Err(Error::NotSupported { .. })), "{e:?}");
            rec.exec("b", ExecRequest::new(["x"]).user("1000"))
                .await
                .unwrap();
            assert_eq!(fake.calls().len(), 1, "the refused exec was not forwarded");
            assert_eq!(rec.take_counts(), (2, 0, 0));
            let kept = rec.stdins();
            assert_eq!(&kept[0].bytes[..], b"SECRET");
            assert!(!format!("{kept:?}").contains("SECRET"));
        })
    }
}
