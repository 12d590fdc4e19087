//! The `sidecar` agent layout (issue 15) on every engine: the agent runs in
//! a companion container sharing the bottle's network namespace, so not
//! even root in the bottle gets a key byte.
//!
//! The attack: root in the bottle replaces `socat` (root-owned, so root's
//! scripts trust it) with one that copies its stdin to a file. In the
//! `bottle` layout that copy holds the private key (the control check); in
//! the `sidecar` layout it holds only agent requests and answers, while
//! `ssh` as the user works through a real sshd gate.

mod fixtures;

use bottle_integration_tests::ssh_fixtures::{
    find_text, keygen_with, live_processes, public, start_sshd,
};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_runtime::{ContainerAdmin, ContainerFilter, ExecRequest, NetworkMode, RunSpec};
use bottle_ssh::sidecar::{self, sidecar_name, LABEL_FOR};
use bottle_ssh::{Error, Gate, Options, Plan, SshEntry, Target};
use std::path::{Path, PathBuf};

const USER: &str = "1000";
const PORT: u16 = 2201;
/// Outside the directories verify's key scan covers, so a capture is found
/// by this test's own search, not mistaken for a provision leftover.
const CAPTURE: &str = "/opt/captured";

struct Keys {
    _dir: tempfile::TempDir,
    host: PathBuf,
    user: PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let host = keygen_with(dir.path(), "host", "ed25519", &[], "");
    let user = keygen_with(dir.path(), "id_ed25519", "ed25519", &[], "");
    Keys {
        _dir: dir,
        host,
        user,
    }
}

fn plan(keys: &Keys) -> Plan {
    Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: [("a".to_string(), i64::from(PORT))].into(),
        }),
        ssh: vec![SshEntry {
            host: "a".into(),
            hostname: "a.git.example".into(),
            user: "git".into(),
            identity_file: keys.user.clone(),
            known_host_key: Some(public(&keys.host)),
            ..Default::default()
        }],
    }
}

/// The private half of an ed25519 key (its 32-byte seed).
fn seed(key: &Path) -> Vec<u8> {
    let k = bottle_ssh::ssh_key::PrivateKey::read_openssh_file(key).unwrap();
    k.key_data().ed25519().unwrap().private.to_bytes().to_vec()
}

/// Whether `hay` holds any 16-byte window of `needle`.
fn holds(hay: &[u8], needle: &[u8]) -> bool {
    needle.windows(16).any(|w| hay.windows(16).any(|h| h == w))
}

/// The base64 lines of a private key file (as text, what a file holding it
/// would contain).
fn key_text(key: &Path) -> Vec<String> {
    std::fs::read_to_string(key)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_string)
        .collect()
}

/// As root in the bottle: `socat` becomes a shim that runs the real one
/// with `-r`/`-R`, so every byte it moves, either way (its stdin, relayed
/// connections), is also written under [`CAPTURE`]. On the `sudo` image the
/// user (uid 1000) does it, through its passwordless `sudo`.
async fn plant_socat_shim(env: &TestEnv) {
    const SHIM: &str = r#"set -e
           real=$(command -v socat)
           mv "$real" "$real.real"
           mkdir -p "$1"
           printf '#!/bin/sh\nexec %s -r %s/$$.lr -R %s/$$.rl "$@"\n' "$real.real" "$1" "$1" > "$real"
           chmod 755 "$real""#;
    if env.image_spec().sudo {
        let out = env
            .exec_as(USER, &["sudo", "-n", "sh", "-c", SHIM, "shim", CAPTURE])
            .await;
        assert_success(&out, "the user plants the shim through sudo");
    } else {
        env.sh(SHIM, &[CAPTURE]).await;
    }
}

/// Everything the shim captured, concatenated.
async fn captured(env: &TestEnv) -> Vec<u8> {
    let out = env
        .rt()
        .exec(
            env.bottle(),
            ExecRequest::new(["sh", "-c", "cat \"$0\"/* 2>/dev/null; true", CAPTURE])
                .user("0")
                .max_output(64 << 20),
        )
        .await
        .unwrap();
    assert_success(&out, "read the capture");
    out.stdout
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

async fn provision_sidecar(
    env: &TestEnv,
    plan: &Plan,
) -> Result<bottle_ssh::ProvisionReport, Error> {
    env.own(sidecar_name(env.bottle()));
    let admin = env.admin();
    sidecar::provision(
        admin.as_ref(),
        env.bottle(),
        plan,
        &Target::default(),
        &Options::default(),
        None,
    )
    .await
}

/// Sidecar verify passes, then deprovision succeeds.
async fn verify_then_deprovision(env: &TestEnv, plan: &Plan) {
    let admin = env.admin();
    let v = sidecar::verify(
        admin.as_ref(),
        env.bottle(),
        plan,
        &Target::default(),
        &Options::default(),
    )
    .await
    .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());
    sidecar::deprovision(admin.as_ref(), env.bottle(), &Target::default())
        .await
        .unwrap();
}

/// Containers labelled as this bottle's agent.
async fn sidecars(admin: &dyn ContainerAdmin, bottle_id: &str) -> usize {
    admin
        .list(&[ContainerFilter::LabelValue(
            LABEL_FOR.into(),
            bottle_id.into(),
        )])
        .await
        .unwrap()
        .len()
}

