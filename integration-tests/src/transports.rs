//! The engines reached over other transports than their Unix socket, for
//! running the conformance checks through them (`tests/conformance_transports.rs`):
//!
//! - [`Transport::Tls`] (Docker): a second dockerd with `--tlsverify` on
//!   `tcp://127.0.0.1:PORT` (`scripts/tls-dockerd.sh`), client certificates,
//!   the server verified against the CA made there. Its own daemon, so the
//!   bottle is made there over its Unix socket (the image imported once).
//! - [`Transport::Ssh`] (both): `ssh://root@127.0.0.1:PORT/<engine socket>`
//!   through this machine's sshd (`scripts/ssh-remote.sh`, its own host key
//!   and `ssh -F` config): the tunnel reaches the usual engine socket, so
//!   the usual bottle is seen through it.
//! - [`Transport::Tcp`] (Podman): a second `podman system service` on
//!   `tcp://127.0.0.1:PORT`, same storage as the socket's.
//!
//! Each endpoint is started once per test process, on first use, and
//! stopped by its recorded pid at exit (`atexit`; a reaper process stops it
//! too if the test process is killed).

use crate::harness::{connect, connect_with_timeout, Connection};
use bottle_docker::{DockerEndpoint, DockerRuntime, TlsFiles};
use bottle_podman::{PodmanEndpoint, PodmanRuntime};
use bottle_runtime::{ContainerRuntime, Engine};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// How the runtime under test reaches its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tls,
    Ssh,
    Tcp,
}

impl Transport {
    /// The module name part: `docker_tls::check_x`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tls => "tls",
            Transport::Ssh => "ssh",
            Transport::Tcp => "tcp",
        }
    }
}

/// A connection whose runtime goes over `transport` and whose admin side is
/// the same engine's Unix socket (see the module docs). Starts the endpoint
/// on first use; an error says why it cannot be had.
pub fn connect_over(
    engine: Engine,
    transport: Transport,
    timeout: Duration,
) -> Result<Connection, String> {
    let runtime = runtime_over(engine, transport, timeout)?;
    let admin = match (engine, transport) {
        (Engine::Docker, Transport::Tls) => {
            connect(engine, Some(&tls_dockerd()?.unix())).map_err(|e| e.to_string())?
        }
        _ => connect(engine, None).map_err(|e| e.to_string())?,
    };
    Ok(Connection {
        runtime,
        admin: admin.admin,
    })
}

/// Another runtime like `endpoint` (a runtime from [`connect_over`]) with
/// its own per-call timeout, over the same transport.
pub fn reconnect(
    engine: Engine,
    endpoint: &str,
    timeout: Duration,
) -> Result<Arc<dyn ContainerRuntime>, String> {
    match transport_of(endpoint) {
        Some(transport) => runtime_over(engine, transport, timeout),
        None => Ok(connect_with_timeout(engine, Some(endpoint), timeout)
            .map_err(|e| e.to_string())?
            .runtime),
    }
}

/// Which of this module's transports a runtime's endpoint is, if any
/// (starts nothing).
pub fn transport_of(endpoint: &str) -> Option<Transport> {
    let started = |cell: &OnceLock<Result<String, String>>| {
        cell.get().and_then(|r| r.as_ref().ok()).map(String::as_str) == Some(endpoint)
    };
    if endpoint.starts_with("ssh://") {
        Some(Transport::Ssh)
    } else if TLS
        .get()
        .and_then(|d| d.as_ref().ok())
        .map(|d| d.tcp())
        .as_deref()
        == Some(endpoint)
    {
        Some(Transport::Tls)
    } else if started(&PODMAN_TCP) {
        Some(Transport::Tcp)
    } else {
        None
    }
}

fn runtime_over(
    engine: Engine,
    transport: Transport,
    timeout: Duration,
) -> Result<Arc<dyn ContainerRuntime>, String> {
    let err = |e: bottle_runtime::Error| e.to_string();
    Ok(match (engine, transport) {
        (Engine::Docker, Transport::Tls) => {
            let d = tls_dockerd()?;
            let ep = DockerEndpoint {
                host: d.tcp(),
                from: "test".into(),
                context: None,
                tls: Some(TlsFiles::in_dir(&d.dir.join("certs"))),
            };
            Arc::new(DockerRuntime::connect_endpoint(&ep, timeout).map_err(err)?)
        }
        (Engine::Docker, Transport::Ssh) => {
            let url = ssh_remote()?.url(engine)?;
            Arc::new(DockerRuntime::connect(Some(&url), timeout).map_err(err)?)
        }
        (Engine::Podman, Transport::Ssh) => {
            let remote = ssh_remote()?;
            let ep = PodmanEndpoint {
                uri: remote.url(engine)?,
                from: "test".into(),
                connection: None,
                identity: Some(remote.dir.join("client_key")),
            };
            Arc::new(PodmanRuntime::connect_endpoint(&ep, timeout).map_err(err)?)
        }
        (Engine::Podman, Transport::Tcp) => {
            let url = podman_tcp()?.clone();
            Arc::new(PodmanRuntime::connect(Some(&url), timeout).map_err(err)?)
        }
        (engine, transport) => {
            return Err(format!(
                "no {} transport for {engine} here",
                transport.name()
            ))
        }
    })
}

