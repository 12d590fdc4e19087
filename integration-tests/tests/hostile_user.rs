//! The bottle's user (uid 1000) prepares the container before root's scripts
//! run, on every engine: programs on a writable `PATH` directory, a writable
//! `/run` with a look-alike agent, pids reused after a restart, FIFOs at the
//! user exec's file names. Each time the key stream must never reach a
//! process or file of the user's, and the operator gets an error naming the
//! cause, never a false success.

mod fixtures;

use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_ssh::{Error, Target};
use fixtures::{provision_ok, verify_ok, Keys, USER};
use std::time::Duration;

async fn provision_err(env: &TestEnv, keys: &Keys) -> Error {
    match bottle_ssh::provision(env.rt(), env.bottle(), &keys.plan(), &Target::default()).await {
        Ok(r) => panic!("provision succeeded: {r:?}"),
        Err(e) => e,
    }
}

/// The paths an `UntrustedInContainer` error names.
fn untrusted_paths(e: &Error) -> Vec<String> {
    match e {
        Error::UntrustedInContainer { untrusted, .. } => {
            untrusted.iter().map(|u| u.path.clone()).collect()
        }
        other => panic!("expected UntrustedInContainer, got {other} ({other:?})"),
    }
}

/// A fake for each program root's scripts run, in a `PATH` directory the
/// user can write: each notes who ran it, then runs the real one.
const PLANT_FAKES: &str = r#"
for t in ssh-agent ssh-add socat id sed tr grep rm mkdir mv chmod sleep stat readlink find head mktemp; do
  printf '#!/bin/sh\necho "$(/usr/bin/id -u) $0" >> /tmp/fake-ran\nexec /usr/bin/%s "$@"\n' "$t" > "/usr/local/bin/$t"
  chmod 755 "/usr/local/bin/$t"
done
"#;

