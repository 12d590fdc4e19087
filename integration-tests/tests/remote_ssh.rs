//! Reaching an engine over `ssh://`, end to end on both engines: the
//! "remote host" is this machine's sshd on 127.0.0.1 (`scripts/ssh-remote.sh`,
//! its own host key, root's login by a key made there), and `bottlectl`
//! talks to the engine's socket through one system `ssh` forwarding it.
//! The ssh client never reads the operator's `~/.ssh`: every run gets
//! `BOTTLE_SSH_CONFIG` (`ssh -F`) naming a config the script wrote.
//!
//! Each check starts its own sshd (a fraction of a second) and stops it by
//! its recorded pid. A check skips when sshd is missing, except in CI
//! (`CI=true`) or with `BOTTLE_TEST_REQUIRE_ENGINES=1`.

use bottle_integration_tests::harness::{engines_required, Engine};
use bottle_integration_tests::ssh_fixtures::{keygen_with, public, start_sshd};
use bottle_integration_tests::{bottlectl_path, engine_tests, hermetic, TestEnv};
use bottle_runtime::ContainerRuntime;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GATE: u16 = 2241;

/// The sshd playing the remote host; stopped when dropped.
struct Remote {
    dir: tempfile::TempDir,
    port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("scripts/ssh-remote.sh")
}

impl Remote {
    fn start() -> Result<Remote, String> {
        let dir = tempfile::Builder::new()
            .prefix("bssh")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let remote = Remote { dir, port };
        let out = Command::new(script())
            .arg("start")
            .arg(remote.dir.path())
            .arg(port.to_string())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "ssh-remote.sh start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(remote)
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `ssh://root@127.0.0.1:PORT` with the engine's socket: Docker's URL
    /// form without a path (the remote default socket), Podman's with one.
    fn url(&self, env: &TestEnv) -> String {
        let base = format!("ssh://root@127.0.0.1:{}", self.port);
        match env.engine() {
            Engine::Docker => base,
            Engine::Podman => format!(
                "{base}{}",
                env.endpoint()
                    .strip_prefix("unix://")
                    .expect("a unix socket")
            ),
            Engine::Other(_) => unreachable!("only this repository's engines"),
        }
    }

    /// The endpoint as bottle names it in messages.
    fn endpoint(&self, env: &TestEnv) -> String {
        match env.engine() {
            Engine::Docker => format!("{}/var/run/docker.sock", self.url(env)),
            Engine::Podman => self.url(env),
            Engine::Other(_) => unreachable!("only this repository's engines"),
        }
    }

    /// Logins sshd accepted so far.
    fn logins(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("sshd.log"))
            .unwrap_or_default()
            .matches("Accepted publickey for root")
            .count()
    }

