//! Per-engine test environments: connect, make sure the test image is there,
//! start a throwaway bottle, run the check, remove every container it made.

use crate::image::ensure_test_image;
use bottle_docker::DockerRuntime;
use bottle_podman::PodmanRuntime;
pub use bottle_runtime::Engine;
use bottle_runtime::{
    ContainerAdmin, ContainerInfo, ContainerRuntime, Error, ExecOutput, ExecRequest, RunSpec,
};
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Comma list of engines to test (`docker,podman` when unset or empty).
pub const RUNTIMES_ENV: &str = "BOTTLE_TEST_RUNTIMES";
/// `1`: an unreachable engine fails the test instead of skipping it (also
/// implied by `CI=true`).
pub const REQUIRE_ENV: &str = "BOTTLE_TEST_REQUIRE_ENGINES";
/// Seconds one check may take before it fails (default 300).
pub const CHECK_TIMEOUT_ENV: &str = "BOTTLE_TEST_CHECK_TIMEOUT";

/// Timeout for every single engine call made through the runtimes handed out
/// here.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Label put on every container the harness starts.
pub const TEST_LABEL: &str = "bottle-test";

/// The engines `BOTTLE_TEST_RUNTIMES` asks for. Panics on an unknown name: a
/// typo must not silently skip every test.
pub fn requested_engines() -> Vec<Engine> {
    let raw = std::env::var(RUNTIMES_ENV).unwrap_or_default();
    parse_engines(&raw).unwrap_or_else(|e| panic!("{RUNTIMES_ENV}={raw:?}: {e}"))
}

fn parse_engines(raw: &str) -> Result<Vec<Engine>, String> {
    let raw = if raw.trim().is_empty() {
        "docker,podman"
    } else {
        raw
    };
    let mut engines = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let engine = match name.to_ascii_lowercase().as_str() {
            "docker" => Engine::Docker,
            "podman" => Engine::Podman,
            _ => return Err(format!("unknown engine `{name}` (expected docker, podman)")),
        };
        if !engines.contains(&engine) {
            engines.push(engine);
        }
    }
    Ok(engines)
}

/// Whether an unreachable engine is a failure rather than a skip.
pub fn engines_required() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v == "true");
    ci || required
}

/// One engine connection, as both traits (same object behind both).
#[derive(Debug, Clone)]
pub struct Connection {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub admin: Arc<dyn ContainerAdmin>,
}

/// Connect to `engine` at `endpoint` (`None`: the backend's default, which
/// honours `DOCKER_HOST` / `CONTAINER_HOST`). Does not contact the engine.
pub fn connect(engine: Engine, endpoint: Option<&str>) -> Result<Connection, Error> {
    connect_with_timeout(engine, endpoint, CALL_TIMEOUT)
}

/// [`connect`] with a per-call timeout.
pub fn connect_with_timeout(
    engine: Engine,
    endpoint: Option<&str>,
    timeout: Duration,
) -> Result<Connection, Error> {
    Ok(match engine {
        Engine::Docker => {
            let rt = Arc::new(DockerRuntime::connect(endpoint, timeout)?);
            Connection {
                runtime: rt.clone(),
                admin: rt,
            }
        }
        Engine::Podman => {
            let rt = Arc::new(PodmanRuntime::connect(endpoint, timeout)?);
            Connection {
                runtime: rt.clone(),
                admin: rt,
            }
        }
    })
}

