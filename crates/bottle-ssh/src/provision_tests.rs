//! Provision's, verify's and deprovision's control flow against the
//! scripted [`FakeRuntime`]: which execs run, in which order, as whom, and
//! how each kind of output or failure maps to an error. No engine: what a
//! real engine does is the integration suites' business.

use crate::*;
use bottle_runtime::testing::{output, ExecCall, FakeRuntime};
use bottle_runtime::{ContainerState, Engine, ExecOutput};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const BOTTLE: &str = "b1";

/// These checks drive the two execs of `guard = "off"`; the guarded
/// provision's one exec (the guard runs the user's part) has its own below.
async fn provision(
    rt: &dyn bottle_runtime::ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
) -> Result<ProvisionReport, Error> {
    let opts = Options {
        unguarded: true,
        ..Options::default()
    };
    crate::provision_with(rt, container, plan, target, &opts).await
}

#[test]
fn a_guarded_provision_is_one_exec_read_as_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, fps) = plan(dir.path());
    let want = fps.clone();
    let rt = fake(move |c| {
        assert!(c.user == "0" && c.script_contains(" provision "), "{c:?}");
        let root = agent_output(&want, "agent-started");
        Ok(output(0, &format!("{root}user-part 0\n{USER_OK}")))
    });
    let report = block(crate::provision(&rt, BOTTLE, &plan, &Target::default())).unwrap();
    assert_eq!(rt.execs().len(), 1);
    assert_eq!(report.keys.len(), 2);
    assert!(report.files.iter().all(|f| f.uid == 1000));
    // The user's part failed: its own exit code and stderr decide.
    let rt = fake(move |_| {
        let mut out = output(
            0,
            "agent-reused 41\nforwarder-reused 42\ndone\nuser-part 1\n",
        );
        out.stderr = b"cannot create a file".to_vec();
        Ok(out)
    });
    let e = block(crate::provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err();
    assert!(e.to_string().contains("cannot create a file"), "{e}");
}

#[test]
fn the_user_part_is_split_at_its_first_mark_only() {
    let out = |s: &str| ExecOutput {
        exit_code: 0,
        stdout: s.as_bytes().to_vec(),
        stderr: Vec::new(),
    };
    let (root, user) = crate::provision::split_user_part(out("done\nuser-part 3\nuser-part 0\n"));
    assert_eq!(root.stdout, b"done\n");
    let user = user.unwrap();
    assert_eq!(
        (user.exit_code, &user.stdout[..]),
        (3, &b"user-part 0\n"[..])
    );
    for bad in [
        "done\nuser-part x\n",
        "done\nuser-part \n",
        "done\nuser-part 1234\n",
        "xuser-part 0\n",
    ] {
        assert!(
            crate::provision::split_user_part(out(bad)).1.is_none(),
            "{bad:?}"
        );
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

pub(crate) fn key_file(dir: &Path, name: &str) -> PathBuf {
    use ssh_key::{rand_core::OsRng, Algorithm, LineEnding, PrivateKey};
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let path = dir.join(name);
    key.write_openssh_file(&path, LineEnding::LF).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// A plan with two keys, and their fingerprints.
fn plan(dir: &Path) -> (Plan, Vec<String>) {
    let entry = |host: &str, key: PathBuf| SshEntry {
        host: host.into(),
        hostname: format!("{host}.example"),
        user: "git".into(),
        identity_file: key,
        restrict: Some(false),
        ..Default::default()
    };
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![
            entry("a", key_file(dir, "a")),
            entry("b", key_file(dir, "b")),
        ],
    };
    let fps = validate(&plan).unwrap().fingerprints();
    (plan, fps)
}

fn is_root_provision(c: &ExecCall) -> bool {
    c.user == "0" && c.script_contains("agent-started")
}

fn is_user_files(c: &ExecCall) -> bool {
    c.user == "node" && c.script_contains("escalation-checked") && c.stdin_len.is_some()
}

fn agent_output(fps: &[String], agent: &str) -> String {
    let keys: String = fps.iter().map(|f| format!("key {f}\n")).collect();
    format!("{agent} 41\n{keys}forwarder-reused 42\ndone\n")
}

const USER_OK: &str = "uid 1000\ngid 1000\nescalation-checked\ndone\n";

fn fake(
    answer: impl Fn(&ExecCall) -> bottle_runtime::Result<ExecOutput> + Send + Sync + 'static,
) -> FakeRuntime {
    FakeRuntime::new().running(BOTTLE).on_exec(answer)
}

#[test]
fn provision_is_two_execs_root_first_keys_only_on_roots_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, fps) = plan(dir.path());
    let want = fps.clone();
    let rt = fake(move |c| {
        Ok(if is_root_provision(c) {
            output(0, &agent_output(&want, "agent-started"))
        } else {
            output(0, USER_OK)
        })
    });
    let report = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap();
    assert!(report.agent.started && !report.forwarder.started);
    assert_eq!(report.keys.len(), 2);
    assert!(
        !report.warnings.iter().any(|w| w.contains("root")),
        "{:?}",
        report.warnings
    );
    let execs = rt.execs();
    assert_eq!(execs.len(), 2);
    assert!(is_root_provision(&execs[0]), "root's exec is started first");
    assert!(is_user_files(&execs[1]));
    // The agent stream is on root's stdin; the user's carries only text.
    assert!(execs[0].stdin_len.unwrap() > 100);
    assert!(execs[0].script_args().contains(&"reuse".to_string()));
    // Neither exec's argv holds anything of a key file.
    let a = std::fs::read_to_string(dir.path().join("a")).unwrap();
    let body = a.lines().nth(1).unwrap();
    assert!(!format!("{execs:?}").contains(body));
}

