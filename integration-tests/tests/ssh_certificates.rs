//! Short-lived certificates (issue 18), end to end on every engine: an sshd
//! gate that trusts a user CA (`TrustedUserCAKeys`, `AuthorizedPrincipalsFile`)
//! and has no `authorized_keys` for its user. The entry names only the CA;
//! each provision gives the bottle a fresh key with a certificate.

use bottle_integration_tests::ssh_fixtures::{find_text, keygen_with, public, start_sshd_with};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_runtime::{ContainerInfo, CopyEntry};
use bottle_ssh::{Gate, Lifetime, Plan, SshEntry, Target};
use std::path::Path;
use std::time::Duration;

const USER: &str = "1000";
const GATE: u16 = 2231;
const PRINCIPAL: &str = "deploy-bot";
const SSHD_LOG: &str = "/run/sshd-test.log";

fn plan(ca: &Path, pin: &str, validity: &str) -> Plan {
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
            known_host_key: Some(pin.to_string()),
            certificate_authority: Some(ca.to_path_buf()),
            principals: Some(vec![PRINCIPAL.into()]),
            validity: Some(Lifetime::Text(validity.into())),
            ..Default::default()
        }],
    }
}

/// The gate: trusts `ca`'s public half for `git` with principal
/// [`PRINCIPAL`], no authorized keys, verbose log in [`SSHD_LOG`].
async fn start_ca_gate(env: &TestEnv, host_key: &Path, ca: &Path) -> ContainerInfo {
    let sshd = start_sshd_with(
        env,
        &[GATE],
        &[host_key],
        &[],
        "TrustedUserCAKeys /etc/ssh/test_ca.pub\n\
         AuthorizedPrincipalsFile /etc/ssh/principals/%u\nLogLevel VERBOSE\n",
    )
    .await;
    env.rt()
        .copy(
            &sshd.id,
            &[
                CopyEntry::file(
                    "/etc/ssh/test_ca.pub",
                    format!("{}\n", public(ca)).into_bytes(),
                    0o644,
                    0,
                    0,
                ),
                CopyEntry::dir("/etc/ssh/principals", 0o755, 0, 0),
                CopyEntry::file(
                    "/etc/ssh/principals/git",
                    format!("{PRINCIPAL}\n").into_bytes(),
                    0o644,
                    0,
                    0,
                ),
            ],
        )
        .await
        .unwrap();
    // The fixture's sshd logs to syslog (absent): restart it logging to a file.
    let out = env
        .rt()
        .exec_script(
            &sshd.id,
            r#"kill "$(cat /run/sshd-test.pid)"
               i=0; while [ -e /run/sshd-test.pid ] && [ "$i" -lt 100 ]; do i=$((i+1)); sleep 0.05; done
               /usr/sbin/sshd -f /etc/ssh/sshd_test_config -E "$1""#,
            &[SSHD_LOG],
            None,
        )
        .await
        .unwrap();
    assert_success(&out, "restart sshd with a log file");
    sshd
}

