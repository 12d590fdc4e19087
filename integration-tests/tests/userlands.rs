//! The whole job on every test image and both engines: Debian-like (dash +
//! GNU coreutils), busybox (Alpine-like), a user other than `node` (uid 1001,
//! home outside /home), a user with passwordless sudo, and a read-only root
//! filesystem with tmpfs `/run` and `/tmp`: provision, `ssh <alias>` as the
//! user through a real sshd gate, a planted private key file that verify
//! names, deprovision leaving nothing of ours.

use bottle_integration_tests::ssh_fixtures::{keygen_with, public, start_sshd};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_ssh::{Error, Gate, Options, Plan, SshEntry, Target};

const PORT: u16 = 2201;

/// The variant's user and home; on a read-only root the home is a directory
/// root makes for the user under the tmpfs `/tmp` (a home needs to be
/// writable for `~/.ssh`, as a volume would be).
async fn target(env: &TestEnv) -> Target {
    let home = if env.variant().read_only {
        let home = format!("/tmp/home-{}", env.user());
        env.sh(
            "mkdir -p \"$1\" && chown \"$2:$3\" \"$1\"",
            &[&home, &env.uid().to_string(), &env.gid().to_string()],
        )
        .await;
        home
    } else {
        env.home().to_string()
    };
    Target {
        user: env.user().to_string(),
        home,
        ..Target::default()
    }
}

fn plan(key: &std::path::Path, host_key: &std::path::Path) -> Plan {
    Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: [("up".to_string(), i64::from(PORT))].into(),
        }),
        ssh: vec![SshEntry {
            host: "up".into(),
            hostname: "up.git.example".into(),
            user: "git".into(),
            identity_file: key.to_path_buf(),
            known_host_key: Some(public(host_key)),
            ..Default::default()
        }],
    }
}

/// What bottle leaves in the bottle: state, sockets, `~/.ssh`.
async fn ours(env: &TestEnv, target: &Target) -> String {
    env.sh(
        r#"for f in /run/claude-bottle /run/claude-bottle-agent.sock /run/claude-bottle-agent-public.sock "$1/.ssh"; do
             if [ -e "$f" ]; then echo "$f"; fi
           done"#,
        &[&target.home],
    )
    .await
}

async fn check_the_job_on_every_userland(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let host_key = keygen_with(dir.path(), "host", "ed25519", &[], "");
    let key = keygen_with(dir.path(), "k/id_ed25519", "ed25519", &[], "");
    start_sshd(env, &[PORT], &[&host_key], &[public(&key)]).await;
    let target = target(env).await;
    let plan = plan(&key, &host_key);
    let sudo = env.image_spec().sudo;

    if sudo {
        // Strict: refused before anything changes.
        let opts = Options {
            strict: true,
            ..Options::default()
        };
        match bottle_ssh::provision_with(env.rt(), env.bottle(), &plan, &target, &opts).await {
            Err(e @ Error::UserCanBecomeRoot { .. }) => {
                assert_eq!(e.class(), bottle_ssh::ErrorClass::Refused);
                let text = e.to_string();
                assert!(text.contains("sudo"), "{text}");
                assert!(text.contains("/usr/local/bin/rootenv"), "{text}");
            }
            other => panic!("strict provision with sudo: {other:?}"),
        }
        assert_eq!(
            ours(env, &target).await,
            "",
            "strict refusal changed the bottle"
        );
    }

    let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e} ({e:?})"));
    let warned = report
        .warnings
        .iter()
        .any(|w| w.contains("the user can become root"));
    assert_eq!(warned, sudo, "{:?}", report.warnings);

    // ssh reads ~/.ssh from the passwd entry, not the target home.
    let config = format!("{}/.ssh/config", target.home);
    let known = format!("UserKnownHostsFile={}/.ssh/known_hosts", target.home);
    let out = env
        .exec_as_user(&[
            "ssh",
            "-F",
            &config,
            "-o",
            &known,
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "up",
            "id",
            "-un",
        ])
        .await;
    assert_success(&out, "ssh up as the user");
    assert_eq!(out.stdout_lossy(), "git\n");

    let v = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &target)
        .await
        .unwrap();
    let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
    if sudo {
        assert_eq!(failed, ["the user cannot become root"], "{v:#?}");
        let c = v.check("the user cannot become root").unwrap();
        assert!(c.detail.contains("passwordless sudo"), "{c:?}");
        assert!(c.detail.contains("/usr/local/bin/rootenv"), "{c:?}");
    } else {
        assert!(failed.is_empty(), "{v:#?}");
    }

    // A private key file the user planted is named; once gone, verify passes.
    let leak = format!("{}/leak", target.home);
    let plant = "printf '%s\\n' '-----BEGIN OPENSSH PRIVATE KEY-----' 'AAAA' > \"$1\"";
    assert_success(
        &env.exec_as_user(&["sh", "-c", plant, "sh", &leak]).await,
        "plant",
    );
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &target)
        .await
        .unwrap();
    let c = v.check("no private key file").unwrap();
    assert!(!c.ok && c.detail.contains(&leak), "{c:?}");
    assert_success(
        &env.exec_as_user(&["rm", "-f", &leak]).await,
        "remove the leak",
    );

    let d = bottle_ssh::deprovision(env.rt(), env.bottle(), &target)
        .await
        .unwrap_or_else(|e| panic!("deprovision: {e}"));
    assert_eq!(d.stopped_agent, Some(report.agent.pid));
    assert_eq!(ours(env, &target).await, "", "deprovision left something");
}

/// On a read-only root the default home cannot hold `~/.ssh`: a clear
/// error naming it, never a success.
async fn check_read_only_home_is_a_clear_error(env: &TestEnv) {
    if !env.variant().read_only {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host_key = keygen_with(dir.path(), "host", "ed25519", &[], "");
    let key = keygen_with(dir.path(), "k/id_ed25519", "ed25519", &[], "");
    let target = Target {
        user: env.user().to_string(),
        home: env.home().to_string(),
        ..Target::default()
    };
    let e = bottle_ssh::provision(env.rt(), env.bottle(), &plan(&key, &host_key), &target)
        .await
        .expect_err("provision into a read-only home");
    assert!(
        e.to_string().contains(&format!("{}/.ssh", env.home())),
        "{e}"
    );
    assert_eq!(e.class(), bottle_ssh::ErrorClass::Container);
}

engine_tests!(
    images = all,
    check_the_job_on_every_userland,
    check_read_only_home_is_a_clear_error,
);
