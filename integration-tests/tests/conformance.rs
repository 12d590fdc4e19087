//! The `ContainerRuntime` contract, checked unchanged against every engine:
//! the library checks of `bottle_integration_tests::conformance` on each
//! engine's bottle, plus the two that build their own connection (a short
//! timeout, an endpoint nobody answers).
//!
//! Each `check_*` runs once per engine (`docker::check_*`, `podman::check_*`)
//! in its own bottle; see the crate docs for how to run them.

use bottle_integration_tests::{conformance, harness};
use bottle_integration_tests::{engine_tests, TestEnv};
use bottle_runtime::{Error, ExecRequest};
use std::time::{Duration, Instant};

bottle_integration_tests::library_checks!(wrappers);

/// The library check on a new connection with a 2 s timeout.
async fn check_exec_timeout(env: &TestEnv) {
    let timeout = Duration::from_secs(2);
    let conn = harness::connect_with_timeout(env.engine(), None, timeout).unwrap();
    conformance::check_exec_timeout(conn.runtime.as_ref(), env.bottle(), timeout).await;
}

async fn check_unreachable_engine(env: &TestEnv) {
    let socket = format!(
        "/tmp/bottle-test-no-engine-{}-{}.sock",
        env.engine().name(),
        std::process::id()
    );
    let endpoint = format!("unix://{socket}");
    let started = Instant::now();
    let err =
        match harness::connect_with_timeout(env.engine(), Some(&endpoint), Duration::from_secs(10))
        {
            Err(e) => e,
            Ok(conn) => {
                let err = conn.runtime.version().await.unwrap_err();
                // Every call says the same, not only version().
                let exec = conn
                    .runtime
                    .exec(env.bottle(), ExecRequest::new(["true"]))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(exec, Error::Unreachable { .. }),
                    "exec on a dead engine: {exec:?}"
                );
                err
            }
        };
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        Error::Unreachable {
            engine,
            endpoint: named,
            ..
        } => {
            assert_eq!(*engine, env.engine());
            assert!(named.contains(&socket), "endpoint {named:?}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.is_unreachable());
    assert!(err.to_string().contains(&socket), "{err}");
}

// Every library check, then the two that build their own connection.
bottle_integration_tests::library_checks!(then[engine_tests](
    check_exec_timeout,
    check_unreachable_engine,
));
