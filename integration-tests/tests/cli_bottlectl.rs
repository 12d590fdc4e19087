//! `bottlectl` end to end: every command, every exit code, `--json` parsed.
//!
//! Engine checks run once per engine (like ripgrep's per-regex-engine
//! tests) through `engine_tests!`, each on its own bottle from the test
//! image; `bottlectl` is pointed at that engine with `--runtime` and `--host`.
//! The child's environment is cleared so the caller's `CLAUDE_BOTTLE_*`,
//! `DOCKER_HOST` and user config never leak in.

use bottle_integration_tests::{engine_tests, TestEnv};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bottle_integration_tests::{bottlectl_path, hermetic};

/// A scratch HOME with an empty user config dir, so runs are hermetic.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// An ed25519 key pair made by the host's ssh-keygen; returns the private path.
    fn keygen(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&p)
            .output()
            .expect("run ssh-keygen");
        assert!(out.status.success(), "ssh-keygen: {out:?}");
        p
    }

    fn command(&self, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(bottlectl_path());
        hermetic(&mut cmd, self.path()).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        self.command(args, envs).output().expect("run bottlectl")
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {:?}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

fn expect_code(out: &Output, want: i32, what: &str) {
    assert_eq!(
        code(out),
        want,
        "{what}: stdout {:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// `bottlectl --runtime ENGINE --host ENDPOINT [--namespace NS] ARGS…` off
/// the async workers.
async fn ctl(env: &TestEnv, scratch: &Scratch, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut full = vec![
        "--runtime".to_string(),
        env.engine().name().to_string(),
        "--host".to_string(),
        env.endpoint().to_string(),
    ];
    if env.engine() == bottle_integration_tests::harness::engines::Containerd {
        // The harness's containers live in its own namespace.
        full.push("--namespace".into());
        full.push(bottle_integration_tests::harness::containerd_namespace());
    }
    full.extend(args.iter().map(|s| s.to_string()));
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut cmd = {
        let a: Vec<&str> = full.iter().map(String::as_str).collect();
        let e: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        scratch.command(&a, &e)
    };
    tokio::task::spawn_blocking(move || cmd.output().expect("run bottlectl"))
        .await
        .expect("join")
}

/// A manifest without a gate for one alias, with the key made here.
fn manifest(scratch: &Scratch) -> PathBuf {
    scratch.keygen("id_cli");
    scratch.write(
        "bottle.toml",
        r#"
[[ssh]]
Host = "upstream"
Hostname = "git.example.invalid"
User = "git"
IdentityFile = "~/id_cli"
KnownHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
Port = 2222
"#,
    )
}

async fn check_provision_verify_deprovision_json(env: &TestEnv) {
    let s = Scratch::new();
    let m = manifest(&s);
    let m = m.to_str().unwrap();
    let bottle = env.bottle();

    let out = ctl(
        env,
        &s,
        &["--json", "provision", bottle, "--manifest", m],
        &[],
    )
    .await;
    expect_code(&out, 0, "provision");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["engine"]["engine"], env.engine().name());
    assert_eq!(v["container"], bottle);
    let keys = v["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(keys[0]["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
    assert_eq!(keys[0]["aliases"][0], "upstream");
    // The entry pins its host key, so the key is restricted: no warnings.
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"/home/node/.ssh/config"), "{files:?}");
    assert!(files.contains(&"/home/node/.ssh/known_hosts"), "{files:?}");
    // Human step lines go to stderr even with --json.
    assert!(stderr(&out).contains("step"), "{}", stderr(&out));
    let config = env.sh("cat /home/node/.ssh/config", &[]).await;
    assert!(config.contains("Host upstream"), "{config}");

    let out = ctl(env, &s, &["--json", "verify", bottle, "-m", m], &[]).await;
    expect_code(&out, 0, "verify after provision");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert!(v["checks"].as_array().unwrap().len() > 3);

    // Human table: every check on stdout.
    let out = ctl(env, &s, &["verify", bottle, "-m", m], &[]).await;
    expect_code(&out, 0, "verify (table)");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().all(|l| l.starts_with("ok ")), "{table}");

    // A violation: exit 1 and the failing check named.
    env.sh("chmod 644 /home/node/.ssh/config", &[]).await;
    let out = ctl(env, &s, &["--json", "verify", bottle, "-m", m], &[]).await;
    expect_code(&out, 1, "verify after chmod");
    let v = json(&out);
    assert_eq!(v["ok"], false);
    let failed: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert!(
        failed.iter().any(|c| c["name"]
            .as_str()
            .unwrap()
            .contains("/home/node/.ssh/config")),
        "{failed:?}"
    );
    let out = ctl(env, &s, &["verify", bottle, "-m", m], &[]).await;
    expect_code(&out, 1, "verify (table) after chmod");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));

    let out = ctl(env, &s, &["--json", "deprovision", bottle], &[]).await;
    expect_code(&out, 0, "deprovision");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    let removed: Vec<&str> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(removed.contains(&"/home/node/.ssh/config"), "{removed:?}");
    let left = env
        .sh("test -e /home/node/.ssh/config && echo yes || echo no", &[])
        .await;
    assert_eq!(left.trim(), "no");
}

