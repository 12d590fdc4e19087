//! The `ContainerRuntime` contract as a library: each `check_*` takes a
//! [`Subject`] (a runtime, a running container of the test image, and —
//! when the runtime's side can make containers — a way to start more) and
//! panics on a breach. Checks are gated by the runtime's declared
//! [`Capabilities`](bottle_runtime::Capabilities), never by its engine, so
//! they run unchanged on Docker, Podman, a backend outside this repository
//! and the fake (`tests/conformance.rs`, `tests/conformance_fake.rs`).
//!
//! A check that needs a capability the runtime does not declare, or
//! containers the subject cannot start, returns without asserting; the
//! engine suites declare everything and always have a [`Subject::admin`].

use crate::assert_success;
use crate::harness::source_chain;
use async_trait::async_trait;
use bottle_runtime::{ContainerAdmin, ContainerInfo, ContainerRuntime, RunSpec};
use bottle_runtime::{
    ContainerFilter, ContainerState, CopyEntry, Error, ExecOutput, ExecRequest, OutputStream,
};
use futures_util::future::join_all;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// What a check runs against.
#[async_trait]
pub trait Subject: Sync {
    /// The runtime under test.
    fn rt(&self) -> &dyn ContainerRuntime;
    /// A running container of the test image (a `node` user with uid 1000,
    /// a `git` user, `/bin/sh`, coreutils or busybox).
    fn container(&self) -> &str;
    /// The container as inspected when it started.
    fn started(&self) -> &ContainerInfo;
    /// A container name no other check uses.
    fn unique_name(&self, what: &str) -> String;
    /// Stops, pauses and removes containers; `None` when the subject cannot.
    fn admin(&self) -> Option<Arc<dyn ContainerAdmin>>;
    /// A spec that starts another container like [`container`](Self::container).
    fn bottle_spec(&self) -> Option<RunSpec>;
    /// Start a container (removed when the subject is cleaned up).
    async fn run_container(&self, spec: RunSpec) -> Result<ContainerInfo, Error>;

    /// Start another container like the main one.
    async fn start_bottle(&self) -> Result<ContainerInfo, Error> {
        let spec = self
            .bottle_spec()
            .expect("this subject cannot start containers");
        self.run_container(spec).await
    }

    /// Run a script as root in the container; its stdout, panicking unless
    /// it exits 0.
    async fn sh(&self, script: &str, args: &[&str]) -> String {
        let out = self
            .rt()
            .exec_script(self.container(), script, args, None)
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e} ({e:?})"));
        assert_success(&out, script);
        out.stdout_lossy()
    }

    /// Run `argv` as `user`; panics on an engine error (not on an exit code).
    async fn exec_as(&self, user: &str, argv: &[&str]) -> ExecOutput {
        self.rt()
            .exec(
                self.container(),
                ExecRequest::new(argv.iter().copied()).user(user),
            )
            .await
            .unwrap_or_else(|e| panic!("exec {argv:?} as {user:?}: {e} ({e:?})"))
    }
}

/// The admin side, when the check needs it; `None` means skip.
fn admin_of(s: &dyn Subject) -> Option<Arc<dyn ContainerAdmin>> {
    s.admin().filter(|_| s.bottle_spec().is_some())
}

/// Deterministic bytes covering every value 0..=255 (xorshift64).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Describe an exec result without dumping megabytes.
fn summary(out: &ExecOutput) -> String {
    let cut = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
    format!(
        "exit {} stdout({} bytes) {:?} stderr({} bytes) {:?}",
        out.exit_code,
        out.stdout.len(),
        cut(&out.stdout),
        out.stderr.len(),
        cut(&out.stderr)
    )
}

/// `rt` was built with a per-call `timeout` shorter than 60 s: a process
/// outliving it ends in [`Error::Timeout`] naming the container and the
/// operation soon after the limit, and `rt` stays usable. Each caller
/// builds `rt` its own way (a new connection, another transport).
pub async fn check_exec_timeout(rt: &dyn ContainerRuntime, container: &str, timeout: Duration) {
    let started = Instant::now();
    let result = rt.exec(container, ExecRequest::new(["sleep", "60"])).await;
    let took = started.elapsed();
    match result {
        Err(Error::Timeout {
            container: named,
            operation,
            timeout: reported,
            ..
        }) => {
            assert_eq!(named, container);
            assert_eq!(operation, "exec");
            assert_eq!(reported, timeout);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        took < timeout + Duration::from_secs(18),
        "timeout fired after {took:?}"
    );
    let out = rt.exec_root(container, &["echo", "alive"]).await.unwrap();
    assert_eq!(out.stdout, b"alive\n");
}

pub async fn check_exit_codes(s: &dyn Subject) {
    for (script, code) in [("exit 0", 0), ("exit 7", 7), ("exit 255", 255)] {
        let out = s.exec_as("0", &["/bin/sh", "-c", script]).await;
        assert_eq!(out.exit_code, code, "{script}: {}", summary(&out));
    }
    let out = s.exec_as("0", &["false"]).await;
    assert_eq!(out.exit_code, 1, "false: {}", summary(&out));
    // Killed by a signal: the shell convention 128 + signal.
    let out = s.exec_as("0", &["/bin/sh", "-c", "kill -9 $$"]).await;
    assert_eq!(out.exit_code, 137, "kill -9: {}", summary(&out));
}

/// A program that cannot be started is not a Rust error and looks the same on
/// every engine: exit 127 when it is not found (missing path, not in
/// `$PATH`), 126 when it is not executable, nothing on stdout, and the
/// runtime's message naming the program on stderr.
pub async fn check_missing_binary(s: &dyn Subject) {
    for (program, code) in [
        ("/usr/bin/bottle-no-such-program", 127),
        ("bottle-no-such-program-in-path", 127),
        ("/etc/passwd", 126),
    ] {
        let out = s
            .rt()
            .exec(s.container(), ExecRequest::new([program, "arg"]).user("0"))
            .await
            .unwrap_or_else(|e| panic!("{program}: unexpected error {e}{}", source_chain(&e)));
        assert_eq!(out.exit_code, code, "{program}: {}", summary(&out));
        assert!(out.stdout.is_empty(), "{program}: {}", summary(&out));
        assert!(
            out.stderr_lossy().contains(program),
            "stderr names no program: {}",
            summary(&out)
        );
    }
    // The container is still usable afterwards.
    assert_eq!(s.sh("echo ok", &[]).await, "ok\n");
}

pub async fn check_stdout_stderr_apart(s: &dyn Subject) {
    let out = s
        .exec_as(
            "0",
            &[
                "/bin/sh",
                "-c",
                "printf out1; printf err1 >&2; printf out2; printf err2 >&2; exit 3",
            ],
        )
        .await;
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, b"out1out2", "{}", summary(&out));
    assert_eq!(out.stderr, b"err1err2", "{}", summary(&out));

    // Only one stream used: the other is empty, not missing data.
    let out = s
        .exec_as("0", &["/bin/sh", "-c", "echo only-err >&2"])
        .await;
    assert_eq!(out.stdout, b"");
    assert_eq!(out.stderr, b"only-err\n");
}

