//! The guard (issue 29) as the bottle's user (uid 1000) meets it, on every
//! engine: the `[signing]` key never logs in and signs SSHSIG only in the
//! `git` namespace; management requests never reach the agent; a forged or
//! replayed session bind does not open a pinned key to another session or
//! user. Real `ssh`, `ssh-keygen -Y` and `ssh-add` through the public
//! socket, and hand-made frames where OpenSSH would not send them.

mod fixtures;

use bottle_integration_tests::agent_attacks::{frame_then, send_as, FAILURE};
use bottle_integration_tests::ssh_fixtures::{keygen_with, public, start_sshd};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_ssh::ssh_key::{PrivateKey, Signature};
use bottle_ssh::{Gate, Plan, Signing, SshEntry, Target};
use signature::Signer;
use std::path::{Path, PathBuf};

const USER: &str = "1000";
const PORT: u16 = 2201;
const PUBLIC: &str = "/run/claude-bottle-agent-public.sock";
/// `SSH2_AGENT_SIGN_RESPONSE`.
const SIGN_RESPONSE: u8 = 14;

struct Keys {
    _dir: tempfile::TempDir,
    host: PathBuf,
    login: PathBuf,
    signing: PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Keys {
        host: keygen_with(d, "host", "ed25519", &[], ""),
        login: keygen_with(d, "login", "ed25519", &[], ""),
        signing: keygen_with(d, "signing", "ed25519", &[], ""),
        _dir: dir,
    }
}

fn plan(k: &Keys) -> Plan {
    Plan {
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: [("a".to_string(), i64::from(PORT))].into(),
        }),
        ssh: vec![SshEntry {
            host: "a".into(),
            hostname: "a.git.example".into(),
            user: "git".into(),
            identity_file: k.login.clone(),
            known_host_key: Some(public(&k.host)),
            ..Default::default()
        }],
        signing: Some(Signing {
            identity_file: k.signing.clone(),
            ..Default::default()
        }),
    }
}

