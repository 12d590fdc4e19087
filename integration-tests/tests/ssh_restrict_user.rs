//! Issue 13, items 6 and 8, end to end on every engine.
//!
//! - A restricted key names its entry's `User`: one sshd gate authorizes the
//!   same key for `git` and for `node`; the entry says `User = "git"`. The
//!   user logs in as `git`, and the same agent refuses to sign a login as
//!   `node`; with `Restrict = false` that login succeeds (so the refusal is
//!   the restriction).
//! - `bottlectl provision` warns when the manifest or a key file can be
//!   changed by someone else (mode 666, or owned by the bottle's uid as if
//!   the bottle wrote it), and refuses an `IdentityFile` that is a FIFO or
//!   `/dev/zero` promptly, naming the entry and field.

use bottle_integration_tests::ssh_fixtures::{keygen_with, public, start_sshd};
use bottle_integration_tests::{assert_success, bottlectl_path, engine_tests, hermetic, TestEnv};
use bottle_runtime::{CopyEntry, ExecOutput};
use bottle_ssh::{Gate, Plan, SshEntry, Target};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "1000";
const GATE: u16 = 2201;

fn plan(key: &Path, pin: &str, restrict: Option<bool>) -> Plan {
    Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: [("a".to_string(), i64::from(GATE))].into(),
        }),
        ssh: vec![SshEntry {
            host: "a".into(),
            hostname: "a.git.example".into(),
            user: "git".into(),
            identity_file: key.to_path_buf(),
            known_host_key: Some(pin.to_string()),
            restrict,
            ..Default::default()
        }],
    }
}

/// `ssh [-l LOGIN] a id -un` as uid 1000, through the rendered config.
async fn ssh_a(env: &TestEnv, login: Option<&str>) -> ExecOutput {
    let mut argv = vec!["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"];
    if let Some(l) = login {
        argv.extend(["-l", l]);
    }
    argv.extend(["a", "id", "-un"]);
    env.exec_as(USER, &argv).await
}

async fn check_restricted_key_logs_in_only_as_its_entrys_user(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hk = keygen_with(d, "host", "ed25519", &[], "");
    let key = keygen_with(d, "id_ed25519", "ed25519", &[], "");
    let sshd = start_sshd(env, &[GATE], &[&hk], &[public(&key)]).await;
    // The same key authorized for `node` too: only the agent can refuse.
    env.rt()
        .copy(
            &sshd.id,
            &[CopyEntry::file(
                "/etc/ssh/authorized/node",
                format!("{}\n", public(&key)).into_bytes(),
                0o644,
                0,
                0,
            )],
        )
        .await
        .unwrap();
    let target = Target::default();

    let restricted = plan(&key, &public(&hk), None);
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &restricted, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let out = ssh_a(env, None).await;
    assert_success(&out, "ssh a (as its entry's user)");
    assert_eq!(out.stdout_lossy(), "git\n");
    let out = ssh_a(env, Some("node")).await;
    assert_ne!(
        out.exit_code,
        0,
        "logged in as node with a key restricted to git: {}",
        out.stdout_lossy()
    );
    let err = out.stderr_lossy();
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &restricted, &target)
        .await
        .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());

    // Restrict = false lifts the agent's restriction, not the guard's: the
    // key still logs in only as its entry's user.
    let open = plan(&key, &public(&hk), Some(false));
    bottle_ssh::provision(env.rt(), env.bottle(), &open, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let out = ssh_a(env, Some("node")).await;
    assert_ne!(out.exit_code, 0, "an unrestricted key logged in as node");
    assert_success(
        &ssh_a(env, None).await,
        "ssh a as git with an unrestricted key",
    );
}