async fn check_container_home_from_env(env: &TestEnv) {
    let s = Scratch::new();
    let m = manifest(&s);
    let m = m.to_str().unwrap();
    env.sh("mkdir -p /home/dev && chown 1000:1000 /home/dev", &[])
        .await;
    let dev = [("CLAUDE_BOTTLE_CONTAINER_HOME", "/home/dev")];

    let out = ctl(env, &s, &["--json", "config"], &dev).await;
    expect_code(&out, 0, "config");
    let v = json(&out);
    let home = v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == "container_home")
        .expect("container_home listed")
        .clone();
    assert_eq!(home["value"], "/home/dev");
    assert_eq!(home["origin"]["layer"], "env");
    assert_eq!(home["origin"]["var"], "CLAUDE_BOTTLE_CONTAINER_HOME");

    let out = ctl(
        env,
        &s,
        &["--json", "provision", env.bottle(), "-m", m],
        &dev,
    )
    .await;
    expect_code(&out, 0, "provision with /home/dev");
    let files = json(&out)["files"].to_string();
    assert!(files.contains("/home/dev/.ssh/config"), "{files}");
    let listing = env
        .sh("stat -c '%a %u %n' /home/dev/.ssh /home/dev/.ssh/config; test ! -e /home/node/.ssh/config", &[])
        .await;
    assert_eq!(
        listing,
        "700 1000 /home/dev/.ssh\n600 1000 /home/dev/.ssh/config\n"
    );
    let out = ctl(env, &s, &["verify", env.bottle(), "-m", m], &dev).await;
    expect_code(&out, 0, "verify with /home/dev");
}

async fn check_exit_codes(env: &TestEnv) {
    let s = Scratch::new();
    let m = manifest(&s);
    let m = m.to_str().unwrap();

    // 3: no such container (one sentence plus the cause, no panic or debug dump).
    let missing = env.unique_name("missing");
    let out = ctl(env, &s, &["verify", &missing, "-m", m], &[]).await;
    expect_code(&out, 3, "missing container");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: cannot verify container `{missing}`")),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("{ "), "{err}");
    let out = ctl(env, &s, &["--json", "deprovision", &missing], &[]).await;
    expect_code(&out, 3, "deprovision missing container");
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["exit_code"], 3);

    // 3: a stopped container.
    let stopped = env.start_bottle().await.expect("second bottle");
    env.admin().stop(&stopped.name).await.expect("stop");
    let out = ctl(env, &s, &["provision", &stopped.name, "-m", m], &[]).await;
    expect_code(&out, 3, "stopped container");
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));

    // 3: the engine does not answer.
    let out = s.run(
        &[
            "--runtime",
            env.engine().name(),
            "--host",
            "unix:///nonexistent/engine.sock",
            "deprovision",
            env.bottle(),
        ],
        &[],
    );
    expect_code(&out, 3, "unreachable engine");
    assert!(
        stderr(&out).contains("/nonexistent/engine.sock"),
        "{}",
        stderr(&out)
    );

    // 3: an engine call that outlives the `timeout` setting.
    let out = ctl(
        env,
        &s,
        &["provision", env.bottle(), "-m", m],
        &[("CLAUDE_BOTTLE_TIMEOUT", "1ms")],
    )
    .await;
    expect_code(&out, 3, "timeout");
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));

    // 2: manifest errors name file, line and column, before any engine call.
    let bad = s.write(
        "bad.toml",
        "[[ssh]]\nHost = \"a\"\nHostnme = \"b\"\nUser = \"git\"\nIdentityFile = \"/k\"\n",
    );
    let out = ctl(
        env,
        &s,
        &["provision", env.bottle(), "-m", bad.to_str().unwrap()],
        &[],
    )
    .await;
    expect_code(&out, 2, "bad manifest");
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml:3:1: unknown field `Hostnme`"),
        "{err}"
    );
    let out = ctl(
        env,
        &s,
        &["provision", env.bottle(), "-m", "/nonexistent/bottle.toml"],
        &[],
    )
    .await;
    expect_code(&out, 2, "missing manifest");

    // 2: a plan error (gate without a port for the alias) points into the file.
    let gate = s.write(
        "gate.toml",
        "[gate]\nhost = \"127.0.0.1\"\n[gate.ports]\nother = 2201\n\n[[ssh]]\nHost = \"a\"\nHostname = \"b\"\nUser = \"git\"\nIdentityFile = \"~/id_cli\"\n",
    );
    let out = ctl(
        env,
        &s,
        &["verify", env.bottle(), "-m", gate.to_str().unwrap()],
        &[],
    )
    .await;
    expect_code(&out, 2, "plan error");
    assert!(stderr(&out).contains("gate.toml:"), "{}", stderr(&out));

    // 2: usage and configuration errors.
    expect_code(&s.run(&["provision"], &[]), 2, "missing argument");
    expect_code(
        &s.run(&["--runtime", "dockr", "config"], &[]),
        2,
        "bad --runtime",
    );
    let out = ctl(
        env,
        &s,
        &["verify", env.bottle(), "-m", m],
        &[("CLAUDE_BOTTLE_CONTAINER_HOMEE", "/x")],
    )
    .await;
    expect_code(&out, 2, "unknown CLAUDE_BOTTLE_ variable");
    assert!(
        stderr(&out).contains("CLAUDE_BOTTLE_CONTAINER_HOMEE"),
        "{}",
        stderr(&out)
    );

    // 0 and 1 are covered by check_provision_verify_deprovision_json.
}

