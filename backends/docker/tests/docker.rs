//! Docker-specific behaviour against the real engine. The cross-engine
//! contract is checked by the conformance suite in `integration-tests`.

mod common;

use bottle_docker::DockerRuntime;
use bottle_runtime::{
    ContainerAdmin, ContainerRuntime, CopyEntry, Error, ExecRequest, NetworkMode, RunSpec,
};
use common::{bottle, docker};
use std::time::{Duration, Instant};

/// A socket path that does not exist, a socket nobody listens on, and a
/// refused TCP port: all `Unreachable`, naming the endpoint. Needs no engine.
#[tokio::test]
async fn unreachable_endpoints_are_named() {
    let dir = std::env::temp_dir().join(format!("bottle-docker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dead_socket = dir.join("dead.sock");
    let _ = std::fs::remove_file(&dead_socket);
    // Bind then drop: the socket file stays but connecting is refused.
    drop(std::os::unix::net::UnixListener::bind(&dead_socket).unwrap());
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };

    for endpoint in [
        "unix:///nonexistent.sock".to_string(),
        format!("unix://{}", dead_socket.display()),
        format!("tcp://127.0.0.1:{refused_port}"),
    ] {
        let rt = DockerRuntime::connect(Some(&endpoint), Duration::from_secs(5)).unwrap();
        assert_eq!(rt.endpoint(), endpoint);
        let err = rt.version().await.unwrap_err();
        assert!(
            matches!(&err, Error::Unreachable { endpoint: e, .. } if *e == endpoint),
            "{endpoint}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("Docker is unreachable at {endpoint}")
        );
        // Any call, not just version, reports it.
        let err = rt.exec("c", ExecRequest::new(["true"])).await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An endpoint that accepts connections but never answers hits our timeout.
#[tokio::test]
async fn silent_endpoint_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let rt = DockerRuntime::connect(Some(&endpoint), Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    let err = rt.inspect("some-bottle").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match &err {
        Error::Timeout {
            operation,
            endpoint: e,
            container,
            ..
        } => {
            assert_eq!(*operation, "inspect");
            assert_eq!(e, &endpoint);
            assert_eq!(container, "some-bottle");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(err.is_unreachable());
    hold.abort();
}

#[tokio::test]
async fn version_is_negotiated() {
    let Some(rt) = docker().await else { return };
    let info = rt.version().await.unwrap();
    assert!(!info.version.is_empty());
    let (major, minor) = info.api_version.split_once('.').expect("major.minor");
    let (major, minor): (u32, u32) = (major.parse().unwrap(), minor.parse().unwrap());
    assert_eq!(major, 1);
    // bollard defaults to a newer API than Docker 20.10 (1.41) accepts: the
    // later calls in this suite only work because this was negotiated down
    // to what the engine speaks.
    assert!(minor >= 24, "{info:?}");
    assert_eq!(info.endpoint, rt.endpoint());
}

#[tokio::test]
async fn exec_exit_codes_streams_and_users() {
    let Some(rt) = docker().await else { return };
    let b = bottle(&rt).await;

    let out = rt
        .exec_script(&b.id, "printf out; printf err >&2; exit 7", &[], None)
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice(), out.stderr.as_slice()),
        (7, &b"out"[..], &b"err"[..])
    );

    let out = rt
        .exec(&b.id, ExecRequest::new(["id", "-u"]).user("1000"))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "1000\n");
    let out = rt.exec_root(&b.id, &["id", "-u"]).await.unwrap();
    assert_eq!(out.stdout_lossy(), "0\n");

    // A program that cannot be started is an exit code, not an error, as on
    // Podman: 127 when it is not found, 126 when it is not executable, and
    // the runtime's message on stderr (Docker 20.10 itself says 126 for all
    // of these and writes the message to stdout).
    for (program, code) in [
        ("/no/such/program", 127),
        ("no-such-program-in-path", 127),
        ("/etc/passwd", 126),
    ] {
        let out = rt.exec(&b.id, ExecRequest::new([program])).await.unwrap();
        assert_eq!(out.exit_code, code, "{program}: {out:?}");
        assert!(out.stdout.is_empty(), "{program}: {out:?}");
        let message = out.stderr_lossy();
        assert!(
            message.contains("exec failed") && message.contains(program),
            "{program}: {message:?}"
        );
        // One line, ending like any other process's stderr.
        assert!(
            message.ends_with('\n') && message.lines().count() == 1 && !message.contains('\r'),
            "{program}: {message:?}"
        );
    }
    // A user or group the container does not know: refused like on Podman
    // (Docker itself starts the exec and reports 126), never run as root.
    for user in ["bottle-no-such-user", "1000:bottle-no-such-group"] {
        let err = rt
            .exec(&b.id, ExecRequest::new(["id", "-u"]).user(user))
            .await
            .unwrap_err();
        let Error::ExecStart {
            program, source, ..
        } = &err
        else {
            panic!("{user}: expected ExecStart, got {err:?}");
        };
        assert_eq!(program, "id");
        let name = user.rsplit(':').next().unwrap();
        assert!(source.to_string().contains(name), "{user}: {source}");
    }
    // A program's own 126 and stdout are passed through untouched.
    let out = rt
        .exec_script(
            &b.id,
            "printf 'OCI runtime exec failed: mine'; exit 126",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 126);
    assert_eq!(out.stdout, b"OCI runtime exec failed: mine");
}

#[tokio::test]
async fn exec_stdin_is_delivered_whole_then_eof() {
    let Some(rt) = docker().await else { return };
    let b = bottle(&rt).await;

    // 1 MiB + 3 of every byte value, echoed back by `cat`: only works if
    // stdin is written while stdout is read, and `cat` only exits on EOF.
    let input: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i * 7 % 256) as u8).collect();
    let out = rt
        .exec(
            &b.id,
            ExecRequest::new(["cat"])
                .stdin(input.clone())
                .max_output(2 << 20),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert!(
        out.stdout == input,
        "stdout differs ({} bytes)",
        out.stdout.len()
    );
    assert!(out.stderr.is_empty());

    // Empty stdin is still EOF.
    let out = rt
        .exec(&b.id, ExecRequest::new(["wc", "-c"]).stdin(Vec::new()))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy().trim(), "0");

    // A process that ignores its stdin is not an error.
    let out = rt
        .exec(&b.id, ExecRequest::new(["true"]).stdin(input))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);

    // No stdin: the process must not wait for any.
    let out = rt.exec(&b.id, ExecRequest::new(["cat"])).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.len()), (0, 0));
}