async fn check_sidecar_keeps_keys_from_root_in_the_bottle(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    plant_socat_shim(env).await;
    let report = provision_sidecar(env, &plan)
        .await
        .unwrap_or_else(|e| panic!("provision (sidecar): {e}"));
    assert_eq!(report.keys[0].restricted_to, ["git@a.git.example"]);

    let out = ssh_a(env).await;
    assert_success(&out, "ssh a as the user (sidecar)");
    assert_eq!(out.stdout_lossy(), "git\n");

    // The relay carried the session's agent traffic, and no key byte.
    let cap = captured(env).await;
    assert!(
        !cap.is_empty(),
        "the shim saw nothing: the test would prove nothing"
    );
    assert!(
        !holds(&cap, &seed(&keys.user)),
        "the private key passed through the bottle"
    );
    let found = find_text(env.rt(), env.bottle(), &key_text(&keys.user)).await;
    assert!(found.trim().is_empty(), "key text in the bottle: {found}");
    assert_eq!(
        live_processes(env.rt(), env.bottle(), "ssh-agent").await,
        0,
        "an ssh-agent runs in the bottle"
    );

    // The sidecar: ours, in the bottle's network namespace, nothing mounted.
    let admin = env.admin();
    let name = sidecar_name(env.bottle());
    let d = admin.details(&name).await.unwrap();
    assert!(d.info.is_running());
    assert_eq!(d.network, format!("container:{}", env.bottle_info().id));
    assert!(d.mounts.is_empty(), "sidecar mounts: {:?}", d.mounts);
    assert!(!d.privileged);
    assert_eq!(d.labels.get(LABEL_FOR), Some(&env.bottle_info().id));
    assert_eq!(
        live_processes(env.rt(), &d.info.id, "ssh-agent -D").await,
        1
    );

    let v = sidecar::verify(
        admin.as_ref(),
        env.bottle(),
        &plan,
        &Target::default(),
        &Options::default(),
    )
    .await
    .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());

    // Re-provisions reuse the one sidecar and its processes.
    for _ in 0..5 {
        provision_sidecar(env, &plan).await.unwrap();
    }
    assert_eq!(sidecars(admin.as_ref(), &env.bottle_info().id).await, 1);
    assert_eq!(
        live_processes(env.rt(), &d.info.id, "ssh-agent -D").await,
        1
    );
    assert_eq!(
        live_processes(env.rt(), &d.info.id, "--listen-abstract").await,
        1
    );
    assert_eq!(
        live_processes(env.rt(), env.bottle(), "ABSTRACT-CONNECT").await,
        1
    );
    assert_success(&ssh_a(env).await, "ssh a after re-provisions");

    let r = sidecar::deprovision(admin.as_ref(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert!(r.removed.contains(&format!("container {name}")), "{r:?}");
    assert!(matches!(
        admin.details(&name).await,
        Err(bottle_runtime::Error::ContainerNotFound { .. })
    ));
    assert_eq!(sidecars(admin.as_ref(), &env.bottle_info().id).await, 0);
    assert_eq!(
        live_processes(env.rt(), env.bottle(), "ABSTRACT-CONNECT").await,
        0
    );
    let left = env
        .sh(
            "ls -d /run/claude-bottle /run/claude-bottle-agent-public.sock 2>/dev/null || true",
            &[],
        )
        .await;
    assert!(left.trim().is_empty(), "left in the bottle: {left}");
}

/// The control: the same shim in the `bottle` layout captures the key
/// when socat loads it (`guard = "off"`), so the check above fails without
/// the sidecar. With the guard, the bottle layout's keys go in through the
/// guard (checked by its hash), and the shim sees none of them either:
/// root in the bottle can still read the agent's memory.
async fn check_bottle_layout_hands_keys_to_root(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    plant_socat_shim(env).await;
    let off = Options {
        unguarded: true,
        ..Options::default()
    };
    bottle_ssh::provision_with(env.rt(), env.bottle(), &plan, &Target::default(), &off)
        .await
        .unwrap_or_else(|e| panic!("provision (bottle, guard off): {e}"));
    assert!(
        holds(&captured(env).await, &seed(&keys.user)),
        "root's shim did not see the key in the bottle layout with socat"
    );
    // Guarded: the keys go through the guard, never the shim.
    env.sh("rm -f \"$1\"/*", &[CAPTURE]).await;
    bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision (bottle, guarded): {e}"));
    assert!(
        !holds(&captured(env).await, &seed(&keys.user)),
        "the guarded bottle layout handed the key to root's socat"
    );
}

async fn check_restarted_bottle_gets_a_new_sidecar(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    let admin = env.admin();
    provision_sidecar(env, &plan).await.unwrap();
    let old = admin.details(&sidecar_name(env.bottle())).await.unwrap();
    admin.stop(env.bottle()).await.unwrap();
    admin.start(env.bottle()).await.unwrap();
    // The gate joins the bottle's new network namespace.
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    provision_sidecar(env, &plan)
        .await
        .unwrap_or_else(|e| panic!("provision after restart: {e}"));
    let new = admin.details(&sidecar_name(env.bottle())).await.unwrap();
    assert_ne!(old.info.id, new.info.id, "the stale sidecar was reused");
    assert!(matches!(
        admin.details(&old.info.id).await,
        Err(bottle_runtime::Error::ContainerNotFound { .. })
    ));
    assert_eq!(sidecars(admin.as_ref(), &env.bottle_info().id).await, 1);
    assert_success(&ssh_a(env).await, "ssh a after the restart");
}

/// The agent does not outlive its bottle: with the bottle stopped,
/// `deprovision` cannot reach the bottle's files (an error, as before) but
/// removes the sidecar and its keys all the same.
async fn check_deprovision_removes_a_stopped_bottles_sidecar(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    let admin = env.admin();
    provision_sidecar(env, &plan).await.unwrap();
    let side = admin.details(&sidecar_name(env.bottle())).await.unwrap();
    admin.stop(env.bottle()).await.unwrap();
    let result = sidecar::deprovision(admin.as_ref(), env.bottle(), &Target::default()).await;
    assert!(
        result.is_err(),
        "deprovision of a stopped bottle: {result:?}"
    );
    assert!(
        matches!(
            admin.details(&side.info.id).await,
            Err(bottle_runtime::Error::ContainerNotFound { .. })
        ),
        "the sidecar outlived its stopped bottle"
    );
}

/// What a refused provision must leave: no state, socket or user files.
async fn assert_bottle_unchanged(env: &TestEnv) {
    let left = env
        .sh(
            "ls -d /run/claude-bottle /run/claude-bottle-agent-public.sock \"$1/.ssh/config\" \
               \"$1/.ssh/known_hosts\" \"$1\"/.ssh/bottle-* 2>/dev/null
             for p in /proc/[0-9]*; do tr '\\0' ' ' < \"$p/cmdline\" 2>/dev/null; echo; done | grep 'ABSTRACT-CONNEC[T]'
             true",
            &[env.home()],
        )
        .await;
    assert!(left.trim().is_empty(), "the bottle changed: {left}");
}

async fn check_foreign_container_by_the_sidecars_name_is_refused(env: &TestEnv) {
    let keys = keys();
    let name = sidecar_name(env.bottle());
    let mut spec = RunSpec::new(env.image(), ["/bin/sleep", "infinity"]);
    spec.name = Some(name.clone());
    spec.network = NetworkMode::None;
    let foreign = env.run_container(spec).await.unwrap();
    let err = provision_sidecar(env, &plan(&keys)).await.unwrap_err();
    assert!(matches!(err, Error::Sidecar { .. }), "{err:?}");
    assert!(err.to_string().contains("not this bottle's agent"), "{err}");
    let admin = env.admin();
    let after = admin.details(&name).await.unwrap();
    assert_eq!(
        after.info.id, foreign.id,
        "the foreign container was replaced"
    );
    assert!(after.info.is_running(), "the foreign container was stopped");
    // deprovision leaves it alone too.
    let r = sidecar::deprovision(admin.as_ref(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert!(
        !r.removed.iter().any(|p| p.starts_with("container ")),
        "{r:?}"
    );
    assert!(admin.details(&name).await.unwrap().info.is_running());
    assert_bottle_unchanged(env).await;
}

async fn check_missing_agent_image_is_refused(env: &TestEnv) {
    let keys = keys();
    env.own(sidecar_name(env.bottle()));
    let admin = env.admin();
    let err = sidecar::provision(
        admin.as_ref(),
        env.bottle(),
        &plan(&keys),
        &Target::default(),
        &Options::default(),
        Some("bottle-test:no-such-image"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Sidecar { .. }), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(matches!(
        admin.details(&sidecar_name(env.bottle())).await,
        Err(bottle_runtime::Error::ContainerNotFound { .. })
    ));
    assert_bottle_unchanged(env).await;
}

/// The user binds the agent's abstract name first (abstract sockets belong
/// to the network namespace the bottle shares): provision refuses with the
/// fix for a taken name (not the owners-and-modes fix of a writable path),
/// and what the bottle's part wrote meanwhile (relay, the user's files) is
/// undone.
async fn check_abstract_name_taken_by_the_user_is_refused(env: &TestEnv) {
    let keys = keys();
    let has_ssh_dir = "[ -e \"$1/.ssh\" ] && echo there; true";
    let before = env.sh(has_ssh_dir, &[env.home()]).await;
    let name = user_takes_the_abstract_name(env).await;
    let err = provision_sidecar(env, &plan(&keys)).await.unwrap_err();
    assert!(matches!(err, Error::UntrustedInContainer { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("@{name}")), "{err}");
    assert!(
        err.to_string().ends_with(
            "a process there could pose as the agent's forwarder (stop the process listening \
             on that name (in the bottle, or in a container sharing its network namespace), \
             then provision again)"
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("root-owned"), "{err}");
    // The sidecar made for this provision is gone again.
    let admin = env.admin();
    assert_eq!(sidecars(admin.as_ref(), &env.bottle_info().id).await, 0);
    assert_bottle_unchanged(env).await;
    let after = env.sh(has_ssh_dir, &[env.home()]).await;
    assert_eq!(before, after, "~/.ssh made or removed");
}

/// As the user, listens on the sidecar's abstract name; returns it.
async fn user_takes_the_abstract_name(env: &TestEnv) -> String {
    let short: String = env.bottle_info().id.chars().take(12).collect();
    let name = format!("claude-bottle-agent-{short}");
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "socat \"ABSTRACT-LISTEN:$0,fork\" SYSTEM:cat </dev/null >/dev/null 2>&1 & \
                 i=0; until grep -q \"@$0\\$\" /proc/net/unix; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.05; done",
                &name,
            ],
        )
        .await;
    assert_success(&out, "the user listens on the abstract name");
    name
}

/// The user's own `~/.ssh` (a file of theirs in it), as the user.
async fn user_keeps_an_ssh_dir(env: &TestEnv) {
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "mkdir -m 755 \"$0/.ssh\" && echo mine > \"$0/.ssh/notes\"",
                env.home(),
            ],
        )
        .await;
    assert_success(&out, "the user makes ~/.ssh");
}

/// The user's `~/.ssh`: its mode and `notes`, as root sees them.
async fn users_ssh_dir(env: &TestEnv) -> String {
    env.sh(
        "stat -c %a \"$1/.ssh\"; cat \"$1/.ssh/notes\"; ls \"$1/.ssh\"",
        &[env.home()],
    )
    .await
}

/// A user with a `~/.ssh` of their own: a made-now sidecar's provision
/// does not write there while the keys load (it could not undo that), and
/// writes once they are loaded; `ssh` works.
async fn check_sidecar_provision_with_the_users_ssh_dir(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    user_keeps_an_ssh_dir(env).await;
    provision_sidecar(env, &plan)
        .await
        .unwrap_or_else(|e| panic!("provision (sidecar): {e}"));
    let out = ssh_a(env).await;
    assert_success(&out, "ssh a as the user (sidecar, the user's ~/.ssh)");
    assert_eq!(out.stdout_lossy(), "git\n");
    let dir = users_ssh_dir(env).await;
    assert!(dir.contains("mine") && dir.contains("config"), "{dir}");
    verify_then_deprovision(env, &plan).await;
    assert_eq!(users_ssh_dir(env).await, "700\nmine\nnotes\n");
}

/// The abstract name taken and the user's own `~/.ssh`: refused, and the
/// user's directory exactly as it was (mode, content, no file added).
async fn check_refused_provision_leaves_the_users_ssh_dir(env: &TestEnv) {
    let keys = keys();
    user_keeps_an_ssh_dir(env).await;
    user_takes_the_abstract_name(env).await;
    let err = provision_sidecar(env, &plan(&keys)).await.unwrap_err();
    assert!(matches!(err, Error::UntrustedInContainer { .. }), "{err:?}");
    assert_bottle_unchanged(env).await;
    assert_eq!(users_ssh_dir(env).await, "755\nmine\nnotes\n");
}

/// A bottle provisioned in the `bottle` layout, then a `sidecar` provision
/// that is refused (the abstract name taken): the `bottle` layout's agent
/// still serves its keys.
async fn check_refused_sidecar_leaves_the_bottle_layout_working(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision (bottle): {e}"));
    user_takes_the_abstract_name(env).await;
    let err = provision_sidecar(env, &plan).await.unwrap_err();
    assert!(matches!(err, Error::UntrustedInContainer { .. }), "{err:?}");
    let public_socket = Target::default().public_socket;
    let out = env
        .exec_as(
            USER,
            &["sh", "-c", "SSH_AUTH_SOCK=$0 ssh-add -l", &public_socket],
        )
        .await;
    assert_success(&out, "the bottle layout's agent after the refusal");
    assert_eq!(
        out.stdout_lossy().lines().count(),
        1,
        "{}",
        out.stdout_lossy()
    );
}

/// Two provisions of one bottle at once, neither finding a sidecar: one
/// makes it; the other reuses it or fails (its `run` lost), and leaves the
/// winner's relay and files alone. Then verify passes and `ssh` works.
async fn check_two_provisions_at_once_leave_one_working_sidecar(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    let (a, b) = futures_util::join!(provision_sidecar(env, &plan), provision_sidecar(env, &plan));
    assert!(a.is_ok() || b.is_ok(), "both failed: {a:?} {b:?}");
    let admin = env.admin();
    assert_eq!(sidecars(admin.as_ref(), &env.bottle_info().id).await, 1);
    assert_success(&ssh_a(env).await, "ssh a after two provisions at once");
    verify_then_deprovision(env, &plan).await;
}

/// A user-writable directory first on `PATH` full of look-alike
/// `ssh-agent`, `ssh-add`, `socat` and shell tools, planted by the user:
/// in the sidecar layout root (in the bottle and in the sidecar) runs none
/// of them, and provision, verify and deprovision work.
async fn check_users_look_alikes_are_not_run(env: &TestEnv) {
    const PLANT: &str = r#"
for t in ssh-agent ssh-add socat id sed tr grep cat rm mkdir mv chmod sleep stat readlink find head mktemp; do
  printf '#!/bin/sh\nfor d in /usr/bin /bin; do [ -x "$d/id" ] && echo "$("$d/id" -u) $0" >> /tmp/fake-ran && break; done\nfor d in /usr/bin /bin; do [ -x "$d/%s" ] && exec "$d/%s" "$@"; done\nexit 127\n' "$t" "$t" > "/usr/local/bin/$t"
  chmod 755 "/usr/local/bin/$t"
done
"#;
    let keys = keys();
    let plan = plan(&keys);
    // The gate first: its readiness probe is the test's own root socat.
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    env.sh("mkdir -p /usr/local/bin && chmod 777 /usr/local/bin", &[])
        .await;
    let out = env.exec_as(USER, &["sh", "-c", PLANT]).await;
    assert_success(&out, "plant look-alikes as the user");
    provision_sidecar(env, &plan)
        .await
        .unwrap_or_else(|e| panic!("provision (sidecar): {e}"));
    assert_success(&ssh_a(env).await, "ssh a as the user");
    verify_then_deprovision(env, &plan).await;
    let ran = env
        .sh(
            "PATH=/usr/bin:/bin; cat /tmp/fake-ran 2>/dev/null; true",
            &[],
        )
        .await;
    assert!(
        !ran.lines().any(|l| l.starts_with("0 ")),
        "root ran the user's programs:\n{ran}"
    );
}

/// `bottlectl` with `CLAUDE_BOTTLE_AGENT=sidecar`: one container, then two
/// at once (each gets its own sidecar), verify passes, deprovision removes both.
async fn check_bottlectl_agent_sidecar(env: &TestEnv) {
    fixtures::ensure_bottlectl().await;
    let keys = fixtures::Keys::new();
    let manifest = keys.manifest();
    let m = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let sidecar_env = [("CLAUDE_BOTTLE_AGENT", "sidecar")];
    let run =
        |args: &[&str]| fixtures::output(fixtures::bottlectl(env, home.path(), args, &sidecar_env));
    let second = env.start_bottle().await.unwrap().name;
    let admin = env.admin();
    for b in [env.bottle(), second.as_str()] {
        env.own(sidecar_name(b));
    }
    let out = run(&["provision", "-m", m, env.bottle()]).await;
    fixtures::expect_code(&out, 0, "bottlectl provision (sidecar)");
    let out = run(&["verify", "-m", m, env.bottle()]).await;
    fixtures::expect_code(&out, 0, "bottlectl verify (sidecar)");
    // keys: the sidecar's agent through the bottle's relay, with the record.
    let out = run(&["--json", "keys", env.bottle()]).await;
    fixtures::expect_code(&out, 0, "bottlectl keys (sidecar)");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = listed["keys"].as_array().unwrap();
    assert!(!listed.is_empty(), "no keys listed");
    assert!(
        listed.iter().all(|k| k["restricted_to"].is_array()),
        "a key without bottle's record: {listed:?}"
    );
    let out = run(&["provision", "-m", m, env.bottle(), &second]).await;
    fixtures::expect_code(&out, 0, "bottlectl provision of two (sidecar)");
    let out = run(&["verify", "-m", m, env.bottle(), &second]).await;
    fixtures::expect_code(&out, 0, "bottlectl verify of two (sidecar)");
    for b in [env.bottle(), second.as_str()] {
        let d = admin.details(&sidecar_name(b)).await.unwrap();
        let id = env.rt().inspect(b).await.unwrap().id;
        assert_eq!(d.labels.get(LABEL_FOR), Some(&id), "{b}'s own sidecar");
        assert_eq!(live_processes(env.rt(), b, "ssh-agent").await, 0, "{b}");
    }
    let out = run(&["deprovision", env.bottle(), &second]).await;
    fixtures::expect_code(&out, 0, "bottlectl deprovision of two (sidecar)");
    for b in [env.bottle(), second.as_str()] {
        assert!(matches!(
            admin.details(&sidecar_name(b)).await,
            Err(bottle_runtime::Error::ContainerNotFound { .. })
        ));
    }
}

/// Every 16-byte window of a private key (its seed, and its text as a key
/// file holds it), indexed by the first two bytes so a scan of megabytes of
/// memory stays cheap in a debug build.
struct Needles(Vec<Vec<([u8; 16], &'static str)>>);

impl Needles {
    fn new(key: &Path) -> Needles {
        let mut by_prefix = vec![Vec::new(); 1 << 16];
        let mut add = |bytes: &[u8], what: &'static str| {
            for w in bytes.windows(16) {
                let w: [u8; 16] = w.try_into().unwrap();
                by_prefix[usize::from(u16::from_be_bytes([w[0], w[1]]))].push((w, what));
            }
        };
        add(&seed(key), "the seed");
        for line in key_text(key) {
            add(line.as_bytes(), "the key's text");
        }
        Needles(by_prefix)
    }

    /// Which part of the key `hay` holds a window of, if any.
    fn find(&self, hay: &[u8]) -> Option<&'static str> {
        hay.windows(16).find_map(|h| {
            self.0[usize::from(u16::from_be_bytes([h[0], h[1]]))]
                .iter()
                .find(|(n, _)| n == h)
                .map(|(_, what)| *what)
        })
    }
}

/// Root in the bottle lists its PID namespace: `PID UID GID ARGV` of each
/// live process but this shell (its glob is expanded before it forks).
const LIST_PROCESSES: &str = r#"for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" != "$$" ] || continue
  st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "$d/status" 2>/dev/null)
  uid=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "$d/status" 2>/dev/null)
  gid=$(sed -n 's/^Gid:[[:space:]]*\([0-9]*\).*/\1/p' "$d/status" 2>/dev/null)
  if [ -z "$st" ] || [ "$st" = Z ] || [ -z "$uid" ] || [ -z "$gid" ]; then continue; fi
  printf '%s %s %s ' "$p" "$uid" "$gid"
  tr '\0' ' ' < "$d/cmdline" 2>/dev/null
  echo
