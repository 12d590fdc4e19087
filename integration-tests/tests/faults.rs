//! Faults on every engine: the container stops or an engine call fails at
//! each call of a provisioning, the engine goes away or hangs mid-way, the
//! agent or forwarder dies, the container restarts with stale sockets, two
//! `bottlectl provision` run at once. Each ends with an error that says what
//! happened, a recovery, and no key text anywhere in the container.

mod fixtures;

use bottle_integration_tests::{connect, engine_tests, harness::connect_with_timeout, TestEnv};
use bottle_ssh::Target;
use fixtures::*;
use std::time::{Duration, Instant};

/// How many runtime calls one provisioning of `plan` makes once the guard
/// is in the container (provisioned or not: the same; the first provision
/// of a container delivers the guard first, in two more calls).
async fn calls_per_provision(env: &TestEnv, plan: &bottle_ssh::Plan) -> usize {
    provision_ok(env.rt(), env.bottle(), plan).await;
    let counting = faulty(env, usize::MAX, Fault::Fail);
    provision_ok(&counting, env.bottle(), plan).await;
    counting.calls().len()
}

/// For every call k of a provisioning and both faults (the call fails; the
/// container is stopped just before it): the error names the container and
/// is not blamed on the plan; after a restart provisioning succeeds quickly,
/// verify is ok, one agent and one forwarder run, and no file in the
/// container holds key text.
async fn check_fault_at_every_call(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let windows = keys.windows();
    // The search finds key text when there is some (so "" below means none).
    env.rt()
        .copy(
            env.bottle(),
            &[bottle_runtime::CopyEntry::file(
                "/var/tmp/control",
                std::fs::read(&keys.b).unwrap(),
                0o600,
                0,
                0,
            )],
        )
        .await
        .unwrap();
    let found = find_text(env.rt(), env.bottle(), &windows).await;
    assert_eq!(found, "/var/tmp/control\n");
    env.sh("rm /var/tmp/control", &[]).await;
    let n = calls_per_provision(env, &plan).await;
    assert!((1..=5).contains(&n), "{n} calls per provision");
    for fault in [Fault::Fail, Fault::Stop] {
        for k in 0..n {
            let what = format!("{fault:?} at call {k}");
            let faulty = faulty(env, k, fault);
            let e = bottle_ssh::provision(&faulty, env.bottle(), &plan, &Target::default())
                .await
                .expect_err(&what);
            let calls = faulty.calls();
            let op = op_name(&calls.get(k).expect("the fault was injected").op);
            let msg = chain(&e);
            assert!(!e.is_plan_error(), "{what}: blamed on the plan: {msg}");
            assert!(
                msg.contains(env.bottle()),
                "{what}: container not named: {msg}"
            );
            match fault {
                Fault::Fail => assert!(msg.contains("injected fault"), "{what}: {msg}"),
                Fault::Stop => {
                    // The engine's own words: the container is not running.
                    assert!(
                        msg.contains("not running")
                            || msg.contains("exited")
                            || msg.contains("stopped"),
                        "{what} ({op}): {msg}"
                    );
                    let state = env.rt().inspect(env.bottle()).await.unwrap().state;
                    assert!(!state.to_string().contains("running"), "{what}: {state}");
                    env.admin().start(env.bottle()).await.unwrap();
                }
            }
            assert_eq!(
                find_text(env.rt(), env.bottle(), &windows).await,
                "",
                "{what} ({op}): key text left in the container"
            );
            let started = Instant::now();
            provision_ok(env.rt(), env.bottle(), &plan).await;
            // A lock left by the failed run must not stall the next one for
            // its 60 s staleness limit.
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what} ({op}): recovery took {:?}",
                started.elapsed()
            );
            verify_ok(env.rt(), env.bottle(), &plan).await;
            assert_one_agent_one_forwarder(env.rt(), env.bottle()).await;
        }
    }
    assert_eq!(find_text(env.rt(), env.bottle(), &windows).await, "");
}

