//! Destination-restricted keys (issue 8), end to end on every engine: two
//! sshd gates with different host keys, both authorizing the same key.
//! Entry `a` pins gate 1. The user reaches `a`; the same agent refuses to
//! sign for gate 2; with `Restrict = false` the same attempt succeeds (so
//! the refusal is the restriction, not a broken test).

use bottle_integration_tests::ssh_fixtures::{fingerprint, keygen_with, public, start_sshd};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_runtime::{CopyEntry, ExecOutput};
use bottle_ssh::{Gate, Options, Plan, SshEntry, Target};
use std::path::Path;

const USER: &str = "1000";
const GATE1: u16 = 2201;
const GATE2: u16 = 2202;

fn plan(key: &Path, pin: &str, restrict: Option<bool>) -> Plan {
    Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: [("a".to_string(), i64::from(GATE1))].into(),
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

/// Gate 2 by hand, with the bottle's agent and a known_hosts that trusts
/// gate 2's real host key, so nothing but the agent can refuse.
async fn reach_gate2(env: &TestEnv) -> ExecOutput {
    env.exec_as(
        USER,
        &[
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "IdentityAgent=/run/claude-bottle-agent-public.sock",
            "-o",
            "HostKeyAlias=gate2.example",
            "-o",
            "UserKnownHostsFile=/tmp/gate2_known_hosts",
            "-o",
            "StrictHostKeyChecking=yes",
            "-p",
            &GATE2.to_string(),
            "git@127.0.0.1",
            "id",
            "-un",
        ],
    )
    .await
}

/// `ssh-keygen -Y sign` through the public socket: no ssh session, so no
/// session binding for the agent to check against a restriction.
async fn sign_unbound(env: &TestEnv) -> ExecOutput {
    env.exec_as(
        USER,
        &[
            "sh",
            "-c",
            "echo data > /tmp/data && rm -f /tmp/data.sig && \
             SSH_AUTH_SOCK=/run/claude-bottle-agent-public.sock ssh-keygen -Y sign -f /tmp/key.pub -n file /tmp/data",
        ],
    )
    .await
}

async fn check_key_signs_only_for_its_own_gate(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hk1, hk2) = (
        keygen_with(d, "host1", "ed25519", &[], ""),
        keygen_with(d, "host2", "ed25519", &[], ""),
    );
    let key = keygen_with(d, "id_ed25519", "ed25519", &[], "");
    start_sshd(env, &[GATE1], &[&hk1], &[public(&key)]).await;
    start_sshd(env, &[GATE2], &[&hk2], &[public(&key)]).await;
    env.rt()
        .copy(
            env.bottle(),
            &[
                CopyEntry::file(
                    "/tmp/gate2_known_hosts",
                    format!("gate2.example {}\n", public(&hk2)).into_bytes(),
                    0o644,
                    1000,
                    1000,
                ),
                CopyEntry::file("/tmp/key.pub", public(&key).into_bytes(), 0o644, 1000, 1000),
            ],
        )
        .await
        .unwrap();
    let target = Target::default();

    // Restricted (the default).
    let restricted = plan(&key, &public(&hk1), None);
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &restricted, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert_eq!(report.keys[0].restricted_to, ["git@a.git.example"]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let out = env
        .exec_as(USER, &["ssh", "-o", "BatchMode=yes", "a", "id", "-un"])
        .await;
    assert_success(&out, "ssh a (its own gate)");
    assert_eq!(out.stdout_lossy(), "git\n");
    let out = reach_gate2(env).await;
    assert_ne!(out.exit_code, 0, "gate 2 was reached with a restricted key");
    let err = out.stderr_lossy();
    // The agent does not even list the key on a session bound to another
    // host key, so the client has nothing to offer.
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    let out = sign_unbound(env).await;
    assert_ne!(
        out.exit_code, 0,
        "a restricted key signed on an unbound connection"
    );
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &restricted, &target)
        .await
        .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());
    let c = v
        .check(&format!(
            "key {} destination restriction",
            fingerprint(&key)
        ))
        .expect("restriction check");
    assert_eq!(c.detail, "restricted to git@a.git.example");
    let listed = bottle_ssh::list_keys(env.rt(), env.bottle(), &target)
        .await
        .unwrap();
    assert_eq!(
        listed[0].restricted_to,
        Some(vec!["git@a.git.example".to_string()])
    );

    // Restrict = false: gate 2 is reached (the guard pins no host for an
    // unrestricted key).
    let open = plan(&key, &public(&hk1), Some(false));
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &open, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert!(report.keys[0].restricted_to.is_empty());
    assert!(
        report.warnings[0].contains("Restrict = false"),
        "{:?}",
        report.warnings
    );
    let out = reach_gate2(env).await;
    assert_success(&out, "gate 2 with an unrestricted key");
    assert_eq!(out.stdout_lossy(), "git\n");
    // The guard: a login key never signs SSHSIG, restricted or not.
    assert_ne!(
        sign_unbound(env).await.exit_code,
        0,
        "an unrestricted login key signed SSHSIG"
    );
    // verify notices a record that does not match the plan.
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &restricted, &target)
        .await
        .unwrap();
    assert!(
        !v.ok(),
        "verify accepted an unrestricted key for a restricted plan"
    );
}