/// A user-writable directory early on `PATH` (an npm prefix, a
/// `/usr/local/bin` handed to the user) full of look-alike programs: root
/// runs none of them; provision and verify work with the real ones. A tool
/// found only there, or reached through a symlink into the user's home, is
/// refused naming the directory.
async fn check_writable_path_directory_is_not_used(env: &TestEnv) {
    let keys = Keys::new();
    env.sh("mkdir -p /usr/local/bin && chmod 777 /usr/local/bin", &[])
        .await;
    let out = env.exec_as(USER, &["sh", "-c", PLANT_FAKES]).await;
    assert_success(&out, "plant fakes as the user");

    // doctor's checks (preflight) too: nothing untrusted, tools from /usr/bin.
    let pre = bottle_ssh::preflight(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap();
    assert!(pre.untrusted.is_empty(), "{pre:?}");
    assert!(
        pre.tools.iter().all(|(_, p)| !p.starts_with("/usr/local")),
        "{pre:?}"
    );
    assert_eq!(pre.escalation, Some(Vec::new()));
    let report = provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    assert!(report.agent.started);
    verify_ok(env.rt(), env.bottle(), &keys.plan()).await;
    let deprovision = bottle_ssh::deprovision(env.rt(), env.bottle(), &Target::default()).await;
    deprovision.unwrap_or_else(|e| panic!("deprovision: {e}"));
    let ran = env.sh("cat /tmp/fake-ran 2>/dev/null; true", &[]).await;
    assert!(
        !ran.lines().any(|l| l.starts_with("0 ")),
        "root ran the user's programs:\n{ran}"
    );

    // ssh-agent (root runs it; guarded, it runs no socat) only in the
    // writable directory: refused, naming it.
    env.sh(
        // The test's own root commands keep off the user's programs.
        "PATH=/usr/bin; mv /usr/bin/ssh-agent /usr/bin/ssh-agent.real && cp /usr/bin/ssh-agent.real /usr/local/bin/ssh-agent",
        &[],
    )
    .await;
    let e = provision_err(env, &keys).await;
    assert!(
        untrusted_paths(&e).contains(&"/usr/local/bin".to_string()),
        "{e}"
    );
    assert!(e.to_string().contains("for ssh-agent"), "{e}");
    // A root-owned link into the user's home: refused, naming the home.
    env.sh(
        "PATH=/usr/bin; rm -f /usr/local/bin/* && chmod 755 /usr/local/bin && mkdir -p /home/node/bin && \
         cp /usr/bin/ssh-agent.real /home/node/bin/ssh-agent && chown -R 1000:1000 /home/node/bin && \
         ln -s /home/node/bin/ssh-agent /usr/bin/ssh-agent",
        &[],
    )
    .await;
    let e = provision_err(env, &keys).await;
    assert!(
        untrusted_paths(&e)
            .iter()
            .any(|p| p.starts_with("/home/node")),
        "{e}"
    );
    let left = env
        .sh("ls -A /run/claude-bottle 2>/dev/null; true", &[])
        .await;
    assert_eq!(left, "", "a refused provision left state behind");
    let ran = env.sh("cat /tmp/fake-ran 2>/dev/null; true", &[]).await;
    assert!(!ran.lines().any(|l| l.starts_with("0 ")), "{ran}");
}

/// The user's look-alike agent: a socat named `ssh-agent` listening on the
/// agent socket path, writing whatever it is sent to /tmp/captured.
const LOOKALIKE_AGENT: &str = r#"
ln -sf /usr/bin/socat /tmp/ssh-agent
mkdir -p /run/claude-bottle && chmod 777 /run/claude-bottle
/tmp/ssh-agent UNIX-LISTEN:/run/claude-bottle-agent.sock,fork OPEN:/tmp/captured,creat,append </dev/null >/dev/null 2>&1 &
echo "$!" > /run/claude-bottle/agent.pid
i=0; until [ -S /run/claude-bottle-agent.sock ] || [ "$i" -ge 100 ]; do i=$((i+1)); sleep 0.05; done
"#;

/// A `/run` the user can write: the user makes the state directory, a
/// look-alike agent on the agent socket and a pid record pointing at it.
/// Provision refuses naming `/run` and sends nothing; with `/run` fixed, the
/// user's state directory is refused in turn (never adopted); once root
/// removes it, provision works.
async fn check_writable_run_is_refused(env: &TestEnv) {
    let keys = Keys::new();
    env.sh("chmod 1777 /run", &[]).await;
    let out = env.exec_as(USER, &["sh", "-c", LOOKALIKE_AGENT]).await;
    assert_success(&out, "look-alike agent as the user");

    let e = provision_err(env, &keys).await;
    assert!(untrusted_paths(&e).contains(&"/run".to_string()), "{e}");
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &keys.plan(), &Target::default())
        .await
        .unwrap();
    let trust = report
        .check("root's programs and directories are trusted")
        .expect("trust check");
    assert!(!trust.ok && trust.detail.contains("/run"), "{trust:?}");

    env.sh("chmod 755 /run", &[]).await;
    let e = provision_err(env, &keys).await;
    assert!(
        untrusted_paths(&e).contains(&"/run/claude-bottle".to_string()),
        "{e}"
    );
    let captured = env
        .sh("wc -c < /tmp/captured 2>/dev/null || echo 0", &[])
        .await;
    assert_eq!(
        captured.trim(),
        "0",
        "the look-alike agent got the key stream"
    );

    env.sh("rm -rf /run/claude-bottle", &[]).await;
    // The look-alike's socket is left: not bottle's (no state directory),
    // so it is refused in turn, never replaced.
    let e = provision_err(env, &keys).await;
    assert!(
        untrusted_paths(&e).contains(&"/run/claude-bottle-agent.sock".to_string()),
        "{e}"
    );
    env.sh("rm -f /run/claude-bottle-agent.sock", &[]).await;
    let report = provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    assert!(report.agent.started);
    verify_ok(env.rt(), env.bottle(), &keys.plan()).await;
    let captured = env
        .sh("wc -c < /tmp/captured 2>/dev/null || echo 0", &[])
        .await;
    assert_eq!(
        captured.trim(),
        "0",
        "the look-alike agent got the key stream"
    );
}

