//! Keys the way operators have them (issue 7), end to end on every engine
//! through a real sshd: encrypted keys whose passphrase `bottlectl` gets
//! from `SSH_ASKPASS`, a legacy encrypted PEM RSA key, an encrypted P-521
//! key with a short scalar; keys that are
//! refused before the container is touched; an agent lifetime that expires;
//! `bottlectl keys`.

use bottle_integration_tests::ssh_fixtures::{self, fingerprint, keygen_with, public, start_sshd};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_ssh::{Gate, Lifetime, Plan, SshEntry, Target};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "1000";

use bottle_integration_tests::{bottlectl_path, hermetic};

/// `bottlectl --runtime E --host H ARGS…` with a scratch HOME, stdin not a
/// terminal, and `envs` (e.g. SSH_ASKPASS).
async fn ctl(env: &TestEnv, home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bottlectl_path());
    hermetic(&mut cmd, home)
        .args(["--runtime", env.engine().name(), "--host", env.endpoint()])
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run bottlectl"))
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

/// An executable askpass script printing a passphrase chosen by key file.
fn askpass(dir: &Path, cases: &[(&str, &str)]) -> PathBuf {
    let mut script = "#!/bin/sh\ncase \"$1\" in\n".to_string();
    for (needle, pass) in cases {
        script.push_str(&format!("  *{needle}*) printf '%s\\n' '{pass}';;\n"));
    }
    script.push_str("  *) exit 1;;\nesac\n");
    let path = dir.join("askpass.sh");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn toml_entry(alias: &str, key: &Path, pin: &str) -> String {
    format!(
        "[[ssh]]\nHost = \"{alias}\"\nHostname = \"{alias}.git.example\"\nUser = \"git\"\n\
         IdentityFile = \"{}\"\nKnownHostKey = \"{pin}\"\n\n",
        key.display()
    )
}

/// `ssh <alias> id -un` as the user with only `key`: its output, which must
/// be a success.
async fn ssh_with_only(env: &TestEnv, alias: &str, key: &Path) -> String {
    let out = ssh_fixtures::ssh_with_only(env, alias, key).await;
    assert_success(&out, &format!("ssh {alias}"));
    out.stdout_lossy()
}

/// An encrypted P-521 key whose scalar OpenSSH wrote short (about half of
/// them): `ssh-key` alone cannot decrypt it.
fn short_scalar_p521(dir: &Path, pass: &str) -> PathBuf {
    for i in 0..40 {
        let p = keygen_with(dir, &format!("p521_{i}"), "ecdsa", &["-b", "521"], pass);
        let text = std::fs::read_to_string(&p).unwrap();
        let key = bottle_ssh::ssh_key::PrivateKey::from_openssh(&text).unwrap();
        if key.decrypt(pass).is_err() {
            return p;
        }
    }
    panic!("no short-scalar P-521 key in 40 tries");
}

async fn check_encrypted_pem_and_ecdsa_keys_log_in(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host = keygen_with(d, "host_key", "ed25519", &[], "");
    let ed = keygen_with(d, "ed_enc", "ed25519", &[], "ed passphrase");
    let rsa = keygen_with(
        d,
        "rsa_pem_enc",
        "rsa",
        &["-b", "2048", "-m", "PEM"],
        "rsa passphrase",
    );
    assert!(std::fs::read_to_string(&rsa)
        .unwrap()
        .contains("Proc-Type: 4,ENCRYPTED"));
    let ec = short_scalar_p521(d, "ec passphrase");
    let keys = [("ed", &ed), ("rsa", &rsa), ("ec", &ec)];
    start_sshd(
        env,
        &[2201, 2202, 2203],
        &[&host],
        &keys.map(|(_, k)| public(k)),
    )
    .await;
    let pin = public(&host);
    let mut manifest =
        "[gate]\nhost = \"127.0.0.1\"\nports = { ed = 2201, rsa = 2202, ec = 2203 }\n\n"
            .to_string();
    for (alias, key) in keys {
        manifest.push_str(&toml_entry(alias, key, &pin));
    }
    let m = d.join("bottle.toml");
    std::fs::write(&m, manifest).unwrap();
    let ask = askpass(
        d,
        &[
            ("ed_enc", "ed passphrase"),
            ("rsa_pem_enc", "rsa passphrase"),
            ("p521", "ec passphrase"),
        ],
    );
    let envs = [
        ("SSH_ASKPASS", ask.to_str().unwrap()),
        ("SSH_ASKPASS_REQUIRE", "force"),
    ];
    let m = m.to_str().unwrap();
    let out = ctl(
        env,
        d,
        &["--json", "provision", env.bottle(), "--manifest", m],
        &envs,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    assert!(
        !all.contains("passphrase\n") && !all.contains("ed passphrase"),
        "{all}"
    );
    for (alias, key) in keys {
        assert_eq!(ssh_with_only(env, alias, key).await, "git\n", "{alias}");
    }
    let out = ctl(env, d, &["verify", env.bottle(), "--manifest", m], &envs).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // `bottlectl keys`: what the user sees through the public socket.
    let out = ctl(env, d, &["--json", "keys", env.bottle()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<(String, u64, String, Value)> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key_type"].as_str().unwrap().to_string(),
                k["bits"].as_u64().unwrap(),
                k["fingerprint"].as_str().unwrap().to_string(),
                k["restricted_to"].clone(),
            )
        })
        .collect();
    let want: Vec<(String, u64, String, Value)> = [
        ("ED25519", 256, &ed, "ed"),
        ("RSA", 2048, &rsa, "rsa"),
        ("ECDSA", 521, &ec, "ec"),
    ]
    .into_iter()
    .map(|(t, b, k, a)| {
        (
            t.to_string(),
            b,
            fingerprint(k),
            serde_json::json!([format!("git@{a}.git.example")]),
        )
    })
    .collect();
    assert_eq!(listed, want);
    let out = ctl(env, d, &["keys", env.bottle()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains(&fingerprint(&rsa)) && human.contains("restricted to git@rsa.git.example"),
        "{}",
        text(&out)
    );
}

/// No agent, no state, no files: what a refused plan must leave.
async fn assert_untouched(env: &TestEnv, what: &str) {
    let out = env
        .sh(
            r#"for p in /run/claude-bottle /run/claude-bottle-agent.sock /run/claude-bottle-agent-public.sock /home/node/.ssh; do
                 [ -e "$p" ] && echo "exists $p"
               done
               for d in /proc/[0-9]*; do
                 case $(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) in ssh-agent*) echo "agent $d";; esac
               done
               true"#,
            &[],
        )
        .await;
    assert_eq!(out, "", "{what}: the container was touched");
}

async fn check_refused_keys_leave_the_container_untouched(env: &TestEnv) {
    use bottle_ssh::ssh_key::private::{KeypairData, SkEd25519};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let enc = keygen_with(d, "ed_enc", "ed25519", &[], "right one");
    let pem = keygen_with(
        d,
        "rsa_pem_enc",
        "rsa",
        &["-b", "2048", "-m", "PEM"],
        "right one",
    );
    // A security-key key cannot be made without hardware: build the file.
    let public = bottle_ssh::ssh_key::public::SkEd25519::new(
        bottle_ssh::ssh_key::public::Ed25519PublicKey([9u8; 32]),
        "ssh:",
    );
    let sk = KeypairData::SkEd25519(SkEd25519::new(public, 1, vec![3u8; 64]).unwrap());
    let sk_path = d.join("id_ed25519_sk");
    let sk_text = bottle_ssh::ssh_key::PrivateKey::new(sk, "token")
        .unwrap()
        .to_openssh(bottle_ssh::ssh_key::LineEnding::LF)
        .unwrap();
    std::fs::write(&sk_path, sk_text.as_bytes()).unwrap();
    let pin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let wrong = askpass(d, &[("ed_enc", "wrong one"), ("rsa_pem_enc", "wrong one")]);
    let wrong_env = [
        ("SSH_ASKPASS", wrong.to_str().unwrap()),
        ("SSH_ASKPASS_REQUIRE", "force"),
    ];
    // (what, manifest, environment, words the error must contain)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "wrong passphrase",
            toml_entry("a", &enc, pin),
            wrong_env.to_vec(),
            vec!["wrong passphrase", "ed_enc"],
        ),
        (
            "wrong PEM passphrase",
            toml_entry("a", &pem, pin),
            wrong_env.to_vec(),
            vec!["wrong passphrase", "rsa_pem_enc"],
        ),
        (
            "no way to ask",
            toml_entry("a", &enc, pin),
            vec![],
            vec!["SSH_ASKPASS", "terminal", "ed_enc"],
        ),
        (
            "security key",
            toml_entry("a", &sk_path, pin),
            vec![],
            vec!["security-key", "hardware token"],
        ),
        (
            "confirm",
            toml_entry("a", &enc, pin).replace("User = ", "Confirm = true\nUser = "),
            vec![],
            vec!["Confirm", "nobody inside the bottle"],
        ),
    ];
    for (what, entry, envs, needles) in cases {
        let m = d.join("bottle.toml");
        std::fs::write(&m, &entry).unwrap();
        let out = ctl(
            env,
            d,
            &["provision", env.bottle(), "--manifest", m.to_str().unwrap()],
            &envs,
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        for n in needles {
            assert!(err.contains(n), "{what}: no {n:?} in {err}");
        }
        assert!(
            !err.contains("right one") && !err.contains("wrong one"),
            "{what}: {err}"
        );
        assert_untouched(env, what).await;
    }

    // --strict: an entry without KnownHostKey cannot be restricted: exit 2.
    let plain = keygen_with(d, "plain", "ed25519", &[], "");
    let m = d.join("bottle.toml");
    std::fs::write(
        &m,
        format!(
            "[[ssh]]\nHost = \"u\"\nHostname = \"u.example\"\nUser = \"git\"\nIdentityFile = \"{}\"\n",
            plain.display()
        ),
    )
    .unwrap();
    let m = m.to_str().unwrap();
    let out = ctl(
        env,
        d,
        &["provision", env.bottle(), "--manifest", m, "--strict"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KnownHostKey"),
        "{}",
        text(&out)
    );
    assert_untouched(env, "--strict").await;
    // Without it: provisioned, with a warning naming the entry.
    let out = ctl(env, d, &["provision", env.bottle(), "--manifest", m], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("\"u\" has no KnownHostKey"),
        "{}",
        text(&out)
    );
}

async fn check_lifetime_expires_in_the_agent(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen_with(dir.path(), "short", "ed25519", &[], "");
    let keep = keygen_with(dir.path(), "keep", "ed25519", &[], "");
    let entry = |alias: &str, key: &Path, lifetime: Option<Lifetime>| SshEntry {
        host: alias.into(),
        hostname: format!("{alias}.git.example"),
        user: "git".into(),
        identity_file: key.to_path_buf(),
        lifetime,
        ..Default::default()
    };
    let plan = Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: [("short".to_string(), 2201), ("keep".to_string(), 2202)].into(),
        }),
        ssh: vec![
            entry("short", &key, Some(Lifetime::Text("2s".into()))),
            entry("keep", &keep, None),
        ],
    };
    let target = Target::default();
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert_eq!(report.keys[0].lifetime, Some(2));
    let list = || {
        env.exec_as(
            USER,
            &[
                "sh",
                "-c",
                "SSH_AUTH_SOCK=/run/claude-bottle-agent-public.sock ssh-add -l -E sha256",
            ],
        )
    };
    let before = list().await.stdout_lossy();
    assert!(before.contains(&fingerprint(&key)), "{before}");
    let listed = bottle_ssh::list_keys(env.rt(), env.bottle(), &target)
        .await
        .unwrap();
    let short = listed
        .iter()
        .find(|k| k.fingerprint == fingerprint(&key))
        .expect("short key listed");
    assert!(
        short.lifetime_remaining.is_some_and(|s| s <= 2),
        "{short:?}"
    );
    let kept = listed
        .iter()
        .find(|k| k.fingerprint == fingerprint(&keep))
        .expect("kept key listed");
    assert_eq!(kept.lifetime_remaining, None);
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let after = list().await.stdout_lossy();
    assert!(
        !after.contains(&fingerprint(&key)),
        "still listed after its lifetime: {after}"
    );
    assert!(after.contains(&fingerprint(&keep)), "{after}");
    // verify knows the key is gone on purpose.
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &target)
        .await
        .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// With stdin on a terminal, `bottlectl` prompts there (echo off), like