#[test]
fn a_reused_agent_that_refuses_the_keys_is_replaced_once() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, fps) = plan(dir.path());
    let want = fps.clone();
    let rt = fake(move |c| {
        Ok(if is_root_provision(c) {
            if c.script_args().contains(&"fresh".to_string()) {
                output(0, &agent_output(&want, "agent-started"))
            } else {
                // A locked agent: reused, lists nothing, refused the stream.
                output(
                    0,
                    "agent-reused 41\nforwarder-reused 42\nagent-unusable\ndone\n",
                )
            }
        } else {
            output(0, USER_OK)
        })
    });
    let report = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap();
    assert!(report.agent.started);
    let execs = rt.execs();
    assert_eq!(execs.len(), 3);
    assert!(execs[2].script_args().contains(&"fresh".to_string()));
    assert!(report
        .steps
        .iter()
        .any(|s| s.name == "load keys (new agent)"));
}

#[test]
fn a_fresh_agent_without_the_keys_is_a_mismatch_without_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, fps) = plan(dir.path());
    let one = vec![fps[0].clone()];
    let rt = fake(move |c| {
        Ok(if is_root_provision(c) {
            output(0, &agent_output(&one, "agent-started"))
        } else {
            output(0, USER_OK)
        })
    });
    let e = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err();
    match &e {
        Error::AgentMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected.len(), 2);
            assert_eq!(actual.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rt.execs().len(), 2);
}