/// A unix socket path where nobody listens (bound once, then closed).
fn dead_socket(dir: &std::path::Path) -> String {
    let path = dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    format!("unix://{}", path.display())
}

/// A unix socket that accepts connections and never answers; the thread
/// holds them until the process ends.
fn silent_socket(dir: &std::path::Path) -> String {
    let path = dir.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    format!("unix://{}", path.display())
}

/// The engine goes away after call k (every k): the error names the dead
/// endpoint, nothing panics and it comes back fast. An engine that accepts
/// but never answers gives a Timeout within the configured bound.
async fn check_engine_unreachable_mid_way(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let n = calls_per_provision(env, &plan).await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dead_socket(dir.path());
    let dead_rt = connect(env.engine(), Some(&dead)).unwrap().runtime;
    for k in 0..n {
        let redirect = Redirect {
            first: env.runtime(),
            then: dead_rt.clone(),
            after: k,
            calls: Default::default(),
        };
        let started = Instant::now();
        let e = bottle_ssh::provision(&redirect, env.bottle(), &plan, &Target::default())
            .await
            .expect_err("provision through a dead engine");
        let msg = chain(&e);
        assert!(
            msg.contains(dir.path().to_str().unwrap()),
            "after {k}: endpoint not named: {msg}"
        );
        assert!(!e.is_plan_error(), "{msg}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "after {k}: {:?}",
            started.elapsed()
        );
        // The dead engine could not release the in-container lock; it would
        // go stale in 60 s. Free it so the next round measures only itself.
        env.sh("rm -rf /run/claude-bottle/lock", &[]).await;
    }

    let limit = Duration::from_secs(2);
    let silent = silent_socket(dir.path());
    let silent_rt = connect_with_timeout(env.engine(), Some(&silent), limit)
        .unwrap()
        .runtime;
    for k in [0, n - 1] {
        let redirect = Redirect {
            first: env.runtime(),
            then: silent_rt.clone(),
            after: k,
            calls: Default::default(),
        };
        let started = Instant::now();
        let e = bottle_ssh::provision(&redirect, env.bottle(), &plan, &Target::default())
            .await
            .expect_err("provision through a silent engine");
        let took = started.elapsed();
        let msg = chain(&e);
        assert!(
            matches!(
                &e,
                bottle_ssh::Error::Runtime {
                    source: bottle_runtime::Error::Timeout { .. },
                    ..
                }
            ),
            "after {k}: not a timeout: {msg}"
        );
        assert!(msg.contains(dir.path().to_str().unwrap()), "{msg}");
        assert!(
            took >= limit && took < limit * 3,
            "after {k}: took {took:?}"
        );
        env.sh("rm -rf /run/claude-bottle/lock", &[]).await;
    }
}

/// Kill the agent, then (after repair) the forwarder: verify names exactly
/// the dead one as not running and the other as running; provision repairs
/// it: verify ok, one agent, one forwarder.
async fn check_killed_agent_or_forwarder_is_named_and_repaired(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    provision_ok(env.rt(), env.bottle(), &plan).await;
    for (dead, alive) in [("agent", "forwarder"), ("forwarder", "agent")] {
        let pid = env
            .sh(
                &format!("read -r p _ < /run/claude-bottle/{dead}.pid; echo \"$p\""),
                &[],
            )
            .await;
        env.sh("kill -9 \"$1\"", &[pid.trim()]).await;
        let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
            .await
            .unwrap();
        assert!(!report.ok());
        let dead_check = report.check(&format!("{dead} running")).unwrap();
        assert!(!dead_check.ok, "{dead_check:?}");
        let alive_check = report.check(&format!("{alive} running")).unwrap();
        assert!(alive_check.ok, "{alive_check:?}");
        let report = provision_ok(env.rt(), env.bottle(), &plan).await;
        let restarted = if dead == "agent" {
            &report.agent
        } else {
            &report.forwarder
        };
        assert!(restarted.started, "{dead} not restarted: {report:?}");
        verify_ok(env.rt(), env.bottle(), &plan).await;
        assert_one_agent_one_forwarder(env.rt(), env.bottle()).await;
    }
}

