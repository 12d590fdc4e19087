//! The SSH provisioner end to end, on every engine, through a real OpenSSH
//! server.
//!
//! Each check gets a bottle (network `none`) and, where it needs one, an
//! `sshd` from the same image in a second container that shares the bottle's
//! network namespace, listening on 127.0.0.1 gate ports with a host key
//! generated here and `git` as the login user. Then, as uid 1000 in the
//! bottle, `ssh <alias>` must log in with keys the user cannot read.

use bottle_integration_tests::ssh_fixtures::{self, fingerprint, public};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_runtime::testing::{Op, Recording};
use bottle_runtime::{ContainerInfo, CopyEntry, ExecOutput};
use bottle_ssh::{Error, Gate, Missing, Plan, SshEntry, Target};
use std::path::{Path, PathBuf};

const PORTS: [u16; 2] = [2201, 2202];
const USER: &str = "1000";

/// Keys generated on the host for one check.
struct Keys {
    dir: tempfile::TempDir,
    /// The sshd's host key (private part goes into the sshd container only).
    host_key: PathBuf,
    /// A second sshd host key, never pinned: ssh learns it (UpdateHostKeys).
    host_key2: PathBuf,
    /// Plan keys: both named `id_ed25519`, in different folders.
    a: PathBuf,
    b: PathBuf,
    /// Authorized at the sshd, used by the rotate check.
    rotated: PathBuf,
    /// Never in a plan nor authorized.
    outsider: PathBuf,
    /// Authorized; an ECDSA P-521 key whose scalar OpenSSH wrote short, and
    /// an RSA key (only from `Keys::all_types`: they take longer to make).
    ecdsa: Option<PathBuf>,
    rsa: Option<PathBuf>,
}

/// A P-521 key that `ssh-key` alone cannot parse (short scalar; about half
/// of all P-521 keys).
fn short_scalar_p521(dir: &Path) -> PathBuf {
    for i in 0..64 {
        let path = keygen_typed(dir, &format!("p521/{i}"), "ecdsa");
        let text = std::fs::read_to_string(&path).unwrap();
        if bottle_ssh::ssh_key::PrivateKey::from_openssh(&text).is_err() {
            return path;
        }
    }
    panic!("no short-scalar P-521 key in 64 tries");
}

fn keygen(dir: &Path, rel: &str) -> PathBuf {
    keygen_typed(dir, rel, "ed25519")
}

fn keygen_typed(dir: &Path, rel: &str, kind: &str) -> PathBuf {
    let bits: &[&str] = if kind == "ecdsa" { &["-b", "521"] } else { &[] };
    ssh_fixtures::keygen_with(dir, rel, kind, bits, "")
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        Keys {
            host_key: keygen(p, "host/ssh_host_ed25519_key"),
            host_key2: keygen_typed(p, "host/ssh_host_ecdsa_key", "ecdsa"),
            a: keygen(p, "a/id_ed25519"),
            b: keygen(p, "b/id_ed25519"),
            rotated: keygen(p, "rotated/id_ed25519"),
            outsider: keygen(p, "outsider/id_ed25519"),
            ecdsa: None,
            rsa: None,
            dir,
        }
    }

    fn all_types() -> Keys {
        let mut keys = Keys::new();
        keys.ecdsa = Some(short_scalar_p521(keys.dir.path()));
        keys.rsa = Some(keygen_typed(keys.dir.path(), "rsa/id_rsa", "rsa"));
        keys
    }

    fn entry(&self, alias: &str, key: &Path, pin: Option<String>) -> SshEntry {
        SshEntry {
            host: alias.into(),
            hostname: format!("{alias}.git.example"),
            user: "git".into(),
            identity_file: key.to_path_buf(),
            known_host_key: pin,
            port: None,
            ..Default::default()
        }
    }

    /// Two aliases through the gate, both pinned to the sshd's host key.
    fn plan(&self) -> Plan {
        let pin = Some(public(&self.host_key));
        Plan {
            signing: None,
            gate: Some(gate(&["a", "b"])),
            ssh: vec![
                self.entry("a", &self.a, pin.clone()),
                self.entry("b", &self.b, pin),
            ],
        }
    }
}

fn gate(aliases: &[&str]) -> Gate {
    Gate {
        host: "127.0.0.1".into(),
        ports: aliases
            .iter()
            .zip(PORTS)
            .map(|(a, p)| (a.to_string(), i64::from(p)))
            .collect(),
    }
}

/// Start sshd in the bottle's network namespace; wait until it listens.
async fn start_sshd(env: &TestEnv, keys: &Keys) -> ContainerInfo {
    let authorized: Vec<String> = [&keys.a, &keys.b, &keys.rotated]
        .into_iter()
        .chain(keys.ecdsa.as_ref())
        .chain(keys.rsa.as_ref())
        .map(|k| public(k))
        .collect();
    ssh_fixtures::start_sshd(env, &PORTS, &[&keys.host_key, &keys.host_key2], &authorized).await
}

async fn ssh_as_user(env: &TestEnv, alias: &str, extra: &[&str]) -> ExecOutput {
    let mut argv = vec!["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"];
    argv.extend_from_slice(extra);
    argv.extend([alias, "id", "-un"]);
    env.exec_as(USER, &argv).await
}