async fn check_doctor(env: &TestEnv) {
    let s = Scratch::new();
    let out = ctl(env, &s, &["--json", "doctor", env.bottle()], &[]).await;
    expect_code(&out, 0, "doctor CONTAINER");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["selected"]["engine"], env.engine().name());
    assert_eq!(v["selected"]["endpoint"], env.endpoint());
    let engines = v["engines"].as_array().unwrap();
    assert!(
        engines
            .iter()
            .any(|e| e["engine"] == env.engine().name() && e["version"].is_string()),
        "{engines:?}"
    );
    let checks = v["container"]["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in [
        "running",
        "trusted path",
        "ssh-agent",
        "ssh-add",
        "user",
        "home",
        "no root for the user",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");
    // socat only where a relay runs: the guard loads and serves itself.
    assert!(!names.contains(&"socat"), "{names:?}");
    let out = ctl(
        env,
        &s,
        &["--json", "doctor", env.bottle()],
        &[("CLAUDE_BOTTLE_GUARD", "off")],
    )
    .await;
    expect_code(&out, 0, "doctor CONTAINER with guard off");
    let checks = json(&out)["container"]["checks"].clone();
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"socat"), "{names:?}");

    // A missing home is a problem with its fix, exit 3.
    let out = ctl(
        env,
        &s,
        &["doctor", env.bottle()],
        &[("CLAUDE_BOTTLE_CONTAINER_HOME", "/home/nobody-here")],
    )
    .await;
    expect_code(&out, 3, "doctor with a missing home");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL  home"), "{text}");
    assert!(text.contains("fix: "), "{text}");

    // A /run the user can write: named, with its fix, exit 3.
    env.sh("chmod 1777 /run", &[]).await;
    let out = ctl(env, &s, &["doctor", env.bottle()], &[]).await;
    env.sh("chmod 755 /run", &[]).await;
    expect_code(&out, 3, "doctor with a writable /run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL  trusted path /run: writable by group or others (mode 1777)"),
        "{text}"
    );

    // A stopped container: not running, with the start command as the fix.
    let stopped = env.start_bottle().await.expect("second bottle");
    env.admin().stop(&stopped.name).await.expect("stop");
    let out = ctl(env, &s, &["--json", "doctor", &stopped.name], &[]).await;
    expect_code(&out, 3, "doctor on a stopped container");
    let v = json(&out);
    let running = &v["container"]["checks"][0];
    assert_eq!(running["name"], "running");
    assert_eq!(running["ok"], false);
    assert_eq!(
        running["fix"],
        format!("{} start {}", env.engine().name(), stopped.name)
    );

    // Without a container: the engines and the choice, human form.
    let out = ctl(env, &s, &["doctor"], &[]).await;
    expect_code(&out, 0, "doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("selected: {}", env.engine().name())),
        "{text}"
    );
    assert!(text.contains("runtime = "), "{text}");
}

