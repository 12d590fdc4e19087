//! Per-engine test environments: connect, make sure the test image is there,
//! start a throwaway bottle, run the check, remove every container it made.

use crate::image::{ensure_image, ImageKind, ImageSpec, ImageUser};
use bottle_containerd::ContainerdRuntime;
use bottle_docker::DockerRuntime;
use bottle_podman::PodmanRuntime;
pub use bottle_runtime::Engine;
use bottle_runtime::{
    ContainerAdmin, ContainerInfo, ContainerRuntime, Error, ExecOutput, ExecRequest, RunSpec,
};
use std::collections::HashMap;
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

/// Where the `readonly` variant's bottle has a writable tmpfs.
pub const READ_ONLY_TMPFS: &[&str] = &["/run", "/tmp"];

/// One entry of the test matrix: an image and how its bottle runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The module name in test paths (`docker::busybox::check_x`).
    pub name: &'static str,
    pub image: ImageKind,
    /// Root filesystem read-only, a tmpfs on each of [`READ_ONLY_TMPFS`].
    pub read_only: bool,
}

impl Variant {
    /// Today's Debian-like image: dash, GNU tools, `node` (1000).
    pub const DEBIAN: Variant = Variant::image(ImageKind::Debian, "debian");
    /// Busybox userland (Alpine-like) plus OpenSSH and socat.
    pub const BUSYBOX: Variant = Variant::image(ImageKind::Busybox, "busybox");
    /// The user is `dev`, uid 1001, home `/srv/dev`.
    pub const USER1001: Variant = Variant::image(ImageKind::User1001, "user1001");
    /// `node` has passwordless sudo; set-id-root programs exist.
    pub const SUDO: Variant = Variant::image(ImageKind::Sudo, "sudo");
    /// Fedora/UBI-like: GNU tools with bash as `/bin/sh`.
    pub const BASH: Variant = Variant::image(ImageKind::Bash, "bash");
    /// The debian image with a read-only root and tmpfs `/run`, `/tmp`.
    pub const READ_ONLY: Variant = Variant {
        name: "readonly",
        image: ImageKind::Debian,
        read_only: true,
    };
    /// The whole matrix; `engine_tests!(images = all, …)` runs these (same
    /// order).
    pub const ALL: [Variant; 6] = [
        Variant::DEBIAN,
        Variant::BUSYBOX,
        Variant::USER1001,
        Variant::SUDO,
        Variant::READ_ONLY,
        Variant::BASH,
    ];

    const fn image(image: ImageKind, name: &'static str) -> Variant {
        Variant {
            name,
            image,
            read_only: false,
        }
    }

    /// What the image contains (users, userland, sudo).
    pub fn spec(self) -> &'static ImageSpec {
        self.image.spec()
    }

    /// The bottle's unprivileged user.
    pub fn user(self) -> ImageUser {
        self.spec().user
    }

    /// A spec running `cmd` in `image` with this variant's run options.
    pub fn run_spec<I, S>(self, image: impl Into<String>, cmd: I) -> RunSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut spec = RunSpec::new(image, cmd);
        if self.read_only {
            spec.read_only = true;
            spec.tmpfs = READ_ONLY_TMPFS.iter().map(|p| p.to_string()).collect();
        }
        spec
    }
}