async fn provision(env: &TestEnv, plan: &Plan) -> bottle_ssh::ProvisionReport {
    bottle_ssh::provision(env.rt(), env.bottle(), plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("provision: {e} ({e:?})"))
}

async fn verify_ok(env: &TestEnv, plan: &Plan) -> bottle_ssh::VerifyReport {
    let report = bottle_ssh::verify(env.rt(), env.bottle(), plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("verify: {e} ({e:?})"));
    assert!(
        report.ok(),
        "verify failed: {:#?}",
        report.failures().collect::<Vec<_>>()
    );
    report
}

/// Live (non-zombie) processes in the bottle whose argv contains `needle`.
async fn live_processes(env: &TestEnv, needle: &str) -> usize {
    ssh_fixtures::live_processes(env.rt(), env.bottle(), needle).await
}

async fn agent_fingerprints(env: &TestEnv) -> Vec<String> {
    let out = env
        .exec_as(
            USER,
            &[
                "env",
                "SSH_AUTH_SOCK=/run/claude-bottle-agent-public.sock",
                "ssh-add",
                "-l",
                "-E",
                "sha256",
            ],
        )
        .await;
    let mut v: Vec<String> = out
        .stdout_lossy()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|w| w.starts_with("SHA256:"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// As uid 1000, `ssh <alias> id -un` prints `git` for every alias; both
/// keys have the same file name; verify passes; a key not in the plan is
/// refused by the server; the user cannot use the private socket nor read
/// the agent's or forwarder's /proc files.
async fn check_user_reaches_every_alias(env: &TestEnv) {
    let keys = Keys::new();
    start_sshd(env, &keys).await;
    let plan = keys.plan();
    let report = provision(env, &plan).await;
    assert_eq!(report.keys.len(), 2, "two keys named id_ed25519 both load");
    for alias in ["a", "b"] {
        let out = ssh_as_user(env, alias, &[]).await;
        assert_success(&out, &format!("ssh {alias}"));
        assert_eq!(out.stdout_lossy(), "git\n");
    }
    let verify = verify_ok(env, &plan).await;
    for name in [
        "private socket refuses the user",
        "agent mem unreadable by the user",
        "agent environ unreadable by the user",
        "forwarder mem unreadable by the user",
        "forwarder environ unreadable by the user",
        "no private key file",
    ] {
        assert!(
            verify.check(name).is_some_and(|c| c.ok),
            "{name}: {verify:#?}"
        );
    }

    // Directly, as the user: the private socket refuses the connection.
    let out = env
        .exec_as(
            USER,
            &[
                "socat",
                "-u",
                "OPEN:/dev/null",
                "UNIX-CONNECT:/run/claude-bottle-agent.sock",
            ],
        )
        .await;
    assert!(!out.success(), "user connected to the private socket");
    assert!(
        out.stderr_lossy().contains("Permission denied"),
        "{}",
        out.stderr_lossy()
    );
    // ... and cannot read the agent's memory or environment.
    let pid = report.agent.pid.to_string();
    for file in ["environ", "mem", "maps"] {
        let out = env
            .exec_as(USER, &["cat", &format!("/proc/{pid}/{file}")])
            .await;
        assert!(
            !out.success() && out.stdout.is_empty(),
            "read /proc/{pid}/{file}"
        );
    }

    // ssh may learn the server's other host keys (UpdateHostKeys appends
    // them; whether it does before `id` exits is a race, so add one as ssh
    // would): verify accepts extra lines, but not a missing pinned one.
    let learned = format!("a.git.example {}\n", public(&keys.host_key2));
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "printf '%s' \"$1\" >> /home/node/.ssh/known_hosts",
                "sh",
                &learned,
            ],
        )
        .await;
    assert_success(&out, "append a learned host key");
    verify_ok(env, &plan).await;
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "sed -i '/^a.git.example ssh-ed25519/d' /home/node/.ssh/known_hosts",
            ],
        )
        .await;
    assert_success(&out, "drop the pinned line");
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    let kh = report.check("file /home/node/.ssh/known_hosts").unwrap();
    assert!(
        !kh.ok && kh.detail.contains("1 pinned line(s) missing"),
        "{kh:?}"
    );
    provision(env, &plan).await;

    // A key outside the plan is refused by the server (same alias, no agent).
    env.rt()
        .copy(
            env.bottle(),
            &[CopyEntry::file(
                "/tmp/outsider",
                std::fs::read(&keys.outsider).unwrap(),
                0o600,
                1000,
                1000,
            )],
        )
        .await
        .unwrap();
    let out = ssh_as_user(
        env,
        "a",
        &[
            "-o",
            "IdentityAgent=none",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            "/tmp/outsider",
        ],
    )
    .await;
    env.sh("rm -f /tmp/outsider", &[]).await;
    assert!(
        !out.success(),
        "outsider key accepted: {}",
        out.stdout_lossy()
    );
    assert!(
        out.stderr_lossy().contains("Permission denied"),
        "{}",
        out.stderr_lossy()
    );
}