/// Print a line the test harness does not capture (skips must be visible in
/// a plain `cargo test`); one locked write keeps it whole among libtest's.
fn notice(line: &str) {
    let _ = std::io::stdout()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

/// Everything a check gets: the engine, its runtime, the test image and a
/// running bottle (`/bin/sleep infinity` as PID 1, network `none`) that is
/// removed when the check ends, also when it panics.
#[derive(Debug)]
pub struct TestEnv {
    engine: Engine,
    check: &'static str,
    conn: Connection,
    image: String,
    bottle: ContainerInfo,
    /// Containers to remove at the end, the bottle included.
    owned: Mutex<Vec<String>>,
}

impl TestEnv {
    /// Connect, ensure the image, start the bottle. `None` (after printing
    /// why) when the engine is not asked for, or is unreachable and not
    /// required. Panics on every other failure.
    pub async fn setup(engine: Engine, check: &'static str) -> Option<TestEnv> {
        let test = format!("{}::{check}", engine.name());
        if !requested_engines().contains(&engine) {
            notice(&format!(
                "SKIP {test}: {} not in {RUNTIMES_ENV} (={:?})",
                engine.name(),
                std::env::var(RUNTIMES_ENV).unwrap_or_default()
            ));
            return None;
        }
        let conn = match connect(engine, None) {
            Ok(conn) => conn,
            Err(e) => return unreachable(&test, engine, "(default endpoint)", &e),
        };
        if let Err(e) = conn.runtime.version().await {
            return unreachable(&test, engine, conn.runtime.endpoint(), &e);
        }
        let image = match image_for(engine, conn.admin.as_ref()).await {
            Ok(image) => image,
            Err(e) => panic!("{test}: {e}"),
        };
        let name = unique_name(engine, check, "bottle");
        let mut spec = RunSpec::new(image.clone(), ["/bin/sleep", "infinity"]);
        spec.name = Some(name.clone());
        spec.labels = labels(check);
        let mut env = TestEnv {
            engine,
            check,
            conn,
            image,
            // Replaced below; the name is registered first so a failed start
            // is still cleaned up.
            bottle: ContainerInfo {
                id: String::new(),
                name: name.clone(),
                state: bottle_runtime::ContainerState::Created,
            },
            owned: Mutex::new(vec![name.clone()]),
        };
        match env.conn.admin.run(&spec).await {
            Ok(info) => {
                env.bottle = info;
                Some(env)
            }
            Err(e) => panic!("{test}: cannot start the bottle `{name}`: {e} ({e:?})"),
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The check's name, e.g. `check_exit_codes`.
    pub fn check(&self) -> &'static str {
        self.check
    }

    /// The runtime, for the calls under test.
    pub fn rt(&self) -> &dyn ContainerRuntime {
        self.conn.runtime.as_ref()
    }

    pub fn runtime(&self) -> Arc<dyn ContainerRuntime> {
        self.conn.runtime.clone()
    }

    /// Container lifecycle (run, stop, pause, …) on the same engine.
    pub fn admin(&self) -> Arc<dyn ContainerAdmin> {
        self.conn.admin.clone()
    }

    /// The endpoint the runtime talks to (pass it to `bottlectl`).
    pub fn endpoint(&self) -> &str {
        self.conn.runtime.endpoint()
    }

    /// The test image reference (`bottle-test:<hash>`).
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The bottle's name.
    pub fn bottle(&self) -> &str {
        &self.bottle.name
    }

    /// The bottle as inspected right after it started.
    pub fn bottle_info(&self) -> &ContainerInfo {
        &self.bottle
    }

    /// A container name no other test uses, e.g. for [`run_container`](Self::run_container).
    pub fn unique_name(&self, what: &str) -> String {
        unique_name(self.engine, self.check, what)
    }

    /// Start another container, removed with the bottle at the end of the
    /// check. An unnamed spec gets a unique name; the test label is added.
    /// E.g. an sshd sharing the bottle's network namespace:
    /// `spec.network = NetworkMode::Container(env.bottle().into())`.
    pub async fn run_container(&self, mut spec: RunSpec) -> Result<ContainerInfo, Error> {
        let name = spec
            .name
            .get_or_insert_with(|| unique_name(self.engine, self.check, "extra"))
            .clone();
        spec.labels.extend(labels(self.check));
        self.owned.lock().unwrap().push(name);
        self.conn.admin.run(&spec).await
    }

    /// Start another bottle like the main one (test image, sleeping PID 1,
    /// network none).
    pub async fn start_bottle(&self) -> Result<ContainerInfo, Error> {
        self.run_container(RunSpec::new(self.image.clone(), ["/bin/sleep", "infinity"]))
            .await
    }

    /// Run a shell script as root in the bottle (`args` as `$1`, …) and
    /// return its stdout; panics, showing stderr, unless it exits 0.
    pub async fn sh(&self, script: &str, args: &[&str]) -> String {
        let out = self
            .rt()
            .exec_script(self.bottle(), script, args, None)
            .await
            .unwrap_or_else(|e| panic!("script {script:?} in {}: {e} ({e:?})", self.bottle()));
        assert_success(&out, script);
        out.stdout_lossy()
    }

    /// Run `argv` in the bottle as `user`; panics on an engine error (not on
    /// a non-zero exit).
    pub async fn exec_as(&self, user: &str, argv: &[&str]) -> ExecOutput {
        self.rt()
            .exec(
                self.bottle(),
                ExecRequest::new(argv.iter().copied()).user(user),
            )
            .await
            .unwrap_or_else(|e| panic!("exec {argv:?} as {user:?}: {e} ({e:?})"))
    }

    /// Remove every container this environment started. Errors are printed,
    /// not raised: cleanup must not hide the check's own outcome.
    pub async fn cleanup(&self) {
        let names = std::mem::take(&mut *self.owned.lock().unwrap());
        for name in names.iter().rev() {
            if let Err(e) = self.conn.admin.remove(name).await {
                notice(&format!("cleanup: cannot remove container `{name}`: {e}"));
            }
        }
    }
}

// Last resort (setup panicked half way, or the check was never run to the
// end): remove leftovers from a fresh runtime on its own thread, because this
// may run during unwinding inside another runtime.
impl Drop for TestEnv {
    fn drop(&mut self) {
        let names = std::mem::take(self.owned.get_mut().unwrap_or_else(|p| p.into_inner()));
        if names.is_empty() {
            return;
        }
        let engine = self.engine;
        let endpoint = self.conn.runtime.endpoint().to_string();
        let _ = std::thread::spawn(move || remove_blocking(engine, &endpoint, &names)).join();
    }
}

fn remove_blocking(engine: Engine, endpoint: &str, names: &[String]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let Ok(conn) = connect_with_timeout(engine, Some(endpoint), Duration::from_secs(30)) else {
            return;
        };
        for name in names.iter().rev() {
            if let Err(e) = conn.admin.remove(name).await {
                notice(&format!("cleanup: cannot remove container `{name}`: {e}"));
            }
        }
    });
}