async fn check_strict_refuses_an_unpinned_entry(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen_with(dir.path(), "id_ed25519", "ed25519", &[], "");
    let mut p = plan(&key, "unused", None);
    p.ssh[0].known_host_key = None;
    let strict = Options {
        passphrase: None,
        strict: true,
        ..Default::default()
    };
    let err = bottle_ssh::provision_with(env.rt(), env.bottle(), &p, &Target::default(), &strict)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("KnownHostKey"), "{err}");
    let left = env.sh("ls -A /run; test ! -e /home/node/.ssh", &[]).await;
    assert!(
        !left.contains("claude-bottle"),
        "strict failure touched the container: {left}"
    );
    // Without strict the same plan provisions, with a warning.
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &p, &Target::default())
        .await
        .unwrap();
    assert!(
        report.warnings[0].contains("no KnownHostKey"),
        "{:?}",
        report.warnings
    );
}

/// One key under two entries pinned to different gates: restricted to
/// both, and usable through both aliases.
async fn check_shared_key_reaches_both_of_its_gates(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hk1, hk2) = (
        keygen_with(d, "host1", "ed25519", &[], ""),
        keygen_with(d, "host2", "ed25519", &[], ""),
    );
    let key = keygen_with(d, "id_ed25519", "ed25519", &[], "");
    start_sshd(env, &[GATE1], &[&hk1], &[public(&key)]).await;
    start_sshd(env, &[GATE2], &[&hk2], &[public(&key)]).await;
    let mut p = plan(&key, &public(&hk1), None);
    let mut b = p.ssh[0].clone();
    b.host = "b".into();
    b.hostname = "b.git.example".into();
    b.known_host_key = Some(public(&hk2));
    p.ssh.push(b);
    p.gate
        .as_mut()
        .unwrap()
        .ports
        .insert("b".into(), i64::from(GATE2));
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &p, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert_eq!(report.keys.len(), 1);
    assert_eq!(
        report.keys[0].restricted_to,
        ["git@a.git.example", "git@b.git.example"]
    );
    for alias in ["a", "b"] {
        let out = env
            .exec_as(USER, &["ssh", "-o", "BatchMode=yes", alias, "id", "-un"])
            .await;
        assert_success(&out, &format!("ssh {alias}"));
        assert_eq!(out.stdout_lossy(), "git\n");
    }
}

engine_tests!(
    check_shared_key_reaches_both_of_its_gates,
    check_key_signs_only_for_its_own_gate,
    check_strict_refuses_an_unpinned_entry,
);