/// The user asks the agent, through the guard, to lock and to remove every
/// key: both refused (they never reach the agent), the keys stay, ssh
/// works, and the next provision reuses the same agent.
async fn check_lock_through_the_public_socket_is_refused(env: &TestEnv) {
    let keys = Keys::new();
    start_sshd(env, &keys).await;
    let plan = keys.plan();
    let first = provision(env, &plan).await;
    let public = "SSH_AUTH_SOCK=/run/claude-bottle-agent-public.sock";
    for (what, command) in [
        ("lock", format!("printf 'pw\\npw\\n' | {public} ssh-add -x")),
        ("remove all", format!("{public} ssh-add -D")),
    ] {
        let out = env.exec_as(USER, &["sh", "-c", &command]).await;
        assert!(!out.success(), "{what} went through the guard: {out:?}");
        assert_eq!(agent_fingerprints(env).await.len(), 2, "after {what}");
    }
    assert_success(
        &ssh_as_user(env, "a", &[]).await,
        "ssh a after the refusals",
    );
    let again = provision(env, &plan).await;
    assert!(!again.agent.started && again.agent.pid == first.agent.pid);
    verify_ok(env, &plan).await;
}

/// A wrong KnownHostKey makes ssh fail host key verification; the right one
/// (same sshd, same everything else) works.
async fn check_wrong_known_host_key_fails(env: &TestEnv) {
    let keys = Keys::new();
    start_sshd(env, &keys).await;
    let mut plan = keys.plan();
    plan.ssh[0].known_host_key = Some(public(&keys.outsider));
    provision(env, &plan).await;
    let out = ssh_as_user(env, "a", &[]).await;
    assert!(!out.success(), "connected despite a wrong host key");
    assert!(
        out.stderr_lossy().contains("Host key verification failed"),
        "{}",
        out.stderr_lossy()
    );
    provision(env, &keys.plan()).await;
    let out = ssh_as_user(env, "a", &[]).await;
    assert_success(&out, "ssh a with the right host key");
}

/// Provisioning again with the same plan: one agent, one forwarder (both
/// reused), the same files; a killed agent (a zombie: PID 1 does not reap)
/// is detected by verify and replaced by the next provision.
async fn check_reprovision_is_idempotent(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let first = provision(env, &plan).await;
    assert!(first.agent.started && first.forwarder.started);
    let config = env
        .sh(
            "cat /home/node/.ssh/config /home/node/.ssh/known_hosts",
            &[],
        )
        .await;
    for _ in 0..3 {
        let again = provision(env, &plan).await;
        assert_eq!(again.agent.pid, first.agent.pid);
        assert_eq!(again.forwarder.pid, first.forwarder.pid);
        assert!(!again.agent.started && !again.forwarder.started);
        assert_eq!(again.files, first.files);
        assert!(again.removed.is_empty(), "{:?}", again.removed);
    }
    assert_eq!(live_processes(env, "ssh-agent").await, 1);
    assert_eq!(live_processes(env, " serve --").await, 1);
    assert_eq!(
        env.sh(
            "cat /home/node/.ssh/config /home/node/.ssh/known_hosts",
            &[]
        )
        .await,
        config
    );
    verify_ok(env, &plan).await;

    // verify notices a changed config and a private key file; provision
    // rewrites the config.
    let out = env
        .exec_as(
            USER,
            &["sh", "-c", "echo 'Host evil' >> /home/node/.ssh/config"],
        )
        .await;
    assert_success(&out, "user edits config");
    env.sh(
        "printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\\nx\\n' > /tmp/planted",
        &[],
    )
    .await;
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    let config_check = report.check("file /home/node/.ssh/config").unwrap();
    assert!(!config_check.ok, "{report:#?}");
    assert!(
        config_check.detail.contains("content differs"),
        "{config_check:?}"
    );
    let planted = report.check("no private key file").unwrap();
    assert!(
        !planted.ok && planted.detail.contains("/tmp/planted"),
        "{planted:?}"
    );
    env.sh("rm /tmp/planted", &[]).await;
    provision(env, &plan).await;
    verify_ok(env, &plan).await;

    env.sh("kill \"$1\"", &[&first.agent.pid.to_string()]).await;
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    assert!(!report.check("agent running").unwrap().ok, "{report:#?}");
    assert!(!report.ok());
    let repaired = provision(env, &plan).await;
    assert!(repaired.agent.started && !repaired.forwarder.started);
    assert_eq!(live_processes(env, "ssh-agent").await, 1);
    verify_ok(env, &plan).await;
}