async fn check_demo(env: &TestEnv) {
    let s = Scratch::new();
    let out = ctl(env, &s, &["--json", "demo"], &[]).await;
    expect_code(&out, 0, "demo");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["engine"]["engine"], env.engine().name());
    assert_eq!(v["proof"]["stdout"], "git");
    assert_eq!(v["proof"]["user"], "node");
    assert_eq!(v["verify"]["ok"], true);
    assert_eq!(v["removed"], true);
    // Everything it started is gone.
    for key in ["bottle", "gate"] {
        let name = v[key].as_str().unwrap();
        let err = env.rt().inspect(name).await.unwrap_err();
        assert!(
            matches!(err, bottle_runtime::Error::ContainerNotFound { .. }),
            "{key} `{name}` still there: {err}"
        );
    }
}

async fn check_demo_ctrl_c_cleans_up(env: &TestEnv) {
    use std::io::{BufRead, BufReader};
    let s = Scratch::new();
    let mut cmd = s.command(
        &[
            "--runtime",
            env.engine().name(),
            "--host",
            env.endpoint(),
            "demo",
        ],
        &[],
    );
    cmd.stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let (code, bottle, lines) = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn bottlectl demo");
        let reader = BufReader::new(child.stderr.take().unwrap());
        let mut bottle = None;
        let mut lines = Vec::new();
        for line in reader.lines() {
            let line = line.unwrap();
            lines.push(line.clone());
            if let Some(rest) = line.strip_prefix("bottle: started `") {
                bottle = rest.split('`').next().map(str::to_string);
            }
            // Interrupt once both containers exist.
            if line.starts_with("gate: ") {
                let status = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        let status = child.wait().unwrap();
        (status.code(), bottle, lines)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130), "{lines:#?}");
    let bottle = bottle.unwrap_or_else(|| panic!("no bottle line in {lines:#?}"));
    let gate = bottle.replacen("bottle-demo-", "bottle-demo-gate-", 1);
    assert!(
        lines.iter().any(|l| l.contains("interrupted")),
        "{lines:#?}"
    );
    for name in [&bottle, &gate] {
        let err = env.rt().inspect(name).await.unwrap_err();
        assert!(
            matches!(err, bottle_runtime::Error::ContainerNotFound { .. }),
            "`{name}` left behind after Ctrl-C: {err}"
        );
    }
}

async fn check_verbose_logs_the_selection(env: &TestEnv) {
    let s = Scratch::new();
    let out = ctl(env, &s, &["-v", "doctor"], &[]).await;
    expect_code(&out, 0, "-v doctor");
    let err = stderr(&out);
    assert!(err.contains("engine selected"), "{err}");
    assert!(err.contains(env.endpoint()), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escapes in non-terminal logs: {err}"
    );
    // -q: nothing on stderr for a successful run.
    let out = ctl(env, &s, &["-q", "config"], &[]).await;
    expect_code(&out, 0, "-q config");
    assert_eq!(stderr(&out), "");
}

/// The checks that act on the bottle, on the debian and busybox images.
mod per_image {
    use super::*;
    engine_tests!(
        images = [debian, busybox],
        check_provision_verify_deprovision_json,
        check_container_home_from_env,
        check_exit_codes,
        check_doctor,
    );
}

engine_tests!(
    check_demo,
    check_demo_ctrl_c_cleans_up,
    check_verbose_logs_the_selection,
);

// Engine-free: configuration layering through the CLI.

