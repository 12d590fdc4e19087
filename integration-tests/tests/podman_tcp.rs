//! Podman over `tcp://`: a second Podman API service this test starts on
//! `tcp://127.0.0.1:PORT` (beside the Unix-socket one, same storage), and
//! `bottlectl demo` through it with `CONTAINER_HOST`: image import, bottle
//! and gate, provision, `ssh` as the user in the bottle, verify,
//! deprovision, removal. The service is stopped by the pid this test
//! recorded.

use bottle_integration_tests::bottlectl_path;
use bottle_integration_tests::harness::{engines_required, requested_engines};
use bottle_runtime::Engine;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The service this test started; killed (by its pid) when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn podman_over_tcp_end_to_end() {
    if !requested_engines().contains(&Engine::Podman) {
        println!("SKIP podman not requested");
        return;
    }
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new("podman")
        .args(["system", "service", "--time=0", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let service = match child {
        Ok(c) => Service(c),
        Err(e) if !engines_required() => {
            println!("SKIP podman is needed: {e}");
            return;
        }
        Err(e) => panic!("podman is needed: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the tcp Podman service did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(bottlectl_path())
        .args(["--runtime", "podman", "demo"])
        .env("CONTAINER_HOST", &url)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("xdg"))
        .output()
        .expect("run bottlectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("at {url}")), "{text}");
    assert!(text.contains("demo: ok"), "{text}");
    assert!(
        text.contains("as node in the bottle printed `git`"),
        "{text}"
    );
    // Plain tcp to loopback: no warning about an unencrypted connection.
    assert!(!text.to_lowercase().contains("unencrypted"), "{text}");
    drop(service);
}

/// A Podman client pointed at Docker's socket (a wrong `--host` or
/// `CONTAINER_HOST`): `Unreachable` naming the endpoint and saying that
/// something else answers there, not "no container named ``".
#[tokio::test]
async fn podman_client_at_a_docker_socket_names_the_mismatch() {
    let engines = requested_engines();
    if !(engines.contains(&Engine::Docker) && engines.contains(&Engine::Podman)) {
        println!("SKIP needs both engines");
        return;
    }
    let timeout = Duration::from_secs(10);
    let docker =
        bottle_integration_tests::harness::connect_with_timeout(Engine::Docker, None, timeout)
            .expect("connect to Docker");
    let endpoint = docker.runtime.endpoint().to_string();
    let podman = bottle_podman::PodmanRuntime::connect(Some(&endpoint), timeout).unwrap();
    let err = bottle_runtime::ContainerRuntime::version(&podman)
        .await
        .expect_err("Podman's version() at Docker's socket");
    assert!(
        matches!(err, bottle_runtime::Error::Unreachable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&endpoint), "{err}");
    assert!(
        format!("{err:?}").contains("not as Podman's API"),
        "{err:?}"
    );
}