/// After a restart (`/run` persists) the user starts processes until two
/// land on the recorded agent and forwarder pids, with command lines that
/// name ssh-agent, socat and both sockets. Neither is taken for ours:
/// verify says the agent and forwarder are not running, provision starts
/// fresh ones (the user's processes are not killed) and ssh works.
async fn check_reused_pids_after_restart_are_not_ours(env: &TestEnv) {
    let keys = Keys::new();
    let first = provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    let (apid, fpid) = (first.agent.pid.to_string(), first.forwarder.pid.to_string());
    env.admin().stop(env.bottle()).await.unwrap();
    env.admin().start(env.bottle()).await.unwrap();
    // One fork per round (builtins only), so pids are tried in order; each
    // squatter blocks in `read` on a FIFO held open, forking nothing.
    let squat = r#"
        a=$1 f=$2 got=
        mkfifo /tmp/hold && exec 9<>/tmp/hold
        i=0
        while [ "$i" -lt 20000 ]; do
          sh -c 'read -r x' ssh-agent -D -a /run/claude-bottle-agent.sock socat UNIX-LISTEN:/run/claude-bottle-agent-public.sock <&9 &
          p=$!
          case $p in "$a"|"$f") got="$got $p";; *) kill "$p";; esac
          case $got in *" $a"*) case $got in *" $f"*) echo "$got"; exit 0;; esac;; esac
          i=$((i+1))
        done
        echo "pids not reached: $got" >&2; exit 1"#;
    let out = env
        .exec_as(USER, &["sh", "-c", squat, "sh", &apid, &fpid])
        .await;
    assert_success(&out, "squat the recorded pids as the user");

    let report = bottle_ssh::verify(env.rt(), env.bottle(), &keys.plan(), &Target::default())
        .await
        .unwrap();
    for name in ["agent running", "forwarder running"] {
        let c = report.check(name).expect(name);
        assert!(!c.ok, "verify took the user's process for ours: {c:?}");
    }
    let again = provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    assert!(again.agent.started && again.forwarder.started, "{again:?}");
    assert_ne!(again.agent.pid, first.agent.pid);
    assert_ne!(again.forwarder.pid, first.forwarder.pid);
    verify_ok(env.rt(), env.bottle(), &keys.plan()).await;
    let alive = env
        .sh(
            r#"for p in "$@"; do kill -0 "$p" && echo alive; done; true"#,
            &[&apid, &fpid],
        )
        .await;
    assert_eq!(alive, "alive\nalive\n", "root killed the user's processes");
    let listed = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "SSH_AUTH_SOCK=/run/claude-bottle-agent-public.sock ssh-add -l",
            ],
        )
        .await;
    assert_success(&listed, "the new agent answers through the forwarder");
}

/// FIFOs at every name the user exec's temporary files could predictably
/// have: provision still finishes (names are `mktemp`'s) and leaves the
/// FIFOs alone.
async fn check_fifos_at_temporary_names_do_not_stall(env: &TestEnv) {
    let keys = Keys::new();
    let plant = r#"
        mkdir -p /home/node/.ssh && chmod 700 /home/node/.ssh
        # One mkfifo for all: forking per name would move the pids the
        # provision's execs get past the planted range.
        set --
        i=1
        while [ "$i" -le 3000 ]; do
          set -- "$@" "/home/node/.ssh/.config.bottle-$i" "/home/node/.ssh/.known_hosts.bottle-$i"
          i=$((i+1))
        done
        mkfifo "$@""#;
    assert_success(
        &env.exec_as(USER, &["sh", "-c", plant]).await,
        "plant FIFOs",
    );
    let (plan, target) = (keys.plan(), Target::default());
    let provision = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &target);
    let report = tokio::time::timeout(Duration::from_secs(60), provision)
        .await
        .expect("provision stalled on a FIFO")
        .unwrap_or_else(|e| panic!("provision: {e}"));
    assert!(report.agent.started);
    let fifos = env
        .sh(
            "n=0; for f in /home/node/.ssh/.*.bottle-*; do [ -p \"$f\" ] && n=$((n+1)); done; echo $n",
            &[],
        )
        .await;
    assert_eq!(fifos.trim(), "6000");
}

/// A key stream captured in binary form (here: the raw public-key bytes of a
/// loaded key inside other bytes, as an agent message carries them) in a
/// file the user wrote: verify's key scan names it; without it, passes.
async fn check_captured_binary_key_stream_is_found(env: &TestEnv) {
    let keys = Keys::new();
    provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    verify_ok(env.rt(), env.bottle(), &keys.plan()).await;
    let public = std::fs::read_to_string(format!("{}.pub", keys.a.display())).unwrap();
    let public = bottle_ssh::ssh_key::PublicKey::from_openssh(&public).unwrap();
    let raw = public.key_data().ed25519().unwrap().0;
    let mut capture = vec![0u8, 0, 0, 11];
    capture.extend_from_slice(b"ssh-ed25519\0\0\0\x20");
    capture.extend_from_slice(&raw);
    capture.extend_from_slice(&[0xff; 64]);
    env.rt()
        .copy(
            env.bottle(),
            &[bottle_runtime::CopyEntry::file(
                "/home/node/.cache-capture",
                capture,
                0o600,
                1000,
                1000,
            )],
        )
        .await
        .unwrap();
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &keys.plan(), &Target::default())
        .await
        .unwrap();
    let c = report.check("no private key file").expect("key scan");
    assert!(
        !c.ok && c.detail.contains("/home/node/.cache-capture"),
        "{c:?}"
    );
}