async fn ssh_a(env: &TestEnv) -> bottle_runtime::ExecOutput {
    env.exec_as(
        USER,
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
    .await
}

async fn sshd_log(env: &TestEnv, sshd: &ContainerInfo) -> String {
    let out = env
        .rt()
        .exec_root(&sshd.id, &["cat", SSHD_LOG])
        .await
        .unwrap();
    out.stdout_lossy()
}

/// The 40-character windows (every 8th offset) of a private key file's
/// base64 body that `other` (another key of the same type) does not share:
/// the format's common header would match every such key.
fn ca_texts(ca: &Path, other: &Path, certificates: &str) -> Vec<String> {
    // The public half is no secret (the gate holds it, each certificate
    // names its CA): windows of it are left out too.
    let common = std::fs::read_to_string(other).unwrap() + &public(ca) + certificates;
    let text = std::fs::read_to_string(ca).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    (0..body.len().saturating_sub(40))
        .step_by(8)
        .map(|i| body[i..i + 40].to_string())
        .filter(|w| !common.contains(w.as_str()))
        .collect()
}

async fn check_certificate_logs_in_renews_and_never_ships_the_ca(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hk = keygen_with(d, "host", "ed25519", &[], "");
    let ca = keygen_with(d, "bottle_ca", "ed25519", &[], "");
    let sshd = start_ca_gate(env, &hk, &ca).await;
    let target = Target::default();
    let p = plan(&ca, &public(&hk), "1h");

    let report = bottle_ssh::provision(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let key = &report.keys[0];
    let cert = key
        .certificate
        .as_ref()
        .expect("a certificate in the report");
    let id = format!("bottle:{}:{}:a", env.engine().name(), env.bottle());
    assert_eq!(cert.key_id, id);
    assert_eq!(cert.principals, [PRINCIPAL]);
    assert_eq!(key.restricted_to, ["git@a.git.example"]);
    assert_eq!(key.lifetime, Some(3600));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(cert.valid_before.abs_diff(now + 3600) < 30, "{cert:?}");
    assert!(cert.valid_after <= now - 50, "backdated: {cert:?}");

    // The user logs in with it; the server's log names the bottle.
    let out = ssh_a(env).await;
    assert_success(&out, "ssh a with the certificate");
    assert_eq!(out.stdout_lossy().trim(), "git");
    let log = sshd_log(env, &sshd).await;
    assert!(
        log.contains(&format!(
            "Accepted certificate ID \"{id}\" (serial {})",
            cert.serial
        )),
        "{log}"
    );

    // verify and keys show the certificate.
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());
    let c = v.check("certificate for a").expect("certificate check");
    assert!(
        c.detail.contains(&id) && c.detail.contains(PRINCIPAL),
        "{c:?}"
    );
    let listed = bottle_ssh::list_keys(env.rt(), env.bottle(), &target)
        .await
        .unwrap();
    let shown = listed
        .iter()
        .find_map(|k| k.certificate.as_ref())
        .expect("keys shows the certificate");
    assert_eq!((&shown.key_id, shown.serial), (&id, cert.serial));
    assert_eq!(shown.valid_before, cert.valid_before);

    // The CA's private key is nowhere in the bottle (nor in the gate, which
    // has only its public half).
    let certificates = env.sh("cat /home/node/.ssh/bottle-*.pub", &[]).await;
    let texts = ca_texts(&ca, &hk, &certificates);
    assert!(texts.len() >= 5, "{texts:?}");
    for c in [env.bottle(), sshd.id.as_str()] {
        let found = find_text(env.rt(), c, &texts).await;
        assert!(found.trim().is_empty(), "CA key text in {c}: {found}");
    }
    // verify's key scan looks for the CA key's bytes too: a file holding
    // the CA's public point as the agent stream would carry it is found.
    let point = bottle_ssh::ssh_key::PrivateKey::read_openssh_file(&ca).unwrap();
    let point = point.public_key().key_data().ed25519().unwrap().0;
    env.rt()
        .copy(
            env.bottle(),
            &[CopyEntry::file(
                "/tmp/captured",
                point.to_vec(),
                0o644,
                1000,
                1000,
            )],
        )
        .await
        .unwrap();
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap();
    let scan = v.check("no private key file").unwrap();
    assert!(
        !scan.ok && scan.detail.contains("/tmp/captured"),
        "{scan:?}"
    );
    env.exec_as("0", &["rm", "-f", "/tmp/captured"]).await;

    // Renewal: provision again: same agent and forwarder, a new key and
    // certificate; the old one is gone from the agent; login still works.
    let again = bottle_ssh::provision(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap();
    assert!(
        !again.agent.started && !again.forwarder.started,
        "{again:?}"
    );
    assert_eq!(
        (again.agent.pid, again.forwarder.pid),
        (report.agent.pid, report.forwarder.pid)
    );
    let renewed = again.keys[0].certificate.as_ref().unwrap();
    assert_ne!(renewed.serial, cert.serial);
    assert_ne!(again.keys[0].fingerprint, key.fingerprint);
    let agent = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "SSH_AUTH_SOCK=/run/claude-bottle-agent-public.sock ssh-add -l -E sha256",
            ],
        )
        .await
        .stdout_lossy();
    assert!(!agent.contains(&key.fingerprint), "{agent}");
    assert!(agent.contains(&again.keys[0].fingerprint), "{agent}");
    assert_success(&ssh_a(env).await, "ssh a after renewal");
    let log = sshd_log(env, &sshd).await;
    assert!(
        log.contains(&format!("(serial {})", renewed.serial)),
        "{log}"
    );
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());
}

