//! Reaching the Docker engine the user already has: contexts, `DOCKER_HOST`
//! with TLS, and the order between them, against a real second dockerd that
//! `scripts/tls-dockerd.sh` starts beside the first (its own data-root,
//! exec-root and managed containerd) on `tcp://127.0.0.1:PORT` with
//! `--tlsverify`, and stops again by its recorded pid.
//!
//! One test, so the daemon (about a second to start) is started once. It
//! skips when dockerd is missing or cannot start, except in CI (`CI=true`) or with
//! `BOTTLE_TEST_REQUIRE_ENGINES=1`, where that is a failure.

use bottle_integration_tests::harness::engines_required;
use bottle_integration_tests::{bottlectl_path, hermetic};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The second daemon; stopped (by the pid the script recorded) when dropped.
struct SecondDockerd {
    dir: tempfile::TempDir,
    port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("scripts/tls-dockerd.sh")
}

impl SecondDockerd {
    fn start() -> Result<SecondDockerd, String> {
        // The script installs openssl where it is missing; dockerd comes
        // from scripts/engines.sh.
        let found = Command::new("sh")
            .args(["-c", "command -v dockerd"])
            .output()
            .map_err(|e| e.to_string())?;
        if !found.status.success() {
            return Err("`dockerd` is not installed".into());
        }
        // Short path: containerd's socket lives under the exec-root.
        let dir = tempfile::Builder::new()
            .prefix("btls")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let daemon = SecondDockerd { dir, port };
        let out = Command::new(script())
            .arg("start")
            .arg(daemon.dir.path())
            .arg(port.to_string())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "tls-dockerd.sh start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(daemon)
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn unix(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }
}

impl Drop for SecondDockerd {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// A hermetic `bottlectl` run: empty HOME and config dirs, only `envs`.
fn bottlectl(home: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out: Output = hermetic(&mut Command::new(bottlectl_path()), home)
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .expect("run bottlectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A context store entry the way the docker CLI writes it
/// (`contexts/meta/<sha256 of the name>/meta.json`, TLS beside it).
fn write_context(config: &Path, name: &str, host: &str, certs: Option<&Path>) {
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = config.join("contexts/meta").join(&id);
    std::fs::create_dir_all(&meta).unwrap();
    let json = serde_json::json!({
        "Name": name,
        "Metadata": {},
        "Endpoints": { "docker": { "Host": host, "SkipTLSVerify": false } }
    });
    std::fs::write(meta.join("meta.json"), json.to_string()).unwrap();
    if let Some(certs) = certs {
        let tls = config.join("contexts/tls").join(&id).join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::copy(certs.join(f), tls.join(f)).unwrap();
        }
    }
}

fn expect(code: i32, text: &str, want_code: i32, want: &str, what: &str) {
    assert_eq!(code, want_code, "{what}: exit {code}, output:\n{text}");
    assert!(text.contains(want), "{what}: no `{want}` in:\n{text}");
}

/// A request for TLS that would not be served over verified TLS is refused
/// (exit 2, naming what asked for it) before anything is sent: a plain
/// listener on loopback (a relay) must see no connection.
#[test]
fn a_request_for_tls_never_becomes_plain_http() {
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    relay.set_nonblocking(true).unwrap();
    let port = relay.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("dockercfg");
    let config_s = config.display().to_string();
    let certs = home.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(certs.join(f), "not a certificate").unwrap();
    }
    let certs_s = certs.display().to_string();
    let http = format!("http://127.0.0.1:{port}");
    let tcp = format!("tcp://127.0.0.1:{port}");
    // SkipTLSVerify with no TLS directory.
    write_context(&config, "skip", &tcp, None);
    let meta = config
        .join("contexts/meta")
        .join(hex::encode(Sha256::digest(b"skip")))
        .join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("false", "true")).unwrap();
    // An http:// host with ca/cert/key.
    write_context(&config, "httptls", &http, Some(&certs));

