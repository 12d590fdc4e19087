//! What the guard adds to one signature, against today's relay (`socat`)
//! and the agent's own socket, in one run on this machine:
//!
//! ```sh
//! cargo run --release -p bottle-guard --example overhead [-- RUNS]
//! ```
//!
//! Starts a real `ssh-agent` with one ed25519 key, the static
//! `bottle-guard` that provision delivers (once without records, once with
//! `--audit` as provision starts it) and a `socat` relay in front of it, then times RUNS
//! (default 200) SSHSIG sign requests over a fresh connection each (as
//! `ssh-keygen -Y sign` makes one), alternating the four paths, and prints
//! each path's median, the guard's extra cost over the relay and what
//! recording adds.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while UnixStream::connect(path).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// One sign request for SSHSIG data in the namespace `git`.
fn sign_request(blob: &[u8]) -> Vec<u8> {
    let mut data = b"SSHSIG".to_vec();
    put_string(&mut data, b"git");
    put_string(&mut data, b"");
    put_string(&mut data, b"sha512");
    put_string(&mut data, &[0x5a; 64]);
    let mut body = vec![13];
    put_string(&mut body, blob);
    put_string(&mut body, &data);
    body.extend_from_slice(&0u32.to_be_bytes());
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

/// Connect, sign once, read the whole answer.
fn sign_once(path: &Path, request: &[u8]) -> Duration {
    let start = Instant::now();
    let mut s = UnixStream::connect(path).unwrap();
    s.write_all(request).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body[0], 14, "not a signature from {}", path.display());
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("RUNS is a number"))
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let agent_sock = d.join("agent.sock");
    let _agent = Started(
        Command::new("ssh-agent")
            .args(["-D", "-P", "!*", "-a"])
            .arg(&agent_sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    );
    wait_for(&agent_sock);
    let key = d.join("key");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let ok = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent_sock)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let public =
        ssh_key::PublicKey::read_openssh_file(&PathBuf::from(format!("{}.pub", key.display())))
            .unwrap();
    let fp = public.fingerprint(ssh_key::HashAlg::Sha256);
    let policy = d.join("policy");
    std::fs::write(&policy, format!("sshsig {fp} namespace=git\n")).unwrap();
    let guard_sock = d.join("guard.sock");
    // The static executable provision delivers (bottle-ssh's build.rs).
    let guard = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/guard-static/x86_64-unknown-linux-gnu/release/bottle-guard");
    assert!(
        guard.exists(),
        "build the workspace first, which builds {}",
        guard.display()
    );
    let _guard = Started(
        Command::new(&guard)
            .arg("serve")
            .arg("--listen")
            .arg(&guard_sock)
            .arg("--agent")
            .arg(&agent_sock)
            .arg("--policy")
            .arg(&policy)
            .spawn()
            .unwrap(),
    );
    let audit_dir = d.join("audit");
    std::fs::create_dir(&audit_dir).unwrap();
    let recorded_sock = d.join("recorded.sock");
    let _recorded = Started(
        Command::new(&guard)
            .arg("serve")
            .arg("--listen")
            .arg(&recorded_sock)
            .arg("--agent")
            .arg(&agent_sock)
            .arg("--policy")
            .arg(&policy)
            .arg("--audit")
            .arg(&audit_dir)
            .spawn()
            .unwrap(),
    );
    let relay_sock = d.join("relay.sock");
    let _relay = Started(
        Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork", relay_sock.display()))
            .arg(format!("UNIX-CONNECT:{}", agent_sock.display()))
            .spawn()
            .expect("socat"),
    );
    wait_for(&guard_sock);
    wait_for(&relay_sock);
    wait_for(&recorded_sock);
    let request = sign_request(&public.to_bytes().unwrap());
    let paths = [
        ("agent", &agent_sock),
        ("relay", &relay_sock),
        ("guard", &guard_sock),
        ("guard+records", &recorded_sock),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    for _ in 0..runs {
        for (i, (_, p)) in paths.iter().enumerate() {
            times[i].push(sign_once(p, &request));
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    for ((name, _), m) in paths.iter().zip(&medians) {
        println!(
            "{name:13} median of {runs}: {:.3} ms",
            m.as_secs_f64() * 1e3
        );
    }
    let extra = medians[2].as_secs_f64() - medians[1].as_secs_f64();
    println!(
        "guard - relay: {:+.3} ms (target: at most +1 ms)",
        extra * 1e3
    );
    let recording = medians[3].as_secs_f64() - medians[2].as_secs_f64();
    println!(
        "records - none: {:+.3} ms (target: at most +1 ms)",
        recording * 1e3
    );
}