pub async fn check_large_output(s: &dyn Subject) {
    // 1 MiB of random bytes on both streams at once: a demultiplexing bug
    // that swaps, drops or reorders frames changes a hash.
    let hash = s
        .sh(
            "head -c \"$1\" /dev/urandom > /tmp/blob && sha256sum /tmp/blob | cut -d' ' -f1",
            &[&MIB.to_string()],
        )
        .await;
    let hash = hash.trim();
    let out = s
        .exec_as("0", &["/bin/sh", "-c", "cat /tmp/blob; cat /tmp/blob >&2"])
        .await;
    assert_success(&out, "cat blob");
    assert_eq!(out.stdout.len(), MIB, "stdout length");
    assert_eq!(out.stderr.len(), MIB, "stderr length");
    assert_eq!(sha256_hex(&out.stdout), hash, "stdout bytes differ");
    assert_eq!(sha256_hex(&out.stderr), hash, "stderr bytes differ");

    // Text whose order is checkable line by line, over the default limit
    // per stream, so asked for.
    let out = s
        .rt()
        .exec(
            s.container(),
            ExecRequest::new(["seq", "1", "200000"])
                .user("1000")
                .max_output(2 * MIB),
        )
        .await
        .unwrap_or_else(|e| panic!("seq: {e}{}", source_chain(&e)));
    assert_success(&out, "seq");
    let expected: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    assert!(expected.len() > MIB);
    assert!(
        out.stdout == expected.as_bytes(),
        "seq output differs ({} bytes, expected {})",
        out.stdout.len(),
        expected.len()
    );
}

/// Run `request`, which must fail with `OutputTooLarge` on `stream` at
/// `limit`, within 30 s (a safety net: an unbounded backend never answers,
/// or fills the host's memory first).
async fn assert_output_too_large(
    s: &dyn Subject,
    request: ExecRequest,
    stream: OutputStream,
    limit: usize,
) {
    let what = format!("{:?} (max_output {})", request.argv, request.max_output);
    let program = request.program().to_string();
    let result = tokio::time::timeout(Duration::from_secs(30), s.rt().exec(s.container(), request))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"));
    let e = match result {
        Err(e) => e,
        Ok(out) => panic!("{what}: expected OutputTooLarge, got {}", summary(&out)),
    };
    match &e {
        Error::OutputTooLarge {
            engine,
            container,
            program: named,
            stream: got,
            limit: l,
        } => {
            assert_eq!(
                (*engine, container.as_str(), named.as_str(), *got, *l),
                (
                    s.rt().engine(),
                    s.container(),
                    program.as_str(),
                    stream,
                    limit
                ),
                "{what}"
            );
        }
        other => panic!("{what}: expected OutputTooLarge, got {other}: {other:?}"),
    }
    let text = e.to_string();
    for part in [
        s.rt().engine().to_string(),
        s.container().to_string(),
        program,
        stream.to_string(),
        limit.to_string(),
    ] {
        assert!(
            text.contains(&part),
            "{what}: message lacks {part:?}: {text}"
        );
    }
    assert!(!e.is_unreachable());
    // Neither engine can kill an exec: the writer lives on, its output
    // drained and discarded by containerd-shim or conmon (about a core
    // each). End it (if it has not exited) so it does not starve the checks
    // running meanwhile.
    let out = s
        .exec_as("1000", &["/bin/sh", "-c", "kill -KILL -1 2>/dev/null || :"])
        .await;
    assert_success(&out, "kill the user's processes");
}

/// Exec output is bounded per stream (`ExecRequest::max_output`): the user's
/// process that writes without end to stdout or stderr makes the exec fail
/// with `OutputTooLarge` naming the stream, promptly, instead of filling the
/// host's memory; output up to the limit comes back whole.
pub async fn check_output_is_bounded(s: &dyn Subject) {
    let default = ExecRequest::DEFAULT_MAX_OUTPUT;
    assert_eq!(default, MIB);
    // Large writes to stdout; many small ones to stderr; one that leaves a
    // large stdin unread (the error must not wait for stdin to drain).
    assert_output_too_large(
        s,
        ExecRequest::new(["cat", "/dev/zero"]).user("1000"),
        OutputStream::Stdout,
        default,
    )
    .await;
    assert_output_too_large(
        s,
        ExecRequest::script("while :; do echo yyyy; done >&2", [""; 0]).user("1000"),
        OutputStream::Stderr,
        default,
    )
    .await;
    assert_output_too_large(
        s,
        ExecRequest::new(["cat", "/dev/zero"])
            .user("1000")
            .stdin(pseudo_random(4 * MIB, 5)),
        OutputStream::Stdout,
        default,
    )
    .await;
    // A limit of the caller's choosing, one byte over it.
    assert_output_too_large(
        s,
        ExecRequest::script("head -c 4097 /dev/zero >&2", [""; 0])
            .user("1000")
            .max_output(4096),
        OutputStream::Stderr,
        4096,
    )
    .await;

    // At the limit and just under it: whole, both streams at once.
    for (limit, n) in [(default, default), (default, default - 1), (4096, 4096)] {
        let out = s
            .rt()
            .exec(
                s.container(),
                ExecRequest::script(
                    "f=$(mktemp) && head -c \"$1\" /dev/urandom > \"$f\" && cat \"$f\" && cat \"$f\" >&2 && rm \"$f\"",
                    [n.to_string()],
                )
                .user("1000")
                .max_output(limit),
            )
            .await
            .unwrap_or_else(|e| panic!("{n} bytes under {limit}: {e}{}", source_chain(&e)));
        assert_success(&out, "head, cat");
        assert_eq!(
            (out.stdout.len(), out.stderr.len()),
            (n, n),
            "limit {limit}"
        );
        assert!(out.stdout == out.stderr, "the streams differ");
    }
    // The container still answers.
    assert_eq!(s.sh("echo ok", &[]).await, "ok\n");
}