/// `bottlectl --runtime E --host H ARGS…` with a scratch HOME; killed after
/// 60 s (a read that never ends must fail the test, not hang it).
async fn ctl(env: &TestEnv, home: &Path, args: &[&str]) -> (Output, Duration) {
    let mut cmd = Command::new(bottlectl_path());
    hermetic(&mut cmd, home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .args(["--runtime", env.engine().name(), "--host", env.endpoint()])
        .args(args);
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let mut child = cmd.spawn().expect("run bottlectl");
        while child.try_wait().unwrap().is_none() {
            if t.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (child.wait_with_output().unwrap(), t.elapsed())
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn manifest_text(key: &Path) -> String {
    format!(
        "[[ssh]]\nHost = \"a\"\nHostname = \"a.git.example\"\nUser = \"git\"\n\
         IdentityFile = \"{}\"\n",
        key.display()
    )
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

const CHANGED: &str = "can be changed by others";

async fn check_manifest_and_key_files_others_can_change_are_warned(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen_with(d, "id_ed25519", "ed25519", &[], "");
    let m = d.join("bottle.toml");
    std::fs::write(&m, manifest_text(&key)).unwrap();
    let ms = m.to_str().unwrap();
    let provision = ["provision", env.bottle(), "--manifest", ms];

    // Private manifest and key: no such warning.
    chmod(&m, 0o600);
    let (out, _) = ctl(env, d, &provision).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(CHANGED),
        "{}",
        text(&out)
    );

    // A manifest anyone can write.
    chmod(&m, 0o666);
    let (out, _) = ctl(env, d, &provision).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: manifest {m:?} {CHANGED}: it is writable by group or others (mode 0666)"
        )),
        "{}",
        text(&out)
    );

    // A manifest owned by the bottle's uid, as if the bottle had written it.
    chmod(&m, 0o644);
    std::os::unix::fs::chown(&m, Some(1000), Some(1000)).unwrap();
    let (out, _) = ctl(env, d, &provision).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: manifest {m:?} {CHANGED}: it is owned by uid 1000"
        )),
        "{}",
        text(&out)
    );
    std::os::unix::fs::chown(&m, Some(0), Some(0)).unwrap();

    // A key file anyone can write: on stderr and in --json's warnings.
    chmod(&key, 0o666);
    let (out, _) = ctl(
        env,
        d,
        &["--json", "provision", env.bottle(), "--manifest", ms],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let want = format!(
        "IdentityFile {key:?} (ssh[0] (Host \"a\")) {CHANGED}: it is writable by group or others (mode 0666)"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("warning: {want}")), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = json["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().starts_with(&want)),
        "{json}"
    );
    chmod(&key, 0o600);

    // A key file in a directory anyone can write (a link to another key
    // could be put there).
    let open = d.join("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let moved = open.join("id_ed25519");
    std::fs::copy(&key, &moved).unwrap();
    chmod(&moved, 0o600);
    std::fs::write(&m, manifest_text(&moved)).unwrap();
    let (out, _) = ctl(env, d, &provision).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: IdentityFile {moved:?} (ssh[0] (Host \"a\")) {CHANGED}: directory {open:?} is writable by group or others (mode 0777)"
        )),
        "{}",
        text(&out)
    );
}

async fn check_identity_file_that_is_not_a_regular_file_is_refused(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo_key");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let m = d.join("bottle.toml");
    for (key, what) in [
        (fifo.as_path(), "is a FIFO, not a regular file"),
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
    ] {
        std::fs::write(&m, manifest_text(key)).unwrap();
        chmod(&m, 0o600);
        let (out, took) = ctl(
            env,
            d,
            &["provision", env.bottle(), "--manifest", m.to_str().unwrap()],
        )
        .await;
        assert!(
            took < Duration::from_secs(30),
            "took {took:?}: {}",
            text(&out)
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "ssh[0] (Host \"a\"): IdentityFile `{}`: {what}",
                key.display()
            )),
            "{}",
            text(&out)
        );
    }
    // Nothing was provisioned.
    let left = env.sh("ls -A /run; test ! -e /home/node/.ssh", &[]).await;
    assert!(!left.contains("claude-bottle"), "{left}");
}

engine_tests!(
    check_restricted_key_logs_in_only_as_its_entrys_user,
    check_manifest_and_key_files_others_can_change_are_warned,
    check_identity_file_that_is_not_a_regular_file_is_refused,
);