    // What, arguments, variables, what the output must name.
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            "DOCKER_TLS_VERIFY with an http:// host",
            vec!["--runtime", "docker", "doctor"],
            vec![
                ("DOCKER_HOST", &http),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", &certs_s),
            ],
            // The files are no certificates: the TLS client fails.
            "",
        ),
        (
            "DOCKER_TLS_VERIFY with a missing certificate directory",
            vec!["--runtime", "docker", "doctor"],
            vec![
                ("DOCKER_HOST", &http),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", "/nonexistent/certs"),
            ],
            "/nonexistent/certs/ca.pem",
        ),
        (
            "a context with SkipTLSVerify and no TLS directory",
            vec!["--context", "skip", "doctor"],
            vec![("DOCKER_CONFIG", &config_s)],
            "SkipTLSVerify",
        ),
        (
            "a context with an http:// host and ca/cert/key",
            vec!["--context", "httptls", "doctor"],
            vec![("DOCKER_CONFIG", &config_s)],
            "",
        ),
    ];
    for (what, args, mut envs, want) in cases {
        envs.push(("CLAUDE_BOTTLE_TIMEOUT", "3"));
        let (code, text) = bottlectl(home.path(), &args, &envs);
        loop {
            match relay.accept() {
                // A TLS client may connect; it must send a TLS hello, never HTTP.
                Ok((mut conn, _)) => {
                    use std::io::Read;
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                        .unwrap();
                    let mut first = [0u8; 1];
                    let n = conn.read(&mut first).unwrap_or(0);
                    assert!(
                        n == 0 || first[0] == 0x16,
                        "{what}: a plain request reached the relay ({:?})\n{text}",
                        first
                    );
                }
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{what}");
                    break;
                }
            }
        }
        assert_ne!(code, 0, "{what}: accepted\n{text}");
        assert!(text.contains(want), "{what}: no `{want}` in:\n{text}");
    }
}