/// Provision, and an sshd on the gate port that trusts both keys for `git`.
async fn setup(env: &TestEnv, k: &Keys) {
    start_sshd(
        env,
        &[PORT],
        &[&k.host],
        &[public(&k.login), public(&k.signing)],
    )
    .await;
    bottle_ssh::provision(env.rt(), env.bottle(), &plan(k), &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
}

/// A shell script as the user with the public socket as its agent.
async fn as_user(env: &TestEnv, script: &str) -> bottle_runtime::ExecOutput {
    let script = format!("export HOME=/home/node SSH_AUTH_SOCK={PUBLIC}; cd /tmp && {script}");
    env.exec_as(USER, &["sh", "-c", &script]).await
}

/// `ssh` as the user to the sshd with one agent key (its public half at
/// `pub_path` in the bottle), bypassing the user's config.
fn ssh_with(pub_path: &str, user: &str) -> String {
    format!(
        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile={pub_path} \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p {PORT} {user}@127.0.0.1 true"
    )
}

async fn put_public(env: &TestEnv, key: &Path, at: &str) {
    let out = as_user(
        env,
        &format!("printf '%s\\n' '{}' > {at}", public(key).trim()),
    )
    .await;
    assert_success(&out, "write a public key as the user");
}

async fn agent_keys(env: &TestEnv) -> usize {
    let out = as_user(env, "ssh-add -l").await;
    assert_success(&out, "ssh-add -l");
    out.stdout_lossy().lines().count()
}

/// Attack 2: the `[signing]` key, loaded unrestricted, logged the user in
/// to a server that trusts it. Through the guard it never signs a login;
/// the login key, through its alias, still does.
async fn check_the_signing_key_never_logs_in(env: &TestEnv) {
    let k = keys();
    setup(env, &k).await;
    put_public(env, &k.signing, "/tmp/s.pub").await;
    put_public(env, &k.login, "/tmp/l.pub").await;
    let out = as_user(env, &ssh_with("/tmp/s.pub", "git")).await;
    assert!(
        !out.success(),
        "the signing key logged in: {}",
        out.stderr_lossy()
    );
    let out = as_user(env, "ssh -o BatchMode=yes a true").await;
    assert_success(&out, "ssh a with the login key");
    // The login key only as its entry's User.
    let out = as_user(env, &ssh_with("/tmp/l.pub", "root")).await;
    assert!(
        !out.success(),
        "the login key signed for root: {}",
        out.stderr_lossy()
    );
}

/// Attack 2, SSHSIG: the signing key signs in the `git` namespace only,
/// and raw bytes of the user's choice not at all.
async fn check_the_signing_key_signs_only_in_git(env: &TestEnv) {
    let k = keys();
    setup(env, &k).await;
    put_public(env, &k.signing, "/tmp/s.pub").await;
    let sign = |ns: &str| {
        format!("echo hi > /tmp/m && rm -f /tmp/m.sig && ssh-keygen -Y sign -n {ns} -f /tmp/s.pub /tmp/m")
    };
    assert_success(&as_user(env, &sign("git")).await, "sign in namespace git");
    let out = as_user(env, &sign("file")).await;
    assert!(
        !out.success(),
        "signed in namespace file: {}",
        out.stderr_lossy()
    );
    let blob = PrivateKey::read_openssh_file(&k.signing)
        .unwrap()
        .public_key()
        .to_bytes()
        .unwrap();
    let raw = frame_then(13, &[&blob, b"raw bytes of the user's choice"], &[0; 4]);
    let reply = send_as(env, USER, PUBLIC, raw).await;
    assert_eq!(reply, [0, 0, 0, 1, FAILURE]);
}

/// Attack 3: add, remove, remove-all, lock, unlock and smartcard requests
/// from the bottle never reach the agent: each fails, the agent keeps its
/// keys, ssh still works.
async fn check_management_requests_never_reach_the_agent(env: &TestEnv) {
    let k = keys();
    setup(env, &k).await;
    put_public(env, &k.login, "/tmp/l.pub").await;
    let before = agent_keys(env).await;
    assert_eq!(before, 2);
    for (what, script) in [
        (
            "add",
            "ssh-keygen -q -t ed25519 -N '' -f /tmp/mine && ssh-add /tmp/mine".to_string(),
        ),
        ("remove", "ssh-add -d /tmp/l.pub".to_string()),
        ("remove all", "ssh-add -D".to_string()),
        ("lock", "printf 'pw\\npw\\n' | ssh-add -x".to_string()),
        ("unlock", "printf 'pw\\n' | ssh-add -X".to_string()),
        ("smartcard", "ssh-add -e /usr/lib/x.so".to_string()),
    ] {
        let out = as_user(env, &script).await;
        assert!(
            !out.success(),
            "{what} went through: {}",
            out.stderr_lossy()
        );
        assert_eq!(agent_keys(env).await, before, "after {what}");
    }
    assert_success(&as_user(env, "ssh -o BatchMode=yes a true").await, "ssh a");
}

/// `session-bind@openssh.com` naming `host` for `sid`, signed by `signer`.
fn bind(host: &PrivateKey, signer: &PrivateKey, sid: &[u8]) -> Vec<u8> {
    let sig: Signature = signer.try_sign(sid).unwrap();
    let sig = Vec::<u8>::try_from(sig).unwrap();
    let blob = host.public_key().to_bytes().unwrap();
    frame_then(27, &[b"session-bind@openssh.com", &blob, sid, &sig], &[0])
}

/// A userauth sign request of `key` for `user` in session `sid`.
fn userauth(key: &PrivateKey, user: &str, sid: &[u8]) -> Vec<u8> {
    let blob = key.public_key().to_bytes().unwrap();
    let mut data = Vec::new();
    for (i, field) in [sid, &[], user.as_bytes(), b"ssh-connection", b"publickey"]
        .iter()
        .enumerate()
    {
        if i == 1 {
            data.push(50); // SSH_MSG_USERAUTH_REQUEST
            continue;
        }
        data.extend_from_slice(&(field.len() as u32).to_be_bytes());
        data.extend_from_slice(field);
    }
    data.push(1);
    for field in [b"ssh-ed25519".as_slice(), &blob] {
        data.extend_from_slice(&(field.len() as u32).to_be_bytes());
        data.extend_from_slice(field);
    }
    frame_then(13, &[&blob, &data], &[0; 4])
}

/// The message types of the replies in `bytes`.
fn reply_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        types.push(bytes[4]);
        bytes = &bytes[(4 + len).min(bytes.len())..];
    }
    types
}