#[test]
fn untrusted_comes_first_then_missing_from_either_exec() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, _) = plan(dir.path());
    let rt = fake(|c| {
        Ok(if c.user == "0" {
            output(0, "untrusted /usr/local/bin writable by group or others (mode 777)\nmissing tool socat\ndone\n")
        } else {
            output(0, "missing home\n")
        })
    });
    let e = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err();
    assert!(matches!(e, Error::UntrustedInContainer { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Container);

    let rt = fake(|c| {
        Ok(if c.user == "0" {
            output(0, "missing tool socat\nos alpine\ndone\n")
        } else {
            output(0, "missing tool socat\nmissing home\n")
        })
    });
    match block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err() {
        Error::MissingInContainer { missing, hint, .. } => {
            assert_eq!(
                missing,
                [
                    Missing::Tool("socat".into()),
                    Missing::Home("/home/node".into())
                ]
            );
            assert!(hint.unwrap().contains("apk add"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dropped_output_and_hostile_output_are_protocol_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, fps) = plan(dir.path());
    // Podman 4.3 may return nothing at all, with exit 0.
    let rt = fake(|c| Ok(output(0, if c.user == "0" { "" } else { USER_OK })));
    let e = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { detail, .. } if detail.contains("did not finish")),
        "{e:?}"
    );
    let want = fps.clone();
    let rt = fake(move |c| {
        Ok(if c.user == "0" {
            output(
                0,
                &format!("{}\x1b]0;pwned\x07\n", agent_output(&want, "agent-started")),
            )
        } else {
            output(0, USER_OK)
        })
    });
    let e = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    // Named with its bytes (bottlectl escapes them at its output).
    assert!(text.contains("\x1b]0;pwned\x07"), "{text:?}");
}

#[test]
fn engine_failures_and_lock_timeouts_map_to_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, _) = plan(dir.path());
    let rt = FakeRuntime::new()
        .engine(Engine::Podman)
        .container(BOTTLE, ContainerState::Exited);
    let e = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Runtime {
                source: bottle_runtime::Error::ContainerNotRunning { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Container);
    assert!(e.to_string().contains("Podman"), "{e}");

    // Another provision holds the in-container lock: the script gives up
    // with 75 and says so on stderr, kept bounded.
    let rt = fake(|c| {
        Ok(if c.user == "0" {
            ExecOutput {
                exit_code: 75,
                stdout: Vec::new(),
                stderr: format!(
                    "lock /run/claude-bottle/lock is held by another provision\n{}",
                    "x".repeat(10_000)
                )
                .into_bytes(),
            }
        } else {
            output(0, USER_OK)
        })
    });
    match block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err() {
        Error::Script {
            exit_code,
            stderr,
            step,
            ..
        } => {
            assert_eq!((exit_code, step), (75, "load keys"));
            assert!(
                stderr.starts_with("lock ") && stderr.len() < 2100,
                "{}",
                stderr.len()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_plan_never_touches_the_container() {
    let rt = fake(|_| Ok(output(0, "")));
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![SshEntry {
            host: "a b".into(),
            hostname: "x".into(),
            user: "git".into(),
            identity_file: "/nonexistent".into(),
            ..Default::default()
        }],
    };
    let e = block(provision(&rt, BOTTLE, &plan, &Target::default())).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Input);
    assert!(rt.calls().is_empty());
}

#[test]
fn strict_refuses_escalation_before_root_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, _) = plan(dir.path());
    let roots = Arc::new(AtomicUsize::new(0));
    let seen = roots.clone();
    let rt = fake(move |c| {
        if c.user == "0" {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        Ok(output(0, "escalation sudo\nescalation-checked\n"))
    });
    let opts = Options {
        strict: true,
        ..Default::default()
    };
    let e = block(provision_with(
        &rt,
        BOTTLE,
        &plan,
        &Target::default(),
        &opts,
    ))
    .unwrap_err();
    assert!(matches!(e, Error::UserCanBecomeRoot { .. }), "{e:?}");
    assert_eq!(roots.load(Ordering::SeqCst), 0);
    assert_eq!(rt.execs().len(), 1);
}

#[test]
fn verify_reads_both_execs_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, fps) = plan(dir.path());
    let want = fps.clone();
    let rt = fake(move |c| {
        Ok(if c.user == "0" {
            let state: String = want.iter().map(|f| format!("keystate {f} - -\n")).collect();
            output(
                0,
                &format!(
                    "uid 1000\ngid 1000\nagent 41 alive\nforwarder 42 dead\n{state}\
                     keyfile /home/node/id_stolen\ndone\n"
                ),
            )
        } else {
            let listed: String = want.iter().map(|f| format!("public-key {f}\n")).collect();
            output(
                0,
                &format!("public-rc 0\n{listed}private-rc 2\ndenied /proc/41/mem\ndenied /proc/41/environ\nescalation-checked\ndone\n"),
            )
        })
    });
    let report = block(verify(&rt, BOTTLE, &plan, &Target::default())).unwrap();
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    assert!(failed.contains(&"forwarder running"), "{failed:?}");
    assert!(failed.contains(&"no private key file"), "{failed:?}");
    assert!(
        !failed.contains(&"public socket lists exactly the plan's keys"),
        "{failed:?}"
    );
    assert!(report.check("private socket refuses the user").unwrap().ok);
    assert!(report.check("agent mem unreadable by the user").unwrap().ok);
    // The user's view is asked as the uid:gid root reported.
    assert_eq!(rt.execs()[1].user, "1000:1000");
}