pub async fn check_large_stdin(s: &dyn Subject) {
    let data = pseudo_random(MIB, 0xb0771e);
    let out = s
        .rt()
        .exec(
            s.container(),
            ExecRequest::new(["sha256sum"])
                .user("1000")
                .stdin(data.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("sha256sum with stdin: {e}{}", source_chain(&e)));
    assert_success(&out, "sha256sum");
    assert_eq!(
        out.stdout_lossy().split_whitespace().next(),
        Some(sha256_hex(&data).as_str()),
        "stdin arrived altered"
    );

    // Echoed back through `cat`: cat only exits once it sees EOF.
    let started = Instant::now();
    let out = s
        .rt()
        .exec(
            s.container(),
            ExecRequest::new(["cat"]).user("0").stdin(data.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("cat with stdin: {e}{}", source_chain(&e)));
    assert_success(&out, "cat");
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "cat echoed different bytes");
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// A process that exits while a child it left in the background still
/// holds its output ends the exec: its exit code and what it printed come
/// back (the 30 s bound is a safety net: a backend that waits for the
/// output to close would wait for the child, here two minutes, or for the
/// call's timeout). The child is then stopped by its pid.
pub async fn check_a_background_child_does_not_hold_the_exec(s: &dyn Subject) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        s.rt().exec_script(
            s.container(),
            "sleep 120 & echo \"child $!\"; exit 3",
            &[],
            None,
        ),
    )
    .await
    .expect("the exec did not end with its process")
    .unwrap();
    assert_eq!(out.exit_code, 3, "{}", summary(&out));
    let text = out.stdout_lossy();
    let pid = text
        .trim()
        .strip_prefix("child ")
        .unwrap_or_else(|| panic!("unexpected output: {text:?}"));
    let out = s
        .rt()
        .exec_script(s.container(), "kill \"$1\"", &[pid], None)
        .await
        .unwrap();
    assert_success(&out, "kill the background child");
}

pub async fn check_stdin_eof(s: &dyn Subject) {
    // Empty stdin: EOF at once.
    let out = s
        .rt()
        .exec(
            s.container(),
            ExecRequest::new(["wc", "-c"]).stdin(Vec::new()),
        )
        .await
        .unwrap();
    assert_success(&out, "wc -c");
    assert_eq!(out.stdout_lossy().trim(), "0");

    // Stdin without a trailing newline: `read` still gets the last line.
    let out = s
        .rt()
        .exec_script(
            s.container(),
            "read -r a; read -r b || true; printf '%s|%s' \"$a\" \"$b\"",
            &[],
            Some(b"first\nsecond"),
        )
        .await
        .unwrap();
    assert_success(&out, "read");
    assert_eq!(out.stdout, b"first|second");

    // No stdin at all: a reader must not hang waiting for input.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        s.rt().exec(s.container(), ExecRequest::new(["cat"])),
    )
    .await
    .expect("cat without stdin hangs")
    .unwrap();
    assert_success(&out, "cat without stdin");
    assert_eq!(out.stdout, b"");
}

pub async fn check_users(s: &dyn Subject) {
    if !s.rt().capabilities().exec_as_user {
        return; // the runtime cannot exec as a chosen user
    }
    for (user, uid, gid) in [
        ("0", "0", "0"),
        ("root", "0", "0"),
        ("1000", "1000", "1000"),
        ("node", "1000", "1000"),
        ("1001:1001", "1001", "1001"),
        ("1000:1001", "1000", "1001"),
    ] {
        let out = s
            .exec_as(
                user,
                &["/bin/sh", "-c", "printf '%s %s' \"$(id -u)\" \"$(id -g)\""],
            )
            .await;
        assert_success(&out, user);
        assert_eq!(out.stdout_lossy(), format!("{uid} {gid}"), "user {user:?}");
    }
    // The default user of the test image is root; exec_root is uid 0.
    let out = s.exec_as("", &["id", "-u"]).await;
    assert_eq!(out.stdout_lossy(), "0\n");
    let out = s
        .rt()
        .exec_root(s.container(), &["id", "-u"])
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "0\n");
    // As node, root's home stays closed: the uid is really applied.
    let out = s.exec_as("1000", &["ls", "/root"]).await;
    assert_ne!(
        out.exit_code,
        0,
        "uid 1000 could read /root: {}",
        summary(&out)
    );
}

/// `stat` line for each path: `%a %u %g %F`.
async fn stat(s: &dyn Subject, paths: &[&str]) -> Vec<String> {
    let out = s
        .sh("for p; do stat -c '%n %a %u %g %F' \"$p\"; done", paths)
        .await;
    out.lines().map(str::to_string).collect()
}

/// A runtime that does not declare `copy` refuses it as `NotSupported`
/// (never a silent success, never a generic API error).
pub async fn check_undeclared_copy_is_not_supported(s: &dyn Subject) {
    if s.rt().capabilities().copy {
        return; // declared: the copy checks cover it
    }
    let e = s
        .rt()
        .copy(
            s.container(),
            &[CopyEntry::dir("/tmp/bottle-x", 0o755, 0, 0)],
        )
        .await;
    assert!(matches!(e, Err(Error::NotSupported { .. })), "{e:?}");
}