/// A pinned login key signs only for a session bound, with the host's own
/// signature, to its pinned host key: a bind forged with another key, or a
/// real one replayed for another session, opens nothing; the real one
/// opens only its entry's user. (The agent's own destination restriction
/// refuses the same three; the guard checks them itself, first.)
async fn check_forged_or_replayed_binds_open_nothing(env: &TestEnv) {
    let k = keys();
    setup(env, &k).await;
    let host = PrivateKey::read_openssh_file(&k.host).unwrap();
    let login = PrivateKey::read_openssh_file(&k.login).unwrap();
    let other = PrivateKey::read_openssh_file(&k.signing).unwrap();
    let sid = [7u8; 32];
    let cases: [(&str, Vec<u8>, Vec<u8>); 4] = [
        (
            "forged",
            [bind(&host, &other, &sid), userauth(&login, "git", &sid)].concat(),
            vec![FAILURE, FAILURE],
        ),
        (
            "replayed",
            [
                bind(&host, &host, &[9u8; 32]),
                userauth(&login, "git", &sid),
            ]
            .concat(),
            vec![6, FAILURE],
        ),
        (
            "another user",
            [bind(&host, &host, &sid), userauth(&login, "root", &sid)].concat(),
            vec![6, FAILURE],
        ),
        (
            "real",
            [bind(&host, &host, &sid), userauth(&login, "git", &sid)].concat(),
            vec![6, SIGN_RESPONSE],
        ),
    ];
    for (what, bytes, expected) in cases {
        let reply = send_as(env, USER, PUBLIC, bytes).await;
        assert_eq!(reply_types(&reply), expected, "{what}");
    }
}

/// Another bottle's version of the guard in the state directory (as after
/// an upgrade of bottlectl): the next provision delivers this one into the
/// existing state directory, removes the other, and the agent serves
/// through the guard.
async fn check_a_new_guard_replaces_another_version(env: &TestEnv) {
    let k = keys();
    setup(env, &k).await;
    let other = "0".repeat(64);
    env.sh(
        "cd /run/claude-bottle && for f in guard-*; do mv \"$f\" \"guard-$1\"; done",
        &[&other],
    )
    .await;
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan(&k), &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision with another guard version: {e}"));
    assert!(
        report.steps.iter().any(|s| s.name == "deliver the guard"),
        "{:?}",
        report.steps
    );
    let left = env.sh("ls /run/claude-bottle | grep '^guard-'", &[]).await;
    assert_eq!(
        left.trim(),
        format!("guard-{}", bottle_ssh::guard::sha256()),
        "{left}"
    );
    assert_success(&as_user(env, "ssh -o BatchMode=yes a true").await, "ssh a");
}