async fn check_expired_certificate_is_refused_and_reported(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hk = keygen_with(d, "host", "ed25519", &[], "");
    let ca = keygen_with(d, "bottle_ca", "ed25519", &[], "");
    let _sshd = start_ca_gate(env, &hk, &ca).await;
    let target = Target::default();
    let p = plan(&ca, &public(&hk), "4s");
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let valid_before = report.keys[0].certificate.as_ref().unwrap().valid_before;
    assert_success(&ssh_a(env).await, "ssh a before expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tokio::time::sleep(Duration::from_secs(valid_before.saturating_sub(now) + 2)).await;
    let out = ssh_a(env).await;
    assert!(
        !out.success(),
        "logged in after expiry: {}",
        out.stdout_lossy()
    );
    assert!(
        out.stderr_lossy().contains("Permission denied"),
        "{}",
        out.stderr_lossy()
    );
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap();
    assert!(!v.ok());
    let c = v.check("certificate for a").expect("certificate check");
    assert!(!c.ok && c.detail.contains("expired"), "{c:?}");
    // Renewing repairs it.
    bottle_ssh::provision(
        env.rt(),
        env.bottle(),
        &plan(&ca, &public(&hk), "1h"),
        &target,
    )
    .await
    .unwrap();
    assert_success(&ssh_a(env).await, "ssh a after renewal");
}

/// `bottlectl --runtime E --host H ARGS…` with a scratch HOME.
async fn ctl(env: &TestEnv, home: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(bottle_integration_tests::bottlectl_path());
    bottle_integration_tests::hermetic(&mut cmd, home)
        .args(["--runtime", env.engine().name(), "--host", env.endpoint()])
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run bottlectl"))
        .await
        .unwrap()
}

/// Bad certificate and signing input: `bottlectl provision` exits 2 naming
/// the field, and the bottle has no agent, state, socket or `~/.ssh`.
async fn check_bad_certificate_input_is_refused_untouched(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = keygen_with(d, "bottle_ca", "ed25519", &[], "");
    let login = keygen_with(d, "login", "ed25519", &[], "");
    std::fs::write(d.join("garbage"), "not a key\n").unwrap();
    let entry = |extra: &str| {
        format!("[[ssh]]\nHost = \"a\"\nHostname = \"a.example\"\nUser = \"git\"\n{extra}\n")
    };
    let ca_line = format!("CertificateAuthority = \"{}\"", ca.display());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "public key as CA",
            entry(&format!("CertificateAuthority = \"{}.pub\"", ca.display())),
            "is a public key",
        ),
        (
            "CA not a key",
            entry(&format!(
                "CertificateAuthority = \"{}\"",
                d.join("garbage").display()
            )),
            "is not an OpenSSH private key",
        ),
        (
            "principal with a space",
            entry(&format!("{ca_line}\nPrincipals = [\"a b\"]")),
            "whitespace",
        ),
        (
            "principal with a comma",
            entry(&format!("{ca_line}\nPrincipals = [\"a,b\"]")),
            "`,`",
        ),
        (
            "principal with a control character",
            entry(&format!("{ca_line}\nPrincipals = [\"a\\u001bb\"]")),
            "control",
        ),
        (
            "zero Validity",
            entry(&format!("{ca_line}\nValidity = 0")),
            "not a lifetime",
        ),
        (
            "negative Validity",
            entry(&format!("{ca_line}\nValidity = -60")),
            "not a lifetime",
        ),
        (
            "Validity beyond 7 days",
            entry(&format!("{ca_line}\nValidity = \"8d\"")),
            "longer than the maximum",
        ),
        (
            "signing key is a login key",
            format!(
                "[signing]\nIdentityFile = \"{}\"\n\n{}",
                login.display(),
                entry(&format!("IdentityFile = \"{}\"", login.display()))
            ),
            "dedicated",
        ),
    ];
    for (what, manifest, why) in cases {
        let m = d.join("bottle.toml");
        std::fs::write(&m, &manifest).unwrap();
        let out = ctl(
            env,
            d,
            &["provision", env.bottle(), "--manifest", m.to_str().unwrap()],
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(why), "{what}: no {why:?} in {err}");
        let field = match what {
            w if w.contains("CA") => "CertificateAuthority",
            w if w.contains("principal") => "Principals",
            w if w.contains("Validity") => "Validity",
            _ => "IdentityFile",
        };
        assert!(err.contains(field), "{what}: no {field} in {err}");
        let touched = env
            .sh(
                r#"for p in /run/claude-bottle /run/claude-bottle-agent.sock /run/claude-bottle-agent-public.sock /home/node/.ssh; do
                     [ -e "$p" ] && echo "exists $p"
                   done
                   true"#,
                &[],
            )
            .await;
        assert_eq!(touched, "", "{what}: the container was touched");
    }
}