pub async fn check_copy_modes_and_owners(s: &dyn Subject) {
    if !s.rt().capabilities().copy {
        return; // the runtime cannot copy
    }
    let key = pseudo_random(4096, 7);
    let entries = vec![
        CopyEntry::dir("/srv/tree", 0o755, 0, 0),
        CopyEntry::dir("/srv/tree/private", 0o700, 1000, 1000),
        CopyEntry::file("/srv/tree/private/key", key.clone(), 0o600, 1000, 1000),
        CopyEntry::file("/srv/tree/public.txt", b"hello\n".to_vec(), 0o644, 0, 0),
        CopyEntry::file(
            "/srv/tree/run.sh",
            b"#!/bin/sh\necho ran as $(id -u)\n".to_vec(),
            0o755,
            1000,
            1000,
        ),
        CopyEntry::dir("/srv/tree/a", 0o755, 1000, 1000),
        CopyEntry::dir("/srv/tree/a/b", 0o700, 0, 0),
        CopyEntry::file("/srv/tree/a/b/c.txt", b"deep".to_vec(), 0o644, 1000, 1000),
        CopyEntry::file("/srv/tree/a/empty", Vec::new(), 0o600, 0, 0),
    ];
    s.rt()
        .copy(s.container(), &entries)
        .await
        .unwrap_or_else(|e| panic!("copy: {e}{}", source_chain(&e)));

    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let expected: Vec<String> = entries
        .iter()
        .map(|e| {
            let kind = match e.kind {
                bottle_runtime::EntryKind::Dir => "directory",
                bottle_runtime::EntryKind::File(ref b) if b.is_empty() => "regular empty file",
                bottle_runtime::EntryKind::File(_) => "regular file",
            };
            format!("{} {:o} {} {} {kind}", e.path, e.mode, e.uid, e.gid)
        })
        .collect();
    assert_eq!(stat(s, &paths).await, expected);

    let sums = s
        .sh("sha256sum /srv/tree/private/key | cut -d' ' -f1; cat /srv/tree/public.txt /srv/tree/a/b/c.txt", &[])
        .await;
    assert_eq!(sums, format!("{}\nhello\ndeep", sha256_hex(&key)));

    // Modes are real: node runs its script and reads its key but not root's dir.
    let out = s.exec_as("1000", &["/srv/tree/run.sh"]).await;
    assert_success(&out, "run.sh as node");
    assert_eq!(out.stdout_lossy(), "ran as 1000\n");
    let out = s.exec_as("1000", &["ls", "/srv/tree/a/b"]).await;
    assert_ne!(out.exit_code, 0, "node listed a 0700 root dir");
}

pub async fn check_copy_creates_missing_parents(s: &dyn Subject) {
    if !s.rt().capabilities().copy {
        return; // the runtime cannot copy
    }
    let entries = [CopyEntry::file(
        "/opt/bottle/new/deep/file.txt",
        b"content\n".to_vec(),
        0o640,
        1000,
        1000,
    )];
    s.rt()
        .copy(s.container(), &entries)
        .await
        .unwrap_or_else(|e| panic!("copy: {e}{}", source_chain(&e)));
    assert_eq!(
        stat(s, &["/opt/bottle/new/deep/file.txt"]).await,
        vec!["/opt/bottle/new/deep/file.txt 640 1000 1000 regular file".to_string()]
    );
    let out = s
        .sh(
            "test -d /opt/bottle/new/deep && cat /opt/bottle/new/deep/file.txt",
            &[],
        )
        .await;
    assert_eq!(out, "content\n");
    // Created parents must not lock out the file's owner.
    let out = s
        .exec_as("1000", &["cat", "/opt/bottle/new/deep/file.txt"])
        .await;
    assert_success(&out, "node reads its file through created parents");
}

/// Re-provisioning: copying over existing entries replaces content, mode and
/// owner (a stale 0644 key must become 0600).
pub async fn check_copy_overwrites(s: &dyn Subject) {
    if !s.rt().capabilities().copy {
        return; // the runtime cannot copy
    }
    let first = [
        CopyEntry::dir("/srv/again", 0o755, 0, 0),
        CopyEntry::file("/srv/again/f", b"one-longer-text".to_vec(), 0o644, 0, 0),
    ];
    s.rt().copy(s.container(), &first).await.unwrap();
    let second = [
        CopyEntry::dir("/srv/again", 0o700, 1000, 1000),
        CopyEntry::file("/srv/again/f", b"two".to_vec(), 0o600, 1000, 1000),
    ];
    s.rt().copy(s.container(), &second).await.unwrap();
    assert_eq!(
        stat(s, &["/srv/again", "/srv/again/f"]).await,
        vec![
            "/srv/again 700 1000 1000 directory".to_string(),
            "/srv/again/f 600 1000 1000 regular file".to_string(),
        ]
    );
    assert_eq!(s.sh("cat /srv/again/f", &[]).await, "two");
}

fn assert_not_found(result: Result<impl std::fmt::Debug, Error>, name: &str, what: &str) {
    match result {
        Err(e @ Error::ContainerNotFound { .. }) => {
            let Error::ContainerNotFound { container, .. } = &e else {
                unreachable!()
            };
            assert_eq!(container, name, "{what}");
            assert!(e.to_string().contains(name), "{what}: {e}");
        }
        other => panic!("{what} on a missing container: expected ContainerNotFound, got {other:?}"),
    }
}

pub async fn check_missing_container(s: &dyn Subject) {
    let name = s.unique_name("never-created");
    let rt = s.rt();
    assert_not_found(rt.inspect(&name).await, &name, "inspect");
    assert_not_found(
        rt.exec(&name, ExecRequest::new(["true"])).await,
        &name,
        "exec",
    );
    assert_not_found(
        rt.exec_script(&name, "true", &[], Some(b"x")).await,
        &name,
        "exec_script",
    );
    if rt.capabilities().copy {
        assert_not_found(
            rt.copy(&name, &[CopyEntry::dir("/x", 0o755, 0, 0)]).await,
            &name,
            "copy",
        );
    }
    assert_not_found(rt.require_running(&name).await, &name, "require_running");
}

fn assert_not_running(result: Result<impl std::fmt::Debug, Error>, name: &str, what: &str) {
    match result {
        Err(Error::ContainerNotRunning {
            container, state, ..
        }) => {
            assert_eq!(container, name, "{what}");
            assert!(
                !state.is_empty() && state != "running",
                "{what}: state {state:?}"
            );
        }
        other => {
            panic!("{what} on a stopped container: expected ContainerNotRunning, got {other:?}")
        }
    }
}

