//! The harness's own promises: containers are removed whatever happens to the
//! check, and an unreachable engine is a skip locally but a failure in CI.

use bottle_integration_tests::harness::{self, Engine, TestEnv, REQUIRE_ENV, RUNTIMES_ENV};
use bottle_runtime::{ContainerRuntime, Error};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Assert that none of `names` exists any more on `engine`.
async fn assert_removed(engine: Engine, names: &[String]) {
    let conn = harness::connect(engine, None).unwrap();
    for name in names {
        match conn.runtime.inspect(name).await {
            Err(Error::ContainerNotFound { .. }) => {}
            other => panic!("{engine}: container `{name}` was left behind: {other:?}"),
        }
    }
}

/// A check that starts a second container, records both names, then fails
/// in the way `fail` chooses. Returns the names (empty: engine skipped) and
/// the outcome of the test task.
async fn run_failing_check(
    engine: Engine,
    limit: Duration,
    fail: fn() -> Option<&'static str>,
) -> (Vec<String>, Result<(), tokio::task::JoinError>) {
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    let outcome = tokio::spawn(harness::run_check_with_timeout(
        engine,
        "check_fails_on_purpose",
        limit,
        move |env| async move {
            let extra = env.start_bottle().await.unwrap();
            assert!(extra.is_running());
            seen.lock()
                .unwrap()
                .extend([env.bottle().to_string(), extra.name]);
            match fail() {
                Some(msg) => panic!("{msg}"),
                None => std::future::pending::<()>().await,
            }
        },
    ))
    .await;
    let names = names.lock().unwrap().clone();
    (names, outcome)
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

async fn panicking_check_removes_its_containers(engine: Engine) {
    let (names, outcome) = run_failing_check(engine, Duration::from_secs(120), || {
        Some("deliberate failure (expected by this test)")
    })
    .await;
    if names.is_empty() {
        assert!(outcome.is_ok(), "setup failed: {outcome:?}");
        return; // engine skipped, reason printed
    }
    assert_eq!(names.len(), 2);
    let err = outcome.expect_err("the check's panic must fail the test");
    assert!(err.is_panic());
    assert!(panic_text(err).contains("deliberate failure"));
    assert_removed(engine, &names).await;
}

async fn timed_out_check_fails_and_removes_its_containers(engine: Engine) {
    let (names, outcome) = run_failing_check(engine, Duration::from_secs(5), || None).await;
    if names.is_empty() {
        assert!(outcome.is_ok(), "setup failed: {outcome:?}");
        return;
    }
    let err = outcome.expect_err("a hung check must fail");
    let text = panic_text(err);
    assert!(text.contains("timed out after 5s"), "{text}");
    assert_removed(engine, &names).await;
}

async fn dropped_env_removes_its_containers(engine: Engine) {
    let Some(env) = TestEnv::setup(engine, "check_dropped").await else {
        return;
    };
    let extra = env.start_bottle().await.unwrap();
    let names = vec![env.bottle().to_string(), extra.name];
    assert!(env.rt().inspect(&names[0]).await.unwrap().is_running());
    drop(env); // no cleanup() call: the Drop fallback has to do it
    assert_removed(engine, &names).await;
}

async fn extra_containers_share_the_bottle_network(engine: Engine) {
    let Some(env) = TestEnv::setup(engine, "check_shared_netns").await else {
        return;
    };
    // A listener in a sidecar is reachable on the bottle's loopback.
    let mut spec = bottle_runtime::RunSpec::new(
        env.image(),
        [
            "socat",
            "TCP-LISTEN:7777,bind=127.0.0.1,reuseaddr,fork",
            "SYSTEM:echo hello-from-sidecar",
        ],
    );
    spec.network = bottle_runtime::NetworkMode::Container(env.bottle().to_string());
    let sidecar = env.run_container(spec).await.unwrap();
    assert!(sidecar.is_running());
    let out = env
        .sh(
            "for i in $(seq 1 50); do socat -u TCP:127.0.0.1:7777 - 2>/dev/null && exit 0; sleep 0.1; done; exit 1",
            &[],
        )
        .await;
    assert_eq!(out, "hello-from-sidecar\n");
    env.cleanup().await;
    assert_removed(engine, &[env.bottle().to_string(), sidecar.name]).await;
}

macro_rules! per_engine {
    ($($test:ident),+ $(,)?) => {
        mod docker {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Engine::Docker).await
                }
            )+
        }
        mod podman {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Engine::Podman).await
                }
            )+
        }
    };
}

per_engine!(
    panicking_check_removes_its_containers,
    timed_out_check_fails_and_removes_its_containers,
    dropped_env_removes_its_containers,
    extra_containers_share_the_bottle_network,
);

mod policy {
    use super::*;

    // The skip/fail policy, seen from outside: this test binary runs one of its
    // own engine tests with the engine pointed at a socket nobody listens on.

    async fn check_trivial(env: &TestEnv) {
        assert!(env.bottle_info().is_running());
    }

    bottle_integration_tests::engine_tests!(check_trivial);

    /// Run `<engine>::check_trivial` in a child process against a dead endpoint.
    fn run_against_dead_engine(engine: Engine, required: Option<(&str, &str)>) -> (bool, String) {
        let socket = format!(
            "/tmp/bottle-test-dead-{}-{}.sock",
            engine.name(),
            std::process::id()
        );
        let host_var = match engine {
            Engine::Docker => "DOCKER_HOST",
            Engine::Podman => "CONTAINER_HOST",
            Engine::Other(name) => unreachable!("no {name} engine in this repository's suites"),
        };
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            &format!("policy::{}::check_trivial", engine.name()),
            "--exact",
            "--nocapture",
        ])
        .env(RUNTIMES_ENV, engine.name())
        .env(host_var, format!("unix://{socket}"))
        .env_remove("CI")
        .env_remove(REQUIRE_ENV);
        if let Some((key, value)) = required {
            cmd.env(key, value);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&socket),
            "output does not name {socket}:\n{text}"
        );
        assert!(
            text.contains("1 passed") || text.contains("1 failed"),
            "{text}"
        );
        (out.status.success(), text)
    }

    #[test]
    fn unreachable_engine_is_a_skip_locally() {
        for engine in [Engine::Docker, Engine::Podman] {
            let (ok, text) = run_against_dead_engine(engine, None);
            assert!(ok, "{text}");
            assert!(
                text.contains(&format!("SKIP {}::check_trivial", engine.name())),
                "{text}"
            );
        }
    }

    #[test]
    fn unreachable_engine_fails_in_ci() {
        for engine in [Engine::Docker, Engine::Podman] {
            for required in [("CI", "true"), (REQUIRE_ENV, "1")] {
                let (ok, text) = run_against_dead_engine(engine, Some(required));
                assert!(!ok, "{required:?}: a dead engine passed:\n{text}");
                assert!(text.contains("unreachable"), "{text}");
            }
        }
    }
}