done"#;

/// `$1`'s readable and writable mappings (heap, stack, data, anonymous), raw
/// to stdout; `regions N bytes B failed F` to stderr. Exit 3: the process is
/// gone; 4: its maps are unreadable.
const DUMP_MEMORY: &str = r#"p=$1 n=0 bytes=0 bad=0
[ -e "/proc/$p" ] || exit 3
maps=$(cat "/proc/$p/maps") || exit 4
while read -r range perms _; do
  case $perms in rw*) ;; *) continue;; esac
  s=$((0x${range%-*})) e=$((0x${range#*-}))
  n=$((n+1)) bytes=$((bytes+e-s))
  dd if="/proc/$p/mem" bs=4096 skip=$((s/4096)) count=$(((e-s)/4096)) 2>/dev/null || bad=$((bad+1))
done <<EOF
$maps
EOF
echo "regions $n bytes $bytes failed $bad" >&2"#;

/// One process's scanned memory.
#[derive(Debug)]
struct Scanned {
    pid: u32,
    uid: u32,
    argv: String,
    regions: u64,
    bytes: usize,
    /// Regions `dd` could not read.
    failed: u64,
    /// Which part of the key its memory holds.
    hit: Option<&'static str>,
}

/// Root in the bottle reads the writable memory of every process in the
/// bottle's PID namespace (as the process's own uid for a user's process:
/// root can become any uid, and reading another uid's memory takes
/// `CAP_SYS_PTRACE`, which the bottle lacks) and the host looks for the key.
/// Processes gone between the listing and their dump are left out.
async fn scan_memory(env: &TestEnv, needles: &Needles) -> Vec<Scanned> {
    let list = env.sh(LIST_PROCESSES, &[]).await;
    let mut scanned = Vec::new();
    for line in list.lines() {
        let mut f = line.splitn(4, ' ');
        let mut num = || f.next().unwrap().parse::<u32>().unwrap();
        let (pid, uid, gid) = (num(), num(), num());
        let argv = line.splitn(4, ' ').nth(3).unwrap_or("").trim().to_string();
        let user = if uid == 0 {
            "0".to_string()
        } else {
            format!("{uid}:{gid}")
        };
        let out = env
            .rt()
            .exec(
                env.bottle(),
                ExecRequest::script(DUMP_MEMORY, [pid.to_string()])
                    .user(user)
                    .max_output(256 << 20),
            )
            .await
            .unwrap_or_else(|e| panic!("dump the memory of {pid} ({argv}): {e}"));
        match out.exit_code {
            0 => {}
            3 => continue,
            _ => panic!(
                "cannot read the maps of {pid} ({argv}) as uid {uid}: exit {}, {}",
                out.exit_code,
                out.stderr_lossy()
            ),
        }
        let summary = out.stderr_lossy();
        let words: Vec<&str> = summary.split_whitespace().collect();
        let [_, regions, _, bytes, _, failed] = words[..] else {
            panic!("dump of {pid}: {summary:?}");
        };
        let (regions, bytes, failed): (u64, usize, u64) = (
            regions.parse().unwrap(),
            bytes.parse().unwrap(),
            failed.parse().unwrap(),
        );
        if failed == 0 {
            assert_eq!(out.stdout.len(), bytes, "dump of {pid} ({argv}) came short");
        }
        scanned.push(Scanned {
            pid,
            uid,
            argv,
            regions,
            bytes: out.stdout.len(),
            failed,
            hit: needles.find(&out.stdout),
        });
    }
    scanned
}

/// As root in the bottle: a process that read the whole private key file
/// from its stdin into a shell variable and sleeps. Returns its pid.
async fn start_key_holder(env: &TestEnv, key: &Path) -> u32 {
    // It then blocks opening a FIFO no one writes: no child to clean up.
    const HOLDER: &str = r#"exec 3<&0
rm -f /tmp/holder-ready /tmp/holder-fifo
mkfifo -m 600 /tmp/holder-fifo || exit 1
sh -c 'k=$(cat); : > /tmp/holder-ready; read -r _ < /tmp/holder-fifo; echo "${#k}"' bottle-key-holder <&3 >/dev/null 2>&1 &
echo "$!"
i=0
until [ -e /tmp/holder-ready ]; do i=$((i+1)); [ "$i" -lt 200 ] || exit 1; sleep 0.05; done"#;
    let out = env
        .rt()
        .exec(
            env.bottle(),
            ExecRequest::new(["sh", "-c", HOLDER])
                .user("0")
                .stdin(std::fs::read(key).unwrap()),
        )
        .await
        .unwrap();
    assert_success(&out, "start the key holder");
    out.stdout_lossy().trim().parse().unwrap()
}

async fn check_no_process_in_the_bottle_holds_the_key_in_memory(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    let needles = Needles::new(&keys.user);
    // The index itself finds either part of the key.
    assert_eq!(needles.find(&seed(&keys.user)), Some("the seed"));
    assert_eq!(
        needles.find(&std::fs::read(&keys.user).unwrap()),
        Some("the key's text")
    );
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    provision_sidecar(env, &plan)
        .await
        .unwrap_or_else(|e| panic!("provision (sidecar): {e}"));
    assert_success(&ssh_a(env).await, "ssh a as the user");
    // A live session too: the user's ssh, after the agent signed for it.
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "ssh -f -o BatchMode=yes -o ConnectTimeout=10 a sleep 600 </dev/null >/dev/null 2>&1",
            ],
        )
        .await;
    assert_success(&out, "a backgrounded ssh session as the user");

    // The control: the same scan finds a key that is in a process's memory.
    let holder = start_key_holder(env, &keys.user).await;
    let scan = scan_memory(env, &needles).await;
    let hits: Vec<(u32, &str)> = scan
        .iter()
        .filter_map(|s| s.hit.map(|h| (s.pid, h)))
        .collect();
    let yama = env
        .sh(
            "cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo absent",
            &[],
        )
        .await;
    assert_eq!(
        hits,
        [(holder, "the key's text")],
        "the scan must find the key in the holder {holder} and only there \
         (kernel.yama.ptrace_scope: {}; above 0 root in the bottle cannot read \
         other processes' memory and the scan proves nothing): {scan:#?}",
        yama.trim()
    );
    env.sh(
        r#"kill "$1"
           i=0
           while [ -d "/proc/$1" ] && [ "$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)" != Z ]; do
             i=$((i+1)); [ "$i" -lt 200 ] || exit 1; sleep 0.05
           done"#,
        &[&holder.to_string()],
    )
    .await;

    let scan = scan_memory(env, &needles).await;
    let bytes: usize = scan.iter().map(|s| s.bytes).sum();
    let regions: u64 = scan.iter().map(|s| s.regions).sum();
    eprintln!(
        "memory scan ({:?}, {}): {} processes, {regions} regions, {bytes} bytes: {:?}",
        env.engine(),
        env.variant().name,
        scan.len(),
        scan.iter()
            .map(|s| format!("{} uid {} {} B {}", s.pid, s.uid, s.bytes, s.argv))
            .collect::<Vec<_>>()
    );
    for s in &scan {
        assert_eq!(s.hit, None, "key bytes in the memory of {s:?}");
        assert_eq!(s.failed, 0, "unreadable regions: {s:?}");
    }
    assert!(
        scan.iter().all(|s| s.pid != holder),
        "the holder {holder} is still scanned"
    );
    for (what, needle) in [
        ("the relay", "ABSTRACT-CONNECT"),
        ("the user's ssh", "ssh -f"),
    ] {
        assert!(
            scan.iter().any(|s| s.argv.contains(needle) && s.bytes > 0),
            "{what} was not scanned: {scan:#?}"
        );
    }
}

/// Processes in `container` but the listing shell: `PID STATE ARGV` lines.
async fn processes(rt: &dyn bottle_runtime::ContainerRuntime, container: &str) -> Vec<String> {
    let out = rt
        .exec_script(
            container,
            r#"for d in /proc/[0-9]*; do
                 [ "${d#/proc/}" != "$$" ] || continue
                 st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "$d/status" 2>/dev/null)
                 [ -n "$st" ] || continue
                 printf '%s %s ' "${d#/proc/}" "$st"
                 tr '\0' ' ' < "$d/cmdline" 2>/dev/null
                 echo
               done"#,
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "list: {}", out.stderr_lossy());
    out.stdout_lossy().lines().map(str::to_string).collect()
}