/// A changed plan: the agent holds exactly the new keys, the config is
/// rewritten, known_hosts (no longer pinned) removed, and ssh uses the new key.
async fn check_rotate_loads_only_new_keys(env: &TestEnv) {
    let keys = Keys::new();
    start_sshd(env, &keys).await;
    let first = keys.plan();
    provision(env, &first).await;
    assert_eq!(
        agent_fingerprints(env).await,
        sorted(vec![fingerprint(&keys.a), fingerprint(&keys.b)])
    );
    let mut second = Plan {
        signing: None,
        gate: Some(gate(&["a"])),
        ssh: vec![keys.entry("a", &keys.rotated, None)],
    };
    let report = provision(env, &second).await;
    assert_eq!(
        agent_fingerprints(env).await,
        vec![fingerprint(&keys.rotated)]
    );
    // known_hosts (no longer pinned) and the old keys' public key files.
    let mut old_pubs: Vec<String> = [&keys.a, &keys.b]
        .iter()
        .map(|k| {
            format!(
                "/home/node/.ssh/{}",
                bottle_ssh::public_key_file(&fingerprint(k))
            )
        })
        .collect();
    old_pubs.sort();
    let mut removed = report.removed.clone();
    removed.sort();
    let mut want = old_pubs;
    want.push("/home/node/.ssh/known_hosts".to_string());
    want.sort();
    assert_eq!(removed, want);
    let config = env.sh("cat /home/node/.ssh/config", &[]).await;
    assert!(
        config.starts_with(&format!("{}\nHost a\n", bottle_ssh::FILE_MARK))
            && !config.contains("Host b"),
        "{config}"
    );
    assert_eq!(
        env.sh("ls -A /home/node/.ssh", &[]).await,
        format!(
            "{}\nconfig\n",
            bottle_ssh::public_key_file(&fingerprint(&keys.rotated))
        )
    );
    verify_ok(env, &second).await;
    // Unpinned now: accept the host key for this one call only.
    let out = ssh_as_user(
        env,
        "a",
        &[
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ],
    )
    .await;
    assert_success(&out, "ssh a with the rotated key");
    assert_eq!(out.stdout_lossy(), "git\n");
    // Pinned again with the rotated key.
    second.ssh[0].known_host_key = Some(public(&keys.host_key));
    provision(env, &second).await;
    assert_success(&ssh_as_user(env, "a", &[]).await, "ssh a pinned");
}

/// After a container restart (agent and forwarder gone, their sockets and
/// pid files left on /run), provisioning works again.
async fn check_restart_then_provision(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let first = provision(env, &plan).await;
    let admin = env.admin();
    admin.stop(env.bottle()).await.unwrap();
    admin.start(env.bottle()).await.unwrap();
    // The stale sockets are still there.
    env.sh(
        "test -S /run/claude-bottle-agent.sock && test -S /run/claude-bottle-agent-public.sock && test -f /run/claude-bottle/agent.pid",
        &[],
    )
    .await;
    assert_eq!(live_processes(env, "ssh-agent").await, 0);
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    assert!(!report.ok());
    let again = provision(env, &plan).await;
    assert!(again.agent.started && again.forwarder.started);
    assert_eq!(again.keys, first.keys);
    verify_ok(env, &plan).await;
    // sshd's namespace went away with the bottle's: start it now.
    start_sshd(env, &keys).await;
    for alias in ["a", "b"] {
        assert_success(&ssh_as_user(env, alias, &[]).await, alias);
    }
}