fn unreachable(test: &str, engine: Engine, endpoint: &str, e: &Error) -> Option<TestEnv> {
    let message = e.to_string();
    let why = if message.contains(endpoint) {
        format!("{test}: {message}{}", source_chain(e))
    } else {
        format!(
            "{test}: {engine} at {endpoint}: {message}{}",
            source_chain(e)
        )
    };
    if engines_required() {
        panic!("{why} (engines are required: CI=true or {REQUIRE_ENV}=1)");
    }
    notice(&format!(
        "SKIP {why} (set {RUNTIMES_ENV} to leave it out, or start it with scripts/engines.sh)"
    ));
    None
}

/// `: cause: cause …` for an error's sources.
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Panic with the exit code and both streams unless `out` is a success.
pub fn assert_success(out: &ExecOutput, what: &str) {
    assert!(
        out.success(),
        "{what}: exit code {}\nstdout: {}\nstderr: {}",
        out.exit_code,
        out.stdout_lossy(),
        out.stderr_lossy()
    );
}

fn labels(check: &str) -> Vec<(String, String)> {
    vec![
        (TEST_LABEL.to_string(), "1".to_string()),
        (format!("{TEST_LABEL}.check"), check.to_string()),
    ]
}

fn unique_name(engine: Engine, check: &str, what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let check: String = check
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "bottle-test-{}-{check}-{what}-{}-{n}",
        engine.name(),
        std::process::id()
    )
}

