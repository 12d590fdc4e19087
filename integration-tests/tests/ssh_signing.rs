//! Commit signing (issue 18), on every engine: the `[signing]` key signs
//! `git commit -S` and `git verify-commit` accepts it, as the user; a
//! login key cannot sign, restricted or not (the guard lets a login key
//! sign logins only); deprovision leaves the user's git
//! configuration byte for byte as it was.

use bottle_integration_tests::ssh_fixtures::{keygen_with, public};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_runtime::{CopyEntry, ExecOutput};
use bottle_ssh::{Plan, Signing, SshEntry, Target};
use std::path::Path;

const USER: &str = "1000";
const GITCONFIG: &str =
    "# the user's own\n[user]\n\tname = Node\n\temail = node@example.test\n[core]\n\tpager = cat";

fn plan(login: &Path, pin: &str, restrict: Option<bool>, signing: &Path) -> Plan {
    Plan {
        gate: None,
        ssh: vec![SshEntry {
            host: "a".into(),
            hostname: "a.git.example".into(),
            user: "git".into(),
            identity_file: login.to_path_buf(),
            known_host_key: Some(pin.to_string()),
            restrict,
            ..Default::default()
        }],
        signing: Some(Signing {
            identity_file: signing.to_path_buf(),
            ..Default::default()
        }),
    }
}

/// A shell script as the user, HOME set, in `/tmp/repo`.
async fn git(env: &TestEnv, script: &str) -> ExecOutput {
    env.exec_as(
        USER,
        &[
            "sh",
            "-c",
            &format!("export HOME=/home/node; mkdir -p /tmp/repo && cd /tmp/repo && {script}"),
        ],
    )
    .await
}

/// The user's git configuration files, as bytes (`None`: absent).
async fn git_files(env: &TestEnv) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for f in ["/home/node/.gitconfig", "/home/node/.config/git/config"] {
        let r = env.exec_as(USER, &["cat", f]).await;
        out.push((f.to_string(), r.success().then(|| r.stdout.clone())));
    }
    out
}