/// deprovision stops both processes, removes the sockets, the files and the
/// state dir; a second deprovision is harmless; provisioning works again; a
/// file the user rewrote is kept.
async fn check_deprovision_removes_everything(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let p = provision(env, &plan).await;
    let d = bottle_ssh::deprovision(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert_eq!(d.stopped_agent, Some(p.agent.pid));
    assert_eq!(d.stopped_forwarder, Some(p.forwarder.pid));
    assert_eq!(live_processes(env, "ssh-agent").await, 0);
    assert_eq!(live_processes(env, " serve --").await, 0);
    let left = env
        .sh(
            "for f in /run/claude-bottle-agent.sock /run/claude-bottle-agent-public.sock /run/claude-bottle /home/node/.ssh; do [ -e \"$f\" ] && echo \"$f\"; done; true",
            &[],
        )
        .await;
    assert_eq!(left, "", "left behind");
    let d2 = bottle_ssh::deprovision(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert_eq!(d2.stopped_agent, None);
    assert!(d2.removed.is_empty(), "{:?}", d2.removed);
    provision(env, &plan).await;
    verify_ok(env, &plan).await;

    // A config the user rewrote is the user's now: deprovision keeps it
    // (and so ~/.ssh) and removes only known_hosts, still bottle's.
    let out = env
        .exec_as(
            USER,
            &["sh", "-c", "echo 'Host mine' > /home/node/.ssh/config"],
        )
        .await;
    assert_success(&out, "rewrite config");
    let d3 = bottle_ssh::deprovision(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert!(
        d3.removed
            .contains(&"/home/node/.ssh/known_hosts".to_string())
            && !d3
                .removed
                .iter()
                .any(|r| r.ends_with("/config") || r.ends_with("/.ssh")),
        "{:?}",
        d3.removed
    );
    assert_eq!(
        env.sh("ls -A /home/node/.ssh; cat /home/node/.ssh/config", &[])
            .await,
        "config\nHost mine\n"
    );
}

/// Missing tool or user: a clear error naming it, before any key is sent
/// (no agent started, no socket, no files).
async fn check_missing_tool_or_user_is_named(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let target = Target {
        user: "nobody-here".into(),
        home: "/home/nobody-here".into(),
        ..Target::default()
    };
    let e = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &target)
        .await
        .unwrap_err();
    match &e {
        Error::MissingInContainer { missing, .. } => assert_eq!(
            missing,
            &vec![
                Missing::User("nobody-here".into()),
                Missing::Home("/home/nobody-here".into())
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), bottle_ssh::ErrorClass::Container);
    // ssh-agent: root runs it in every layout (a guarded bottle runs no socat).
    env.sh("rm \"$(command -v ssh-agent)\"", &[]).await;
    let e = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::MissingInContainer { missing, .. } if missing == &vec![Missing::Tool("ssh-agent".into())]),
        "{e:?}"
    );
    assert!(e.to_string().contains("program `ssh-agent`"), "{e}");
    // No /etc/os-release in the test image: the generic install advice.
    assert!(
        e.to_string().contains("install OpenSSH's client programs"),
        "{e}"
    );
    env.sh(
        "printf 'NAME=\"Alpine Linux\"\nID=alpine\n' > /etc/os-release",
        &[],
    )
    .await;
    let e = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`apk add openssh-client`"), "{e}");
    // verify cannot check without it: says so, never passes.
    let v = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    let c = v
        .check("root's programs and directories are trusted")
        .unwrap();
    assert!(
        !c.ok && c.detail.contains("missing program `ssh-agent`"),
        "{c:?}"
    );
    assert!(!v.ok());
    let left = env
        .sh(
            "ls -A /run /home/node; ps -eo comm | grep -c ssh-agent; true",
            &[],
        )
        .await;
    assert!(!left.contains("claude-bottle"), "{left}");
    assert!(!left.contains(".ssh"), "{left}");
    assert!(left.trim_end().ends_with('0'), "{left}");
}

/// The same number of runtime calls (1 exec, no copy) for 1 key and for 20
/// keys, once the guard is in the bottle (the first provision delivers it:
/// two execs more); a bad plan makes no call at all.
async fn check_runtime_calls_do_not_grow_with_keys(env: &TestEnv) {
    let keys = Keys::new();
    let counting = Recording::new(env.runtime());
    let one = Plan {
        signing: None,
        gate: None,
        ssh: vec![keys.entry("k0", &keys.a, None)],
    };
    for expected in [(3, 0, 0), (1, 0, 0)] {
        bottle_ssh::provision(&counting, env.bottle(), &one, &Target::default())
            .await
            .unwrap();
        assert_eq!(counting.take_counts(), expected);
    }
    let twenty = Plan {
        signing: None,
        gate: None,
        ssh: (0..20)
            .map(|i| {
                keys.entry(
                    &format!("k{i}"),
                    &keygen(keys.dir.path(), &format!("many/{i}")),
                    None,
                )
            })
            .collect(),
    };
    let report = bottle_ssh::provision(&counting, env.bottle(), &twenty, &Target::default())
        .await
        .unwrap();
    assert_eq!(counting.take_counts(), (1, 0, 0));
    assert_eq!(report.keys.len(), 20);
    assert_eq!(agent_fingerprints(env).await.len(), 20);
    verify_ok(env, &twenty).await;

    let mut bad = twenty.clone();
    bad.ssh[7].user = "git\nProxyCommand sh".into();
    let e = bottle_ssh::provision(&counting, env.bottle(), &bad, &Target::default())
        .await
        .unwrap_err();
    assert!(e.is_plan_error(), "{e}");
    assert_eq!(
        counting.take_counts(),
        (0, 0, 0),
        "a bad plan touched the container"
    );
}

/// 24-character windows of a key file's base64 body: any of them in the
/// container means the file (or a copy of it) got there. Windows that are
/// also in the public key's text are left out (provision writes the public
/// half on purpose).
fn key_text_windows(key: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(key).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let public = public(key);
    body.as_bytes()
        .chunks(24)
        .filter(|c| c.len() == 24)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .filter(|w| !public.contains(w.as_str()))
        .collect()
}

/// Files anywhere in the bottle (but /proc, /sys, /dev) holding any of `texts`.
async fn find_text(env: &TestEnv, texts: &[String]) -> String {
    ssh_fixtures::find_text(env.rt(), env.bottle(), texts).await
}

/// Key bytes travel only over the stdin of one exec: never in argv, user or
/// copied files; afterwards no file anywhere in the bottle holds the key
/// file's base64 body; four provisions at once end with one agent and one
/// forwarder holding the plan's keys.
async fn check_key_bytes_only_travel_over_stdin(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let counting = Recording::new(env.runtime()).keep_bytes();
    let report = bottle_ssh::provision(&counting, env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    assert_eq!(report.keys.len(), 2);
    // Everything sent but exec stdin: argv, users, copied paths and bytes.
    let mut sent: Vec<u8> = Vec::new();
    for call in counting.calls() {
        if let Some(exec) = call.exec() {
            for a in &exec.argv {
                sent.extend_from_slice(a.as_bytes());
                sent.push(0);
            }
            sent.extend_from_slice(exec.user.as_bytes());
        }
    }
    for file in counting.copied() {
        sent.extend_from_slice(file.who.as_bytes());
        sent.extend_from_slice(&file.bytes);
    }
    let stdins: Vec<(String, Vec<u8>)> = counting
        .stdins()
        .into_iter()
        .map(|k| (k.who.clone(), k.bytes.to_vec()))
        .collect();
    // On a first provision three execs get stdin: root's (the key record,
    // the guard policy, the user's files, then the keys), once before and
    // once after the guard's delivery (the executable, as root). The guard
    // hands the user's files to its user's part, which runs as the user
    // (see check_user_racing_ssh_dir_cannot_redirect_writes).
    assert_eq!(stdins.len(), 3);
    let delivery: Vec<&(String, Vec<u8>)> = stdins
        .iter()
        .filter(|(_, bytes)| bytes.as_slice() == bottle_ssh::guard::EXECUTABLE)
        .collect();
    assert_eq!(delivery.len(), 1);
    assert_eq!(delivery[0].0, "0");
    let with_files: Vec<&str> = stdins
        .iter()
        .filter(|(_, bytes)| String::from_utf8_lossy(bytes).contains(bottle_ssh::FILE_MARK))
        .map(|(user, _)| user.as_str())
        .collect();
    assert_eq!(
        with_files,
        ["0", "0"],
        "the user's files go with root's exec"
    );
    for key in [&keys.a, &keys.b] {
        let parsed = bottle_ssh::ssh_key::PrivateKey::read_openssh_file(key).unwrap();
        let seed: Vec<u8> = parsed
            .key_data()
            .ed25519()
            .unwrap()
            .private
            .to_bytes()
            .to_vec();
        let has = |hay: &[u8]| hay.windows(seed.len()).any(|w| w == seed.as_slice());
        let with_key: Vec<&str> = stdins
            .iter()
            .filter(|(_, bytes)| has(bytes))
            .map(|(user, _)| user.as_str())
            .collect();
        assert_eq!(with_key, ["0", "0"], "the key goes to root's exec only");
        assert!(!has(&sent), "key bytes in argv or a copied file");
        let windows = key_text_windows(key);
        let sent_text = String::from_utf8_lossy(&sent);
        for w in &windows {
            assert!(!sent_text.contains(w.as_str()), "key file text sent");
        }
        // Nothing on the bottle's filesystem holds the key file's body.
        assert_eq!(
            find_text(env, &windows).await,
            "",
            "key text in the container"
        );
    }
    // The search does find a key file when there is one.
    env.rt()
        .copy(
            env.bottle(),
            &[CopyEntry::file(
                "/var/tmp/control",
                std::fs::read(&keys.a).unwrap(),
                0o600,
                0,
                0,
            )],
        )
        .await
        .unwrap();
    let found = find_text(env, &key_text_windows(&keys.a)).await;
    assert!(found.contains("/var/tmp/control"), "{found:?}");
    env.sh("rm /var/tmp/control", &[]).await;

    // Four provisions at once: the in-container lock serialises them (the
    // copies included: Podman fails two concurrent copies of one file).
    let reports = futures_util::future::join_all((0..4).map(|_| provision(env, &plan))).await;
    assert!(reports.iter().all(|r| r.keys == report.keys));
    assert_eq!(live_processes(env, "ssh-agent").await, 1);
    assert_eq!(live_processes(env, " serve --").await, 1);
    verify_ok(env, &plan).await;
}

/// A user who plants `~/.ssh` (or the files in it) as symlinks to root's
/// files does not get root to chown or write them: the links are replaced
/// with real files.
async fn check_symlinked_ssh_dir_is_replaced(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let before = env.sh("stat -c '%a %u %g' /etc; ls -A /etc", &[]).await;
    let out = env
        .exec_as(USER, &["ln", "-s", "/etc", "/home/node/.ssh"])
        .await;
    assert_success(&out, "plant symlink");
    provision(env, &plan).await;
    assert_eq!(
        env.sh("stat -c '%a %u %g' /etc; ls -A /etc", &[]).await,
        before
    );
    assert_eq!(
        env.sh("stat -c '%F %a %u' /home/node/.ssh", &[]).await,
        "directory 700 1000\n"
    );
    verify_ok(env, &plan).await;

    // Same with the files: config and known_hosts planted as symlinks to
    // root's files.
    let before = env
        .sh(
            "stat -c '%a %u %g %s' /etc/passwd /etc/shadow; cat /etc/passwd",
            &[],
        )
        .await;
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "cd /home/node/.ssh && rm -f config known_hosts && ln -s /etc/passwd config && ln -s /etc/shadow known_hosts",
            ],
        )
        .await;
    assert_success(&out, "plant file symlinks");
    provision(env, &plan).await;
    assert_eq!(
        env.sh(
            "stat -c '%a %u %g %s' /etc/passwd /etc/shadow; cat /etc/passwd",
            &[]
        )
        .await,
        before
    );
    verify_ok(env, &plan).await;
}