/// (live, zombie) counts of a [`processes`] listing.
fn counts(list: &[String]) -> (usize, usize) {
    let zombies = list
        .iter()
        .filter(|l| l.split(' ').nth(1) == Some("Z"))
        .count();
    (list.len() - zombies, zombies)
}

const REPROVISIONS: usize = 100;

async fn check_hundred_reprovisions_leak_nothing(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    let first = provision_sidecar(env, &plan)
        .await
        .unwrap_or_else(|e| panic!("provision (sidecar): {e}"));
    let admin = env.admin();
    let side = admin
        .details(&sidecar_name(env.bottle()))
        .await
        .unwrap()
        .info
        .id;
    let bottle_before = processes(env.rt(), env.bottle()).await;
    let side_before = processes(env.rt(), &side).await;
    let started = std::time::Instant::now();
    for i in 0..REPROVISIONS {
        let r = sidecar::provision(
            admin.as_ref(),
            env.bottle(),
            &plan,
            &Target::default(),
            &Options::default(),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("re-provision {i}: {e}"));
        assert_eq!(
            r.agent.pid, first.agent.pid,
            "re-provision {i}: a new agent"
        );
        assert_eq!(
            r.forwarder.pid, first.forwarder.pid,
            "re-provision {i}: a new relay"
        );
    }
    let took = started.elapsed();
    eprintln!(
        "{REPROVISIONS} re-provisions ({:?}, {}): {:.1} s, {} ms each; (live, zombie) \
         processes after the first: bottle {:?}, sidecar {:?}",
        env.engine(),
        env.variant().name,
        took.as_secs_f64(),
        took.as_millis() / REPROVISIONS as u128,
        counts(&bottle_before),
        counts(&side_before)
    );
    assert_eq!(sidecars(admin.as_ref(), &env.bottle_info().id).await, 1);
    assert_eq!(
        admin
            .details(&sidecar_name(env.bottle()))
            .await
            .unwrap()
            .info
            .id,
        side,
        "the sidecar was replaced"
    );
    for (container, needle) in [
        (side.as_str(), "ssh-agent -D"),
        (side.as_str(), "--listen-abstract"),
        (env.bottle(), "ABSTRACT-CONNECT"),
    ] {
        assert_eq!(
            live_processes(env.rt(), container, needle).await,
            1,
            "{needle}"
        );
    }
    for (what, container, before) in [
        ("bottle", env.bottle(), &bottle_before),
        ("sidecar", side.as_str(), &side_before),
    ] {
        let after = processes(env.rt(), container).await;
        assert_eq!(
            counts(&after),
            counts(before),
            "(live, zombie) processes in the {what} after {REPROVISIONS} re-provisions; \
             before:\n{}\nafter:\n{}",
            before.join("\n"),
            after.join("\n")
        );
    }
    assert_success(&ssh_a(env).await, "ssh a after the re-provisions");
}