pub async fn check_stopped_container(s: &dyn Subject) {
    if admin_of(s).is_none() {
        return; // the subject cannot start containers
    }
    let info = s.start_bottle().await.expect("start a second bottle");
    admin_of(s)
        .expect("admin")
        .stop(&info.name)
        .await
        .expect("stop");
    let rt = s.rt();
    let inspected = rt.inspect(&info.name).await.unwrap();
    assert_eq!(inspected.state, ContainerState::Exited);
    assert!(!inspected.is_running());
    assert_not_running(
        rt.exec(&info.name, ExecRequest::new(["true"])).await,
        &info.name,
        "exec",
    );
    assert_not_running(
        rt.exec_script(&info.name, "true", &[], None).await,
        &info.name,
        "exec_script",
    );
    assert_not_running(
        rt.require_running(&info.name).await,
        &info.name,
        "require_running",
    );
    // The error names the container and its state.
    let e = rt
        .exec(&info.name, ExecRequest::new(["true"]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&info.name), "{e}");
}

/// The contract's "not running is ContainerNotRunning" holds for `copy` too:
/// files dropped into a stopped bottle would reach nothing that runs.
pub async fn check_copy_into_stopped_container(s: &dyn Subject) {
    if !s.rt().capabilities().copy || admin_of(s).is_none() {
        return; // no copy, or no containers to stop
    }
    let info = s.start_bottle().await.expect("start a second bottle");
    admin_of(s)
        .expect("admin")
        .stop(&info.name)
        .await
        .expect("stop");
    assert_not_running(
        s.rt()
            .copy(&info.name, &[CopyEntry::dir("/x", 0o755, 0, 0)])
            .await,
        &info.name,
        "copy",
    );
}

pub async fn check_paused_container(s: &dyn Subject) {
    if admin_of(s).is_none() {
        return; // the subject cannot start containers
    }
    let info = s.start_bottle().await.expect("start a second bottle");
    let admin = admin_of(s).expect("admin");
    admin.pause(&info.name).await.expect("pause");
    let rt = s.rt();
    assert_eq!(
        rt.inspect(&info.name).await.unwrap().state,
        ContainerState::Paused
    );
    let result = rt.exec(&info.name, ExecRequest::new(["true"])).await;
    admin.unpause(&info.name).await.expect("unpause");
    match result {
        Err(Error::ContainerNotRunning {
            container, state, ..
        }) => {
            assert_eq!(container, info.name);
            assert_eq!(state, "paused");
        }
        other => panic!("exec on a paused container: expected ContainerNotRunning, got {other:?}"),
    }
    // Usable again once unpaused.
    let out = rt.exec_root(&info.name, &["echo", "back"]).await.unwrap();
    assert_eq!(out.stdout, b"back\n");
}

pub async fn check_concurrent_execs(s: &dyn Subject) {
    let rt = s.rt();
    let runs = (0..50).map(|i| async move {
        let arg = i.to_string();
        let out = rt
            .exec_script(
                s.container(),
                "cat; printf 'out-%s' \"$1\"; printf 'err-%s' \"$1\" >&2; exit $(($1 % 7))",
                &[&arg],
                Some(format!("in-{i};").as_bytes()),
            )
            .await;
        (i, out)
    });
    for (i, out) in join_all(runs).await {
        let out = out.unwrap_or_else(|e| panic!("exec #{i}: {e}{}", source_chain(&e)));
        assert_eq!(out.stdout_lossy(), format!("in-{i};out-{i}"), "exec #{i}");
        assert_eq!(out.stderr_lossy(), format!("err-{i}"), "exec #{i}");
        assert_eq!(out.exit_code, i64::from(i % 7), "exec #{i}");
    }
}

pub async fn check_script_args_verbatim(s: &dyn Subject) {
    let args = [
        "plain",
        "two words",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "; touch /tmp/pwned #",
        "'single' \"double\"",
        "back\\slash\\n",
        "*",
        "line1\nline2",
        "",
        "-n",
        "--",
        "ünïcødé ✓",
        "$HOME ${PATH} $1 $@",
        "|&><!{}[]~%",
    ];
    let out = s
        .rt()
        .exec_script(
            s.container(),
            "for a; do printf '[%s]' \"$a\"; done; printf '%s' \"$#\" >&2",
            &args,
            None,
        )
        .await
        .unwrap();
    assert_success(&out, "script");
    let expected: String = args.iter().map(|a| format!("[{a}]")).collect();
    assert_eq!(out.stdout_lossy(), expected);
    assert_eq!(out.stderr_lossy(), args.len().to_string());

    // argv without a shell is just as verbatim.
    let mut argv = vec!["printf", "[%s]"];
    argv.extend(args);
    let out = s.exec_as("1000", &argv).await;
    assert_success(&out, "printf argv");
    assert_eq!(out.stdout_lossy(), expected);

    let out = s.exec_as("0", &["ls", "/tmp/pwned"]).await;
    assert_ne!(out.exit_code, 0, "an argument was executed");
}