/// `guard = "off"`: a plain relay, so the user's management requests reach
/// the agent; `verify` passes but says UNGUARDED. Provisioning with the
/// guard again delivers it and puts it back in front; verify expecting a
/// relay then fails, so it never reports the wrong forwarder as running.
async fn check_guard_off_is_a_relay_that_verify_reports(env: &TestEnv) {
    let k = keys();
    start_sshd(env, &[PORT], &[&k.host], &[public(&k.login)]).await;
    let off = bottle_ssh::Options {
        unguarded: true,
        ..Default::default()
    };
    let target = Target::default();
    bottle_ssh::provision_with(env.rt(), env.bottle(), &plan(&k), &target, &off)
        .await
        .unwrap_or_else(|e| panic!("provision with guard off: {e}"));
    let report = bottle_ssh::verify_with(env.rt(), env.bottle(), &plan(&k), &target, &off)
        .await
        .unwrap_or_else(|e| panic!("verify with guard off: {e}"));
    assert!(report.ok(), "{:?}", report.checks);
    let guard = report.check("guard").expect("a guard check");
    assert!(guard.detail.contains("UNGUARDED"), "{guard:?}");
    assert_success(&as_user(env, "ssh -o BatchMode=yes a true").await, "ssh a");
    let out = as_user(env, "ssh-add -D").await;
    assert_success(&out, "remove all through the relay");
    let out = as_user(env, "ssh-add -l").await;
    assert!(out.stdout_lossy().contains("no identities"), "{out:?}");

    let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan(&k), &target)
        .await
        .unwrap_or_else(|e| panic!("provision with the guard: {e}"));
    assert!(
        report.steps.iter().any(|s| s.name == "deliver the guard"),
        "{:?}",
        report.steps
    );
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan(&k), &target)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.checks);
    let guard = report.check("guard").expect("a guard check");
    assert!(guard.detail.contains("bottle-guard"), "{guard:?}");
    assert!(!as_user(env, "ssh-add -D").await.success());
    assert_eq!(agent_keys(env).await, 2);
    let report = bottle_ssh::verify_with(env.rt(), env.bottle(), &plan(&k), &target, &off)
        .await
        .unwrap();
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["forwarder running"], "{:?}", report.checks);
}

/// The guard loads the keys itself, so a guarded bottle's image needs no
/// `socat`: with it removed, provision (the guard delivered), a login,
/// verify and a second provision (the agent reused) all work; `guard =
/// "off"`, whose relay is socat, is refused naming it, nothing changed.
async fn check_a_guarded_bottle_needs_no_socat(env: &TestEnv) {
    let k = keys();
    // The harness's sshd start waits with socat: before it goes.
    start_sshd(env, &[PORT], &[&k.host], &[public(&k.login)]).await;
    let gone = env
        .sh(
            "p=$(command -v socat) && rm -f \"$p\" && ! command -v socat",
            &[],
        )
        .await;
    assert!(!gone.contains("socat"), "socat is still there: {gone}");
    let target = Target::default();
    let off = bottle_ssh::Options {
        unguarded: true,
        ..Default::default()
    };
    let refused = bottle_ssh::provision_with(env.rt(), env.bottle(), &plan(&k), &target, &off)
        .await
        .expect_err("guard off without socat");
    assert!(refused.to_string().contains("socat"), "{refused}");
    for round in ["fresh", "agent reused"] {
        let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan(&k), &target)
            .await
            .unwrap_or_else(|e| panic!("provision ({round}) without socat: {e}"));
        assert_eq!(report.agent.started, round == "fresh", "{round}");
        assert_success(&as_user(env, "ssh -o BatchMode=yes a true").await, "ssh a");
        let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan(&k), &target)
            .await
            .unwrap();
        assert!(report.ok(), "{round}: {:?}", report.checks);
    }
    assert_eq!(agent_keys(env).await, 2);
}