/// Issue 29, attack 1 in this layout: the sidecar's agent is started with
/// a provider allow-list that matches nothing too. A library on the
/// default list's paths in the sidecar (planted here by the test, as an
/// image might carry one) is not loaded when the bottle's user asks for it
/// through the relay, and the agent keeps its keys.
async fn check_the_sidecar_agent_loads_no_provider(env: &TestEnv) {
    use bottle_integration_tests::agent_attacks::{
        add_smartcard_key, build_provider, provider_ran, send_as, write_as, FAILURE,
    };
    let keys = keys();
    let plan = plan(&keys);
    provision_sidecar(env, &plan).await.unwrap();
    let side = sidecar_name(env.bottle());
    let lib = "/usr/local/lib/provider.so";
    write_as(env, &side, "0", lib, build_provider(keys._dir.path())).await;
    let public = Target::default().public_socket;
    let reply = send_as(env, USER, &public, add_smartcard_key(lib)).await;
    assert_eq!(reply, [0, 0, 0, 1, FAILURE], "the agent's answer");
    let ran = provider_ran(env, &side).await;
    assert_eq!(
        ran, "",
        "the library was loaded in the sidecar, by uid(s): {ran}"
    );
    let out = env
        .exec_as(
            USER,
            &["sh", "-c", &format!("SSH_AUTH_SOCK={public} ssh-add -l")],
        )
        .await;
    assert_success(&out, "ssh-add -l as the user");
    verify_then_deprovision(env, &plan).await;
}