/// The container restarts; /run is part of its filesystem, so both sockets
/// and the pid files survive, pointing at nothing. verify sees dead
/// processes; provision replaces the sockets (new inodes) and verify is ok.
async fn check_restart_leaves_stale_sockets_replaced(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    provision_ok(env.rt(), env.bottle(), &plan).await;
    // Inode and change time (ns): a file system may hand a new socket the
    // inode number of the one just removed.
    let inodes =
        "stat -c '%i %z %F' /run/claude-bottle-agent.sock /run/claude-bottle-agent-public.sock";
    let before = env.sh(inodes, &[]).await;
    env.admin().stop(env.bottle()).await.unwrap();
    env.admin().start(env.bottle()).await.unwrap();
    assert_eq!(env.sh(inodes, &[]).await, before, "sockets not left stale");
    let report = bottle_ssh::verify(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap();
    for what in ["agent running", "forwarder running"] {
        assert!(!report.check(what).unwrap().ok, "{what} after restart");
    }
    let report = provision_ok(env.rt(), env.bottle(), &plan).await;
    assert!(
        report.agent.started && report.forwarder.started,
        "{report:?}"
    );
    let after = env.sh(inodes, &[]).await;
    assert_ne!(after, before, "stale sockets kept");
    assert_eq!(after.matches("socket").count(), 2, "{after}");
    verify_ok(env.rt(), env.bottle(), &plan).await;
    assert_one_agent_one_forwarder(env.rt(), env.bottle()).await;
}

/// Two `bottlectl provision` processes at once, three rounds: both succeed,
/// one agent, one forwarder, the plan's keys.
async fn check_two_cli_provisions_at_once(env: &TestEnv) {
    let keys = Keys::new();
    let plan = keys.plan();
    let manifest = keys.manifest();
    let manifest = manifest.to_str().unwrap();
    ensure_bottlectl().await;
    let home = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let runs = (0..2).map(|_| {
            output(bottlectl(
                env,
                home.path(),
                &["-v", "provision", env.bottle(), "--manifest", manifest],
                &[],
            ))
        });
        let started = Instant::now();
        let outs = futures_util::future::join_all(runs).await;
        for out in &outs {
            expect_code(out, 0, &format!("round {round}: concurrent provision"));
        }
        // The in-container lock serialises them; neither waits for staleness.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "round {round} took {:?}: {:?}",
            started.elapsed(),
            outs.iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .collect::<Vec<_>>()
        );
        verify_ok(env.rt(), env.bottle(), &plan).await;
        assert_one_agent_one_forwarder(env.rt(), env.bottle()).await;
    }
    let out = output(bottlectl(
        env,
        home.path(),
        &["verify", env.bottle(), "--manifest", manifest],
        &[],
    ))
    .await;
    expect_code(&out, 0, "bottlectl verify");
}

engine_tests!(
    check_fault_at_every_call,
    check_engine_unreachable_mid_way,
    check_killed_agent_or_forwarder_is_named_and_repaired,
    check_restart_leaves_stale_sockets_replaced,
    check_two_cli_provisions_at_once,
);

/// containerd's own faults, at the runtime: its task ends under an exec,
/// its event stream ends. Each is an error naming the engine and the
/// container, or the endpoint and the namespace.
mod containerd_only {
    use super::*;
    use bottle_runtime::{ContainerRuntime, Error, ExecRequest};
    use futures_util::StreamExt;