async fn check_git_signs_with_the_signing_key_only(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hk = keygen_with(d, "host", "ed25519", &[], "");
    let login = keygen_with(d, "login", "ed25519", &[], "");
    let signing = keygen_with(d, "signing", "ed25519", &[], "");
    // The user's own ~/.gitconfig, without a final newline (byte for byte).
    env.rt()
        .copy(
            env.bottle(),
            &[CopyEntry::file(
                "/home/node/.gitconfig",
                GITCONFIG.as_bytes().to_vec(),
                0o644,
                1000,
                1000,
            )],
        )
        .await
        .unwrap();
    let before = git_files(env).await;
    assert_eq!(before[0].1.as_deref(), Some(GITCONFIG.as_bytes()));
    assert_eq!(before[1].1, None);
    let target = Target::default();
    let p = plan(&login, &public(&hk), None, &signing);
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let signer = report
        .keys
        .iter()
        .find(|k| k.aliases == ["[signing]"])
        .expect("the signing key is loaded");
    assert!(signer.restricted_to.is_empty(), "{signer:?}");
    let login_key = report.keys.iter().find(|k| k.aliases == ["a"]).unwrap();
    assert_eq!(login_key.restricted_to, ["git@a.git.example"]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    // commit.gpgsign is on: a plain commit is signed; -S too; both verify.
    let out = git(
        env,
        "git init -q . && echo one > f && git add f && git commit -q -m one && \
         echo two > f && git commit -q -S -am two && git verify-commit HEAD HEAD~1 && \
         git log -1 --format=%G?:%GK",
    )
    .await;
    assert_success(&out, "git commit -S and verify-commit as the user");
    let shown = out.stdout_lossy();
    assert!(
        shown
            .trim()
            .starts_with(&format!("G:{}", signer.fingerprint)),
        "{shown} / {}",
        out.stderr_lossy()
    );
    // The guard recorded both commits' signatures: the signing key, SSHSIG
    // in namespace git (issue 30).
    let records = bottle_ssh::audit::read(env.rt(), env.bottle(), None)
        .await
        .unwrap();
    let commits = records
        .iter()
        .filter(|r| {
            r.decision == "allow"
                && r.purpose.as_deref() == Some("sshsig")
                && r.namespace.as_deref() == Some("git")
                && r.key.as_deref() == Some(signer.fingerprint.as_str())
        })
        .count();
    assert_eq!(commits, 2, "{records:#?}");

    // A destination-restricted login key cannot sign.
    let with_login = format!(
        "echo three > f && git -c user.signingkey='key::{}' commit -q -S -am three",
        public(&login)
    );
    let out = git(env, &with_login).await;
    assert!(
        !out.success(),
        "a restricted key signed: {}",
        out.stdout_lossy()
    );
    assert!(
        out.stderr_lossy().contains("agent refused operation"),
        "{}",
        out.stderr_lossy()
    );
    // With the login key unrestricted the agent would sign; the guard
    // still refuses: a login key signs logins only.
    let lax = plan(&login, &public(&hk), Some(false), &signing);
    bottle_ssh::provision(env.rt(), env.bottle(), &lax, &target)
        .await
        .unwrap();
    let out = git(env, &with_login).await;
    assert!(!out.success(), "an unrestricted login key signed a commit");
    bottle_ssh::provision(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap();

    let v = bottle_ssh::verify(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());

    // deprovision: the user's git configuration as it was, byte for byte.
    bottle_ssh::deprovision(env.rt(), env.bottle(), &target)
        .await
        .unwrap();
    assert_eq!(git_files(env).await, before);
    let out = env.exec_as(USER, &["ls", "-A", "/home/node/.ssh"]).await;
    assert!(!out.success(), "~/.ssh left: {}", out.stdout_lossy());
}

/// A user with their own `~/.config/git/config`: provision does not touch
/// it and says how to include bottle's settings; deprovision leaves it.
async fn check_users_own_xdg_git_config_is_left_alone(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hk = keygen_with(d, "host", "ed25519", &[], "");
    let login = keygen_with(d, "login", "ed25519", &[], "");
    let signing = keygen_with(d, "signing", "ed25519", &[], "");
    env.rt()
        .copy(
            env.bottle(),
            &[
                CopyEntry::dir("/home/node/.config", 0o755, 1000, 1000),
                CopyEntry::dir("/home/node/.config/git", 0o755, 1000, 1000),
                CopyEntry::file(
                    "/home/node/.config/git/config",
                    GITCONFIG.as_bytes().to_vec(),
                    0o644,
                    1000,
                    1000,
                ),
            ],
        )
        .await
        .unwrap();
    let before = git_files(env).await;
    let target = Target::default();
    let p = plan(&login, &public(&hk), None, &signing);
    let report = bottle_ssh::provision(env.rt(), env.bottle(), &p, &target)
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("/home/node/.config/git/config") && w.contains("[include]")),
        "{:?}",
        report.warnings
    );
    assert_eq!(git_files(env).await, before, "provision left it as it was");
    // With the include the user adds, signing works.
    let out = git(
        env,
        "git -c include.path=/home/node/.ssh/bottle-signing.gitconfig init -q . && echo x > f && git add f && \
         git -c include.path=/home/node/.ssh/bottle-signing.gitconfig commit -q -m x && \
         git -c include.path=/home/node/.ssh/bottle-signing.gitconfig verify-commit HEAD",
    )
    .await;
    assert_success(&out, "signing through the include");
    bottle_ssh::deprovision(env.rt(), env.bottle(), &target)
        .await
        .unwrap();
    assert_eq!(git_files(env).await, before);
}

engine_tests!(
    check_git_signs_with_the_signing_key_only,
    check_users_own_xdg_git_config_is_left_alone,
);