/// The guard in this layout listens in the sidecar, where the bottle's
/// relay (and any process in the bottle's network namespace) reaches it:
/// remove-all, lock and add from the bottle's user are refused, the agent
/// keeps its key, and ssh through the gate still works.
async fn check_the_sidecar_guard_refuses_management(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    provision_sidecar(env, &plan).await.unwrap();
    let sock = format!("SSH_AUTH_SOCK={}", Target::default().public_socket);
    for (what, command) in [
        ("remove all", format!("{sock} ssh-add -D")),
        ("lock", format!("printf 'pw\\npw\\n' | {sock} ssh-add -x")),
        (
            "add",
            format!("ssh-keygen -q -t ed25519 -N '' -f /tmp/mine && {sock} ssh-add /tmp/mine; s=$?; rm -f /tmp/mine; exit $s"),
        ),
    ] {
        let out = env.exec_as(USER, &["sh", "-c", &command]).await;
        assert!(!out.success(), "{what} went through: {out:?}");
        let listed = env
            .exec_as(USER, &["sh", "-c", &format!("{sock} ssh-add -l")])
            .await;
        assert_success(&listed, &format!("ssh-add -l after {what}"));
        assert_eq!(listed.stdout_lossy().lines().count(), 1, "after {what}");
    }
    assert_success(&ssh_a(env).await, "ssh a through the sidecar's guard");
    verify_then_deprovision(env, &plan).await;
}