/// A process that exits without reading its stdin is not an error: its exit
/// code and output still come back, without waiting on the unread bytes.
pub async fn check_unread_stdin(s: &dyn Subject) {
    let data = pseudo_random(MIB, 3);
    for (argv, expected) in [
        (vec!["true"], Vec::new()),
        (vec!["head", "-c", "10"], data[..10].to_vec()),
        (vec!["/bin/sh", "-c", "exit 5"], Vec::new()),
    ] {
        let started = Instant::now();
        let out = s
            .rt()
            .exec(
                s.container(),
                ExecRequest::new(argv.iter().copied()).stdin(data.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("{argv:?} with unread stdin: {e}{}", source_chain(&e)));
        // Promptly: the runtime must not wait for the unread bytes to drain.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{argv:?} took {took:?}");
        let code = if argv[0] == "/bin/sh" { 5 } else { 0 };
        assert_eq!(out.exit_code, code, "{argv:?}: {}", summary(&out));
        // Podman 4.3 may drop the output of a process that leaves stdin
        // unread (lost between conmon and the API service; see bottle-podman's
        // docs): the exit code is all it guarantees there, so callers that
        // pass stdin read it to the end. Docker must deliver the output.
        let output_may_be_lost =
            !s.rt().capabilities().output_with_unread_stdin && out.stdout.is_empty();
        if !output_may_be_lost {
            assert_eq!(out.stdout, expected, "{argv:?}");
        }
    }
}

/// The process runs with the user's home from the image's /etc/passwd.
pub async fn check_user_home(s: &dyn Subject) {
    if !s.rt().capabilities().exec_as_user {
        return; // the runtime cannot exec as a chosen user
    }
    for (user, home) in [("0", "/root"), ("1000", "/home/node"), ("git", "/home/git")] {
        let out = s
            .exec_as(user, &["/bin/sh", "-c", "printf '%s' \"$HOME\""])
            .await;
        assert_success(&out, user);
        assert_eq!(out.stdout_lossy(), home, "HOME of {user:?}");
    }
}

/// A user the container does not know is an error (never a run as root),
/// and the message names the user.
pub async fn check_unknown_user(s: &dyn Subject) {
    if !s.rt().capabilities().exec_as_user {
        return; // the runtime cannot exec as a chosen user
    }
    let user = "bottle-no-such-user";
    let result = s
        .rt()
        .exec(s.container(), ExecRequest::new(["id", "-u"]).user(user))
        .await;
    match result {
        Ok(out) => {
            assert!(!out.success(), "ran as unknown user: {}", summary(&out));
            let text = format!("{}{}", out.stdout_lossy(), out.stderr_lossy());
            assert!(
                text.contains(user),
                "output names no user: {}",
                summary(&out)
            );
        }
        Err(e) => {
            let text = format!("{e}{}", source_chain(&e));
            assert!(text.contains(user), "error names no user: {text}");
            assert!(!e.is_unreachable(), "{e:?}");
        }
    }
}

/// Invalid copy requests are refused before anything is written.
pub async fn check_copy_rejects_bad_requests(s: &dyn Subject) {
    if !s.rt().capabilities().copy {
        return; // the runtime cannot copy
    }
    let good = CopyEntry::file("/srv/bad/ok", b"x".to_vec(), 0o644, 0, 0);
    for bad in [
        vec![
            good.clone(),
            CopyEntry::file("relative/path", Vec::new(), 0o644, 0, 0),
        ],
        vec![
            good.clone(),
            CopyEntry::dir("/srv/bad/../escape", 0o755, 0, 0),
        ],
        vec![good.clone(), good.clone()],
        vec![good.clone(), CopyEntry::dir("/srv/bad/d", 0o17777, 0, 0)],
    ] {
        match s.rt().copy(s.container(), &bad).await {
            Err(Error::InvalidRequest { container, .. }) => assert_eq!(container, s.container()),
            other => panic!("copy {bad:?}: expected InvalidRequest, got {other:?}"),
        }
    }
    let out = s.exec_as("0", &["ls", "/srv/bad"]).await;
    assert_ne!(out.exit_code, 0, "part of a refused copy was written");
}

pub async fn check_inspect(s: &dyn Subject) {
    let started = s.started();
    assert_eq!(started.name, s.container());
    assert!(started.is_running(), "{started:?}");
    let info = s.rt().inspect(s.container()).await.unwrap();
    assert_eq!(&info, started);
    assert_eq!(info.id.len(), 64, "full id: {}", info.id);
    assert!(
        info.id.chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        info.id
    );
    assert!(!info.name.starts_with('/'), "{}", info.name);
    // By id: the same container.
    let by_id = s.rt().inspect(&info.id).await.unwrap();
    assert_eq!(by_id, info);
    let running = s.rt().require_running(s.container()).await.unwrap();
    assert_eq!(running.id, info.id);
}

pub async fn check_version(s: &dyn Subject) {
    let info = s.rt().version().await.unwrap();
    assert_eq!(info.engine, s.rt().engine());
    assert_eq!(info.endpoint, s.rt().endpoint());
    let dotted = |s: &str| {
        let parts: Vec<&str> = s.split(['.', '-', '+']).collect();
        parts.len() >= 2 && parts[..2].iter().all(|p| p.parse::<u32>().is_ok())
    };
    assert!(dotted(&info.version), "version {:?}", info.version);
    assert!(
        dotted(&info.api_version),
        "api_version {:?}",
        info.api_version
    );
}

/// `list` is the engine's own filtering: label=KEY, label=KEY=VALUE and
/// name=… as Docker's `--filter` (labels all hold, names any, kinds all);
/// only running containers, not stopped or paused ones.
pub async fn check_list_by_filter(s: &dyn Subject) {
    if !s.rt().capabilities().list || admin_of(s).is_none() {
        return; // no list, or no containers to start
    }
    // A label key no other check's containers carry.
    let key = s.unique_name("list");
    let also = format!("{key}.also");
    let start = |what: &'static str, labels: Vec<(String, String)>| {
        let mut spec = s.bottle_spec().expect("a bottle spec");
        spec.name = Some(s.unique_name(what));
        spec.labels = labels;
        async move { s.run_container(spec).await.expect("start a container") }
    };
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    let a = start("a", vec![kv(&key, "x"), kv(&also, "1")]).await;
    let b = start("b", vec![kv(&key, "y")]).await;
    let stopped = start("stopped", vec![kv(&key, "x")]).await;
    let paused = start("paused", vec![kv(&key, "x")]).await;
    let other = start("other", Vec::new()).await;
    let admin = admin_of(s).expect("admin");
    admin.stop(&stopped.name).await.expect("stop");
    admin.pause(&paused.name).await.expect("pause");

    let rt = s.rt();
    let exact = |c: &bottle_runtime::ContainerInfo| format!("name=^{}$", c.name);
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![format!("label={key}")], vec![&a.name, &b.name]),
        (vec![format!("label={key}=x")], vec![&a.name]),
        (vec![format!("label={key}=nothing")], vec![]),
        (vec![exact(&a)], vec![&a.name]),
        (vec![exact(&stopped)], vec![]),
        (vec![exact(&paused)], vec![]),
        (vec![exact(&a), exact(&b)], vec![&a.name, &b.name]),
        (
            vec![format!("label={key}"), format!("label={also}")],
            vec![&a.name],
        ),
        (vec![format!("label={key}=y"), exact(&a)], vec![]),
        (vec![format!("label={key}"), exact(&b)], vec![&b.name]),
    ];
    for (filters, want) in cases {
        let parsed: Vec<ContainerFilter> = filters.iter().map(|f| f.parse().unwrap()).collect();
        let got = rt
            .list(&parsed)
            .await
            .unwrap_or_else(|e| panic!("list {filters:?}: {e}{}", source_chain(&e)));
        let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
        let mut want = want;
        want.sort();
        assert_eq!(names, want, "list {filters:?}");
        for c in &got {
            assert_eq!(c.state, ContainerState::Running, "{c:?}");
            assert_eq!(c.id, rt.inspect(&c.name).await.unwrap().id, "{c:?}");
        }
    }
    // No filter: every running container, ours among them.
    let all = rt.list(&[]).await.expect("list all");
    for c in [&a, &b, &other] {
        assert!(
            all.iter().any(|l| l.id == c.id),
            "{} not in {all:?}",
            c.name
        );
    }
    assert!(!all.iter().any(|l| l.id == stopped.id || l.id == paused.id));
    admin.unpause(&paused.name).await.expect("unpause");
}