    /// Live ssh client processes using one of this remote's configs.
    fn clients(&self) -> usize {
        let needle = self.dir.path().display().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter(|e| {
                let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                state != Some(Some('Z')) && cmd.starts_with("ssh ") && cmd.contains(&needle)
            })
            .count()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn remote_or_skip() -> Option<Remote> {
    match Remote::start() {
        Ok(r) => Some(r),
        Err(why) if !engines_required() => {
            println!("SKIP an sshd on 127.0.0.1 is needed: {why}");
            None
        }
        Err(why) => panic!("an sshd on 127.0.0.1 is needed: {why}"),
    }
}

/// A hermetic `bottlectl --runtime ENGINE ARGS…` off the async workers:
/// empty HOME and config dirs, only `envs`.
async fn ctl(env: &TestEnv, home: &Path, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(bottlectl_path());
    hermetic(&mut cmd, home)
        .env("CLAUDE_BOTTLE_TIMEOUT", "20s")
        .args(["--runtime", env.engine().name()])
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run bottlectl"))
        .await
        .expect("join")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn expect(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: output:\n{}",
        text(out)
    );
}

/// The variable naming the engine's endpoint.
fn host_var(env: &TestEnv) -> &'static str {
    match env.engine() {
        Engine::Docker => "DOCKER_HOST",
        Engine::Podman => "CONTAINER_HOST",
        Engine::Other(_) => unreachable!("only this repository's engines"),
    }
}

/// A manifest for alias `a` through an sshd gate in the bottle's network.
async fn gate_manifest(env: &TestEnv, home: &Path) -> PathBuf {
    let hk = keygen_with(home, "gate_host", "ed25519", &[], "");
    let key = keygen_with(home, "id_gate", "ed25519", &[], "");
    start_sshd(env, &[GATE], &[&hk], &[public(&key)]).await;
    let manifest = home.join("bottle.toml");
    std::fs::write(
        &manifest,
        format!(
            "[gate]\nhost = \"127.0.0.1\"\n[gate.ports]\na = {GATE}\n\n[[ssh]]\nHost = \"a\"\n\
             Hostname = \"a.git.example\"\nUser = \"git\"\nIdentityFile = \"{}\"\nKnownHostKey = \"{}\"\n",
            key.display(),
            public(&hk)
        ),
    )
    .unwrap();
    manifest
}

/// `ssh a id -un` as the bottle's user.
async fn user_ssh(env: &TestEnv) -> String {
    let out = env
        .exec_as(
            "1000",
            &[
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "a",
                "id",
                "-un",
            ],
        )
        .await;
    format!("{}{}", out.stdout_lossy().trim(), out.stderr_lossy().trim())
}

async fn check_provision_verify_deprovision_over_ssh(env: &TestEnv) {
    let Some(remote) = remote_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let m = gate_manifest(env, home.path()).await;
    let m = m.to_str().unwrap();
    let bottle = env.bottle();
    // Podman: the key comes from CONTAINER_SSHKEY (the config's own key is
    // not authorized); Docker: from the ssh config, as a user's would.
    let envs: Vec<(&str, String)> = match env.engine() {
        Engine::Docker => vec![
            ("DOCKER_HOST", remote.url(env)),
            ("BOTTLE_SSH_CONFIG", remote.file("ssh_config")),
        ],
        Engine::Podman => vec![
            ("CONTAINER_HOST", remote.url(env)),
            ("CONTAINER_SSHKEY", remote.file("client_key")),
            ("BOTTLE_SSH_CONFIG", remote.file("ssh_config_nokey")),
        ],
        Engine::Other(_) => unreachable!("only this repository's engines"),
    };

    let before = remote.logins();
    let out = ctl(env, home.path(), &["provision", bottle, "-m", m], &envs).await;
    expect(&out, 0, "provision over ssh");
    // Every engine call of the run went through one ssh login.
    assert_eq!(remote.logins() - before, 1, "logins for one run");
    assert_eq!(remote.clients(), 0, "ssh left behind after provision");
    assert_eq!(user_ssh(env).await, "git", "ssh a as the user");

    let out = ctl(env, home.path(), &["verify", bottle, "-m", m], &envs).await;
    expect(&out, 0, "verify over ssh");
    let before = remote.logins();
    let out = ctl(env, home.path(), &["doctor", bottle], &envs).await;
    expect(&out, 0, "doctor over ssh");
    // doctor probes every engine, then selects over the same connection.
    assert_eq!(remote.logins() - before, 1, "logins for one doctor run");
    let shown = text(&out);
    assert!(shown.contains(&remote.endpoint(env)), "{shown}");
    assert!(shown.contains(host_var(env)), "{shown}");
    let out = ctl(env, home.path(), &["version"], &envs).await;
    assert!(text(&out).contains(&remote.url(env)), "{}", text(&out));
    assert!(text(&out).contains("(transport ssh)"), "{}", text(&out));

    let out = ctl(env, home.path(), &["deprovision", bottle], &envs).await;
    expect(&out, 0, "deprovision over ssh");
    assert_ne!(user_ssh(env).await, "git", "ssh a after deprovision");
    assert_eq!(remote.clients(), 0, "ssh left behind");
}

/// One failure case: exit 3 naming the ssh endpoint, ssh's reason, no ssh left.
async fn expect_refused(env: &TestEnv, remote: &Remote, envs: &[(&str, String)], reason: &str) {
    let home = tempfile::tempdir().unwrap();
    let logins = remote.logins();
    let started = std::time::Instant::now();
    let out = ctl(env, home.path(), &["keys", env.bottle()], envs).await;
    let shown = text(&out);
    expect(&out, 3, reason);
    assert!(shown.contains(&remote.endpoint(env)), "{shown}");
    assert!(shown.contains(reason), "no `{reason}` in:\n{shown}");
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(remote.clients(), 0, "ssh left behind");
    assert_eq!(remote.logins(), logins, "a login was accepted");
}

async fn check_wrong_host_key_and_no_usable_key_exit_3(env: &TestEnv) {
    let Some(remote) = remote_or_skip() else {
        return;
    };
    let var = host_var(env);
    expect_refused(
        env,
        &remote,
        &[
            (var, remote.url(env)),
            ("BOTTLE_SSH_CONFIG", remote.file("ssh_config_wronghost")),
        ],
        "Host key verification failed",
    )
    .await;
    expect_refused(
        env,
        &remote,
        &[
            (var, remote.url(env)),
            ("BOTTLE_SSH_CONFIG", remote.file("ssh_config_nokey")),
        ],
        "Permission denied (publickey)",
    )
    .await;
}

/// bottlectl ended by Ctrl-C (SIGINT) or SIGKILL while its ssh is still
/// connecting: the ssh process ends with it (PR_SET_PDEATHSIG), none left.
async fn check_interrupted_run_leaves_no_ssh(env: &TestEnv) {
    let Some(remote) = remote_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    // bottlectl's own temporary directory: what the runs leave is theirs.
    let tmp = tempfile::tempdir().unwrap();
    for signal in ["-INT", "-KILL"] {
        let mut child = hermetic(&mut Command::new(bottlectl_path()), home.path())
            .env("TMPDIR", tmp.path())
            .env(host_var(env), remote.url(env))
            .env("BOTTLE_SSH_CONFIG", remote.file("ssh_config_hang"))
            .args(["--runtime", env.engine().name(), "keys", env.bottle()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start bottlectl");
        let mut waited = 0;
        while remote.clients() == 0 {
            assert!(waited < 200, "bottlectl never started ssh");
            waited += 1;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap();
        let mut left = remote.clients();
        for _ in 0..40 {
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            left = remote.clients();
        }
        assert_eq!(left, 0, "ssh left behind after kill {signal}");
    }
    // SIGKILL left its private directory; the next run removes it (and
    // its own when done).
    let out = hermetic(&mut Command::new(bottlectl_path()), home.path())
        .env("TMPDIR", tmp.path())
        .env(host_var(env), remote.url(env))
        .env("BOTTLE_SSH_CONFIG", remote.file("ssh_config_nokey"))
        .args(["--runtime", env.engine().name(), "keys", env.bottle()])
        .output()
        .expect("run bottlectl");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// Docker: a context holding the ssh:// host; Podman: the default system
/// connection (Podman 5's file) and a named one; an unknown name is exit 2
/// listing the known ones.
async fn check_context_and_connection_over_ssh(env: &TestEnv) {
    let Some(remote) = remote_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let cfg = ("BOTTLE_SSH_CONFIG", remote.file("ssh_config"));
    let (good, unknown) = match env.engine() {
        Engine::Docker => {
            let docker = h.join("dockercfg");
            let id = sha256_hex("sshctx");
            let meta = docker.join("contexts/meta").join(id);
            std::fs::create_dir_all(&meta).unwrap();
            let json = serde_json::json!({
                "Name": "sshctx",
                "Metadata": {},
                "Endpoints": { "docker": { "Host": remote.url(env), "SkipTLSVerify": false } }
            });
            std::fs::write(meta.join("meta.json"), json.to_string()).unwrap();
            let envs = vec![cfg, ("DOCKER_CONFIG", docker.display().to_string())];
            (
                (vec!["--context", "sshctx"], envs.clone()),
                (
                    vec!["--context", "nope"],
                    envs,
                    "unknown Docker context `nope` (known: default, sshctx;",
                ),
            )
        }
        Engine::Podman => {
            let file = h.join("podman-connections.json");
            let json = serde_json::json!({"Connection": {"Default": "remote", "Connections": {
                "remote": {"URI": remote.url(env), "Identity": remote.file("client_key")},
                "broken": {"URI": "ssh://root@127.0.0.1:1/run/podman/podman.sock"}
            }}});
            std::fs::write(&file, json.to_string()).unwrap();
            let envs = vec![
                ("BOTTLE_SSH_CONFIG", remote.file("ssh_config_nokey")),
                ("PODMAN_CONNECTIONS_CONF", file.display().to_string()),
                ("CONTAINERS_CONF", h.join("none.conf").display().to_string()),
            ];
            (
                (vec![], envs.clone()),
                (
                    vec!["--connection", "nope"],
                    envs,
                    "unknown Podman connection `nope` (known: broken, remote;",
                ),
            )
        }
        Engine::Other(_) => unreachable!("only this repository's engines"),
    };
    let (args, envs) = good;
    let mut full: Vec<&str> = args.clone();
    full.extend(["doctor", env.bottle()]);
    let out = ctl(env, h, &full, &envs).await;
    expect(&out, 0, "doctor through the context/connection");
    let shown = text(&out);
    assert!(shown.contains(&remote.endpoint(env)), "{shown}");
    // doctor lists each context/connection, used or why not.
    let lines: &[String] = &match env.engine() {
        Engine::Docker => vec![
            format!("used  docker  context sshctx at {}: selected (context sshctx)", remote.url(env)),
            "-     docker  context default at unix:///var/run/docker.sock: not used: the endpoint comes from context sshctx".into(),
        ],
        Engine::Podman => vec![
            format!("used  podman  connection remote at {}: selected (default connection remote)", remote.url(env)),
            "-     podman  connection broken at ssh://root@127.0.0.1:1/run/podman/podman.sock: not used: the endpoint comes from default connection remote".into(),
        ],
        Engine::Other(_) => unreachable!("only this repository's engines"),
    };
    for line in lines {
        assert!(shown.contains(line.as_str()), "no `{line}` in:\n{shown}");
    }
    let mut full: Vec<&str> = args;
    full.push("config");
    let out = ctl(env, h, &full, &envs).await;
    expect(&out, 0, "config");
    if env.engine() == Engine::Docker {
        assert!(
            text(&out).contains("command-line flag --context"),
            "{}",
            text(&out)
        );
    }

    let (args, envs, want) = unknown;
    let mut full: Vec<&str> = args;
    full.extend(["keys", env.bottle()]);
    let out = ctl(env, h, &full, &envs).await;
    expect(&out, 2, "unknown context/connection");
    assert!(text(&out).contains(want), "{}", text(&out));
    if env.engine() == Engine::Podman {
        // CONTAINER_CONNECTION names the broken one: exit 3, no ssh left.
        let mut envs = envs.clone();
        envs.push(("CONTAINER_CONNECTION", "broken".into()));
        let out = ctl(env, h, &["keys", env.bottle()], &envs).await;
        expect(&out, 3, "broken connection");
        assert!(
            text(&out).contains("ssh://root@127.0.0.1:1/run/podman/podman.sock"),
            "{}",
            text(&out)
        );
        // --connection wins over CONTAINER_CONNECTION and the default.
        let out = ctl(env, h, &["--connection", "remote", "doctor"], &envs).await;
        expect(&out, 0, "--connection remote");
        assert!(text(&out).contains("[connection remote]"), "{}", text(&out));
        // CONTAINER_HOST (with CONTAINER_SSHKEY) wins over every connection.
        envs.push(("CONTAINER_HOST", remote.url(env)));
        envs.push(("CONTAINER_SSHKEY", remote.file("client_key")));
        let out = ctl(env, h, &["--connection", "broken", "doctor"], &envs).await;
        expect(&out, 0, "CONTAINER_HOST over --connection");
        assert!(text(&out).contains("[CONTAINER_HOST]"), "{}", text(&out));
    }
    assert_eq!(remote.clients(), 0, "ssh left behind");
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A library user's `PodmanRuntime::connect(Some("ssh://…"))` takes its
/// identity from `CONTAINER_SSHKEY`, as Podman's own client does: with it
/// the engine answers over one login, without it the unauthorized key of the
/// ssh config is refused. (Docker's identity comes from the ssh config.)
async fn check_podman_connect_uses_container_sshkey(env: &TestEnv) {
    if env.engine() != Engine::Podman {
        return;
    }
    let Some(remote) = remote_or_skip() else {
        return;
    };
    let url = remote.url(env);
    let timeout = std::time::Duration::from_secs(20);
    // This binary's other checks give their bottlectl runs explicit
    // environments (env_clear), so setting these here reaches only this check.
    std::env::set_var("BOTTLE_SSH_CONFIG", remote.file("ssh_config_nokey"));
    std::env::remove_var("CONTAINER_SSHKEY");
    let without = bottle_podman::PodmanRuntime::connect(Some(&url), timeout)
        .unwrap()
        .version()
        .await;
    std::env::set_var("CONTAINER_SSHKEY", remote.file("client_key"));
    let before = remote.logins();
    let with = bottle_podman::PodmanRuntime::connect(Some(&url), timeout)
        .unwrap()
        .version()
        .await;
    std::env::remove_var("CONTAINER_SSHKEY");
    std::env::remove_var("BOTTLE_SSH_CONFIG");
    assert!(
        matches!(without, Err(bottle_runtime::Error::Unreachable { .. })),
        "without CONTAINER_SSHKEY: {without:?}"
    );
    let info = with.expect("version over ssh with CONTAINER_SSHKEY");
    assert!(info.endpoint.starts_with("ssh://"), "{}", info.endpoint);
    assert_eq!(remote.logins() - before, 1, "logins");
    // The runtime's tunnel is stopped on drop; its ssh (and those of the
    // checks running beside this one, which share the remote) exit within
    // moments, never later than 10 s.
    let settled = std::time::Instant::now();
    while remote.clients() > 0 && settled.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(remote.clients(), 0, "ssh left behind");
}

/// The remote engine's socket missing: the login works, the forward does
/// not. The error says the socket is unreachable (naming it), not that
/// something answered other than the engine's API.
async fn check_missing_remote_socket_is_unreachable(env: &TestEnv) {
    let Some(remote) = remote_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let url = format!(
        "ssh://root@127.0.0.1:{}/run/bottle-no-such.sock",
        remote.port
    );
    let envs = [
        (host_var(env), url),
        ("BOTTLE_SSH_CONFIG", remote.file("ssh_config")),
    ];
    let out = ctl(env, home.path(), &["keys", env.bottle()], &envs).await;
    let shown = text(&out);
    expect(&out, 3, "a missing remote socket");
    assert!(shown.contains("/run/bottle-no-such.sock"), "{shown}");
    assert!(!shown.contains("answers, but not as"), "{shown}");
    assert!(shown.contains("unreachable or missing"), "{shown}");
}

engine_tests!(
    check_missing_remote_socket_is_unreachable,
    check_podman_connect_uses_container_sshkey,
    check_provision_verify_deprovision_over_ssh,
    check_wrong_host_key_and_no_usable_key_exit_3,
    check_context_and_connection_over_ssh,
    check_interrupted_run_leaves_no_ssh,
);