#[test]
fn config_shows_each_layer_and_its_origin() {
    let s = Scratch::new();
    s.write(
        "xdg/claude-bottle/config.toml",
        "user = 'from-user-file'\ncontainer_home = '/user'\nagent_socket = '/user.sock'\ntimeout = 7\n",
    );
    let extra = s.write(
        "extra.toml",
        "user = 'from-extra'\ncontainer_home = '/extra'\nagent_socket = '/extra.sock'\n",
    );
    let out = s.run(
        &["--json", "--runtime", "podman", "config"],
        &[
            ("CLAUDE_BOTTLE_CONFIG", extra.to_str().unwrap()),
            ("CLAUDE_BOTTLE_CONTAINER_HOME", "/home/dev"),
            ("CLAUDE_BOTTLE_USER", "from-env"),
            ("CLAUDE_BOTTLE_HOST", "unix:///env.sock"),
        ],
    );
    expect_code(&out, 0, "config");
    let v = json(&out);
    let get = |key: &str| {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .clone()
    };
    // Flag beats env (clap reads CLAUDE_BOTTLE_RUNTIME too, but only a real
    // flag is shown as one).
    assert_eq!(get("runtime")["value"], "podman");
    assert_eq!(get("runtime")["origin"]["layer"], "flag");
    assert_eq!(get("host")["value"], "unix:///env.sock");
    assert_eq!(get("host")["origin"]["var"], "CLAUDE_BOTTLE_HOST");
    // Env beats the --config/CLAUDE_BOTTLE_CONFIG file.
    assert_eq!(get("user")["value"], "from-env");
    assert_eq!(get("container_home")["value"], "/home/dev");
    assert_eq!(get("container_home")["origin"]["layer"], "env");
    // That file beats the user file.
    assert_eq!(get("agent_socket")["value"], "/extra.sock");
    assert_eq!(get("agent_socket")["origin"]["layer"], "config_file");
    assert_eq!(get("agent_socket")["origin"]["via"], "CLAUDE_BOTTLE_CONFIG");
    // The user file beats the defaults.
    assert_eq!(get("timeout")["value"], "7s");
    assert_eq!(get("timeout")["origin"]["layer"], "user_file");
    assert_eq!(get("public_socket")["origin"]["layer"], "default");

    // Human form names the layers too; --config wins over CLAUDE_BOTTLE_CONFIG.
    let other = s.write("other.toml", "user = 'from-flag-file'\n");
    let out = s.run(
        &["config", "--config", other.to_str().unwrap()],
        &[("CLAUDE_BOTTLE_CONFIG", extra.to_str().unwrap())],
    );
    expect_code(&out, 0, "config (human)");
    let text = String::from_utf8_lossy(&out.stdout);
    let user_line = text.lines().find(|l| l.starts_with("user ")).unwrap();
    assert!(user_line.contains("from-flag-file"), "{text}");
    assert!(user_line.contains("(from --config)"), "{text}");
    let timeout_line = text.lines().find(|l| l.starts_with("timeout ")).unwrap();
    assert!(timeout_line.contains("user file"), "{text}");
}

#[test]
fn config_errors_exit_2_and_name_the_key() {
    let s = Scratch::new();
    s.write(
        "xdg/claude-bottle/config.toml",
        "runtime = 'docker'\nconatiner_home = '/x'\n",
    );
    let out = s.run(&["config"], &[]);
    expect_code(&out, 2, "unknown key in user file");
    let err = stderr(&out);
    assert!(err.contains("unknown setting `conatiner_home`"), "{err}");
    assert!(err.contains("config.toml line 2"), "{err}");

    let s = Scratch::new();
    let out = s.run(&["--json", "config"], &[("CLAUDE_BOTTLE_TIMEOUT", "soon")]);
    expect_code(&out, 2, "bad timeout");
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]["causes"][0].as_str().unwrap().contains(
            "invalid value for `timeout` from environment variable CLAUDE_BOTTLE_TIMEOUT"
        ),
        "{v}"
    );

    let out = s.run(
        &["config", "--config", "/nonexistent/bottle-config.toml"],
        &[],
    );
    expect_code(&out, 2, "missing --config file");
    assert!(stderr(&out).contains("/nonexistent/bottle-config.toml"));

    // CLI switches read from the environment are not "unknown settings".
    let out = s.run(&["config"], &[("CLAUDE_BOTTLE_JSON", "true")]);
    expect_code(&out, 0, "CLAUDE_BOTTLE_JSON");
    json(&out);
}