/// A process that exits without reading its stdin returns as soon as its
/// output ends: the unread bytes are dropped, not pushed until Docker gives
/// up on them (that took 3-60 s per exec when the writer was awaited).
#[tokio::test]
async fn unread_stdin_does_not_delay_the_result() {
    let Some(rt) = docker().await else { return };
    let b = bottle(&rt).await;
    let input: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        for (argv, code, stdout) in [
            (vec!["true"], 0, &b""[..]),
            (vec!["head", "-c", "3"], 0, &input[..3]),
            (vec!["/bin/sh", "-c", "exit 5"], 5, &b""[..]),
        ] {
            let started = Instant::now();
            let out = rt
                .exec(&b.id, ExecRequest::new(argv.clone()).stdin(input.clone()))
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(
                (out.exit_code, out.stdout.as_slice()),
                (code, stdout),
                "{argv:?}"
            );
            assert!(took < Duration::from_secs(2), "{argv:?} took {took:?}");
        }
    }
    // The bottle is still fine afterwards, and stdin still arrives whole.
    let out = rt
        .exec(&b.id, ExecRequest::new(["wc", "-c"]).stdin(input.clone()))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy().trim(), input.len().to_string());
}

/// Stdin stops only when the process has exited, not when its output is
/// closed: a process that closes stdout/stderr first still gets every byte.
#[tokio::test]
async fn stdin_outlives_closed_output() {
    let Some(rt) = docker().await else { return };
    let b = bottle(&rt).await;
    let input: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let out = rt
        .exec(
            &b.id,
            ExecRequest::new(["/bin/sh", "-c", "exec >&- 2>&-; sleep 1; cat > /tmp/in"])
                .stdin(input.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    let out = rt.exec_root(&b.id, &["wc", "-c", "/tmp/in"]).await.unwrap();
    assert_eq!(out.stdout_lossy(), format!("{} /tmp/in\n", input.len()));
}

#[tokio::test]
async fn copy_keeps_exact_modes_and_owners() {
    let Some(rt) = docker().await else { return };
    // A bottle running as a non-root user: with `copyUIDGID` Docker would
    // chown the whole archive to that user, so this tells the two apart.
    let b = common::bottle_as(&rt, "1000").await;

    // An existing file with other mode and owner is overwritten exactly.
    rt.exec_script(
        &b.id,
        "printf old > /home/node/f && chmod 777 /home/node/f",
        &[],
        None,
    )
    .await
    .unwrap();
    let entries = vec![
        CopyEntry::dir("/home/node/.ssh", 0o700, 1000, 1000),
        CopyEntry::file(
            "/home/node/.ssh/config",
            b"Host a\n".to_vec(),
            0o600,
            1000,
            1000,
        ),
        CopyEntry::file("/home/node/.ssh/known", vec![0, 255, 10], 0o644, 1000, 1000),
        CopyEntry::file("/home/node/f", b"new".to_vec(), 0o644, 0, 1000),
        // Parents that do not exist, and a nested dir owned by root.
        CopyEntry::dir("/opt/bottle/a/b", 0o755, 0, 0),
        CopyEntry::file(
            "/opt/bottle/a/b/run.sh",
            b"#!/bin/sh\n".to_vec(),
            0o755,
            0,
            0,
        ),
        CopyEntry::file("/opt/bottle/a/b/secret", b"s".to_vec(), 0o600, 0, 0),
        CopyEntry::dir("/opt/bottle/a/b/user", 0o700, 1000, 1000),
        CopyEntry::file("/var/new/dir/only-file", b"x".to_vec(), 0o600, 1000, 1000),
    ];
    rt.copy(&b.id, &entries).await.unwrap();

    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut args = vec!["stat", "-c", "%n %a %u %g"];
    args.extend(&paths);
    let out = rt.exec_root(&b.id, &args).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr_lossy());
    let expected: String = entries
        .iter()
        .map(|e| format!("{} {:o} {} {}\n", e.path, e.mode, e.uid, e.gid))
        .collect();
    assert_eq!(out.stdout_lossy(), expected);

    let out = rt
        .exec_root(&b.id, &["cat", "/home/node/f", "/home/node/.ssh/known"])
        .await
        .unwrap();
    assert_eq!(out.stdout, b"new\x00\xff\n");

    // Parents Docker had to create: root-owned and traversable.
    let out = rt
        .exec_root(
            &b.id,
            &["stat", "-c", "%a %u %g", "/var/new/dir", "/opt/bottle/a"],
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "755 0 0\n755 0 0\n");

    // The owner can read its 0600 file; another user cannot.
    let out = rt
        .exec(
            &b.id,
            ExecRequest::new(["cat", "/home/node/.ssh/config"]).user("1000"),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"Host a\n");
    let out = rt
        .exec(
            &b.id,
            ExecRequest::new(["cat", "/opt/bottle/a/b/secret"]).user("1000"),
        )
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0);

    // A bad request is refused before anything is sent.
    let err = rt
        .copy(&b.id, &[CopyEntry::dir("relative", 0o755, 0, 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_stopped_and_paused_containers() {
    let Some(rt) = docker().await else { return };
    let name = format!("bottle-docker-no-such-{}", std::process::id());
    let err = rt.exec_root(&name, &["true"]).await.unwrap_err();
    assert!(
        matches!(&err, Error::ContainerNotFound { container, .. } if *container == name),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name));
    let err = rt.inspect(&name).await.unwrap_err();
    assert!(matches!(err, Error::ContainerNotFound { .. }), "{err:?}");
    let err = rt
        .copy(&name, &[CopyEntry::dir("/x", 0o755, 0, 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ContainerNotFound { .. }), "{err:?}");
    // Removing what is not there is fine.
    rt.remove(&name).await.unwrap();

    let b = bottle(&rt).await;
    let info = rt.inspect(&b.id).await.unwrap();
    assert!(info.is_running());
    assert!(!info.name.starts_with('/') && !info.name.is_empty());
    assert_eq!(rt.inspect(&info.name).await.unwrap().id, b.id);

    rt.pause(&b.id).await.unwrap();
    let err = rt.exec_root(&b.id, &["true"]).await.unwrap_err();
    assert!(
        matches!(&err, Error::ContainerNotRunning { state, .. } if state == "paused"),
        "{err:?}"
    );
    // Docker itself would accept these uploads; the backend refuses them.
    let err = rt
        .copy(
            &b.id,
            &[CopyEntry::dir("/copied-while-paused", 0o755, 0, 0)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ContainerNotRunning { state, .. } if state == "paused"),
        "{err:?}"
    );
    rt.unpause(&b.id).await.unwrap();
    assert!(rt.exec_root(&b.id, &["true"]).await.unwrap().success());

    rt.stop(&b.id).await.unwrap();
    let err = rt.exec_root(&b.id, &["true"]).await.unwrap_err();
    assert!(
        matches!(&err, Error::ContainerNotRunning { state, .. } if state == "exited"),
        "{err:?}"
    );
    let err = rt.require_running(&b.id).await.unwrap_err();
    assert!(matches!(err, Error::ContainerNotRunning { .. }), "{err:?}");
    let err = rt
        .copy(
            &b.id,
            &[CopyEntry::dir("/copied-while-stopped", 0o755, 0, 0)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ContainerNotRunning { state, .. } if state == "exited"),
        "{err:?}"
    );

    rt.start(&b.id).await.unwrap();
    assert!(rt.exec_root(&b.id, &["true"]).await.unwrap().success());
    // Nothing of the refused copies was written.
    let out = rt
        .exec_script(
            &b.id,
            "test ! -e /copied-while-paused && test ! -e /copied-while-stopped",
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    // And a copy into the running container works again.
    rt.copy(
        &b.id,
        &[CopyEntry::dir("/copied-while-running", 0o700, 0, 0)],
    )
    .await
    .unwrap();

    rt.remove(&b.id).await.unwrap();
    let err = rt.inspect(&b.id).await.unwrap_err();
    assert!(matches!(err, Error::ContainerNotFound { .. }), "{err:?}");
}

/// `run` applies network mode, labels and user; `container:<id>` shares the
/// bottle's network namespace (what an sshd sidecar needs).
#[tokio::test]
async fn run_sets_network_labels_and_user() {
    let Some(rt) = docker().await else { return };
    let b = bottle(&rt).await;
    let image = common::test_image(&rt).await;

    let mut spec = RunSpec::new(image, ["/usr/bin/sleep", "infinity"]);
    spec.network = NetworkMode::Container(b.id.clone());
    spec.user = "1000".into();
    spec.labels = vec![
        (common::LABEL.into(), "1".into()),
        ("bottle.role".into(), "sidecar".into()),
    ];
    let sidecar = rt.run(&spec).await.unwrap();
    let _cleanup = common::Bottle::adopt(&rt, &sidecar.id);
    assert!(sidecar.is_running());

    let netns = |id: String| {
        let rt = rt.clone();
        async move {
            rt.exec_root(&id, &["stat", "-L", "-c", "%i", "/proc/self/ns/net"])
                .await
                .unwrap()
                .stdout_lossy()
        }
    };
    assert_eq!(netns(b.id.clone()).await, netns(sidecar.id.clone()).await);
    let other = bottle(&rt).await;
    assert_ne!(netns(b.id.clone()).await, netns(other.id.clone()).await);

    let out = rt
        .exec(&sidecar.id, ExecRequest::new(["id", "-u"]))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "1000\n");

    // What Docker recorded, read with bollard directly.
    let docker = bollard::Docker::connect_with_host(rt.endpoint())
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let inspect = |id: String| {
        let docker = docker.clone();
        async move {
            docker
                .inspect_container(
                    &id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .unwrap()
        }
    };
    let bottle_info = inspect(b.id.clone()).await;
    assert_eq!(
        bottle_info.host_config.unwrap().network_mode.as_deref(),
        Some("none")
    );
    let sidecar_info = inspect(sidecar.id.clone()).await;
    assert_eq!(
        sidecar_info.host_config.unwrap().network_mode,
        Some(format!("container:{}", b.id))
    );
    let labels = sidecar_info.config.unwrap().labels.unwrap();
    assert_eq!(
        labels.get("bottle.role").map(String::as_str),
        Some("sidecar")
    );

    // An exec the engine refuses to create (no command) is ExecStart.
    let err = rt
        .exec(&b.id, ExecRequest::new(Vec::<String>::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ExecStart { .. }), "{err:?}");
}

/// `read_only` + `tmpfs`: the root filesystem refuses writes, even root's,
/// and each tmpfs path is writable as its image directory allows (`/run`
/// by root, `/tmp` by all), mounted with `RunSpec::TMPFS_OPTIONS`; no other
/// tmpfs is added (Podman's CLI would add `/var/tmp`).
#[tokio::test]
async fn run_read_only_root_with_tmpfs() {
    let Some(rt) = docker().await else { return };
    let image = common::test_image(&rt).await;
    let mut spec = RunSpec::new(image, ["/usr/bin/sleep", "infinity"]);
    spec.read_only = true;
    spec.tmpfs = vec!["/run".into(), "/tmp".into()];
    spec.labels.push((common::LABEL.into(), "1".into()));
    let info = rt.run(&spec).await.unwrap();
    let _cleanup = common::Bottle::adopt(&rt, &info.id);
    assert!(info.is_running());

    for user in ["0", "1000"] {
        let out = rt
            .exec(&info.id, ExecRequest::new(["touch", "/x"]).user(user))
            .await
            .unwrap();
        assert_ne!(out.exit_code, 0, "touch /x as {user} worked");
        assert!(
            out.stderr_lossy().contains("Read-only file system"),
            "{}",
            out.stderr_lossy()
        );
    }
    for (user, path, works) in [
        ("0", "/run/x", true),
        ("1000", "/run/y", false),
        ("1000", "/tmp/x", true),
    ] {
        let out = rt
            .exec(&info.id, ExecRequest::new(["touch", path]).user(user))
            .await
            .unwrap();
        assert_eq!(out.success(), works, "touch {path} as {user}: {out:?}");
    }
    let out = rt
        .exec_root(&info.id, &["stat", "-c", "%n %a %u", "/run", "/tmp"])
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "/run 755 0\n/tmp 1777 0\n");
    let mounts = rt
        .exec_root(&info.id, &["cat", "/proc/mounts"])
        .await
        .unwrap()
        .stdout_lossy();
    for path in ["/run", "/tmp"] {
        let line = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(path))
            .unwrap_or_else(|| panic!("no mount at {path}: {mounts}"));
        let options: Vec<&str> = line.split(' ').nth(3).unwrap().split(',').collect();
        assert!(line.starts_with("tmpfs "), "{line}");
        for o in ["rw", "nosuid", "nodev"] {
            assert!(options.contains(&o), "{path}: {line}");
        }
        assert!(!options.contains(&"noexec"), "{path}: {line}");
    }
    assert!(
        !mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some("/var/tmp")),
        "{mounts}"
    );
    let root = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/"))
        .unwrap();
    assert!(root.split(' ').nth(3).unwrap().starts_with("ro"), "{root}");
}
