//! Each alias signs in with its own entry's key, asserted server side, on
//! every engine: nine entries behind one gate, two of them deploy keys for
//! the same `Hostname`, the rest unrestricted, and an sshd with
//! `MaxAuthTries 3` whose authorized keys each run a forced command naming
//! the key. ssh offers the agent's keys in agent order unless the config
//! names one per `Host`.

use bottle_integration_tests::ssh_fixtures::{keygen_with, public, start_sshd_with};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_ssh::{Gate, Plan, SshEntry, Target};

const USER: &str = "1000";
const ENTRIES: u16 = 9;
const FIRST_PORT: u16 = 2201;

async fn check_every_alias_signs_in_with_its_own_key(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host_key = keygen_with(d, "host", "ed25519", &[], "");
    let keys: Vec<_> = (1..=ENTRIES)
        .map(|i| keygen_with(d, &format!("k{i}/id_ed25519"), "ed25519", &[], ""))
        .collect();
    // The key's name comes from the server: which key authenticated.
    let authorized: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("command=\"echo key-{}\" {}", i + 1, public(k)))
        .collect();
    let ports: Vec<u16> = (0..ENTRIES).map(|i| FIRST_PORT + i).collect();
    start_sshd_with(env, &ports, &[&host_key], &authorized, "MaxAuthTries 3\n").await;

    let mut plan = Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: Default::default(),
        }),
        ssh: Vec::new(),
    };
    for (i, key) in keys.iter().enumerate() {
        let alias = format!("up{}", i + 1);
        // up1 and up2: deploy keys for one upstream (restricted to it);
        // the others unrestricted, so the agent would offer them anywhere.
        let (hostname, restrict) = if i < 2 {
            ("github.example".to_string(), None)
        } else {
            (format!("h{}.example", i + 1), Some(false))
        };
        plan.gate
            .as_mut()
            .unwrap()
            .ports
            .insert(alias.clone(), i64::from(ports[i]));
        plan.ssh.push(SshEntry {
            host: alias,
            hostname,
            user: "git".into(),
            identity_file: key.clone(),
            known_host_key: Some(public(&host_key)),
            restrict,
            ..Default::default()
        });
    }
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert_eq!(report.keys.len(), usize::from(ENTRIES));
    let verify = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    assert!(verify.ok(), "{:#?}", verify.failures().collect::<Vec<_>>());

    for i in 1..=ENTRIES {
        let alias = format!("up{i}");
        let out = env
            .exec_as(
                USER,
                &[
                    "ssh",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ConnectTimeout=10",
                    &alias,
                ],
            )
            .await;
        assert_success(&out, &alias);
        assert_eq!(
            out.stdout_lossy().trim(),
            format!("key-{i}"),
            "{alias} signed in with another entry's key"
        );
    }
}

/// A public key file the user replaces by a symlink to another key or a
/// FIFO: the next provision puts its own file back (written by the user's
/// exec, never by root), verify reports the change until then.
async fn check_replaced_public_key_file_is_reported_and_rewritten(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen_with(dir.path(), "k/id_ed25519", "ed25519", &[], "");
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![SshEntry {
            host: "a".into(),
            hostname: "a.example".into(),
            user: "git".into(),
            identity_file: key.clone(),
            ..Default::default()
        }],
    };
    let target = Target::default();
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &target)
        .await
        .unwrap();
    let name = bottle_ssh::public_key_file(&report.keys[0].fingerprint);
    let path = format!("/home/node/.ssh/{name}");
    for replace in [
        "rm -f \"$1\" && ln -s /etc/passwd \"$1\"",
        "rm -f \"$1\" && mkfifo \"$1\"",
    ] {
        let out = env.exec_as(USER, &["sh", "-c", replace, "sh", &path]).await;
        assert_success(&out, replace);
        let v = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &target)
            .await
            .unwrap();
        let c = v.check(&format!("file {path}")).expect("public key check");
        assert!(!c.ok, "{replace}: {c:?}");
        bottle_ssh::provision(env.rt(), env.bottle(), &plan, &target)
            .await
            .unwrap_or_else(|e| panic!("provision after {replace}: {e}"));
        let v = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &target)
            .await
            .unwrap();
        assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());
    }
    let passwd = env.sh("cat /etc/passwd", &[]).await;
    assert!(passwd.starts_with("root:"), "/etc/passwd changed");
}

engine_tests!(
    images = [debian, busybox],
    check_every_alias_signs_in_with_its_own_key,
    check_replaced_public_key_file_is_reported_and_rewritten,
);