/// Every file bottlectl reads on the operator's side is read bounded and
/// only when it is a regular file: a FIFO (which would hang it) or a link to
/// `/dev/zero` (which would fill memory) in its place is refused, exit 2,
/// naming the file. Each run has 20 s and 2 GiB of address space.
#[test]
fn operator_files_are_read_bounded_and_regular_only() {
    fn fifo(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let made = Command::new("mkfifo").arg(p).status().expect("mkfifo");
        assert!(made.success());
    }
    fn zero(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/dev/zero", p).unwrap();
    }
    type Setup = fn(&Path) -> (Vec<String>, Vec<(String, String)>, PathBuf);
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            "--config FIFO",
            |h| {
                let p = h.join("c.toml");
                fifo(&p);
                (
                    vec!["--config".into(), p.display().to_string(), "config".into()],
                    vec![],
                    p,
                )
            },
            "FIFO",
        ),
        (
            "user config.toml -> /dev/zero",
            |h| {
                let p = h.join("xdg/claude-bottle/config.toml");
                zero(&p);
                (vec!["config".into()], vec![], p)
            },
            "character device",
        ),
        (
            "$DOCKER_CONFIG/config.json FIFO",
            |h| {
                let p = h.join("dc/config.json");
                fifo(&p);
                (
                    vec!["config".into()],
                    vec![("DOCKER_CONFIG".into(), h.join("dc").display().to_string())],
                    p,
                )
            },
            "FIFO",
        ),
        (
            "a context's meta.json -> /dev/zero",
            |h| {
                use sha2::{Digest, Sha256};
                let id = hex::encode(Sha256::digest(b"evil"));
                let p = h.join("dc/contexts/meta").join(id).join("meta.json");
                zero(&p);
                (
                    vec!["--context".into(), "evil".into(), "doctor".into()],
                    vec![("DOCKER_CONFIG".into(), h.join("dc").display().to_string())],
                    p,
                )
            },
            "character device",
        ),
        (
            "TLS ca.pem FIFO",
            |h| {
                let p = h.join("certs/ca.pem");
                fifo(&p);
                for f in ["cert.pem", "key.pem"] {
                    std::fs::write(h.join("certs").join(f), "x").unwrap();
                }
                (
                    vec!["--runtime".into(), "docker".into(), "doctor".into()],
                    vec![
                        ("DOCKER_HOST".into(), "tcp://127.0.0.1:1".into()),
                        ("DOCKER_TLS_VERIFY".into(), "1".into()),
                        (
                            "DOCKER_CERT_PATH".into(),
                            h.join("certs").display().to_string(),
                        ),
                    ],
                    p,
                )
            },
            "FIFO",
        ),
        (
            "podman-connections.json FIFO",
            |h| {
                let p = h.join("xdg/containers/podman-connections.json");
                fifo(&p);
                (
                    vec!["--runtime".into(), "podman".into(), "doctor".into()],
                    vec![],
                    p,
                )
            },
            "FIFO",
        ),
        (
            "containers.conf -> /dev/zero",
            |h| {
                let p = h.join("cc/containers.conf");
                zero(&p);
                (
                    vec!["--runtime".into(), "podman".into(), "doctor".into()],
                    vec![("CONTAINERS_CONF".into(), p.display().to_string())],
                    p,
                )
            },
            "character device",
        ),
    ];
    for (what, setup, want) in cases {
        let s = Scratch::new();
        let (args, envs, path) = setup(s.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let cmd = s.command(&args, &envs);
        // The address-space cap keeps a reader of /dev/zero from taking the machine.
        let mut limited = Command::new("sh");
        limited
            .args(["-c", "ulimit -v 2097152 && exec \"$0\" \"$@\""])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_clear()
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(s.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = limited.spawn().expect("run bottlectl");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill(); // this child only, by its pid
                let _ = child.wait();
                panic!("{what}: bottlectl still running after 20 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        expect_code(&out, 2, what);
        // doctor reports on stdout.
        let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(err.contains(want), "{what}: no `{want}` in {err}");
        assert!(
            err.contains(&path.display().to_string()),
            "{what}: path not named: {err}"
        );
    }
}

/// A password in an endpoint URL is never repeated: not by `config` (human
/// or JSON), not in `-v`'s settings line, not in a failure or its fix hint.
#[test]
fn an_endpoint_password_is_never_shown() {
    let s = Scratch::new();
    for host in ["ssh://u:hunter2@127.0.0.1:1", "tcp://u:hunter2@127.0.0.1:1"] {
        for args in [
            vec!["config"],
            vec!["--json", "config"],
            vec!["-v", "--runtime", "docker", "doctor"],
            vec!["-v", "--runtime", "docker", "keys", "nothing"],
        ] {
            let out = s.run(
                &args,
                &[("CLAUDE_BOTTLE_HOST", host), ("CLAUDE_BOTTLE_TIMEOUT", "2")],
            );
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
            assert!(!text.contains("hunter2"), "{host} {args:?}: {text}");
            if args.contains(&"config") {
                assert!(
                    text.contains("u:***@127.0.0.1:1"),
                    "{host} {args:?}: {text}"
                );
            }
        }
    }
}

#[test]
fn help_and_version_exit_0() {
    let s = Scratch::new();
    let out = s.run(&["--help"], &[]);
    expect_code(&out, 0, "--help");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "provision",
        "verify",
        "deprovision",
        "doctor",
        "config",
        "demo",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from help: {help}");
    }
    expect_code(&s.run(&["--version"], &[]), 0, "--version");
}

/// containerd's bad input, through the CLI: each error names the engine,
/// the namespace and the container (or the endpoint, when containerd does
/// not answer), with the exit code of its kind. A container in another
/// namespace is "not found", so the namespace is the clue the user needs.
async fn check_containerd_errors_name_engine_namespace_and_container(env: &TestEnv) {
    let s = Scratch::new();
    let m = manifest(&s);
    let m = m.to_str().unwrap();
    let bottle = env.bottle();
    let ns = bottle_integration_tests::harness::containerd_namespace();
    let run = |namespace: &str, host: &str, args: &[&str], envs: &[(&str, &str)]| {
        let mut full = vec![
            "--runtime",
            "containerd",
            "--host",
            host,
            "--namespace",
            namespace,
        ];
        full.extend_from_slice(args);
        s.run(&full, envs)
    };

    // containerd not running: engine, endpoint and namespace, exit 3.
    let out = run(
        &ns,
        "unix:///nonexistent/containerd.sock",
        &["deprovision", bottle],
        &[],
    );
    expect_code(&out, 3, "containerd not running");
    let err = stderr(&out);
    for want in [
        "cannot use containerd",
        "containerd is unreachable at unix:///nonexistent/containerd.sock",
        &format!("namespace `{ns}`"),
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }

    // A namespace containerd would refuse: refused before any call, exit 2,
    // without a "does not answer" fix (the engine is not the problem).
    let out = run("bad/ns", env.endpoint(), &["verify", bottle, "-m", m], &[]);
    expect_code(&out, 2, "refused namespace");
    let err = stderr(&out);
    assert!(
        err.contains("containerd: invalid connect request: `bad/ns` is not a containerd namespace"),
        "{err}"
    );
    assert!(!err.contains("fix:") && !err.contains("``"), "{err}");

    // A namespace without the container: the container and the namespace
    // it was looked for in, exit 3.
    let elsewhere = format!("bottle-none-{}", std::process::id());
    let out = run(
        &elsewhere,
        env.endpoint(),
        &["verify", bottle, "-m", m],
        &[],
    );
    expect_code(&out, 3, "another namespace");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: cannot verify container `{bottle}` in containerd namespace `{elsewhere}`"
        )) && err.contains(&format!("containerd: no container named `{bottle}`")),
        "{err}"
    );

    // A container without a running task (stopped: its task deleted).
    let stopped = env.start_bottle().await.expect("second bottle");
    env.admin().stop(&stopped.name).await.expect("stop");
    let out = ctl(env, &s, &["provision", &stopped.name, "-m", m], &[]).await;
    expect_code(&out, 3, "no running task");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: cannot provision container `{}` in containerd namespace `{ns}`",
            stopped.name
        )) && err.contains(&format!(
            "containerd: container `{}` is not running",
            stopped.name
        )),
        "{err}"
    );

    // A user the container does not have.
    let out = ctl(
        env,
        &s,
        &["provision", bottle, "-m", m],
        &[("CLAUDE_BOTTLE_USER", "nosuchuser")],
    )
    .await;
    expect_code(&out, 3, "unknown user");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: cannot provision container `{bottle}` in containerd namespace `{ns}`"
        )) && err.contains(&format!(
            "container `{bottle}` is missing user `nosuchuser`"
        )),
        "{err}"
    );
}

/// containerd only (skipped, like every engine test, when
/// `BOTTLE_TEST_RUNTIMES` leaves it out).
mod containerd_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containerd_check_errors_name_engine_namespace_and_container() {
        bottle_integration_tests::harness::run_check(
            bottle_integration_tests::harness::engines::Containerd,
            "check_containerd_errors_name_engine_namespace_and_container",
            |env| async move {
                super::check_containerd_errors_name_engine_namespace_and_container(&env).await
            },
        )
        .await
    }
}