/// A subscription read as a caller (`bottlectl watch`) reads one: the
/// contract lets the engine end a stream, so on a clean end it subscribes
/// again from the last event seen (at most 3 times) and skips what it
/// already had. Podman ended one here mid-check under load, once in four
/// runs, around a rotation of its event log.
struct Subscription<'a> {
    rt: &'a dyn ContainerRuntime,
    filters: Vec<ContainerFilter>,
    events: bottle_runtime::EventStream,
    from: std::time::SystemTime,
    last: Option<std::time::SystemTime>,
    renewed: usize,
}

impl<'a> Subscription<'a> {
    async fn new(
        rt: &'a dyn ContainerRuntime,
        filters: &[ContainerFilter],
        since: Option<std::time::SystemTime>,
    ) -> Subscription<'a> {
        let from = since.unwrap_or_else(|| std::time::SystemTime::now() - Duration::from_secs(1));
        let events = rt.events(filters, since).await.expect("subscribe");
        Subscription {
            rt,
            filters: filters.to_vec(),
            events,
            from,
            last: None,
            renewed: 0,
        }
    }

    /// The next event of `id` within 30 s, skipping other containers' (but
    /// none of `never`'s: the filter must keep those out).
    async fn next_of(&mut self, id: &str, never: &str) -> bottle_runtime::ContainerEvent {
        use futures_util::StreamExt;
        loop {
            let item = tokio::time::timeout(Duration::from_secs(30), self.events.next())
                .await
                .unwrap_or_else(|_| panic!("no event of {id} within 30 s"));
            let Some(item) = item else {
                assert!(
                    self.renewed < 3,
                    "the event stream ended {} times",
                    self.renewed + 1
                );
                self.renewed += 1;
                let since = self.last.unwrap_or(self.from);
                self.events = self
                    .rt
                    .events(&self.filters, Some(since))
                    .await
                    .expect("subscribe again");
                continue;
            };
            let item = item.unwrap_or_else(|e| panic!("event stream: {e}{}", source_chain(&e)));
            if self.renewed > 0 && self.last.is_some() && item.time <= self.last {
                continue; // had it before the stream ended
            }
            if item.time.is_some() {
                self.last = item.time;
            }
            assert_ne!(item.id, never, "filtered out: {item:?}");
            if item.id == id {
                return item;
            }
        }
    }
}

/// Events name the container and its action in one vocabulary on both
/// engines; a label filter keeps other containers' events out; `since`
/// replays what happened before the subscription: the start of a running
/// container on every engine, that of one since removed where the engine
/// declares an event history.
pub async fn check_events_report_start_and_die(s: &dyn Subject) {
    if !s.rt().capabilities().events || admin_of(s).is_none() {
        return; // no events, or no containers to start
    }
    use bottle_runtime::EventAction::*;
    let key = s.unique_name("events");
    let filters: Vec<ContainerFilter> = vec![format!("label={key}").parse().unwrap()];
    let t0 = std::time::SystemTime::now() - Duration::from_secs(1);
    let rt = s.rt();
    let mut events = Subscription::new(rt, &filters, None).await;
    let mut spec = s.bottle_spec().expect("a bottle spec");
    spec.name = Some(s.unique_name("ev"));
    spec.labels = vec![(key.clone(), "1".into())];
    let unlabelled = s.start_bottle().await.expect("an unlabelled container");
    let c = s.run_container(spec).await.expect("start");
    let admin = admin_of(s).expect("admin");
    let mut seen = Vec::new();
    let first = events.next_of(&c.id, &unlabelled.id).await;
    assert_eq!(first.name, c.name, "{first:?}");
    seen.push(first.action);
    admin.pause(&c.name).await.expect("pause");
    admin.unpause(&c.name).await.expect("unpause");
    admin.stop(&c.name).await.expect("stop");
    admin.start(&c.name).await.expect("start again");
    admin.remove(&c.name).await.expect("remove");
    loop {
        let e = events.next_of(&c.id, &unlabelled.id).await;
        assert_eq!(e.name, c.name, "{e:?}");
        let end = e.action == Destroy;
        seen.push(e.action);
        if end {
            break;
        }
    }
    // Each action once (a stop may also report `kill` on one engine: not
    // asked for, so not streamed), in order. dockerd may report a pause and
    // an unpause again when containerd's own task events reach it late (its
    // monitor logs them whenever its state lags), so a repeated pair is one.
    seen.dedup();
    while let Some(at) = seen
        .windows(4)
        .position(|w| w == [Pause, Unpause, Pause, Unpause])
    {
        seen.drain(at..at + 2);
    }
    let want = [Start, Pause, Unpause, Die, Start, Die, Destroy];
    assert_eq!(seen, want, "events of {}", c.name);
    // A labelled one still running: every engine replays its start, from
    // its log or from the running task.
    let mut spec = s.bottle_spec().expect("a bottle spec");
    spec.name = Some(s.unique_name("ev-running"));
    spec.labels = vec![(key.clone(), "1".into())];
    let running = s.run_container(spec).await.expect("start");
    // The unlabelled one: its own start was filtered out by the label.
    let mut replay = Subscription::new(rt, &filters, Some(t0)).await;
    if rt.capabilities().event_history {
        // Only an engine that keeps a log can replay a removed container.
        let again = replay.next_of(&c.id, &unlabelled.id).await;
        assert_eq!(
            again.action, Start,
            "replay from before the start: {again:?}"
        );
    }
    let again = replay.next_of(&running.id, &unlabelled.id).await;
    assert!(
        again.action == Start && again.name == running.name,
        "replay of a running container: {again:?}"
    );
}