/// `guard = "off"` in the sidecar layout: a socat relay on the abstract
/// socket, so management requests reach the agent, and verify passes but
/// says UNGUARDED; provisioning with the guard again puts it back.
async fn check_sidecar_guard_off_is_a_relay_that_verify_reports(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    env.own(sidecar_name(env.bottle()));
    let admin = env.admin();
    let off = Options {
        unguarded: true,
        ..Default::default()
    };
    let target = Target::default();
    sidecar::provision(admin.as_ref(), env.bottle(), &plan, &target, &off, None)
        .await
        .unwrap_or_else(|e| panic!("provision with guard off: {e}"));
    let v = sidecar::verify(admin.as_ref(), env.bottle(), &plan, &target, &off)
        .await
        .unwrap();
    assert!(v.ok(), "{:#?}", v.failures().collect::<Vec<_>>());
    let guard = v.check("guard").expect("a guard check");
    assert!(guard.detail.contains("UNGUARDED"), "{guard:?}");
    assert_success(&ssh_a(env).await, "ssh a through the relay");
    let sock = format!("SSH_AUTH_SOCK={}", target.public_socket);
    let out = env
        .exec_as(USER, &["sh", "-c", &format!("{sock} ssh-add -D")])
        .await;
    assert_success(&out, "remove all through the relay");

    provision_sidecar(env, &plan).await.unwrap();
    let out = env
        .exec_as(USER, &["sh", "-c", &format!("{sock} ssh-add -D")])
        .await;
    assert!(!out.success(), "remove all went through the guard: {out:?}");
    let v = sidecar::verify(admin.as_ref(), env.bottle(), &plan, &target, &off)
        .await
        .unwrap();
    let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["forwarder running in the sidecar"], "{v:#?}");
    verify_then_deprovision(env, &plan).await;
}

