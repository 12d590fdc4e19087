//! The guard in front of a real ssh-agent on this machine, asked by real
//! OpenSSH clients (ssh-add, ssh-keygen -Y, git commit -S): what the keys
//! are for goes through, everything else is refused and the agent keeps
//! its keys. No engine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A process this test started, stopped by its own handle when dropped.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    path
}

fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

struct World {
    dir: tempfile::TempDir,
    public: PathBuf,
    login: PathBuf,
    signing: PathBuf,
    _agent: Started,
    guard: Started,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let agent_sock = dir.path().join("agent.sock");
        let agent = Started(
            Command::new("ssh-agent")
                .args(["-D", "-P", "!*", "-a"])
                .arg(&agent_sock)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for(&agent_sock);
        let login = keygen(dir.path(), "login");
        let signing = keygen(dir.path(), "signing");
        for key in [&login, &signing] {
            let out = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent_sock)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        let policy = dir.path().join("policy");
        std::fs::write(
            &policy,
            format!(
                "login {} user=git\nsshsig {} namespace=git\n",
                fingerprint(&login),
                fingerprint(&signing)
            ),
        )
        .unwrap();
        let public = dir.path().join("public.sock");
        let guard = Started(
            Command::new(env!("CARGO_BIN_EXE_bottle-guard"))
                .arg("serve")
                .arg("--listen")
                .arg(&public)
                .arg("--agent")
                .arg(&agent_sock)
                .arg("--policy")
                .arg(&policy)
                .arg("--audit")
                .arg(dir.path())
                .spawn()
                .unwrap(),
        );
        wait_for(&public);
        World {
            dir,
            public,
            login,
            signing,
            _agent: agent,
            guard,
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .env("SSH_AUTH_SOCK", &self.public)
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn listed(&self) -> usize {
        let out = self.run("ssh-add", &["-l"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    fn sign(&self, key: &Path, namespace: &str) -> Output {
        let file = self.dir.path().join("message");
        std::fs::write(&file, "signed text\n").unwrap();
        let _ = std::fs::remove_file(self.dir.path().join("message.sig"));
        let public = format!("{}.pub", key.display());
        self.run(
            "ssh-keygen",
            &[
                "-Y",
                "sign",
                "-n",
                namespace,
                "-f",
                &public,
                file.to_str().unwrap(),
            ],
        )
    }
}

#[test]
fn listing_works_and_management_is_refused() {
    let w = World::new();
    assert_eq!(w.listed(), 2);
    let login_pub = format!("{}.pub", w.login.display());
    for args in [
        vec!["-D"],
        vec!["-d", &login_pub],
        vec!["-e", "/usr/lib/x.so"],
    ] {
        let out = w.run("ssh-add", &args);
        assert!(
            !out.status.success(),
            "ssh-add {args:?} went through: {out:?}"
        );
    }
    // Adding a key of the user's own.
    let mine = keygen(w.dir.path(), "mine");
    let out = w.run("ssh-add", &[mine.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(w.listed(), 2, "the agent lost or gained keys");
}

#[test]
fn the_signing_key_signs_sshsig_in_git_only_and_the_login_key_none() {
    let w = World::new();
    let out = w.sign(&w.signing, "git");
    assert!(out.status.success(), "{out:?}");
    assert!(w.dir.path().join("message.sig").exists());
    let out = w.sign(&w.signing, "file");
    assert!(!out.status.success(), "namespace file was signed: {out:?}");
    let out = w.sign(&w.login, "git");
    assert!(
        !out.status.success(),
        "the login key signed SSHSIG: {out:?}"
    );
}

#[test]
fn git_commit_signing_goes_through_the_guard() {
    let w = World::new();
    let signing_pub = format!("{}.pub", w.signing.display());
    let allowed = w.dir.path().join("allowed_signers");
    let key = std::fs::read_to_string(&signing_pub).unwrap();
    std::fs::write(&allowed, format!("dev@example.invalid {key}")).unwrap();
    let repo = w.dir.path().join("repo");
    for args in [
        vec!["init", "-q", repo.to_str().unwrap()],
        vec!["-C", repo.to_str().unwrap(), "config", "user.name", "dev"],
        vec![
            "-C",
            repo.to_str().unwrap(),
            "config",
            "user.email",
            "dev@example.invalid",
        ],
        vec!["-C", repo.to_str().unwrap(), "config", "gpg.format", "ssh"],
        vec![
            "-C",
            repo.to_str().unwrap(),
            "config",
            "user.signingkey",
            &signing_pub,
        ],
        vec![
            "-C",
            repo.to_str().unwrap(),
            "config",
            "gpg.ssh.allowedSignersFile",
            allowed.to_str().unwrap(),
        ],
        vec![
            "-C",
            repo.to_str().unwrap(),
            "commit",
            "-q",
            "-S",
            "--allow-empty",
            "-m",
            "signed",
        ],
        vec!["-C", repo.to_str().unwrap(), "verify-commit", "HEAD"],
    ] {
        let out = w.run("git", &args);
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    // The login key as the signing key: refused.
    let login_pub = format!("{}.pub", w.login.display());
    let repo_s = repo.to_str().unwrap();
    w.run(
        "git",
        &["-C", repo_s, "config", "user.signingkey", &login_pub],
    );
    let out = w.run(
        "git",
        &[
            "-C",
            repo_s,
            "commit",
            "-q",
            "-S",
            "--allow-empty",
            "-m",
            "x",
        ],
    );
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn hostile_frames_do_not_stop_the_guard() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let w = World::new();
    // Oversized length, zero length, half a frame then close, garbage.
    for bytes in [
        vec![0x00, 0x04, 0x00, 0x01, 11],
        vec![0, 0, 0, 0],
        vec![0, 0, 0, 9, 13, 0],
        vec![0xff; 64],
    ] {
        let mut s = UnixStream::connect(&w.public).unwrap();
        s.write_all(&bytes).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.read_to_end(&mut reply);
        assert!(reply.is_empty(), "{bytes:?} got {reply:?}");
    }
    // A stalled half frame holds only its own connection.
    let mut stalled = UnixStream::connect(&w.public).unwrap();
    stalled.write_all(&[0, 0, 0, 20, 13]).unwrap();
    // Many connections at once, then the guard still serves.
    let many: Vec<_> = (0..200)
        .filter_map(|_| UnixStream::connect(&w.public).ok())
        .collect();
    drop(many);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(w.listed(), 2);
    drop(stalled);
}

impl World {
    /// The records so far, parsed.
    fn records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn every_request_is_recorded_with_what_it_was_for() {
    let w = World::new();
    assert_eq!(w.listed(), 2);
    assert!(w.sign(&w.signing, "git").status.success());
    assert!(!w.sign(&w.signing, "file").status.success());
    assert!(!w.run("ssh-add", &["-D"]).status.success());
    let records = w.records();
    let signed: Vec<_> = records
        .iter()
        .filter(|r| r["request"] == "sign" && r["decision"] == "allow")
        .collect();
    assert_eq!(signed.len(), 1, "{records:#?}");
    let r = signed[0];
    assert_eq!(r["purpose"], "sshsig");
    assert_eq!(r["namespace"], "git");
    assert_eq!(r["key"], fingerprint(&w.signing));
    // ssh-keygen hashes the message with SHA-512.
    let digest = {
        use sha2::Digest;
        let h = sha2::Sha512::digest(b"signed text\n");
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(r["hash"], format!("sha512:{digest}"));
    let denied: Vec<_> = records.iter().filter(|r| r["decision"] == "deny").collect();
    let requests: Vec<_> = denied
        .iter()
        .map(|r| r["request"].as_str().unwrap())
        .collect();
    // ssh-add -D sends protocol 1's remove-all too.
    assert_eq!(
        requests,
        ["sign", "remove-all", "remove-all-v1"],
        "{records:#?}"
    );
    assert!(denied[0]["reason"].as_str().unwrap().contains("\"file\""));
    assert!(records.iter().any(|r| r["request"] == "list"));
    // Unique ids, times in UTC, a connection number each.
    let ids: std::collections::HashSet<_> = records.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids.len(), records.len());
    for r in &records {
        assert!(r["time"].as_str().unwrap().ends_with('Z'), "{r}");
        assert!(r["connection"].as_u64().unwrap() >= 1, "{r}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(w.dir.path().join("audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// 100 000 listings on one connection: every one answered, the records
/// stay within two files of 1 MiB and the guard's memory stays small.
#[test]
fn a_flood_keeps_the_record_bounded() {
    use std::io::{Read, Write};
    let w = World::new();
    let mut s = std::os::unix::net::UnixStream::connect(&w.public).unwrap();
    let mut reply = [0u8; 4];
    for _ in 0..100_000 {
        s.write_all(&[0, 0, 0, 1, 11]).unwrap();
        s.read_exact(&mut reply).unwrap();
        let len = u32::from_be_bytes(reply) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        assert_eq!(body[0], 12, "an identities answer");
    }
    let size = |n: &str| {
        std::fs::metadata(w.dir.path().join(n))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    assert!(size("audit.jsonl") <= 1 << 20 && size("audit.jsonl.1") <= 1 << 20);
    assert!(size("audit.jsonl.1") > 0, "rotated");
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.guard.0.id())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss_kb < 16 * 1024, "guard RSS {rss_kb} kB");
    assert_eq!(w.listed(), 2);
}

/// `bottle-guard load`'s key stream: remove-all, then one add per key,
/// each framed; the ed25519 add is built by hand as PROTOCOL.agent lays it.
fn key_stream(keys: &[&Path]) -> Vec<u8> {
    fn frame(out: &mut Vec<u8>, body: &[u8]) {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    }
    let mut stream = Vec::new();
    frame(&mut stream, &[19]);
    for key in keys {
        let private = ssh_key::PrivateKey::read_openssh_file(key).unwrap();
        let pair = private.key_data().ed25519().unwrap();
        let mut body = vec![17];
        string(&mut body, b"ssh-ed25519");
        string(&mut body, pair.public.as_ref());
        let mut secret = pair.private.to_bytes().to_vec();
        secret.extend_from_slice(pair.public.as_ref());
        string(&mut body, &secret);
        string(&mut body, b"loaded");
        frame(&mut stream, &body);
    }
    stream
}

fn load(agent: &Path, stream: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bottle-guard"))
        .arg("load")
        .arg("--agent")
        .arg(agent)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stream).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn load_puts_the_keys_in_a_real_agent_and_tells_a_refusal() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let (a, b) = (keygen(dir.path(), "a"), keygen(dir.path(), "b"));
    // Started after the load begins: the guard waits for it to listen.
    let late = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            Started(
                Command::new("ssh-agent")
                    .args(["-D", "-P", "!*", "-a"])
                    .arg(&sock)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
    };
    let out = load(&sock, &key_stream(&[&a, &b]));
    let _agent = late.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    let mut expected = vec![
        format!("key {}", fingerprint(&a)),
        format!("key {}", fingerprint(&b)),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    // ssh-add sees the same two.
    let out = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    // A request that is not a key to load never reaches the agent.
    let mut sign = vec![0, 0, 0, 1, 13];
    sign.extend_from_slice(&key_stream(&[&a]));
    let out = load(&sock, &sign);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a key to load"));

    // A locked agent refuses: exit 3, and the keys stay as they were.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut lock = vec![22];
    lock.extend_from_slice(&2u32.to_be_bytes());
    lock.extend_from_slice(b"pw");
    s.write_all(&(lock.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&lock).unwrap();
    let mut answer = [0u8; 5];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [0, 0, 0, 1, 6], "the agent did not lock");
    let out = load(&sock, &key_stream(&[&a]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused request 0"));
}