    /// The container's task is stopped while an exec runs in it: the exec
    /// ends (soon, not at its own end) in `ContainerNotRunning` naming the
    /// container, or in the exit status of the killed process; never a
    /// hang or a success.
    async fn check_task_exits_mid_exec(env: &TestEnv) {
        let rt = env.runtime();
        let name = env.bottle().to_string();
        let exec = {
            let rt = rt.clone();
            let name = name.clone();
            tokio::spawn(async move {
                rt.exec(&name, ExecRequest::new(["sleep", "60"]).user("0"))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(800)).await;
        let started = Instant::now();
        env.admin().stop(&name).await.expect("stop");
        let result = tokio::time::timeout(Duration::from_secs(20), exec)
            .await
            .expect("the exec outlived its task by 20 s")
            .expect("join");
        assert!(started.elapsed() < Duration::from_secs(20));
        match result {
            Err(Error::ContainerNotRunning {
                engine, container, ..
            }) => {
                assert_eq!(
                    engine,
                    bottle_integration_tests::harness::engines::Containerd
                );
                assert_eq!(container, name);
            }
            Ok(out) => assert!(
                out.exit_code == 137 || out.exit_code == 143,
                "the killed exec reported {out:?}"
            ),
            Err(e) => panic!("expected ContainerNotRunning, got {e} ({e:?})"),
        }
        // The next exec is refused the same way, naming the container.
        match rt.exec(&name, ExecRequest::new(["true"])).await {
            Err(Error::ContainerNotRunning { container, .. }) => assert_eq!(container, name),
            other => panic!("exec in a stopped container: {other:?}"),
        }
    }

    /// The event stream ends when containerd goes away (a socket proxy in
    /// front of it, taken down): an `Unreachable` error naming containerd,
    /// the endpoint and, in its cause, the namespace; never a silent end or
    /// a hang.
    async fn check_event_stream_end_is_named(env: &TestEnv) {
        let dir = tempfile::tempdir().unwrap();
        let proxy_path = dir.path().join("containerd.sock");
        let target = env
            .endpoint()
            .strip_prefix("unix://")
            .expect("a unix endpoint")
            .to_string();
        let listener = tokio::net::UnixListener::bind(&proxy_path).expect("bind proxy");
        let proxy = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut engine) = tokio::net::UnixStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        });
        let endpoint = format!("unix://{}", proxy_path.display());
        let conn = connect_with_timeout(env.engine(), Some(&endpoint), Duration::from_secs(10))
            .expect("connect through the proxy");
        let filters = vec!["label=bottle-never-set".parse().unwrap()];
        let mut events = conn
            .runtime
            .events(&filters, None)
            .await
            .expect("subscribe");
        // Subscribed (containerd answers a subscription with its first
        // event only): a moment, then containerd goes away.
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.abort();
        let _ = proxy.await;
        let ns = bottle_integration_tests::harness::containerd_namespace();
        match tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the stream neither ended nor failed within 20 s")
        {
            None => panic!("the stream ended without saying why"),
            Some(Err(e)) => {
                let text = format!("{e}{}", bottle_integration_tests::harness::source_chain(&e));
                assert!(
                    matches!(e, Error::Unreachable { .. }),
                    "expected Unreachable, got {text}"
                );
                assert!(text.contains("containerd is unreachable at"), "{text}");
                assert!(text.contains(&endpoint), "{text}");
                assert!(text.contains(&format!("namespace `{ns}`")), "{text}");
            }
            Some(Ok(event)) => panic!("an event nobody asked for: {event:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containerd_check_task_exits_mid_exec() {
        bottle_integration_tests::harness::run_check(
            bottle_integration_tests::harness::engines::Containerd,
            "check_task_exits_mid_exec",
            |env| async move { check_task_exits_mid_exec(&env).await },
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containerd_check_event_stream_end_is_named() {
        bottle_integration_tests::harness::run_check(
            bottle_integration_tests::harness::engines::Containerd,
            "check_event_stream_end_is_named",
            |env| async move { check_event_stream_end_is_named(&env).await },
        )
        .await
    }
}