/// A `~/.ssh` owned by root is not taken over: provision fails naming it,
/// and the directory keeps its owner and mode.
async fn check_root_owned_ssh_dir_is_refused(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    env.sh(
        "mkdir -p /home/node/.ssh && chown 0:0 /home/node/.ssh && chmod 700 /home/node/.ssh",
        &[],
    )
    .await;
    let e = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_err();
    match &e {
        Error::Script { step, stderr, .. } => {
            assert_eq!(*step, "write files");
            assert!(
                stderr.contains("/home/node/.ssh") && stderr.contains("must belong to node"),
                "{stderr:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), bottle_ssh::ErrorClass::Container);
    assert_eq!(
        env.sh(
            "stat -c '%a %u %g' /home/node/.ssh; ls -A /home/node/.ssh",
            &[]
        )
        .await,
        "700 0 0\n"
    );
    env.sh("rm -rf /home/node/.ssh", &[]).await;
    provision(env, &plan).await;
    verify_ok(env, &plan).await;
}

/// A user who keeps swapping `~/.ssh` between a directory and a symlink to
/// `/etc` while provisions run cannot get anything written or removed in
/// `/etc` (the user's files are written by an exec running as the user);
/// once the user stops, provision converges.
async fn check_user_racing_ssh_dir_cannot_redirect_writes(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let before = env.sh("stat -c '%a %u %g' /etc; ls -lA /etc", &[]).await;
    let racer = env.exec_as(
        USER,
        &[
            "sh",
            "-c",
            r#"read -r u _ < /proc/uptime; end=$(( ${u%%.*} + 4 )); n=0
               while read -r u _ < /proc/uptime && [ "${u%%.*}" -lt "$end" ]; do
                 rm -rf /home/node/.ssh; ln -s /etc /home/node/.ssh
                 rm -f /home/node/.ssh; mkdir -p /home/node/.ssh; n=$((n+1))
               done; echo "$n swaps""#,
        ],
    );
    let provisions = async {
        let started = std::time::Instant::now();
        let (mut ok, mut failed) = (0, 0);
        while started.elapsed() < std::time::Duration::from_secs(3) {
            match bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default()).await {
                Ok(_) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        (ok, failed)
    };
    let (racer, (ok, failed)) = tokio::join!(racer, provisions);
    assert_success(&racer, "racer");
    assert!(
        ok + failed >= 3,
        "{ok} provisions succeeded, {failed} failed"
    );
    assert_eq!(
        env.sh("stat -c '%a %u %g' /etc; ls -lA /etc", &[]).await,
        before,
        "/etc changed while the user raced ({})",
        racer.stdout_lossy().trim()
    );
    provision(env, &plan).await;
    verify_ok(env, &plan).await;
}

/// The guard runs the user's part as the user, beside root's work. While
/// provisions run, the user reads the stdin of every process of its own
/// (never a key there), and a watcher as root records the descriptors of
/// the guard's provision and of the user's part (`bottle-script` in its
/// argv): the user's part never holds the guard's stdin, which carries the
/// keys.
async fn check_the_users_part_holds_no_key(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    provision(env, &plan).await;
    // The user: its part's descriptors (`bottle-script` in its argv), and
    // what its part's stdin holds.
    let racer = env.exec_as(
        USER,
        &[
            "sh",
            "-c",
            r#"read -r u _ < /proc/uptime; end=$(( ${u%%.*} + 4 ))
               needle="bottle-""script"
               while read -r u _ < /proc/uptime && [ "${u%%.*}" -lt "$end" ]; do
                 for p in /proc/[0-9]*; do
                   [ -O "$p" ] || continue
                   c=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
                   case $c in *"$needle"*) ;; *) continue;; esac
                   fds=
                   for f in "$p"/fd/*; do t=$(readlink "$f") && fds="$fds ${f##*/}=$t"; done
                   echo "user$fds"
                   [ -p "$p/fd/0" ] && cat "$p/fd/0" >> /tmp/stolen 2>/dev/null
                 done
               done"#,
        ],
    );
    // Root: the guard's provision's stdin (the key stream).
    let watcher = env.exec_as(
        "0",
        &[
            "sh",
            "-c",
            r#"read -r u _ < /proc/uptime; end=$(( ${u%%.*} + 4 ))
               while read -r u _ < /proc/uptime && [ "${u%%.*}" -lt "$end" ]; do
                 for p in /proc/[0-9]*; do
                   [ -O "$p" ] || continue
                   c=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
                   case $c in */claude-bottle/guard-*" provision "*) ;; *) continue;; esac
                   t=$(readlink "$p/fd/0") && echo "guard 0=$t"
                 done
               done"#,
        ],
    );
    let provisions = async {
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(3500) {
            let _ = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default()).await;
        }
    };
    let (racer, watcher, ()) = tokio::join!(racer, watcher, provisions);
    assert_success(&racer, "racer");
    assert_success(&watcher, "watcher");
    let stolen = env
        .rt()
        .exec(
            env.bottle(),
            bottle_runtime::ExecRequest::new(["sh", "-c", "cat /tmp/stolen 2>/dev/null; true"])
                .user("0"),
        )
        .await
        .unwrap()
        .stdout;
    for key in [&keys.a, &keys.b] {
        let parsed = bottle_ssh::ssh_key::PrivateKey::read_openssh_file(key).unwrap();
        let seed = parsed.key_data().ed25519().unwrap().private.to_bytes();
        assert!(
            !stolen.windows(seed.len()).any(|w| w == seed.as_slice()),
            "the user read a private key from its own process"
        );
    }
    let seen = format!("{}{}", watcher.stdout_lossy(), racer.stdout_lossy());
    let fds = |line: &str| -> Vec<(String, String)> {
        line.split_whitespace()
            .skip(1)
            .filter_map(|f| f.split_once('='))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    };
    let key_streams: Vec<String> = seen
        .lines()
        .filter(|l| l.starts_with("guard "))
        // A child between fork and exec shows the guard's argv with its
        // own stdin (/dev/null): only pipes and FIFOs carry the keys.
        .flat_map(|l| {
            fds(l)
                .into_iter()
                .filter(|(n, t)| n == "0" && t != "/dev/null")
        })
        .map(|(_, t)| t)
        .collect();
    let users: Vec<&str> = seen.lines().filter(|l| l.starts_with("user ")).collect();
    assert!(
        !key_streams.is_empty() && !users.is_empty(),
        "the watcher never saw the guard and the user's part at work:\n{seen}\n{}",
        watcher.stderr_lossy()
    );
    for line in users {
        for (n, target) in fds(line) {
            assert!(
                !key_streams.contains(&target),
                "the user's part holds the guard's stdin as descriptor {n}: {line}"
            );
        }
    }
    provision(env, &plan).await;
    verify_ok(env, &plan).await;
}