/// A [`FakeRuntime`](bottle_runtime::testing::FakeRuntime) whose container
/// `host` runs each exec as a process on this machine, so the checks that
/// need only exec semantics run against the fake too: exit codes (126, 127,
/// 128 + signal), streams apart, stdin, the output bound.
///
/// Every process runs in a PID namespace of its own (`unshare --pid`), as
/// uid and gid [`HOST_FAKE_UID`] (`setpriv`; no user switching: the fake
/// declares no `exec_as_user`), with an empty environment but `PATH`: a
/// check's `kill -1` reaches nothing outside. Needs root (the tests run as
/// root, as the engine suites do).
pub fn host_process_fake() -> bottle_runtime::testing::FakeRuntime {
    use bottle_runtime::testing::FakeRuntime;
    use bottle_runtime::Capabilities;
    FakeRuntime::new()
        .running(HOST_FAKE_CONTAINER)
        .capabilities(
            Capabilities::default()
                .with_exec_as_user(false)
                .with_copy(false)
                .with_output_with_unread_stdin(true),
        )
        .on_exec_with_stdin(|call, stdin| Ok(run_on_host(&call.argv, stdin, call.max_output)))
}

/// The container [`host_process_fake`] declares running.
pub const HOST_FAKE_CONTAINER: &str = "host";
/// The uid (and gid) [`host_process_fake`] runs processes as: one no
/// account on this machine uses.
pub const HOST_FAKE_UID: u32 = 64_999;

fn run_on_host(argv: &[String], stdin: Option<&[u8]>, limit: usize) -> ExecOutput {
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let id = HOST_FAKE_UID.to_string();
    // The namespace's init is this shell (init ignores signals from inside
    // its namespace), the program its child: `kill -9 $$` works as usual.
    let mut child = match Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "setpriv"])
        .arg(format!("--reuid={id}"))
        .arg(format!("--regid={id}"))
        .args(["--clear-groups", "--", "/bin/sh", "-c"])
        .arg(r#""$@"; rc=$?; exit "$rc""#)
        .arg("host-init")
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("the host-process fake needs unshare and setpriv (util-linux): {e}"),
    };
    let feed = stdin.map(<[u8]>::to_vec).map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let pid = child.id();
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                if out.len() > limit {
                    // Over the bound: ending unshare ends its namespace.
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    out.truncate(limit + 1);
                    break;
                }
            }
            out
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let status = child.wait().expect("wait");
    if let Some(feed) = feed {
        let _ = feed.join();
    }
    ExecOutput {
        exit_code: status
            .code()
            .map(i64::from)
            .or(status.signal().map(|s| 128 + i64::from(s)))
            .unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// A [`Subject`] over any runtime and one running container, without an
/// admin side (checks that must start containers return early).
pub struct RuntimeOnly<'a> {
    pub rt: &'a dyn ContainerRuntime,
    pub container: &'a str,
    pub started: ContainerInfo,
}

#[async_trait]
impl Subject for RuntimeOnly<'_> {
    fn rt(&self) -> &dyn ContainerRuntime {
        self.rt
    }
    fn container(&self) -> &str {
        self.container
    }
    fn started(&self) -> &ContainerInfo {
        &self.started
    }
    fn unique_name(&self, what: &str) -> String {
        format!("bottle-conformance-{what}-{}", std::process::id())
    }
    fn admin(&self) -> Option<Arc<dyn ContainerAdmin>> {
        None
    }
    fn bottle_spec(&self) -> Option<RunSpec> {
        None
    }
    async fn run_container(&self, _spec: RunSpec) -> Result<ContainerInfo, Error> {
        panic!("a RuntimeOnly subject cannot start containers")
    }
}

#[async_trait]
impl Subject for crate::TestEnv {
    fn rt(&self) -> &dyn ContainerRuntime {
        crate::TestEnv::rt(self)
    }
    fn container(&self) -> &str {
        self.bottle()
    }
    fn started(&self) -> &ContainerInfo {
        self.bottle_info()
    }
    fn unique_name(&self, what: &str) -> String {
        crate::TestEnv::unique_name(self, what)
    }
    fn admin(&self) -> Option<Arc<dyn ContainerAdmin>> {
        Some(crate::TestEnv::admin(self))
    }
    fn bottle_spec(&self) -> Option<RunSpec> {
        Some(
            self.variant()
                .run_spec(self.image().to_string(), ["/bin/sleep", "infinity"]),
        )
    }
    async fn run_container(&self, spec: RunSpec) -> Result<ContainerInfo, Error> {
        crate::TestEnv::run_container(self, spec).await
    }
}

/// The one list of this module's checks that every engine suite runs, for
/// the test files that run them on an engine's bottle (`tests/conformance.rs`,
/// `tests/conformance_transports.rs`):
///
/// - `library_checks!(wrappers)` defines a local `async fn check_x(env:
///   &TestEnv)` running `conformance::check_x` for each;
/// - `library_checks!(then [NAME] (extra, …,))` calls `NAME!(extra, …,
///   every check)`: the test file's own checks (each followed by a comma)
///   first.
#[macro_export]
macro_rules! library_checks {
    (wrappers) => {
        $crate::library_checks!(then [$crate::library_checks] (@wrap));
    };
    (@wrap $($name:ident),+ $(,)?) => {
        $(async fn $name(env: &$crate::TestEnv) {
            $crate::conformance::$name(env).await
        })+
    };
    (then [$($callback:tt)+] ($($first:tt)*)) => {
        $($callback)+!(
            $($first)*
            check_undeclared_copy_is_not_supported,
            check_exit_codes,
            check_missing_binary,
            check_stdout_stderr_apart,
            check_large_output,
            check_output_is_bounded,
            check_large_stdin,
            check_stdin_eof,
            check_a_background_child_does_not_hold_the_exec,
            check_unread_stdin,
            check_user_home,
            check_unknown_user,
            check_copy_rejects_bad_requests,
            check_users,
            check_copy_modes_and_owners,
            check_copy_creates_missing_parents,
            check_copy_overwrites,
            check_missing_container,
            check_stopped_container,
            check_copy_into_stopped_container,
            check_paused_container,
            check_concurrent_execs,
            check_script_args_verbatim,
            check_inspect,
            check_version,
            check_list_by_filter,
            check_events_report_start_and_die,
        );
    };
}