/// The test image on `engine`, imported at most once per process.
async fn image_for(engine: Engine, admin: &dyn ContainerAdmin) -> Result<String, String> {
    static DOCKER: OnceLock<tokio::sync::Mutex<Option<String>>> = OnceLock::new();
    static PODMAN: OnceLock<tokio::sync::Mutex<Option<String>>> = OnceLock::new();
    let cell = match engine {
        Engine::Docker => &DOCKER,
        Engine::Podman => &PODMAN,
    };
    // Held across the import so parallel tests do not all import at once.
    let mut cached = cell.get_or_init(Default::default).lock().await;
    if let Some(image) = cached.as_ref() {
        return Ok(image.clone());
    }
    let image = ensure_test_image(admin)
        .await
        .map_err(|e| format!("{e}{}", source_chain(&e)))?;
    *cached = Some(image.clone());
    Ok(image)
}

/// Run one check against one engine: set up, run `body` on its own task
/// under [`CHECK_TIMEOUT_ENV`], clean up, then re-raise a panic. What the
/// [`engine_tests!`](crate::engine_tests) macro calls.
pub async fn run_check<F, Fut>(engine: Engine, check: &'static str, body: F)
where
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_check_with_timeout(engine, check, check_timeout(), body).await
}

/// [`run_check`] with an explicit time limit for the check.
pub async fn run_check_with_timeout<F, Fut>(
    engine: Engine,
    check: &'static str,
    limit: Duration,
    body: F,
) where
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(env) = TestEnv::setup(engine, check).await else {
        return;
    };
    let env = Arc::new(env);
    let mut task = tokio::spawn(body(env.clone()));
    let outcome = tokio::time::timeout(limit, &mut task).await;
    if outcome.is_err() {
        task.abort();
        let _ = task.await;
    }
    env.cleanup().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("{}::{check}: check task failed: {e}", engine.name()),
        Err(_) => panic!(
            "{}::{check}: timed out after {limit:?} (raise {CHECK_TIMEOUT_ENV})",
            engine.name()
        ),
    }
}

fn check_timeout() -> Duration {
    std::env::var(CHECK_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300))
}

/// Generate one `#[tokio::test]` per engine per check: `docker::check_x`,
/// `podman::check_x`. Each check is `async fn check_x(env: &TestEnv)` in the
/// module that invokes the macro (once per module: it defines `mod docker`
/// and `mod podman`). The invoking crate needs `tokio` (with `macros`,
/// `rt-multi-thread`). See the crate docs for an example.
#[macro_export]
macro_rules! engine_tests {
    (@engine $module:ident, $engine:ident, $($check:ident),+) => {
        mod $module {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    $crate::harness::run_check(
                        $crate::harness::Engine::$engine,
                        stringify!($check),
                        |env| async move { super::$check(&env).await },
                    )
                    .await
                }
            )+
        }
    };
    ($($check:ident),+ $(,)?) => {
        $crate::engine_tests!(@engine docker, Docker, $($check),+);
        $crate::engine_tests!(@engine podman, Podman, $($check),+);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_lists() {
        assert_eq!(
            parse_engines("").unwrap(),
            vec![Engine::Docker, Engine::Podman]
        );
        assert_eq!(parse_engines(" podman ").unwrap(), vec![Engine::Podman]);
        assert_eq!(
            parse_engines("Docker,docker,").unwrap(),
            vec![Engine::Docker]
        );
        assert!(parse_engines("docker,dokcer")
            .unwrap_err()
            .contains("dokcer"));
    }

    #[test]
    fn unique_names_differ_and_are_valid() {
        let a = unique_name(Engine::Docker, "check_x", "bottle");
        let b = unique_name(Engine::Docker, "check_x", "bottle");
        assert_ne!(a, b);
        assert!(a.starts_with("bottle-test-docker-check-x-bottle-"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