/// ssh-add. Run under script(1)'s pseudo-terminal; the passphrase is typed
/// after a pause, once the prompt has turned echo off.
async fn check_passphrase_from_the_terminal(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen_with(d, "ed_tty", "ed25519", &[], "typed at the tty");
    let pin = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let m = d.join("bottle.toml");
    std::fs::write(&m, toml_entry("a", &key, pin)).unwrap();
    let mut line = shell_quote(bottlectl_path().to_str().unwrap());
    for a in [
        "--runtime",
        env.engine().name(),
        "--host",
        env.endpoint(),
        "provision",
        env.bottle(),
        "--manifest",
        m.to_str().unwrap(),
    ] {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    let shell = format!(
        "(sleep 3; printf '%s\\r' 'typed at the tty') | script -q -e -c {} /dev/null",
        shell_quote(&line)
    );
    let mut cmd = Command::new("sh");
    hermetic(&mut cmd, d)
        .env("TERM", "xterm")
        .env("SHELL", "/bin/sh")
        .args(["-c", &shell]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        transcript.contains(&format!("Enter passphrase for {}", key.display())),
        "{transcript}"
    );
    assert!(
        !transcript.contains("typed at the tty"),
        "echoed: {transcript}"
    );
    let listed = bottle_ssh::list_keys(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].fingerprint, fingerprint(&key));
}

engine_tests!(
    check_passphrase_from_the_terminal,
    check_encrypted_pem_and_ecdsa_keys_log_in,
    check_refused_keys_leave_the_container_untouched,
    check_lifetime_expires_in_the_agent,
);