/// Issue 30, sidecar layout: the records live in the sidecar, so root in
/// the bottle has none to read or change; a login through the relay is
/// recorded there with its alias, and deprovision hands them back before
/// the sidecar goes.
async fn check_the_sidecar_keeps_the_records_out_of_the_bottle(env: &TestEnv) {
    let keys = keys();
    let plan = plan(&keys);
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    provision_sidecar(env, &plan).await.unwrap();
    assert_success(&ssh_a(env).await, "ssh a through the sidecar's guard");
    let found = env
        .sh(
            "find / -xdev -name 'audit.jsonl*' 2>/dev/null; ls -a /run/claude-bottle 2>/dev/null; true",
            &[],
        )
        .await;
    assert!(
        !found.contains("audit.jsonl"),
        "records in the bottle: {found}"
    );
    let admin = env.admin();
    let layout = sidecar::AgentLayout::Sidecar { image: None };
    let (id, holder) = bottle_ssh::audit::locate(admin.as_ref(), &layout, env.bottle())
        .await
        .unwrap();
    assert_ne!(id, holder, "read from the sidecar");
    let records = bottle_ssh::audit::read(admin.as_ref(), &holder, None)
        .await
        .unwrap();
    let login = records
        .iter()
        .find(|r| r.purpose.as_deref() == Some("login"))
        .unwrap_or_else(|| panic!("no login record: {records:#?}"));
    assert_eq!(login.alias.as_deref(), Some("a"));
    assert_eq!(login.decision, "allow");
    let report = sidecar::deprovision(admin.as_ref(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert_eq!(report.audit_unread, None);
    assert!(report.audit.len() >= records.len(), "{report:?}");
}

/// Both layouts report the same files, each as it is in the bottle (mode
/// and owner), `[signing]`'s included: the sidecar's report left
/// `~/.ssh/bottle-ssh-keygen` out (issue 32).
async fn check_both_layouts_report_every_file_they_wrote(env: &TestEnv) {
    let keys = keys();
    let mut plan = plan(&keys);
    let dir = tempfile::tempdir().unwrap();
    plan.signing = Some(bottle_ssh::Signing {
        identity_file: keygen_with(dir.path(), "signing", "ed25519", &[], ""),
        ..Default::default()
    });
    let bottle_report = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision (bottle): {e}"));
    bottle_ssh::deprovision(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap();
    let sidecar_report = provision_sidecar(env, &plan)
        .await
        .unwrap_or_else(|e| panic!("provision (sidecar): {e}"));
    let listed = |r: &bottle_ssh::ProvisionReport| {
        let mut v: Vec<String> = r
            .files
            .iter()
            .map(|f| format!("{} {} {}:{}", f.path, f.mode, f.uid, f.gid))
            .collect();
        v.sort();
        v
    };
    assert_eq!(listed(&sidecar_report), listed(&bottle_report));
    for f in &sidecar_report.files {
        let out = env.sh("stat -c '%a %u:%g' \"$1\"", &[&f.path]).await;
        assert_eq!(
            out.trim(),
            format!("{} {}:{}", f.mode, f.uid, f.gid),
            "{}",
            f.path
        );
    }
    assert!(
        sidecar_report
            .files
            .iter()
            .any(|f| f.path.ends_with("/bottle-ssh-keygen")),
        "{:?}",
        sidecar_report.files
    );
    verify_then_deprovision(env, &plan).await;
}

/// Issue 30, sidecar layout: `Approve = "per-destination"` holds the
/// first login to a (host key, user) in the sidecar's guard until it is
/// answered there; the next login to the same destination goes through
/// unasked.
async fn check_the_sidecar_guard_holds_for_approval(env: &TestEnv) {
    let keys = keys();
    let mut plan = plan(&keys);
    plan.ssh[0].approve = Some("per-destination".into());
    plan.ssh[0].approval_timeout = Some(bottle_ssh::Lifetime::Text("20s".into()));
    start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
    provision_sidecar(env, &plan).await.unwrap();
    let admin = env.admin();
    let layout = sidecar::AgentLayout::Sidecar { image: None };
    let (_, holder) = bottle_ssh::audit::locate(admin.as_ref(), &layout, env.bottle())
        .await
        .unwrap();
    let approver = async {
        let start = std::time::Instant::now();
        loop {
            let records = bottle_ssh::audit::read(admin.as_ref(), &holder, None)
                .await
                .unwrap();
            if let Some(r) = records.iter().find(|r| r.decision == "pending") {
                let allow = bottle_ssh::audit::Decision::Allow { grant: None };
                let answered = bottle_ssh::audit::answer(admin.as_ref(), &holder, &r.id, allow)
                    .await
                    .unwrap();
                assert!(answered, "{r:?}");
                return r.id.clone();
            }
            assert!(
                start.elapsed().as_secs() < 15,
                "no pending record: {records:#?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let (out, pending) = futures_util::join!(ssh_a(env), approver);
    assert_success(&out, "ssh a once approved (sidecar)");
    assert_success(&ssh_a(env).await, "ssh a again, the destination approved");
    let records = bottle_ssh::audit::read(admin.as_ref(), &holder, None)
        .await
        .unwrap();
    let logins: Vec<(&str, Option<&str>)> = records
        .iter()
        .filter(|r| r.purpose.as_deref() == Some("login"))
        .map(|r| (r.decision.as_str(), r.approval.as_deref()))
        .collect();
    assert_eq!(
        logins,
        [
            ("pending", None),
            ("allow", Some(pending.as_str())),
            ("allow", None)
        ],
        "{records:#?}"
    );
    verify_then_deprovision(env, &plan).await;
}

/// Debian only: a hundred provisions per engine are enough of a cost once.
mod many {
    use super::check_hundred_reprovisions_leak_nothing;
    bottle_integration_tests::engine_tests!(
        images = [debian],
        check_hundred_reprovisions_leak_nothing
    );
}

engine_tests!(
    images = [debian, busybox, sudo],
    check_the_sidecar_guard_holds_for_approval,
    check_both_layouts_report_every_file_they_wrote,
    check_the_sidecar_keeps_the_records_out_of_the_bottle,
    check_sidecar_guard_off_is_a_relay_that_verify_reports,
    check_the_sidecar_agent_loads_no_provider,
    check_the_sidecar_guard_refuses_management,
    check_deprovision_removes_a_stopped_bottles_sidecar,
    check_abstract_name_taken_by_the_user_is_refused,
    check_sidecar_provision_with_the_users_ssh_dir,
    check_refused_provision_leaves_the_users_ssh_dir,
    check_refused_sidecar_leaves_the_bottle_layout_working,
    check_two_provisions_at_once_leave_one_working_sidecar,
    check_sidecar_keeps_keys_from_root_in_the_bottle,
    check_bottle_layout_hands_keys_to_root,
    check_restarted_bottle_gets_a_new_sidecar,
    check_foreign_container_by_the_sidecars_name_is_refused,
    check_missing_agent_image_is_refused,
    check_bottlectl_agent_sidecar,
    check_users_look_alikes_are_not_run,
    check_no_process_in_the_bottle_holds_the_key_in_memory,
);

/// A bottle removed without `deprovision` (Docker lets it go while its
/// sidecar runs; Podman refuses, naming the dependent sidecar).
mod orphans {
    use super::*;

    /// Docker: the next `bottlectl provision` in the sidecar layout removes
    /// the removed bottle's sidecar, and only it: a live bottle's sidecar and
    /// a container whose agent label is not a container id stay. Podman:
    /// removing the bottle fails while its sidecar runs (nothing orphaned),
    /// and `bottlectl deprovision` lets it go.
    async fn check_a_removed_bottles_sidecar_is_removed(env: &TestEnv) {
        fixtures::ensure_bottlectl().await;
        let keys = fixtures::Keys::new();
        let manifest = keys.manifest();
        let m = manifest.to_str().unwrap();
        let home = tempfile::tempdir().unwrap();
        let sidecar_env = [("CLAUDE_BOTTLE_AGENT", "sidecar")];
        let run = |args: &[&str]| {
            fixtures::output(fixtures::bottlectl(env, home.path(), args, &sidecar_env))
        };
        let admin = env.admin();
        let gone = env.start_bottle().await.unwrap().name;
        for b in [env.bottle(), gone.as_str()] {
            env.own(sidecar_name(b));
        }
        let out = run(&["provision", "-m", m, &gone]).await;
        fixtures::expect_code(&out, 0, "bottlectl provision (sidecar)");
        let orphan = admin.details(&sidecar_name(&gone)).await.unwrap().info.id;
        let mut decoy = RunSpec::new(env.image(), ["/bin/sleep", "infinity"]);
        decoy.network = NetworkMode::None;
        decoy.labels = vec![(LABEL_FOR.into(), gone.clone())];
        let decoy = env.run_container(decoy).await.unwrap();

        let removed = admin.remove(&gone).await;
        let out = run(&["provision", "-m", m, env.bottle()]).await;
        fixtures::expect_code(&out, 0, "bottlectl provision (sidecar)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let still = admin.details(&orphan).await;
        match env.engine() {
            bottle_integration_tests::harness::Engine::Podman => {
                let err = removed.expect_err("podman removed a bottle its sidecar depends on");
                assert!(format!("{err:?}").contains("dependent"), "{err:?}");
                assert!(
                    still.unwrap().info.is_running(),
                    "a live bottle's sidecar was removed"
                );
                let out = run(&["deprovision", &gone]).await;
                fixtures::expect_code(&out, 0, "bottlectl deprovision (sidecar)");
                admin
                    .remove(&gone)
                    .await
                    .expect("the bottle goes after deprovision");
            }
            _ => {
                removed.expect("remove the bottle");
                assert!(
                    matches!(still, Err(bottle_runtime::Error::ContainerNotFound { .. })),
                    "the removed bottle's sidecar is still there: {still:?}"
                );
                assert!(
                    stderr.contains(&format!("removed agent sidecar `{}`", sidecar_name(&gone))),
                    "{stderr}"
                );
            }
        }
        // The live bottle's own sidecar and the decoy stay.
        assert!(admin
            .details(&sidecar_name(env.bottle()))
            .await
            .unwrap()
            .info
            .is_running());
        assert!(admin.details(&decoy.id).await.unwrap().info.is_running());
    }

    engine_tests!(check_a_removed_bottles_sidecar_is_removed);
}

/// What the bottle itself must have in the sidecar layout.
mod bottle_tools {
    use super::*;

    /// A bottle without `ssh-agent` (removed from its file system; the
    /// sidecar, made from the image, has it): provision, `ssh` as the user,
    /// verify and deprovision work.
    async fn check_a_bottle_without_ssh_agent_is_served(env: &TestEnv) {
        let keys = keys();
        let plan = plan(&keys);
        start_sshd(env, &[PORT], &[&keys.host], &[public(&keys.user)]).await;
        env.sh(
            "for d in /usr/local/bin /usr/bin /bin; do rm -f \"$d/ssh-agent\"; done; \
             ! command -v ssh-agent",
            &[],
        )
        .await;
        provision_sidecar(env, &plan)
            .await
            .unwrap_or_else(|e| panic!("provision (sidecar) without ssh-agent in the bottle: {e}"));
        let out = ssh_a(env).await;
        assert_success(&out, "ssh a as the user");
        assert_eq!(out.stdout_lossy(), "git\n");
        verify_then_deprovision(env, &plan).await;
        // doctor in this layout does not ask for ssh-agent in the bottle.
        fixtures::ensure_bottlectl().await;
        let home = tempfile::tempdir().unwrap();
        let doctor = |agent: &'static str| {
            fixtures::output(fixtures::bottlectl(
                env,
                home.path(),
                &["doctor", env.bottle()],
                &[("CLAUDE_BOTTLE_AGENT", agent), ("CLAUDE_BOTTLE_USER", USER)],
            ))
        };
        let out = doctor("sidecar").await;
        let shown = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(shown.contains("not needed in the bottle"), "{shown}");
        fixtures::expect_code(&out, 0, "doctor (sidecar) without ssh-agent in the bottle");
        let out = doctor("bottle").await;
        fixtures::expect_code(&out, 3, "doctor (bottle layout) without ssh-agent");
    }

    engine_tests!(check_a_bottle_without_ssh_agent_is_served);
}
