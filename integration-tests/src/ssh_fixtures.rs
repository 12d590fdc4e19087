//! SSH test fixtures shared by the end-to-end files (`ssh_e2e.rs`,
//! `ssh_keys.rs`, `ssh_restrict.rs`): host-made keys and an `sshd` gate
//! container in the bottle's network namespace.

use crate::{assert_success, TestEnv};
use bottle_runtime::{ContainerInfo, ContainerRuntime, CopyEntry, NetworkMode, RunSpec};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A key pair made by the host's ssh-keygen (`kind`: ed25519, ecdsa, rsa;
/// `extra`: e.g. `["-b", "384"]` or `["-m", "PEM"]`), encrypted with
/// `passphrase` unless it is empty. Returns the private key's path.
pub fn keygen_with(dir: &Path, rel: &str, kind: &str, extra: &[&str], passphrase: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", passphrase, "-C", rel])
        .args(extra)
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen {rel}");
    path
}

/// The `.pub` next to a key, one line, trimmed.
pub fn public(key: &Path) -> String {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    std::fs::read_to_string(PathBuf::from(p))
        .unwrap()
        .trim()
        .to_string()
}

/// `SHA256:…` of a key, from ssh-keygen (reads the `.pub` next to it).
pub fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(key)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// Start an sshd in the bottle's network namespace, listening on 127.0.0.1
/// `ports` with `host_keys` (private key files), `git` as the login user
/// with `authorized` public key lines; wait until every port answers.
pub async fn start_sshd(
    env: &TestEnv,
    ports: &[u16],
    host_keys: &[&Path],
    authorized: &[String],
) -> ContainerInfo {
    start_sshd_with(env, ports, host_keys, authorized, "").await
}

/// [`start_sshd`] with more `sshd_config` lines (e.g. `MaxAuthTries 3`).
pub async fn start_sshd_with(
    env: &TestEnv,
    ports: &[u16],
    host_keys: &[&Path],
    authorized: &[String],
    extra_config: &str,
) -> ContainerInfo {
    let mut spec = RunSpec::new(env.image(), ["/bin/sleep", "infinity"]);
    spec.network = NetworkMode::Container(env.bottle_info().id.clone());
    let sshd = env.run_container(spec).await.expect("start sshd container");
    let mut config = String::new();
    for p in ports {
        config.push_str(&format!("Port {p}\n"));
    }
    let mut files = Vec::new();
    for (i, k) in host_keys.iter().enumerate() {
        let path = format!(
            "/etc/ssh/test_host_key{}",
            if i == 0 {
                String::new()
            } else {
                (i + 1).to_string()
            }
        );
        config.push_str(&format!("HostKey {path}\n"));
        files.push(CopyEntry::file(
            path,
            std::fs::read(k).unwrap(),
            0o600,
            0,
            0,
        ));
    }
    config.push_str(
        "ListenAddress 127.0.0.1\n\
         AuthorizedKeysFile /etc/ssh/authorized/%u\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\n\
         StrictModes yes\nPidFile /run/sshd-test.pid\n",
    );
    config.push_str(extra_config);
    let authorized: String = authorized.iter().map(|k| format!("{k}\n")).collect();
    files.push(CopyEntry::file(
        "/etc/ssh/sshd_test_config",
        config.into(),
        0o644,
        0,
        0,
    ));
    files.push(CopyEntry::dir("/etc/ssh/authorized", 0o755, 0, 0));
    files.push(CopyEntry::file(
        "/etc/ssh/authorized/git",
        authorized.into(),
        0o644,
        0,
        0,
    ));
    env.rt()
        .copy(&sshd.id, &files)
        .await
        .expect("copy sshd files");
    let out = env
        .rt()
        .exec_root(
            &sshd.id,
            &["/usr/sbin/sshd", "-f", "/etc/ssh/sshd_test_config"],
        )
        .await
        .unwrap();
    assert_success(&out, "start sshd");
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    env.sh(
        r#"for p in "$@"; do
             i=0
             until socat -u OPEN:/dev/null "TCP:127.0.0.1:$p" 2>/dev/null; do
               i=$((i+1)); [ "$i" -lt 100 ] || { echo "sshd not listening on $p" >&2; exit 1; }
               sleep 0.1
             done
           done"#,
        &ports,
    )
    .await;
    sshd
}

/// Live (non-zombie) processes in `container` whose argv contains `needle`.
pub async fn live_processes(rt: &dyn ContainerRuntime, container: &str, needle: &str) -> usize {
    let out = rt
        .exec_script(
            container,
            r#"n=0
               for d in /proc/[0-9]*; do
                 st=$(sed -n 's/^.*) \(.\).*$/\1/p' "$d/stat" 2>/dev/null)
                 [ -n "$st" ] && [ "$st" != Z ] || continue
                 c=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
                 case $c in *"$1"*) case $c in *bottle-count*) ;; *) n=$((n+1));; esac;; esac
               done
               echo "$n""#,
            &[needle, "bottle-count"],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "count: {}", out.stderr_lossy());
    out.stdout_lossy().trim().parse().unwrap()
}

/// `ssh <alias> id -un` as uid 1000 in the bottle, offering only `key`'s
/// public half (the agent signs; the `.pub` copied in only selects the
/// identity).
pub async fn ssh_with_only(env: &TestEnv, alias: &str, key: &Path) -> bottle_runtime::ExecOutput {
    let pubfile = format!("/tmp/{alias}.pub");
    env.rt()
        .copy(
            env.bottle(),
            &[CopyEntry::file(
                &pubfile,
                public(key).into_bytes(),
                0o644,
                1000,
                1000,
            )],
        )
        .await
        .unwrap();
    env.exec_as(
        "1000",
        &[
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            &pubfile,
            alias,
            "id",
            "-un",
        ],
    )
    .await
}

/// Files anywhere in `container` (but /proc, /sys, /dev) holding any of
/// `texts`, found with POSIX `find` and `grep -F` (busybox too). The texts
/// travel as grep's argv, which lives only as long as the exec (never a
/// file in the container). One pass: every text becomes `-e TEXT`.
pub async fn find_text(rt: &dyn ContainerRuntime, container: &str, texts: &[String]) -> String {
    let out = rt
        .exec_script(
            container,
            r#"n=$#
               for w in "$@"; do set -- "$@" -e "$w"; done
               shift "$n"
               find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -type f \
                 -exec grep -l -s -F "$@" /dev/null {} + 2>/dev/null
               true"#,
            &texts.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("search for key text in {container}: {e}"));
    assert!(out.success(), "search: {}", out.stderr_lossy());
    out.stdout_lossy()
}
