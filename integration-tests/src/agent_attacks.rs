//! What the bottle's user sends to the agent socket it is offered: raw
//! ssh-agent protocol frames (PROTOCOL.agent), sent as the user with the
//! image's `socat`, and the hostile libraries such frames name.

use crate::{assert_success, TestEnv};
use bottle_runtime::ExecRequest;
use std::path::Path;
use std::process::Command;

/// `SSH_AGENTC_ADD_SMARTCARD_KEY`.
pub const ADD_SMARTCARD_KEY: u8 = 20;
/// `SSH_AGENT_FAILURE`.
pub const FAILURE: u8 = 5;

/// One agent frame: a 4-byte big-endian length, the message type, then
/// each field as an SSH string (length-prefixed bytes).
pub fn frame(kind: u8, fields: &[&[u8]]) -> Vec<u8> {
    frame_then(kind, fields, &[])
}

/// [`frame`] with `tail` (fixed-size fields: a flags word, a boolean)
/// after the strings.
pub fn frame_then(kind: u8, fields: &[&[u8]], tail: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    for f in fields {
        body.extend_from_slice(&(f.len() as u32).to_be_bytes());
        body.extend_from_slice(f);
    }
    body.extend_from_slice(tail);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// "Load the PKCS#11 provider at `path`" with an empty PIN.
pub fn add_smartcard_key(path: &str) -> Vec<u8> {
    frame(ADD_SMARTCARD_KEY, &[path.as_bytes(), b""])
}

/// Where [`PROVIDER_C`]'s constructor writes the uid that loaded it.
pub const PROVIDER_RAN: &str = "/tmp/provider-ran";

/// A PKCS#11 "provider" the user wrote. Loading it runs its constructor
/// as whoever loads it (`ssh-pkcs11-helper`, run by the agent as root):
/// it appends that uid to [`PROVIDER_RAN`]. It exports
/// `C_GetFunctionList`, which OpenSSH checks for before it loads a library.
pub const PROVIDER_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
  char b[32];
  int n = snprintf(b, sizeof b, "%d\n", (int)getuid());
  int fd = open("/tmp/provider-ran", O_WRONLY | O_CREAT | O_APPEND, 0666);
  if (fd >= 0) { (void)write(fd, b, n); close(fd); }
}
unsigned long C_GetFunctionList(void **list) { (void)list; return 5; }
"#;

/// [`PROVIDER_C`] built with the host's C compiler (the images carry the
/// host's glibc, so it loads in each of them).
pub fn build_provider(dir: &Path) -> Vec<u8> {
    let src = dir.join("provider.c");
    let lib = dir.join("provider.so");
    std::fs::write(&src, PROVIDER_C).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&lib).unwrap()
}

/// Write `bytes` to `path` in `container` as `user` (mode 755).
pub async fn write_as(env: &TestEnv, container: &str, user: &str, path: &str, bytes: Vec<u8>) {
    let out = env
        .rt()
        .exec(
            container,
            ExecRequest::script(
                "mkdir -p \"${1%/*}\" && cat > \"$1\" && chmod 755 \"$1\"",
                [path],
            )
            .user(user)
            .stdin(bytes),
        )
        .await
        .unwrap();
    assert_success(&out, &format!("write {path} as {user}"));
}

/// Send `bytes` to the agent socket `socket` as `user` and return what
/// came back within a second. The sending side stays open meanwhile: an
/// agent closes on EOF without answering what it was still working on.
pub async fn send_as(env: &TestEnv, user: &str, socket: &str, bytes: Vec<u8>) -> Vec<u8> {
    let out = env
        .rt()
        .exec(
            env.bottle(),
            ExecRequest::script(
                "{ cat; sleep 1; } | socat -t 1 STDIO \"UNIX-CONNECT:$1\"",
                [socket],
            )
            .user(user)
            .stdin(bytes),
        )
        .await
        .unwrap();
    assert_success(&out, &format!("send to {socket} as {user}"));
    out.stdout
}

/// The uids that ran the planted provider's constructor in `container`.
pub async fn provider_ran(env: &TestEnv, container: &str) -> String {
    let out = env
        .rt()
        .exec(
            container,
            ExecRequest::script("cat \"$1\" 2>/dev/null; true", [PROVIDER_RAN]),
        )
        .await
        .unwrap();
    out.stdout_lossy()
}