/// The agent's and forwarder's records (pid and start time), as root.
async fn agent_records(env: &TestEnv) -> String {
    env.sh(
        "cat /run/claude-bottle/agent.pid /run/claude-bottle/forwarder.pid",
        &[],
    )
    .await
}

/// `bottlectl --json watch` with a `Validity = "6s"` certificate keeps
/// `ssh a` working as the user across more than two validity periods: it
/// renews (a new certificate each time, logged `renewed`) into the same
/// agent and forwarder.
async fn check_watch_renews_certificates_before_they_expire(env: &TestEnv) {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hk = keygen_with(d, "host", "ed25519", &[], "");
    let ca = keygen_with(d, "bottle_ca", "ed25519", &[], "");
    let sshd = start_ca_gate(env, &hk, &ca).await;
    let manifest = d.join("bottle.toml");
    std::fs::write(
        &manifest,
        format!(
            "[gate]\nhost = \"127.0.0.1\"\n[gate.ports]\na = {GATE}\n\n\
             [[ssh]]\nHost = \"a\"\nHostname = \"a.git.example\"\nUser = \"git\"\n\
             KnownHostKey = \"{}\"\nCertificateAuthority = \"{}\"\n\
             Principals = [\"{PRINCIPAL}\"]\nValidity = \"6s\"\n",
            public(&hk),
            ca.display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(bottle_integration_tests::bottlectl_path());
    bottle_integration_tests::hermetic(&mut cmd, d)
        .args(["--runtime", env.engine().name(), "--host", env.endpoint()])
        .args(["--json", "watch", "--filter"])
        .arg(format!("name=^{}$", env.bottle()))
        .arg("-m")
        .arg(&manifest)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn bottlectl watch");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let (sink, out) = (lines.clone(), child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(&line).unwrap());
        }
    });
    let count = |action: &str| {
        let l = lines.lock().unwrap();
        l.iter().filter(|v| v["action"] == action).count()
    };
    let dump = || format!("{:#?}", lines.lock().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count("provisioned") == 0 {
        assert!(std::time::Instant::now() < deadline, "{}", dump());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t0 = std::time::Instant::now();
    assert_success(&ssh_a(env).await, "ssh a at t=0");
    let records = agent_records(env).await;
    assert!(!records.trim().is_empty());
    // More than two validities (6 s each) later.
    tokio::time::sleep(Duration::from_secs(14).saturating_sub(t0.elapsed())).await;
    let out = ssh_a(env).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_success(&out, &format!("ssh a at t=14s\n{}", dump()));
    assert_eq!(
        agent_records(env).await,
        records,
        "agent or forwarder restarted"
    );
    let renewed: Vec<serde_json::Value> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["action"] == "renewed")
        .cloned()
        .collect();
    assert!(renewed.len() >= 3, "{}", dump());
    assert!(renewed.iter().all(|v| v["after"] == "certificate renewal"));
    assert_eq!(count("failed"), 0, "{}", dump());
    // The login at 14 s used a certificate issued after the first expired.
    let log = sshd_log(env, &sshd).await;
    let serials: std::collections::HashSet<&str> = log
        .lines()
        .filter(|l| l.contains("Accepted certificate ID"))
        .filter_map(|l| l.split("(serial ").nth(1))
        .collect();
    assert_eq!(serials.len(), 2, "{log}");
}

engine_tests!(
    check_certificate_logs_in_renews_and_never_ships_the_ca,
    check_expired_certificate_is_refused_and_reported,
    check_bad_certificate_input_is_refused_untouched,
    check_watch_renews_certificates_before_they_expire,
);