/// The user names files in `~/.ssh`, which root's verify lists: a name
/// with newlines must not forge lines of root's report (a `keyfile` line
/// would fail verify, a `stat` line could vouch for a file that is gone).
async fn check_file_names_cannot_forge_report_lines(env: &TestEnv) {
    let keys = Keys::new();
    provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "cd ~/.ssh && touch \"$(printf 'bottle-0\\nkeyfile forged\\nagent 1 alive\\n.pub')\" \
                 \"$(printf 'bottle-ab\\nuid 0\\n.pub')\" && ls | wc -l",
            ],
        )
        .await;
    assert_success(&out, "plant file names as the user");
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &keys.plan(), &Target::default())
        .await
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert!(report.ok(), "{:#?}", report.failures().collect::<Vec<_>>());
    assert!(
        !format!("{report:?}").contains("forged"),
        "a planted name reached the report"
    );
}

/// Issue 29, attack 1: a directory under `/usr/local/lib` the user can
/// write (an npm prefix handed to the user) and Debian's `openssh-client`
/// as shipped (`ssh-pkcs11-helper`). The user writes a "PKCS#11 provider"
/// there and asks the agent, through the public socket, to load it. The
/// agent's default allow-list (`/usr/lib*/*,/usr/local/lib*/*`) would have
/// its helper `dlopen()` it as root; started with an allow-list that
/// matches nothing, the agent refuses before any library is opened, and
/// keeps its keys.
async fn check_a_provider_the_user_wrote_is_never_loaded(env: &TestEnv) {
    use bottle_integration_tests::agent_attacks::{
        add_smartcard_key, build_provider, provider_ran, send_as, write_as, FAILURE,
    };
    let keys = Keys::new();
    let report = provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    assert_eq!(report.keys.len(), 2);
    env.sh(
        "mkdir -p /usr/local/lib/node_modules && chown 1000:1000 /usr/local/lib/node_modules \
         && test -x /usr/lib/openssh/ssh-pkcs11-helper",
        &[],
    )
    .await;
    let lib = "/usr/local/lib/node_modules/provider.so";
    write_as(
        env,
        env.bottle(),
        USER,
        lib,
        build_provider(keys.dir.path()),
    )
    .await;

    let public = bottle_ssh::Target::default().public_socket;
    let reply = send_as(env, USER, &public, add_smartcard_key(lib)).await;
    assert_eq!(reply, [0, 0, 0, 1, FAILURE], "the agent's answer");
    let ran = provider_ran(env, env.bottle()).await;
    assert_eq!(ran, "", "the user's library was loaded, by uid(s): {ran}");
    // The agent kept its keys and still serves the user.
    let out = env
        .exec_as(
            USER,
            &["sh", "-c", &format!("SSH_AUTH_SOCK={public} ssh-add -l")],
        )
        .await;
    assert_success(&out, "ssh-add -l as the user");
    assert_eq!(
        out.stdout_lossy().lines().count(),
        2,
        "{}",
        out.stdout_lossy()
    );
    verify_ok(env.rt(), env.bottle(), &keys.plan()).await;
}

/// A file the user names `~/.ssh/bottle-x<newline>y.pub` that starts with
/// bottle's mark line: provision and deprovision leave it alone (it is not
/// a name bottle writes) instead of failing on a split report line.
async fn check_marked_file_names_with_newlines_are_left_alone(env: &TestEnv) {
    let keys = Keys::new();
    provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    let plant = format!(
        "cd ~/.ssh && printf '%s\\n' '{}' > \"$(printf 'bottle-x\\ny.pub')\"",
        bottle_ssh::FILE_MARK
    );
    let out = env.exec_as(USER, &["sh", "-c", &plant]).await;
    assert_success(&out, "plant a marked file name with a newline");
    provision_ok(env.rt(), env.bottle(), &keys.plan()).await;
    bottle_ssh::deprovision(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap_or_else(|e| panic!("deprovision: {e}"));
    let out = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                "test -f ~/.ssh/\"$(printf 'bottle-x\\ny.pub')\"",
            ],
        )
        .await;
    assert!(out.success(), "the user's file was removed");
}

engine_tests!(
    images = [debian, busybox],
    check_marked_file_names_with_newlines_are_left_alone,
    check_a_provider_the_user_wrote_is_never_loaded,
    check_file_names_cannot_forge_report_lines,
    check_captured_binary_key_stream_is_found,
    check_writable_path_directory_is_not_used,
    check_writable_run_is_refused,
    check_reused_pids_after_restart_are_not_ours,
    check_fifos_at_temporary_names_do_not_stall,
);