#[test]
fn deprovision_runs_both_parts_at_once_and_merges_them() {
    let rt = fake(|c| {
        Ok(if c.user == "0" {
            output(
                0,
                "stopped forwarder 42\nstopped agent 41\nremoved /run/claude-bottle\ndone\n",
            )
        } else {
            output(0, "removed /home/node/.ssh/config\ndone\n")
        })
    });
    let r = block(deprovision(&rt, BOTTLE, &Target::default())).unwrap();
    assert_eq!((r.stopped_agent, r.stopped_forwarder), (Some(41), Some(42)));
    assert_eq!(r.removed, ["/run/claude-bottle", "/home/node/.ssh/config"]);
    // The user's part cannot claim to have stopped root's processes.
    let rt = fake(|c| {
        Ok(output(
            0,
            if c.user == "0" {
                "done\n"
            } else {
                "stopped agent 1\ndone\n"
            },
        ))
    });
    assert!(block(deprovision(&rt, BOTTLE, &Target::default())).is_err());
}

/// The policy provision renders is one the guard reads, with names as long
/// as the manifest allows, each alias under its pinned host key, and the
/// signing key's namespace.
#[test]
fn the_rendered_policy_reads_in_the_guard() {
    use ssh_key::{rand_core::OsRng, Algorithm, PrivateKey};
    let dir = tempfile::tempdir().unwrap();
    let host = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let host_line = host.public_key().to_openssh().unwrap();
    let long = "u".repeat(crate::valid::MAX_VALUE_LEN);
    let entry = |alias: &str, user: &str, key: PathBuf| SshEntry {
        host: alias.into(),
        hostname: "h.example".into(),
        user: user.into(),
        identity_file: key,
        known_host_key: Some(host_line.clone()),
        ..Default::default()
    };
    let plan = Plan {
        signing: Some(Signing {
            identity_file: key_file(dir.path(), "s"),
            ..Default::default()
        }),
        gate: None,
        ssh: vec![
            entry("a", "git", key_file(dir.path(), "a")),
            entry(&long, &long, key_file(dir.path(), "b")),
        ],
    };
    let valid = validate(&plan).unwrap();
    let text = crate::provision::guard_policy(&valid);
    let policy =
        bottle_guard::policy::Policy::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let host_fp = host
        .public_key()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    assert_eq!(policy.aliases[&host_fp], ["a", long.as_str()]);
    let signing = valid.signing.as_ref().unwrap();
    assert_eq!(policy.keys[&signing.fingerprint].namespaces, ["git"]);
    let b = &valid.entries[1].fingerprint;
    assert_eq!(policy.keys[b].logins[0].users, std::slice::from_ref(&long));
    assert_eq!(policy.keys[b].logins[0].hosts, [host_fp]);
}

/// `Approve`, `ApprovalTimeout` and `MaxSignatures` become the guard's
/// policy words; bad values are plan errors naming the field; a plan with
/// them is refused unguarded.
#[test]
fn holds_are_checked_and_reach_the_policy() {
    use crate::plan::hold_words;
    let t = |s: &str| Lifetime::Text(s.into());
    assert_eq!(
        hold_words(Some("each"), None, Some("30/1m")).unwrap(),
        " approve=each timeout=60 max=30/60"
    );
    assert_eq!(
        hold_words(Some("per-destination"), Some(&t("5s")), None).unwrap(),
        " approve=per-destination timeout=5"
    );
    assert_eq!(hold_words(None, None, None).unwrap(), "");
    for (approve, timeout, max, field) in [
        (Some("sometimes"), None, None, "Approve"),
        (Some("each"), Some(t("2d")), None, "ApprovalTimeout"),
        (None, Some(t("5s")), None, "ApprovalTimeout"),
        (None, None, Some("30"), "MaxSignatures"),
        (None, None, Some("0/1m"), "MaxSignatures"),
        (None, None, Some("3/2d"), "MaxSignatures"),
        (None, None, Some("x/1m"), "MaxSignatures"),
    ] {
        let (f, _) = hold_words(approve, timeout.as_ref(), max).unwrap_err();
        assert_eq!(f, field, "{approve:?} {max:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut plan, _) = plan(dir.path());
    plan.ssh[0].approve = Some("each".into());
    let valid = validate(&plan).unwrap();
    assert!(crate::provision::guard_policy(&valid).contains(" approve=each timeout=60"));
    let off = Options {
        unguarded: true,
        ..Default::default()
    };
    let e = crate::provision::holds_need_the_guard(&valid, &off).unwrap_err();
    assert!(e.to_string().contains("guard"), "{e}");
}