/// The variants by the names [`engine_tests!`](crate::engine_tests) takes
/// (`images = [debian, busybox]`): a misspelt name does not compile.
#[allow(non_upper_case_globals)]
pub mod variants {
    use super::Variant;
    pub const debian: Variant = Variant::DEBIAN;
    pub const busybox: Variant = Variant::BUSYBOX;
    pub const user1001: Variant = Variant::USER1001;
    pub const sudo: Variant = Variant::SUDO;
    pub const readonly: Variant = Variant::READ_ONLY;
    pub const bash: Variant = Variant::BASH;
}

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
            "containerd" => bottle_containerd::ENGINE,
            _ => {
                return Err(format!(
                    "unknown engine `{name}` (expected docker, podman, containerd)"
                ))
            }
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
        bottle_containerd::ENGINE => {
            let namespace = containerd_namespace();
            let rt = Arc::new(ContainerdRuntime::connect(
                endpoint,
                Some(&namespace),
                timeout,
            )?);
            Connection {
                runtime: rt.clone(),
                admin: rt,
            }
        }
        // An out-of-tree backend runs the conformance library itself.
        Engine::Other(_) => {
            return Err(Error::NotSupported {
                engine,
                operation: "connect from this repository's harness",
            })
        }
    })
}

/// The containerd namespace the tests use: `CONTAINERD_NAMESPACE`, else a
/// scratch namespace of their own ([`CONTAINERD_TEST_NAMESPACE`]), so they
/// never meet `default`'s or Kubernetes' containers.
pub fn containerd_namespace() -> String {
    match std::env::var("CONTAINERD_NAMESPACE") {
        Ok(ns) if !ns.is_empty() => ns,
        _ => CONTAINERD_TEST_NAMESPACE.to_string(),
    }
}

/// See [`containerd_namespace`].
pub const CONTAINERD_TEST_NAMESPACE: &str = "bottle-test";

/// The engines by the names [`engine_tests!`](crate::engine_tests) gives
/// their modules.
#[allow(non_upper_case_globals)]
pub mod engines {
    use super::Engine;
    pub const Docker: Engine = Engine::Docker;
    pub const Podman: Engine = Engine::Podman;
    pub const Containerd: Engine = bottle_containerd::ENGINE;
}

/// Whether `engine` is in [`RUNTIMES_ENV`]; prints the skip when not.
fn requested(engine: Engine, test: &str) -> bool {
    let asked = requested_engines().contains(&engine);
    if !asked {
        notice(&format!(
            "SKIP {test}: {} not in {RUNTIMES_ENV} (={:?})",
            engine.name(),
            std::env::var(RUNTIMES_ENV).unwrap_or_default()
        ));
    }
    asked
}