/// The container stops in the middle of a provision: it fails with a
/// container error. A lock left by a provision killed with the container
/// (planted here, with the container's boot as its owner records it, as
/// the timing of a real kill is not repeatable) does not block after the
/// restart, and provision succeeds.
async fn check_stop_mid_provision_then_recover(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    provision(env, &plan).await;
    // The container stops when the provision's exec is asked for (one exec,
    // the guard delivered above): it runs (or is killed) as the container
    // stops under it.
    let admin = env.admin();
    let crashing = Recording::new(env.runtime()).before(move |op| {
        let stop = match op {
            Op::Exec(call) => Some((admin.clone(), call.container.clone())),
            _ => None,
        };
        Box::pin(async move {
            match stop {
                Some((admin, container)) => admin.stop(&container).await,
                None => Ok(()),
            }
        })
    });
    let e = bottle_ssh::provision(&crashing, env.bottle(), &plan, &Target::default())
        .await
        .unwrap_err();
    assert!(!e.is_plan_error(), "{e}");
    assert_eq!(e.class(), bottle_ssh::ErrorClass::Container);
    env.admin().start(env.bottle()).await.unwrap();
    // Held as the in-container helpers would record it: token, uptime,
    // start time of PID 1 (the container's boot).
    env.sh(
        r#"mkdir -p /run/claude-bottle/lock
           read -r u _ < /proc/uptime
           set -- $(sed 's/^.*) //' /proc/1/stat)
           eval "boot=\${20}"
           echo "dead-provision ${u%%.*} $boot" > /run/claude-bottle/lock/owner"#,
        &[],
    )
    .await;
    env.admin().stop(env.bottle()).await.unwrap();
    env.admin().start(env.bottle()).await.unwrap();
    env.sh("test -d /run/claude-bottle/lock", &[]).await;
    let started = std::time::Instant::now();
    provision(env, &plan).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "waited {:?} for a stale lock",
        started.elapsed()
    );
    verify_ok(env, &plan).await;
}

