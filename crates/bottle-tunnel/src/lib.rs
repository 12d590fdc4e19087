//! An engine's Unix socket on another host, reached through one system `ssh`.
//!
//! Written here rather than taken from bollard's `ssh` feature: that one
//! starts a new ssh master (the `openssh` crate) for every HTTP connection,
//! offers no BatchMode or config-file option, and podman-api has no ssh
//! transport at all. One `ssh -N -L LOCAL:REMOTE` per runtime serves both
//! engines: the user's `~/.ssh/config`, agent and `known_hosts` apply,
//! `BatchMode=yes` means nothing ever prompts, and the engine client speaks
//! HTTP to a local socket in a private (0700) temporary directory.
//!
//! The ssh process is started on first use ([`SshTunnel::ready`]), shared by
//! every call, and ended by [`SshTunnel::shutdown`], by dropping the tunnel,
//! or (if bottle dies without unwinding) by the kernel: it gets SIGTERM when
//! the thread that started it ends (`PR_SET_PDEATHSIG`).
//!
//! `BOTTLE_SSH_CONFIG` names an ssh config file used instead of the user's
//! own (`ssh -F`), e.g. for tests or a dedicated jump setup.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// The ssh config file variable: `ssh -F $BOTTLE_SSH_CONFIG` when set.
pub const CONFIG_VAR: &str = "BOTTLE_SSH_CONFIG";

/// What ssh's stderr keeps for an error message (its last bytes).
const STDERR_TAIL: usize = 2048;

/// `ssh://[user@]host[:port][/socket]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The engine's socket on the remote host.
    pub socket: String,
    /// An identity file (`ssh -i`, with `IdentitiesOnly=yes`).
    pub identity: Option<PathBuf>,
}

impl SshTarget {
    /// Parse an `ssh://` URL. `default_socket` is used when the URL has no
    /// path (Docker's form); without one a path is required (Podman's form).
    /// A query (`?secure=true`, Podman's) is ignored. A password in the URL
    /// is refused without repeating it.
    pub fn parse(url: &str, default_socket: Option<&str>) -> Result<SshTarget, String> {
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| "not an ssh:// URL".to_string())?;
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if user.is_some_and(|u| u.contains(':')) {
            return Err(
                "an ssh:// URL with a password is not supported (use a key or the agent)".into(),
            );
        }
        let (host, port) = split_port(hostport)?;
        // The manifest's allow-list for ssh_config values: an older ssh
        // with `Match exec` or `%r`/`%h` in a ProxyCommand runs `$(…)`,
        // backticks and `;` in them. A host may be an IPv6 address.
        let allowed = |s: &str, colon: bool| {
            s.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') || (colon && c == ':')
            })
        };
        let bad = |s: &str, colon: bool| {
            s.is_empty() || s.len() > 255 || s.starts_with('-') || !allowed(s, colon)
        };
        if bad(host, true) {
            return Err(format!("ssh://{}: not a host name", escape(host)));
        }
        if let Some(u) = user.filter(|u| bad(u, false)) {
            return Err(format!("ssh:// user `{}` is not a user name", escape(u)));
        }
        let socket = match (path, default_socket) {
            ("" | "/", Some(d)) => d.to_string(),
            ("" | "/", None) => {
                return Err(format!(
                    "ssh://{}: no socket path (e.g. ssh://user@host/run/podman/podman.sock)",
                    escape(hostport)
                ))
            }
            (p, _) => p.to_string(),
        };
        // `-L LOCAL:REMOTE` splits at ':'.
        if socket.contains(':') || socket.chars().any(is_unsafe_char) {
            return Err(format!(
                "ssh:// socket path `{}` is not usable",
                escape(&socket)
            ));
        }
        Ok(SshTarget {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            socket,
            identity: None,
        })
    }

    /// The URL form, for messages: `ssh://user@host:port/socket`.
    pub fn url(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("ssh://{user}{host}{port}{}", self.socket)
    }
}

fn split_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    let parse = |p: &str| {
        p.parse::<u16>()
            .map(Some)
            .map_err(|_| format!("ssh:// port `{}` is not a number", escape(p)))
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "ssh://: unclosed [ in the host".to_string())?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, parse(p)?)),
            None if after.is_empty() => Ok((host, None)),
            None => Err("ssh://: junk after the host".into()),
        };
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((h, parse(p)?)),
        None => Ok((hostport, None)),
    }
}

