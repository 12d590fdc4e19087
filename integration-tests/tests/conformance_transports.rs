//! The `ContainerRuntime` conformance checks of `tests/conformance.rs`, run
//! unchanged with the runtime under test on another transport
//! (`bottle_integration_tests::transports`): `docker_tls::check_*` (a second
//! dockerd with `--tlsverify`, client certificates), `docker_ssh::check_*`
//! and `podman_ssh::check_*` (`ssh://` to this machine's sshd, the engine
//! socket forwarded), `podman_tcp::check_*` (a Podman service on tcp). The
//! bottle is made over the engine's Unix socket; every call under test goes
//! over the transport. Checks are gated by the runtime's declared
//! capabilities, as on the Unix socket.
//!
//! Each endpoint starts once for this binary (on first use) and is stopped
//! by its recorded pid at exit. A missing sshd or dockerd skips, except in
//! CI (`CI=true`) or with `BOTTLE_TEST_REQUIRE_ENGINES=1`, where it fails.

use bottle_integration_tests::transports::{self, Transport};
use bottle_integration_tests::TestEnv;
use bottle_integration_tests::{conformance, harness};
use bottle_runtime::ContainerRuntime;
use std::time::{Duration, Instant};

bottle_integration_tests::library_checks!(wrappers);

/// The library check over the transport, with a 2 s timeout.
async fn check_exec_timeout(env: &TestEnv) {
    let timeout = Duration::from_secs(2);
    let rt = transports::reconnect(env.engine(), env.endpoint(), timeout).unwrap();
    conformance::check_exec_timeout(rt.as_ref(), env.bottle(), timeout).await;
}

/// The checks above really went over the transport: the runtime's endpoint
/// is the transport's, not the admin side's socket; over TLS a plain-HTTP
/// client and a client trusting another CA are refused; over ssh a new
/// runtime's first call logs in to the remote.
async fn check_transport_in_use(env: &TestEnv) {
    let endpoint = env.endpoint().to_string();
    assert_ne!(
        endpoint,
        env.admin().endpoint(),
        "the runtime is the admin's"
    );
    match transports::transport_of(&endpoint) {
        Some(Transport::Ssh) => {
            let remote = transports::ssh_remote().unwrap();
            let before = remote.ssh_logins();
            let rt =
                transports::reconnect(env.engine(), &endpoint, Duration::from_secs(20)).unwrap();
            rt.inspect(env.bottle()).await.expect("inspect over ssh");
            // At least: other tests of this binary log in at the same time.
            // sshd may log the login just after the forward is up.
            let deadline = Instant::now() + Duration::from_secs(5);
            while remote.ssh_logins() == before && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                remote.ssh_logins() > before,
                "no ssh login for a new runtime"
            );
        }
        Some(Transport::Tls) => {
            let plain = harness::connect(env.engine(), Some(&endpoint))
                .unwrap()
                .runtime;
            let err = plain.version().await.unwrap_err();
            assert!(
                err.to_string().contains(&endpoint),
                "plain HTTP to the TLS port: {err}"
            );
            let wrong = transports::tls_dockerd().unwrap().dir.join("certs/wrong");
            let ep = bottle_docker::DockerEndpoint {
                host: endpoint.clone(),
                from: "test".into(),
                context: None,
                tls: Some(bottle_docker::TlsFiles::in_dir(&wrong)),
            };
            let rt = bottle_docker::DockerRuntime::connect_endpoint(&ep, Duration::from_secs(20))
                .unwrap();
            let err = rt.version().await.unwrap_err();
            assert!(err.is_unreachable(), "TLS with another CA: {err:?}");
        }
        Some(Transport::Tcp) => assert!(endpoint.starts_with("tcp://"), "{endpoint}"),
        None => panic!("{endpoint} is none of the transports"),
    }
}

/// One `#[tokio::test]` per check in each module: `docker_tls::check_x`, …
macro_rules! transport_tests {
    ($($check:ident),+ $(,)?) => {
        transport_tests!(@module docker_tls, Docker, Tls, ($($check),+));
        transport_tests!(@module docker_ssh, Docker, Ssh, ($($check),+));
        transport_tests!(@module podman_ssh, Podman, Ssh, ($($check),+));
        transport_tests!(@module podman_tcp, Podman, Tcp, ($($check),+));
    };
    (@module $module:ident, $engine:ident, $transport:ident, ($($check:ident),+ $(,)?)) => {
        mod $module {
            use bottle_integration_tests::harness::{run_check_over, Engine, CALL_TIMEOUT};
            use bottle_integration_tests::transports::{connect_over, Transport};
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    run_check_over(
                        Engine::$engine,
                        Transport::$transport.name(),
                        stringify!($check),
                        || connect_over(Engine::$engine, Transport::$transport, CALL_TIMEOUT),
                        |env| async move { super::$check(&env).await },
                    )
                    .await
                }
            )+
        }
    };
}

// Every library check, then this file's two.
bottle_integration_tests::library_checks!(then[transport_tests](
    check_transport_in_use,
    check_exec_timeout,
));