/// ed25519, ECDSA P-521 (a short-scalar one) and RSA keys: each, picked
/// alone by its public half, logs in through the agent.
async fn check_every_key_type_signs(env: &TestEnv) {
    let keys = Keys::all_types();
    let (ecdsa, rsa) = (keys.ecdsa.clone().unwrap(), keys.rsa.clone().unwrap());
    start_sshd(env, &keys).await;
    let pin = Some(public(&keys.host_key));
    let mut gate = gate(&["ed", "ec"]);
    gate.ports.insert("rsa".into(), i64::from(PORTS[0]));
    let plan = Plan {
        signing: None,
        gate: Some(gate),
        ssh: vec![
            keys.entry("ed", &keys.a, pin.clone()),
            keys.entry("ec", &ecdsa, pin.clone()),
            keys.entry("rsa", &rsa, pin),
        ],
    };
    let report = provision(env, &plan).await;
    let algorithms: Vec<&str> = report.keys.iter().map(|k| k.algorithm.as_str()).collect();
    assert_eq!(
        algorithms,
        ["ssh-ed25519", "ecdsa-sha2-nistp521", "ssh-rsa"]
    );
    for (alias, key) in [("ed", &keys.a), ("ec", &ecdsa), ("rsa", &rsa)] {
        let out = ssh_fixtures::ssh_with_only(env, alias, key).await;
        assert_success(&out, &format!("ssh {alias} with only its own key"));
        assert_eq!(out.stdout_lossy(), "git\n");
    }
    verify_ok(env, &plan).await;
}

engine_tests!(
    images = [debian, busybox],
    check_every_key_type_signs,
    check_stop_mid_provision_then_recover,
    check_lock_through_the_public_socket_is_refused,
    check_symlinked_ssh_dir_is_replaced,
    check_user_racing_ssh_dir_cannot_redirect_writes,
    check_the_users_part_holds_no_key,
    check_root_owned_ssh_dir_is_refused,
    check_key_bytes_only_travel_over_stdin,
    check_user_reaches_every_alias,
    check_wrong_known_host_key_fails,
    check_reprovision_is_idempotent,
    check_rotate_loads_only_new_keys,
    check_restart_then_provision,
    check_deprovision_removes_everything,
    check_missing_tool_or_user_is_named,
    check_runtime_calls_do_not_grow_with_keys,
);