fn is_unsafe_char(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// Control characters and non-ASCII escaped: ssh's output and parts of a
/// URL reach the operator's terminal.
pub fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c == '\n' || (!c.is_control() && c.is_ascii()) {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect()
}

/// The private directories' names: `bottle-ssh-<pid>-<random>`.
const DIR_PREFIX: &str = "bottle-ssh-";

/// Remove the tunnel directories (and stale sockets) in `tmp` that a
/// process of this user left when it was killed (SIGKILL runs no drop):
/// ours by owner, a directory (not a link), and its pid no longer running.
/// A pid reused meanwhile only keeps a directory longer.
fn sweep_stale(tmp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

struct Running {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    drain: tokio::task::JoinHandle<()>,
}

/// One ssh process forwarding a local socket to [`SshTarget::socket`].
pub struct SshTunnel {
    target: SshTarget,
    local: PathBuf,
    running: tokio::sync::Mutex<Option<Running>>,
    // Last, so the socket's directory goes after the ssh process is killed.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for SshTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTunnel")
            .field("target", &self.target.url())
            .field("local", &self.local)
            .finish()
    }
}

impl SshTunnel {
    /// Make the private directory for the local socket; ssh is not started
    /// yet (see [`ready`](Self::ready)).
    pub fn new(target: SshTarget) -> Result<SshTunnel, String> {
        use std::os::unix::fs::PermissionsExt;
        // 0700 (tempfile's default follows the umask): only this user
        // reaches the socket, which is the remote engine's root.
        sweep_stale(&std::env::temp_dir());
        // The pid in the name tells a later run whether its owner is gone.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| format!("cannot make a private directory for the ssh tunnel: {e}"))?;
        let local = dir.path().join("engine.sock");
        Ok(SshTunnel {
            target,
            local,
            running: tokio::sync::Mutex::new(None),
            _dir: dir,
        })
    }

    /// Where the engine client connects.
    pub fn local_socket(&self) -> &Path {
        &self.local
    }

    /// The remote end.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The process id of the running ssh, if one runs.
    pub async fn pid(&self) -> Option<u32> {
        self.running
            .lock()
            .await
            .as_ref()
            .and_then(|r| r.child.id())
    }

    /// Start ssh unless it already runs, and wait until it has logged in
    /// and listens on the local socket (at most `timeout`). A failure ends
    /// the ssh process and says why, with ssh's own last words (escaped).
    pub async fn ready(&self, timeout: Duration) -> Result<(), String> {
        let mut running = self.running.lock().await;
        if let Some(r) = running.as_mut() {
            match r.child.try_wait() {
                Ok(None) => return Ok(()),
                // It ended (remote gone, killed): start a new one below.
                _ => *running = None,
            }
        }
        let _ = std::fs::remove_file(&self.local);
        let mut r = self.spawn(timeout)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = r.child.try_wait() {
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut r.drain).await;
                return Err(self.failed(&format!("ssh exited ({status})"), &r));
            }
            // ssh binds the socket a moment before it listens: a connect
            // in between is refused, so only an accepted connect is ready.
            if is_socket(&self.local)
                && std::os::unix::net::UnixStream::connect(&self.local).is_ok()
            {
                *running = Some(r);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = r.child.kill().await;
                return Err(self.failed(&format!("ssh did not log in within {timeout:?}"), &r));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// End the ssh process now (also done on drop).
    pub fn shutdown(&self) {
        if let Ok(mut running) = self.running.try_lock() {
            if let Some(mut r) = running.take() {
                let _ = r.child.start_kill();
                let _ = r.child.try_wait();
            }
        }
    }

    fn failed(&self, what: &str, r: &Running) -> String {
        let tail = r.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&tail);
        // ssh's last few lines, without its banner art and CRs.
        let lines: Vec<String> = text
            .lines()
            .map(|l| escape(l.trim()))
            .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '@'))
            .collect();
        let said = lines[lines.len().saturating_sub(3)..].join("; ");
        if said.is_empty() {
            format!("{what} reaching {}", self.target.url())
        } else {
            format!("{what} reaching {}: {said}", self.target.url())
        }
    }

    fn spawn(&self, timeout: Duration) -> Result<Running, String> {
        let t = &self.target;
        let mut cmd = Command::new("ssh");
        if let Some(cfg) = std::env::var_os(CONFIG_VAR).filter(|v| !v.is_empty()) {
            cmd.arg("-F").arg(cfg);
        }
        let secs = timeout.as_secs().max(1);
        cmd.args(["-N", "-T"]);
        for opt in [
            "BatchMode=yes",
            "ExitOnForwardFailure=yes",
            // Our own process, never a mux client of someone's master.
            "ControlMaster=no",
            "ControlPath=none",
            "ServerAliveInterval=15",
            "ServerAliveCountMax=3",
            "StreamLocalBindUnlink=yes",
            &format!("ConnectTimeout={secs}"),
        ] {
            cmd.arg("-o").arg(opt);
        }
        if let Some(id) = &t.identity {
            cmd.arg("-i").arg(id).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(p) = t.port {
            cmd.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &t.user {
            cmd.arg("-l").arg(u);
        }
        let mut forward = self.local.as_os_str().to_owned();
        forward.push(":");
        forward.push(&t.socket);
        cmd.arg("-L").arg(forward).arg("--").arg(&t.host);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let parent = rustix::process::getpid();
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))?;
                // The parent may have gone before the prctl took effect.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start ssh for {}: {e}", t.url()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        // Drained for as long as ssh runs, keeping only the tail.
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut tail) = sink.lock() {
                    tail.extend_from_slice(&buf[..n]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL);
                    tail.drain(..excess);
                }
            }
        });
        Ok(Running {
            child,
            stderr,
            drain,
        })
    }
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.get_mut().take() {
            let _ = r.child.start_kill();
            let _ = r.child.try_wait();
            r.drain.abort();
        }
    }
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_like_docker_and_podman() {
        let t =
            SshTarget::parse("ssh://root@127.0.0.1:2222", Some("/var/run/docker.sock")).unwrap();
        assert_eq!(
            (
                t.user.as_deref(),
                t.host.as_str(),
                t.port,
                t.socket.as_str()
            ),
            (
                Some("root"),
                "127.0.0.1",
                Some(2222),
                "/var/run/docker.sock"
            )
        );
        assert_eq!(t.url(), "ssh://root@127.0.0.1:2222/var/run/docker.sock");
        let t = SshTarget::parse(
            "ssh://core@[::1]:22/run/user/1000/podman/podman.sock?secure=true",
            None,
        )
        .unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.socket.as_str()),
            ("::1", Some(22), "/run/user/1000/podman/podman.sock")
        );
        let t = SshTarget::parse("ssh://example", Some("/d.sock")).unwrap();
        assert_eq!((t.user, t.port), (None, None));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_a_password() {
        let err = SshTarget::parse("ssh://u:hunter2@h", Some("/s")).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        for bad in [
            "ssh://-oProxyCommand=x/s",
            "ssh://u@/s",
            "ssh://h:port/s",
            "ssh://-l@h/s",
            "ssh://h/a:b",
            "ssh://h\n/s",
            "tcp://h",
            "ssh://$(touch${IFS}x)@h/s",
            "ssh://`id`@h/s",
            "ssh://u;id@h/s",
            "ssh://h$(id)/s",
            "ssh://h%h/s",
        ] {
            assert!(SshTarget::parse(bad, Some("/s")).is_err(), "{bad:?}");
        }
        assert!(SshTarget::parse("ssh://h", None)
            .unwrap_err()
            .contains("no socket path"));
    }

    #[test]
    fn the_local_socket_is_in_a_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let t = SshTarget::parse("ssh://h", Some("/s")).unwrap();
        let tunnel = SshTunnel::new(t).unwrap();
        let dir = tunnel.local_socket().parent().unwrap();
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[tokio::test]
    async fn a_failed_login_names_the_endpoint_and_leaves_no_process() {
        let mut t = SshTarget::parse("ssh://nobody@127.0.0.1:1/x.sock", None).unwrap();
        t.identity = Some("/nonexistent-key".into());
        let tunnel = SshTunnel::new(t).unwrap();
        let err = tunnel.ready(Duration::from_secs(5)).await.unwrap_err();
        assert!(
            err.contains("ssh exited") && err.contains("ssh://nobody@127.0.0.1:1/x.sock"),
            "{err}"
        );
        assert_eq!(tunnel.pid().await, None);
        let dir = tunnel._dir.path().to_path_buf();
        drop(tunnel);
        assert!(!dir.exists());
    }
}