/// A `/run` mounted `noexec` (both engines' own tmpfs default): the guard
/// cannot run from the state directory, so provision refuses, saying why
/// and what to do, and leaves no agent behind; `guard = "off"` (a relay,
/// nothing of ours executed from `/run`) then works.
async fn check_a_noexec_run_is_refused_naming_it(env: &TestEnv) {
    let k = keys();
    let mut spec = env
        .variant()
        .run_spec(env.image().to_string(), ["/bin/sleep", "infinity"]);
    spec.tmpfs = vec!["/run".into()];
    spec.tmpfs_noexec = true;
    let bottle = env
        .run_container(spec)
        .await
        .expect("a bottle with a noexec /run");
    let target = Target::default();
    let e = bottle_ssh::provision(env.rt(), &bottle.name, &plan(&k), &target)
        .await
        .expect_err("provision with a noexec /run");
    let text = bottle_runtime::error_chain(&e);
    assert!(text.contains("noexec"), "{text}");
    assert!(text.contains("agent = sidecar"), "{text}");
    let out = env
        .rt()
        .exec_script(
            &bottle.name,
            "ls -A /run/claude-bottle; [ ! -e /run/claude-bottle-agent.sock ]",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_success(&out, "no agent after the refusal");
    assert_eq!(out.stdout_lossy().trim(), "", "left in the state directory");
    let off = bottle_ssh::Options {
        unguarded: true,
        ..Default::default()
    };
    bottle_ssh::provision_with(env.rt(), &bottle.name, &plan(&k), &target, &off)
        .await
        .unwrap_or_else(|e| panic!("guard off on a noexec /run: {e}"));
}

fn fp_of(public_line: &str) -> String {
    bottle_ssh::ssh_key::PublicKey::from_openssh(public_line.trim())
        .unwrap()
        .fingerprint(bottle_ssh::ssh_key::HashAlg::Sha256)
        .to_string()
}

/// `bottlectl audit` with `args` as JSON lines.
async fn audit_json(env: &TestEnv, home: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["--json", "audit"];
    all.extend(args);
    let out = fixtures::output(fixtures::bottlectl(env, home, &all, &[])).await;
    fixtures::expect_code(&out, 0, "bottlectl audit");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Issue 30: a real login and real SSHSIG signatures are recorded with
/// their key, user, host key, alias, namespace and hash, a refused one with
/// its reason; the user can neither read nor change the records;
/// `audit --follow` shows a new one within a second or so; a new
/// provision keeps them; `deprovision` keeps them on the operator's machine
/// and says where.
async fn check_the_records_say_what_each_key_did(env: &TestEnv) {
    let k = keys();
    setup(env, &k).await;
    fixtures::ensure_bottlectl().await;
    let home = tempfile::tempdir().unwrap();
    put_public(env, &k.signing, "/tmp/s.pub").await;
    assert_success(&as_user(env, "ssh -o BatchMode=yes a true").await, "ssh a");
    let sign = |ns: &str| {
        format!("echo hi > /tmp/m && rm -f /tmp/m.sig && ssh-keygen -Y sign -n {ns} -f /tmp/s.pub /tmp/m")
    };
    assert_success(&as_user(env, &sign("git")).await, "sign in git");
    assert!(!as_user(env, &sign("file")).await.success());
    for attempt in [
        "cat /run/claude-bottle/audit.jsonl",
        "ls /run/claude-bottle",
        "echo '{}' >> /run/claude-bottle/audit.jsonl",
        "rm -f /run/claude-bottle/audit.jsonl",
    ] {
        let out = as_user(env, attempt).await;
        assert!(!out.success(), "the user could: {attempt}: {out:?}");
    }

    let records = audit_json(env, home.path(), &[env.bottle()]).await;
    let id = env.rt().inspect(env.bottle()).await.unwrap().id;
    assert!(
        records.iter().all(|r| r["container"] == id.as_str()),
        "{records:#?}"
    );
    let login = records
        .iter()
        .find(|r| r["purpose"] == "login")
        .unwrap_or_else(|| panic!("no login record: {records:#?}"));
    assert_eq!(login["decision"], "allow");
    assert_eq!(login["key"], fp_of(&public(&k.login)));
    assert_eq!(login["user"], "git");
    assert_eq!(login["host_key"], fp_of(&public(&k.host)));
    assert_eq!(login["alias"], "a");
    let sshsig = records
        .iter()
        .find(|r| r["purpose"] == "sshsig")
        .unwrap_or_else(|| panic!("no sshsig record: {records:#?}"));
    assert_eq!(sshsig["namespace"], "git");
    assert_eq!(sshsig["key"], fp_of(&public(&k.signing)));
    assert!(sshsig["hash"].as_str().unwrap().starts_with("sha512:"));
    let denied = records
        .iter()
        .find(|r| r["decision"] == "deny" && r["request"] == "sign")
        .unwrap_or_else(|| panic!("no refused signature: {records:#?}"));
    assert!(
        denied["reason"].as_str().unwrap().contains("\"file\""),
        "{denied}"
    );
    // --since: the records are minutes old at most.
    assert_eq!(
        audit_json(env, home.path(), &["--since", "10m", env.bottle()])
            .await
            .len(),
        records.len()
    );

    // --follow: a listing shows up while it runs.
    let mut follow = fixtures::bottlectl(
        env,
        home.path(),
        &["--json", "audit", "--follow", env.bottle()],
        &[],
    );
    follow
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = follow.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let before = records.len();
    for _ in 0..before {
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the records so far");
    }
    assert_success(&as_user(env, "ssh-add -l >/dev/null").await, "ssh-add -l");
    let listed = std::time::Instant::now();
    let next = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("a new record while following");
    let took = listed.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(next["request"], "list", "{next}");
    assert!(took < std::time::Duration::from_millis(1500), "{took:?}");

    // A new provision keeps them (the guard appends).
    bottle_ssh::provision(env.rt(), env.bottle(), &plan(&k), &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision again: {e}"));
    let again = audit_json(env, home.path(), &[env.bottle()]).await;
    assert_eq!(again.len(), before + 1, "{again:#?}");

    // deprovision keeps them, and says where.
    let out = fixtures::output(fixtures::bottlectl(
        env,
        home.path(),
        &["deprovision", env.bottle()],
        &[],
    ))
    .await;
    fixtures::expect_code(&out, 0, "deprovision");
    let path = home
        .path()
        .join(format!(".local/state/claude-bottle/audit/{id}.jsonl"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    let kept = std::fs::read_to_string(&path).unwrap();
    assert_eq!(kept.lines().count(), before + 1, "{kept}");
}

/// `bottlectl approve|deny CONTAINER ID [--for D]` with its exit code.
async fn answer(env: &TestEnv, home: &Path, args: &[&str]) -> i32 {
    let out = fixtures::output(fixtures::bottlectl(env, home, args, &[])).await;
    out.status.code().unwrap_or(-1)
}

/// Wait for a pending record not in `seen`; returns its id.
async fn next_pending(env: &TestEnv, home: &Path, seen: &mut Vec<String>) -> String {
    let start = std::time::Instant::now();
    loop {
        let records = audit_json(env, home, &[env.bottle()]).await;
        if let Some(r) = records.iter().find(|r| {
            r["decision"] == "pending" && !seen.contains(&r["id"].as_str().unwrap().to_string())
        }) {
            let id = r["id"].as_str().unwrap().to_string();
            seen.push(id.clone());
            return id;
        }
        assert!(
            start.elapsed().as_secs() < 20,
            "no pending record: {records:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Issue 30, approvals and limits: with `Approve = "each"` ssh waits until
/// `bottlectl approve` lets it through; `deny` and the timeout refuse it;
/// a `--for` grant lets the next login through unasked; an unknown or
/// answered id, or one of another bottle, is exit 2; `MaxSignatures =
/// "2/1m"` refuses the third
/// signature. Each decision is recorded.
async fn check_approvals_and_limits_hold_signatures(env: &TestEnv) {
    let k = keys();
    let mut plan = plan(&k);
    plan.ssh[0].approve = Some("each".into());
    plan.ssh[0].approval_timeout = Some(bottle_ssh::Lifetime::Text("4s".into()));
    plan.signing.as_mut().unwrap().max_signatures = Some("2/1m".into());
    start_sshd(env, &[PORT], &[&k.host], &[public(&k.login)]).await;
    bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    fixtures::ensure_bottlectl().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let ssh = "ssh -o BatchMode=yes a true";
    let mut seen = Vec::new();
    let b = env.bottle();

    // Another bottle with the same plan: its own guard, its own ids.
    let other = env.start_bottle().await.unwrap().name;
    bottle_ssh::provision(env.rt(), &other, &plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision the other bottle: {e}"));

    // Approved: ssh waits, then logs in. The other bottle cannot release
    // it (exit 2), and the request still waits for this one's answer.
    let (out, id) = futures_util::join!(as_user(env, ssh), async {
        let id = next_pending(env, home, &mut seen).await;
        assert_eq!(answer(env, home, &["approve", &other, &id]).await, 2);
        assert_eq!(answer(env, home, &["approve", b, &id]).await, 0);
        id
    });
    assert_success(&out, "ssh a after approve");
    // The same id again, and one that never existed: exit 2.
    assert_eq!(answer(env, home, &["approve", b, &id]).await, 2);
    assert_eq!(answer(env, home, &["deny", b, "zzz-1"]).await, 2);
    // Denied.
    let (out, _) = futures_util::join!(as_user(env, ssh), async {
        let id = next_pending(env, home, &mut seen).await;
        assert_eq!(answer(env, home, &["deny", b, &id]).await, 0);
    });
    assert!(!out.success(), "ssh a went through a denial: {out:?}");
    // Nobody answers: refused when the timeout passes.
    let started = std::time::Instant::now();
    let out = as_user(env, ssh).await;
    assert!(!out.success(), "ssh a went through unanswered: {out:?}");
    assert!(started.elapsed().as_secs() >= 3, "{:?}", started.elapsed());
    for r in audit_json(env, home, &[b]).await {
        let id = r["id"].as_str().unwrap().to_string();
        if r["decision"] == "pending" && !seen.contains(&id) {
            seen.push(id);
        }
    }
    // A grant: this one approved with --for, the next one unasked.
    let (out, _) = futures_util::join!(as_user(env, ssh), async {
        let id = next_pending(env, home, &mut seen).await;
        assert_eq!(
            answer(env, home, &["approve", "--for", "1m", b, &id]).await,
            0
        );
    });
    assert_success(&out, "ssh a with a grant");
    assert_success(&as_user(env, ssh).await, "ssh a within the grant");

    let records = audit_json(env, home, &[b]).await;
    let logins: Vec<(&str, Option<&str>)> = records
        .iter()
        .filter(|r| r["purpose"] == "login")
        .map(|r| (r["decision"].as_str().unwrap(), r["approval"].as_str()))
        .collect();
    let decisions: Vec<&str> = logins.iter().map(|(d, _)| *d).collect();
    assert_eq!(
        decisions,
        [
            "pending", "allow", "pending", "deny", "pending", "timeout", "pending", "allow",
            "allow"
        ],
        "{records:#?}"
    );
    assert_eq!(
        logins[1].1,
        Some(seen[0].as_str()),
        "the decision names its pending record"
    );
    assert_eq!(logins[8].1, None, "the granted one was never held");

    // MaxSignatures: two signatures in a minute, the third refused.
    put_public(env, &k.signing, "/tmp/s.pub").await;
    let sign =
        "echo hi > /tmp/m && rm -f /tmp/m.sig && ssh-keygen -Y sign -n git -f /tmp/s.pub /tmp/m";
    assert_success(&as_user(env, sign).await, "first signature");
    assert_success(&as_user(env, sign).await, "second signature");
    assert!(
        !as_user(env, sign).await.success(),
        "a third signature in a minute"
    );
    let records = audit_json(env, home, &[b]).await;
    let last = records
        .iter()
        .rev()
        .find(|r| r["request"] == "sign")
        .unwrap();
    assert_eq!(last["decision"], "deny", "{last}");
    assert!(
        last["reason"].as_str().unwrap().contains("MaxSignatures"),
        "{last}"
    );
}

engine_tests!(
    images = [debian, busybox],
    check_a_noexec_run_is_refused_naming_it,
    check_a_guarded_bottle_needs_no_socat,
    check_approvals_and_limits_hold_signatures,
    check_the_records_say_what_each_key_did,
    check_guard_off_is_a_relay_that_verify_reports,
    check_a_new_guard_replaces_another_version,
    check_the_signing_key_never_logs_in,
    check_the_signing_key_signs_only_in_git,
    check_management_requests_never_reach_the_agent,
    check_forged_or_replayed_binds_open_nothing,
);