/// An endpoint started by one of the scripts: its directory and port.
#[derive(Debug)]
pub struct Started {
    pub dir: PathBuf,
    pub port: u16,
}

impl Started {
    /// `tcp://127.0.0.1:PORT`.
    pub fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The second dockerd's own Unix socket.
    pub fn unix(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// `ssh://root@127.0.0.1:PORT` and the path of the engine's usual
    /// socket on the "remote" (this machine).
    pub fn url(&self, engine: Engine) -> Result<String, String> {
        let usual = connect(engine, None).map_err(|e| e.to_string())?;
        let endpoint = usual.runtime.endpoint();
        let socket = endpoint
            .strip_prefix("unix://")
            .ok_or_else(|| format!("ssh needs the engine on a Unix socket, not {endpoint}"))?;
        Ok(format!("ssh://root@127.0.0.1:{}{socket}", self.port))
    }

    /// Logins the remote's sshd accepted so far.
    pub fn ssh_logins(&self) -> usize {
        std::fs::read_to_string(self.dir.join("sshd.log"))
            .unwrap_or_default()
            .matches("Accepted publickey for root")
            .count()
    }
}

static TLS: OnceLock<Result<Started, String>> = OnceLock::new();
static SSH: OnceLock<Result<Started, String>> = OnceLock::new();
static PODMAN_TCP: OnceLock<Result<String, String>> = OnceLock::new();

/// The second dockerd with `--tlsverify`, started once per process.
pub fn tls_dockerd() -> Result<&'static Started, String> {
    TLS.get_or_init(|| start_script("tls-dockerd.sh", "btlsc"))
        .as_ref()
        .map_err(Clone::clone)
}

/// The sshd playing the remote host, started once per process. Sets
/// `BOTTLE_SSH_CONFIG` (read by the tunnel when it starts ssh) to the
/// config the script wrote, for the whole process.
pub fn ssh_remote() -> Result<&'static Started, String> {
    SSH.get_or_init(|| {
        let remote = start_script("ssh-remote.sh", "bsshc")?;
        // Process-wide, once, before any tunnel of this process starts:
        // every ssh here uses this remote's config, never ~/.ssh.
        std::env::set_var(
            "BOTTLE_SSH_CONFIG",
            remote.dir.join("ssh_config").as_os_str(),
        );
        Ok(remote)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `tcp://127.0.0.1:PORT` of a Podman API service started once per process.
pub fn podman_tcp() -> Result<&'static String, String> {
    PODMAN_TCP
        .get_or_init(start_podman_tcp)
        .as_ref()
        .map_err(Clone::clone)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("scripts")
        .join(name)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// `scripts/NAME start DIR PORT`; `NAME stop DIR` and the directory's
/// removal are registered for exit.
fn start_script(name: &'static str, prefix: &str) -> Result<Started, String> {
    // Short path: the second dockerd's containerd socket lives under it.
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?
        .keep();
    let port = free_port()?;
    let stop = move |dir: &Path| {
        let _ = Command::new(script(name))
            .arg("stop")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    };
    let out = Command::new(script(name))
        .arg("start")
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{name}: {e}"))?;
    if !out.status.success() {
        stop(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "{name} start failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // The script's stop checks the recorded pid is still its process.
    reap_when_gone(&[script(name).as_os_str(), "stop".as_ref(), dir.as_os_str()]);
    let d = dir.clone();
    at_exit(Box::new(move || {
        stop(&d);
        let _ = std::fs::remove_dir_all(&d);
    }));
    Ok(Started { dir, port })
}

fn start_podman_tcp() -> Result<String, String> {
    let port = free_port()?;
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new("podman")
        .args(["system", "service", "--time=0", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("podman system service: {e}"))?;
    let pid = child.id().to_string();
    // Killed by the reaper once this process is gone: until then the pid
    // is this service (a child nobody else waits for).
    reap_when_gone(&["kill".as_ref(), pid.as_ref()]);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the Podman service on {url} did not come up"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(url)
}

/// Run `argv` once this process has exited, however it ended (also
/// SIGKILL): a detached shell polls for this pid.
fn reap_when_gone(argv: &[&std::ffi::OsStr]) {
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; shift; exec "$@""#)
        .arg("reaper")
        .arg(std::process::id().to_string())
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("cannot start the reaper for {argv:?}: {e}");
    }
}

type ExitHook = Box<dyn FnOnce() + Send>;
static AT_EXIT: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());

/// Run `hook` when the process exits normally (libtest returns from main or
/// calls `exit`): statics are never dropped, so a fixture shared by the
/// tests of one binary is stopped here.
fn at_exit(hook: ExitHook) {
    static REGISTER: Once = Once::new();
    extern "C" fn run_hooks() {
        let hooks = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()));
        for hook in hooks.into_iter().rev() {
            hook();
        }
    }
    extern "C" {
        fn atexit(cb: extern "C" fn()) -> std::ffi::c_int;
    }
    AT_EXIT.lock().unwrap().push(hook);
    REGISTER.call_once(|| {
        // SAFETY: registers a plain function without arguments, as C's atexit expects.
        unsafe {
            atexit(run_hooks);
        }
    });
}