/// Print a line the test harness does not capture (skips must be visible in
/// a plain `cargo test`); one locked write keeps it whole among libtest's.
fn notice(line: &str) {
    let _ = std::io::stdout()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

/// Everything a check gets: the engine, its runtime, the variant's test image
/// and a running bottle (`/bin/sleep infinity` as PID 1, network `none`,
/// the variant's run options) that is removed when the check ends, also when
/// it panics.
#[derive(Debug)]
pub struct TestEnv {
    engine: Engine,
    variant: Variant,
    check: &'static str,
    conn: Connection,
    image: String,
    bottle: ContainerInfo,
    /// Containers to remove at the end, the bottle included.
    owned: Mutex<Vec<String>>,
}

impl TestEnv {
    /// Connect, ensure the `debian` image, start the bottle. `None` (after
    /// printing why) when the engine is not asked for, or is unreachable and
    /// not required. Panics on every other failure.
    pub async fn setup(engine: Engine, check: &'static str) -> Option<TestEnv> {
        TestEnv::setup_variant(engine, Variant::DEBIAN, check).await
    }

    /// [`setup`](Self::setup) for `variant`: its image, its run options.
    pub async fn setup_variant(
        engine: Engine,
        variant: Variant,
        check: &'static str,
    ) -> Option<TestEnv> {
        let test = test_name(engine, variant, check);
        if !requested(engine, &test) {
            return None;
        }
        let conn = match connect(engine, None) {
            Ok(conn) => conn,
            Err(e) => return unreachable(&test, engine, "(default endpoint)", &e),
        };
        TestEnv::setup_on(&test, engine, variant, check, conn).await
    }

    /// [`setup`](Self::setup) with the runtime under test reached another
    /// way (tcp+TLS, `ssh://`): `connect` gives a [`Connection`] whose
    /// `runtime` is that transport and whose `admin` the usual side of the
    /// same engine, which imports the image and starts the bottle. The test
    /// is named `<engine>_<transport>::<check>`; a `connect` error (no sshd,
    /// no second daemon) skips like an unreachable engine, or fails when
    /// engines are required.
    pub async fn setup_over(
        engine: Engine,
        transport: &str,
        check: &'static str,
        connect: impl FnOnce() -> Result<Connection, String>,
    ) -> Option<TestEnv> {
        let test = format!("{}_{transport}::{check}", engine.name());
        if !requested(engine, &test) {
            return None;
        }
        let conn = match connect() {
            Ok(conn) => conn,
            Err(why) if engines_required() => {
                panic!("{test}: {why} (engines are required: CI=true or {REQUIRE_ENV}=1)")
            }
            Err(why) => {
                notice(&format!("SKIP {test}: {why}"));
                return None;
            }
        };
        TestEnv::setup_on(&test, engine, Variant::DEBIAN, check, conn).await
    }

    async fn setup_on(
        test: &str,
        engine: Engine,
        variant: Variant,
        check: &'static str,
        conn: Connection,
    ) -> Option<TestEnv> {
        if let Err(e) = conn.runtime.version().await {
            return unreachable(test, engine, conn.runtime.endpoint(), &e);
        }
        let image = match image_for(engine, variant.image, conn.admin.as_ref()).await {
            Ok(image) => image,
            Err(e) => panic!("{test}: {e}"),
        };
        let name = unique_name(engine, variant, check, "bottle");
        let mut spec = variant.run_spec(image.clone(), ["/bin/sleep", "infinity"]);
        spec.name = Some(name.clone());
        spec.labels = labels(check);
        let mut env = TestEnv {
            engine,
            variant,
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

    /// Which image and run options the bottle has.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// What the bottle's image contains (userland, users, sudo).
    pub fn image_spec(&self) -> &'static ImageSpec {
        self.variant.spec()
    }

    /// The bottle's unprivileged user's name (`node`, or `dev` on `user1001`).
    pub fn user(&self) -> &'static str {
        self.variant.user().name
    }

    /// The user's uid (1000, or 1001 on `user1001`).
    pub fn uid(&self) -> u32 {
        self.variant.user().uid
    }

    /// The user's primary gid (the uid: each user has its own group).
    pub fn gid(&self) -> u32 {
        self.variant.user().gid()
    }

    /// The user's home (`/home/node`, or `/srv/dev` on `user1001`).
    pub fn home(&self) -> &'static str {
        self.variant.user().home
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

    /// The variant's test image reference (`bottle-test:<hash>`, or
    /// `bottle-test:<variant>-<hash>`).
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
        unique_name(self.engine, self.variant, self.check, what)
    }

    /// Start another container, removed with the bottle at the end of the
    /// check. An unnamed spec gets a unique name; the test label is added.
    /// E.g. an sshd sharing the bottle's network namespace:
    /// `spec.network = NetworkMode::Container(env.bottle().into())`.
    pub async fn run_container(&self, mut spec: RunSpec) -> Result<ContainerInfo, Error> {
        let name = spec
            .name
            .get_or_insert_with(|| unique_name(self.engine, self.variant, self.check, "extra"))
            .clone();
        spec.labels.extend(labels(self.check));
        self.owned.lock().unwrap().push(name);
        self.conn.admin.run(&spec).await
    }

    /// Remove the container `name` at the end of the check too (e.g. one
    /// the code under test creates, like an agent sidecar).
    pub fn own(&self, name: impl Into<String>) {
        self.owned.lock().unwrap().push(name.into());
    }

    /// Start another bottle like the main one (the variant's image and run
    /// options, sleeping PID 1, network none).
    pub async fn start_bottle(&self) -> Result<ContainerInfo, Error> {
        self.run_container(
            self.variant
                .run_spec(self.image.clone(), ["/bin/sleep", "infinity"]),
        )
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

    /// Run `argv` in the bottle as the variant's user ([`uid`](Self::uid)).
    pub async fn exec_as_user(&self, argv: &[&str]) -> ExecOutput {
        self.exec_as(&self.uid().to_string(), argv).await
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
        // The admin side: the runtime under test may be another transport.
        let endpoint = self.conn.admin.endpoint().to_string();
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
    bottle_runtime::error_texts(e)
        .iter()
        .skip(1)
        .map(|t| format!(": {t}"))
        .collect()
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

/// `docker::check_x` on `debian` (as before the matrix), else
/// `docker::busybox::check_x`.
fn test_name(engine: Engine, variant: Variant, check: &str) -> String {
    if variant == Variant::DEBIAN {
        format!("{}::{check}", engine.name())
    } else {
        format!("{}::{}::{check}", engine.name(), variant.name)
    }
}

fn unique_name(engine: Engine, variant: Variant, check: &str, what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let check: String = check
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let variant = if variant == Variant::DEBIAN {
        String::new()
    } else {
        format!("{}-", variant.name)
    };
    format!(
        "bottle-test-{}-{variant}{check}-{what}-{}-{n}",
        engine.name(),
        std::process::id()
    )
}

/// The test image `kind` on `engine` at the admin's endpoint (a second
/// daemon has its own images), imported at most once per process.
async fn image_for(
    engine: Engine,
    kind: ImageKind,
    admin: &dyn ContainerAdmin,
) -> Result<String, String> {
    type Cell = Arc<tokio::sync::Mutex<Option<String>>>;
    type Key = (Engine, String, ImageKind);
    static CELLS: OnceLock<Mutex<HashMap<Key, Cell>>> = OnceLock::new();
    let cell = CELLS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((engine, admin.endpoint().to_string(), kind))
        .or_default()
        .clone();
    // Held across the import so parallel tests do not all import it at once.
    let mut cached = cell.lock().await;
    if let Some(image) = cached.as_ref() {
        return Ok(image.clone());
    }
    let image = ensure_image(admin, kind)
        .await
        .map_err(|e| format!("{e}{}", source_chain(&e)))?;
    *cached = Some(image.clone());
    Ok(image)
}

/// Run one check against one engine on the `debian` variant: set up, run
/// `body` on its own task under [`CHECK_TIMEOUT_ENV`], clean up, then
/// re-raise a panic. What the [`engine_tests!`](crate::engine_tests) macro
/// calls.
pub async fn run_check<F, Fut>(engine: Engine, check: &'static str, body: F)
where
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_variant_check(engine, Variant::DEBIAN, check, check_timeout(), body).await
}

/// [`run_check`] on `variant`: what `engine_tests!(images = […], …)` calls.
pub async fn run_check_on<F, Fut>(engine: Engine, variant: Variant, check: &'static str, body: F)
where
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_variant_check(engine, variant, check, check_timeout(), body).await
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
    run_variant_check(engine, Variant::DEBIAN, check, limit, body).await
}

async fn run_variant_check<F, Fut>(
    engine: Engine,
    variant: Variant,
    check: &'static str,
    limit: Duration,
    body: F,
) where
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let env = TestEnv::setup_variant(engine, variant, check).await;
    run_in(env, test_name(engine, variant, check), limit, body).await
}

/// [`run_check`] over another transport (see [`TestEnv::setup_over`]):
/// what a transport's conformance module calls for each check.
pub async fn run_check_over<C, F, Fut>(
    engine: Engine,
    transport: &'static str,
    check: &'static str,
    connect: C,
    body: F,
) where
    C: FnOnce() -> Result<Connection, String>,
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let env = TestEnv::setup_over(engine, transport, check, connect).await;
    let test = format!("{}_{transport}::{check}", engine.name());
    run_in(env, test, check_timeout(), body).await
}

async fn run_in<F, Fut>(env: Option<TestEnv>, test: String, limit: Duration, body: F)
where
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(env) = env else {
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
        Ok(Err(e)) => panic!("{test}: check task failed: {e}"),
        Err(_) => panic!("{test}: timed out after {limit:?} (raise {CHECK_TIMEOUT_ENV})"),
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
/// `podman::check_x`, on the `debian` variant. Each check is
/// `async fn check_x(env: &TestEnv)` in the module that invokes the macro
/// (once per module: it defines `mod docker` and `mod podman`). The invoking
/// crate needs `tokio` (with `macros`, `rt-multi-thread`). See the crate docs
/// for an example.
///
/// `engine_tests!(images = [debian, busybox], check_x, …)` runs each check on
/// each listed [`variants`](crate::harness::variants) too:
/// `docker::debian::check_x`, `docker::busybox::check_x`,
/// `podman::debian::check_x`, … `images = all` lists every variant
/// ([`Variant::ALL`](crate::harness::Variant::ALL)).
#[macro_export]
macro_rules! engine_tests {
    (@matrix $module:ident, $engine:ident, [$($variant:ident),+], $checks:tt) => {
        mod $module {
            $( $crate::engine_tests!(@variant $variant, $engine, $checks); )+
        }
    };
    (@variant $variant:ident, $engine:ident, ($($check:ident),+)) => {
        mod $variant {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    $crate::harness::run_check_on(
                        $crate::harness::engines::$engine,
                        $crate::harness::variants::$variant,
                        stringify!($check),
                        |env| async move { super::super::$check(&env).await },
                    )
                    .await
                }
            )+
        }
    };
    // The names of `Variant::ALL`, in order.
    (images = all, $($check:ident),+ $(,)?) => {
        // A variant added to `Variant::ALL` must be added here too.
        const _: () = assert!($crate::harness::Variant::ALL.len() == 6);
        $crate::engine_tests!(
            images = [debian, busybox, user1001, sudo, readonly, bash],
            $($check),+
        );
    };
    (images = [$($variant:ident),+ $(,)?], $($check:ident),+ $(,)?) => {
        $crate::engine_tests!(@matrix docker, Docker, [$($variant),+], ($($check),+));
        $crate::engine_tests!(@matrix podman, Podman, [$($variant),+], ($($check),+));
        $crate::engine_tests!(@matrix containerd, Containerd, [$($variant),+], ($($check),+));
    };
    (@engine $module:ident, $engine:ident, $($check:ident),+) => {
        mod $module {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    $crate::harness::run_check(
                        $crate::harness::engines::$engine,
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
        $crate::engine_tests!(@engine containerd, Containerd, $($check),+);
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
        assert_eq!(
            parse_engines("containerd,docker").unwrap(),
            vec![Engine::Other("containerd"), Engine::Docker]
        );
    }

    #[test]
    fn unique_names_differ_and_are_valid() {
        let a = unique_name(Engine::Docker, Variant::DEBIAN, "check_x", "bottle");
        let b = unique_name(Engine::Docker, Variant::DEBIAN, "check_x", "bottle");
        assert_ne!(a, b);
        assert!(a.starts_with("bottle-test-docker-check-x-bottle-"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let c = unique_name(Engine::Podman, Variant::READ_ONLY, "check_x", "bottle");
        assert!(c.starts_with("bottle-test-podman-readonly-check-x-"), "{c}");
        assert_eq!(
            test_name(Engine::Docker, Variant::DEBIAN, "check_x"),
            "docker::check_x"
        );
        assert_eq!(
            test_name(Engine::Podman, Variant::BUSYBOX, "check_x"),
            "podman::busybox::check_x"
        );
    }

    #[test]
    fn variants_by_name_match_the_table() {
        let by_name = [
            variants::debian,
            variants::busybox,
            variants::user1001,
            variants::sudo,
            variants::readonly,
            variants::bash,
        ];
        assert_eq!(by_name, Variant::ALL);
        for v in Variant::ALL {
            // Only the read-only variant is not named after its image.
            assert_eq!(v.name == v.image.name(), !v.read_only, "{v:?}");
        }
        let ro = Variant::READ_ONLY.run_spec("i", ["true"]);
        assert!(ro.read_only);
        assert_eq!(ro.tmpfs, ["/run", "/tmp"]);
        let rw = Variant::SUDO.run_spec("i", ["true"]);
        assert!(!rw.read_only && rw.tmpfs.is_empty());
        assert_eq!(Variant::USER1001.user().home, "/srv/dev");
    }

    /// The repository's own shell scripts (CI's entry point, engines,
    /// tests, fuzzing, the remote and TLS fixtures) are POSIX sh: shellcheck
    /// clean and parsed by dash and busybox, like the scripts bottle runs
    /// in containers. In CI (`CI=true`) a missing tool fails the test.
    #[test]
    fn the_repository_scripts_pass_shellcheck_dash_and_busybox() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut scripts: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("scripts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sh"))
            .collect();
        scripts.push(root.join(".ci/run"));
        scripts.sort();
        assert!(scripts.len() >= 6, "{scripts:?}");
        let checkers: [(&str, &[&str]); 3] = [
            ("shellcheck", &["-S", "style"]),
            ("dash", &["-n"]),
            ("busybox", &["sh", "-n"]),
        ];
        for (tool, args) in checkers {
            if std::process::Command::new(tool)
                .arg("--help")
                .output()
                .is_err()
            {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{tool} is not installed (scripts/engines.sh installs it)"
                );
                eprintln!("SKIP: {tool} is not installed");
                continue;
            }
            for script in &scripts {
                let out = std::process::Command::new(tool)
                    .args(args)
                    .arg(script)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{tool} {args:?} {}:\n{}{}",
                    script.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// The row of docs/architecture.md's "Test images" table for `v`.
    fn docs_row(v: Variant) -> String {
        let spec = v.spec();
        let userland = match spec.userland {
            crate::image::Userland::Debian => "Debian: dash, GNU tools",
            crate::image::Userland::Busybox => "busybox ash and applets, OpenSSH and socat",
            crate::image::Userland::Bash => "bash as `/bin/sh`, GNU tools",
        };
        let u = spec.user;
        let mut how = Vec::new();
        if spec.sudo {
            how.push("passwordless sudo, set-id-root programs");
        }
        if v.read_only {
            how.push("read-only root, tmpfs `/run` and `/tmp`");
        }
        let how = if how.is_empty() {
            "-".to_string()
        } else {
            how.join("; ")
        };
        format!(
            "| `{}` | `{}` | {userland} | `{}` ({}), `{}` | {how} |",
            v.name,
            v.image.name(),
            u.name,
            u.uid,
            u.home
        )
    }

    /// The docs list exactly the test matrix: one table, checked against
    /// [`Variant::ALL`] (it was written out by hand in several places, and
    /// two of them had missed an image).
    #[test]
    fn the_docs_list_the_test_images_as_they_are() {
        let docs = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/architecture.md"
        ))
        .unwrap();
        let start = docs.find("### Test images").expect("a Test images section");
        let rows: Vec<&str> = docs[start..]
            .lines()
            .skip_while(|l| !l.starts_with("| `"))
            .take_while(|l| l.starts_with("| `"))
            .collect();
        let expected: Vec<String> = Variant::ALL.into_iter().map(docs_row).collect();
        assert_eq!(rows, expected, "docs/architecture.md's Test images table");
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .unwrap()
            .replace('\n', " ");
        let count = [
            "one", "two", "three", "four", "five", "six", "seven", "eight",
        ][Variant::ALL.len() - 1];
        assert!(
            readme.contains(&format!("the userland matrix on {count}")),
            "README.md should say the userland matrix runs on {count} variants"
        );
    }
}