#[test]
fn docker_contexts_and_tls_reach_a_second_dockerd() {
    let daemon = match SecondDockerd::start() {
        Ok(d) => d,
        Err(why) if !engines_required() => {
            println!("SKIP a second dockerd with TLS is needed: {why}");
            return;
        }
        Err(why) => panic!("a second dockerd with TLS is needed: {why}"),
    };
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("dockercfg");
    let config_s = config.display().to_string();
    let certs = daemon.certs();
    let certs_s = certs.display().to_string();
    let tcp = daemon.tcp();
    write_context(&config, "tlsctx", &tcp, Some(&certs));
    write_context(&config, "zother", "unix:///nonexistent.sock", None);
    let selected_tcp = format!("selected: docker at {tcp}");
    let with_config = [("DOCKER_CONFIG", config_s.as_str())];

    // --context: the context's host and TLS material (auto picks Docker).
    let (code, text) = bottlectl(
        home.path(),
        &["--context", "tlsctx", "doctor"],
        &with_config,
    );
    expect(code, &text, 0, &selected_tcp, "--context tlsctx");
    assert!(text.contains("[context tlsctx]"), "{text}");
    assert!(
        text.contains("Docker context `tlsctx` is selected"),
        "{text}"
    );
    let (code, text) = bottlectl(
        home.path(),
        &["--context", "tlsctx", "config"],
        &with_config,
    );
    expect(code, &text, 0, "command-line flag --context", "config");

    // http:// is tcp://: the context's TLS material is used, not dropped.
    let http = tcp.replace("tcp://", "http://");
    write_context(&config, "httpctx", &http, Some(&certs));
    let (code, text) = bottlectl(
        home.path(),
        &["--context", "httpctx", "doctor"],
        &with_config,
    );
    expect(
        code,
        &text,
        0,
        &format!("selected: docker at {http}"),
        "--context httpctx",
    );

    // DOCKER_CONTEXT, with an explicit runtime.
    let (code, text) = bottlectl(
        home.path(),
        &["--runtime", "docker", "doctor"],
        &[("DOCKER_CONFIG", &config_s), ("DOCKER_CONTEXT", "tlsctx")],
    );
    expect(code, &text, 0, &selected_tcp, "DOCKER_CONTEXT");

    // currentContext in config.json is followed, and shown with its origin.
    std::fs::write(config.join("config.json"), r#"{"currentContext":"tlsctx"}"#).unwrap();
    let (code, text) = bottlectl(home.path(), &["doctor"], &with_config);
    expect(code, &text, 0, &selected_tcp, "currentContext");
    let (code, text) = bottlectl(home.path(), &["config"], &with_config);
    let origin = format!("currentContext in {}", config.join("config.json").display());
    expect(code, &text, 0, &origin, "config shows currentContext");

    // DOCKER_HOST wins over the context (here the second daemon's own socket).
    let unix = daemon.unix();
    let (code, text) = bottlectl(
        home.path(),
        &["--context", "tlsctx", "doctor"],
        &[("DOCKER_CONFIG", &config_s), ("DOCKER_HOST", &unix)],
    );
    expect(
        code,
        &text,
        0,
        &format!("selected: docker at {unix}"),
        "DOCKER_HOST over the context",
    );
    assert!(text.contains("[DOCKER_HOST]"), "{text}");
    std::fs::remove_file(config.join("config.json")).unwrap();

    // DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH.
    let tls_env = |cert_path: &str| {
        [
            ("DOCKER_HOST", tcp.clone()),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            ("DOCKER_CERT_PATH", cert_path.to_string()),
        ]
    };
    let run_tls = |args: &[&str], cert_path: &str| {
        let env = tls_env(cert_path);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        bottlectl(home.path(), args, &env)
    };
    let (code, text) = run_tls(&["doctor"], &certs_s);
    expect(code, &text, 0, &selected_tcp, "DOCKER_TLS_VERIFY");
    let (code, text) = run_tls(&["--runtime", "docker", "version"], &certs_s);
    expect(code, &text, 0, &format!("at {tcp}"), "version over TLS");
    assert!(!text.contains("not answering"), "{text}");

    // End to end over TLS: image import, bottle and gate, provision, `ssh`
    // as the user in the bottle, verify, deprovision, removal (`demo`).
    let (code, text) = run_tls(&["--runtime", "docker", "demo"], &certs_s);
    expect(code, &text, 0, "demo: ok", "demo over TLS");
    assert!(text.contains(&format!("at {tcp}")), "{text}");
    assert!(
        text.contains("as node in the bottle printed `git`"),
        "{text}"
    );
    assert!(text.contains("verify: all"), "{text}");

    // A CA that did not sign the server's certificate: a TLS error, exit 3.
    let wrong = certs.join("wrong").display().to_string();
    let (code, text) = run_tls(&["--runtime", "docker", "doctor"], &wrong);
    expect(code, &text, 3, "invalid peer certificate", "wrong CA");
    assert!(text.contains(&tcp), "{text}");

    // No plain-HTTP fallback: the TLS port refuses plain requests.
    let (code, text) = bottlectl(
        home.path(),
        &["--runtime", "docker", "doctor"],
        &[("DOCKER_HOST", tcp.as_str())],
    );
    assert_eq!(code, 3, "{text}");

    // A missing client key: a configuration error naming the file, exit 2.
    let partial = home.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    for f in ["ca.pem", "cert.pem"] {
        std::fs::copy(certs.join(f), partial.join(f)).unwrap();
    }
    let (code, text) = run_tls(&["doctor"], &partial.display().to_string());
    let key = partial.join("key.pem").display().to_string();
    expect(code, &text, 2, &key, "missing key.pem");

    // An unknown context: exit 2 listing the known names.
    let (code, text) = bottlectl(home.path(), &["--context", "nope", "doctor"], &with_config);
    expect(
        code,
        &text,
        2,
        "unknown Docker context `nope` (known: default, httpctx, tlsctx, zother",
        "unknown context",
    );

    // A store the real docker CLI wrote, where it is installed.
    let cli_config = home.path().join("clicfg");
    let created = Command::new("docker")
        .env("DOCKER_CONFIG", &cli_config)
        .args(["context", "create", "clictx", "--docker"])
        .arg(format!(
            "host={tcp},ca={c}/ca.pem,cert={c}/cert.pem,key={c}/key.pem",
            c = certs.display()
        ))
        .output();
    match created {
        Ok(o) if o.status.success() => {
            let cli_s = cli_config.display().to_string();
            let (code, text) = bottlectl(
                home.path(),
                &["--context", "clictx", "doctor"],
                &[("DOCKER_CONFIG", cli_s.as_str())],
            );
            expect(
                code,
                &text,
                0,
                &selected_tcp,
                "context from `docker context create`",
            );
        }
        other => println!("note: no docker CLI to write a context store ({other:?})"),
    }
    exec_over_tls(&daemon);
    drop(daemon);
}

/// The runtime itself over TLS: a container on the second daemon, an exec
/// with stdin, both streams apart and the exit code.
fn exec_over_tls(daemon: &SecondDockerd) {
    use bottle_docker::{DockerEndpoint, DockerRuntime, TlsFiles};
    use bottle_runtime::{ContainerAdmin, ContainerRuntime, ExecRequest, RunSpec};
    let ep = DockerEndpoint {
        host: daemon.tcp(),
        from: "test".into(),
        context: None,
        tls: Some(TlsFiles::in_dir(&daemon.certs())),
    };
    let docker = DockerRuntime::connect_endpoint(&ep, std::time::Duration::from_secs(60))
        .expect("connect over TLS");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let image = bottle_integration_tests::ensure_test_image(&docker)
            .await
            .expect("import the test image over TLS");
        let mut spec = RunSpec::new(image, ["/bin/sleep", "infinity"]);
        spec.name = Some("bottle-tls-exec".into());
        docker.run(&spec).await.expect("run over TLS");
        let out = docker
            .exec(
                "bottle-tls-exec",
                ExecRequest::new(["/bin/sh", "-c", "cat; echo oops >&2; exit 7"])
                    .user("1000")
                    .stdin(b"over tls\n".to_vec()),
            )
            .await;
        // Removed before asserting: a running container would hold up the
        // daemon's shutdown by its stop timeout.
        let removed = docker.remove("bottle-tls-exec").await;
        let out = out.expect("exec over TLS");
        assert_eq!(
            (out.exit_code, out.stdout_lossy(), out.stderr_lossy()),
            (7, "over tls\n".to_string(), "oops\n".to_string())
        );
        removed.expect("remove over TLS");
    });
}
