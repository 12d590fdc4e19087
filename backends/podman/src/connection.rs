//! Which Podman endpoint to use, the way the podman CLI picks it: a host
//! setting, `CONTAINER_HOST` (+ `CONTAINER_SSHKEY`), a named system
//! connection, the default connection, the rootless then rootful socket.
//!
//! Connections come from `podman-connections.json` (Podman 5:
//! `$PODMAN_CONNECTIONS_CONF`, else `$XDG_CONFIG_HOME/containers/`, default
//! `~/.config/containers/`) and from containers.conf `[engine] active_service`
//! and `[engine.service_destinations.NAME]` (Podman 4; `$CONTAINERS_CONF`,
//! else `/usr/share/containers/`, `/etc/containers/` and the user's file,
//! later ones winning). The JSON file wins where both name one.

use crate::{PodmanRuntime, ENGINE, MAX_CONCURRENT_EXECS};
use bottle_runtime::{Error, Result};
use bottle_tunnel::{SshTarget, SshTunnel};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) const ROOTFUL_SOCKET: &str = "unix:///run/podman/podman.sock";

/// A resolved endpoint: where, why, and with which ssh identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanEndpoint {
    /// `unix:///…`, `tcp://…` or `ssh://user@host[:port]/socket`.
    pub uri: String,
    /// Why this one: `host setting`, `CONTAINER_HOST`, `connection NAME`,
    /// `default connection NAME`, `rootless socket`, `default`.
    pub from: String,
    /// The connection it came from, when one did.
    pub connection: Option<String>,
    /// The ssh identity file for an `ssh://` URI (`CONTAINER_SSHKEY` or the
    /// connection's `Identity`).
    pub identity: Option<PathBuf>,
}

/// The variables selection reads. Injectable so tests never depend on the
/// caller's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodmanEnv {
    /// `CONTAINER_HOST`.
    pub host: Option<String>,
    /// `CONTAINER_SSHKEY`.
    pub sshkey: Option<PathBuf>,
    /// `podman-connections.json`'s path.
    pub connections_file: Option<PathBuf>,
    /// containers.conf files, lowest precedence first.
    pub containers_conf: Vec<PathBuf>,
    /// `XDG_RUNTIME_DIR`, for the rootless socket.
    pub runtime_dir: Option<PathBuf>,
}

impl PodmanEnv {
    /// From the process environment.
    pub fn from_process() -> PodmanEnv {
        PodmanEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any variable lookup (empty values count as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> PodmanEnv {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let config_home = get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|h| Path::new(&h).join(".config")));
        let user_dir = config_home.map(|c| c.join("containers"));
        let containers_conf = match get("CONTAINERS_CONF") {
            Some(one) => vec![PathBuf::from(one)],
            None => [
                Some(PathBuf::from("/usr/share/containers/containers.conf")),
                Some(PathBuf::from("/etc/containers/containers.conf")),
                user_dir.as_ref().map(|d| d.join("containers.conf")),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        PodmanEnv {
            host: get("CONTAINER_HOST").map(|h| h.trim().to_string()),
            sshkey: get("CONTAINER_SSHKEY").map(PathBuf::from),
            connections_file: get("PODMAN_CONNECTIONS_CONF")
                .map(PathBuf::from)
                .or_else(|| user_dir.map(|d| d.join("podman-connections.json"))),
            containers_conf,
            runtime_dir: get("XDG_RUNTIME_DIR").map(PathBuf::from),
        }
    }
}

/// One named connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub uri: String,
    pub identity: Option<PathBuf>,
}

/// Every connection the files define, and the default one's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connections {
    pub default: Option<String>,
    pub named: BTreeMap<String, Connection>,
    /// The files read, for messages.
    pub files: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct ConnectionsFile {
    #[serde(rename = "Connection", default)]
    connection: ConnectionsSection,
}

#[derive(Deserialize, Default)]
struct ConnectionsSection {
    #[serde(rename = "Default", default)]
    default: Option<String>,
    #[serde(rename = "Connections", default)]
    connections: BTreeMap<String, JsonConnection>,
}

#[derive(Deserialize)]
struct JsonConnection {
    #[serde(rename = "URI")]
    uri: String,
    #[serde(rename = "Identity", default)]
    identity: Option<String>,
}

#[derive(Deserialize, Default)]
struct ContainersConf {
    #[serde(default)]
    engine: EngineSection,
}

#[derive(Deserialize, Default)]
struct EngineSection {
    #[serde(default)]
    active_service: Option<String>,
    #[serde(default)]
    service_destinations: BTreeMap<String, TomlDestination>,
}

#[derive(Deserialize)]
struct TomlDestination {
    uri: String,
    #[serde(default)]
    identity: Option<String>,
}

fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match bottle_runtime::file::read_text(path, bottle_runtime::file::MAX_CONFIG_FILE) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn identity(s: Option<String>) -> Option<PathBuf> {
    s.filter(|s| !s.trim().is_empty()).map(PathBuf::from)
}

/// Read the connection files `env` names (missing files are no connections;
/// unreadable or invalid ones are errors naming the file).
pub fn read_connections(env: &PodmanEnv) -> Result<Connections, String> {
    let mut out = Connections::default();
    for path in &env.containers_conf {
        let Some(text) = read_optional(path)? else {
            continue;
        };
        let conf: ContainersConf = toml::from_str(&text)
            .map_err(|e| format!("{} is not a valid containers.conf: {e}", path.display()))?;
        out.files.push(path.clone());
        if let Some(a) = conf.engine.active_service.filter(|a| !a.is_empty()) {
            out.default = Some(a);
        }
        for (name, d) in conf.engine.service_destinations {
            let identity = identity(d.identity);
            out.named.insert(
                name,
                Connection {
                    uri: d.uri,
                    identity,
                },
            );
        }
    }
    if let Some(path) = &env.connections_file {
        if let Some(text) = read_optional(path)? {
            let file: ConnectionsFile = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a Podman connections file: {e}", path.display()))?;
            out.files.push(path.clone());
            let c = file.connection;
            if let Some(d) = c.default.filter(|d| !d.is_empty()) {
                out.default = Some(d);
            }
            for (name, j) in c.connections {
                let identity = identity(j.identity);
                out.named.insert(
                    name,
                    Connection {
                        uri: j.uri,
                        identity,
                    },
                );
            }
        }
    }
    Ok(out)
}

impl Connections {
    fn unknown(&self, name: &str) -> String {
        let names: Vec<&str> = self.named.keys().map(String::as_str).collect();
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        format!(
            "unknown Podman connection `{}` (known: {}; read: {})",
            bottle_tunnel::escape(name),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
            if files.is_empty() {
                "no connection files".into()
            } else {
                files.join(", ")
            },
        )
    }

    fn endpoint(&self, name: &str, from: String) -> Result<PodmanEndpoint, String> {
        let c = self.named.get(name).ok_or_else(|| self.unknown(name))?;
        Ok(PodmanEndpoint {
            uri: c.uri.trim().to_string(),
            from,
            connection: Some(name.to_string()),
            identity: c.identity.clone(),
        })
    }
}

/// Pick the endpoint: `host` (the host setting), `CONTAINER_HOST` (with
/// `CONTAINER_SSHKEY`), the connection `connection` names (`--connection`,
/// `CONTAINER_CONNECTION`), the default connection, the rootless socket if
/// it exists, the rootful socket. The error is a configuration problem.
pub fn resolve(
    host: Option<&str>,
    connection: Option<&str>,
    env: &PodmanEnv,
) -> Result<PodmanEndpoint, String> {
    let plain = |uri: &str, from: &str, identity: Option<PathBuf>| PodmanEndpoint {
        uri: uri.trim().to_string(),
        from: from.to_string(),
        connection: None,
        identity,
    };
    if let Some(h) = host.filter(|h| !h.trim().is_empty()) {
        return Ok(plain(h, "host setting", env.sshkey.clone()));
    }
    if let Some(h) = &env.host {
        return Ok(plain(h, "CONTAINER_HOST", env.sshkey.clone()));
    }
    let wanted = connection.map(str::trim).filter(|c| !c.is_empty());
    // The files are only read when a connection could be used.
    let conns = read_connections(env)?;
    if let Some(name) = wanted {
        return conns.endpoint(name, format!("connection {name}"));
    }
    if let Some(name) = conns.default.clone() {
        return conns.endpoint(&name, format!("default connection {name}"));
    }
    if let Some(dir) = &env.runtime_dir {
        let sock = dir.join("podman/podman.sock");
        if sock.exists() {
            return Ok(plain(
                &format!("unix://{}", sock.display()),
                "rootless socket",
                None,
            ));
        }
    }
    Ok(plain(ROOTFUL_SOCKET, "default", None))
}

impl PodmanRuntime {
    /// Create a runtime for a resolved endpoint (see [`resolve`]): an
    /// `ssh://user@host[:port]/socket` URI is reached through one system
    /// `ssh` process forwarding that socket (podman-api has no ssh
    /// transport), with the endpoint's identity file. Nothing is contacted
    /// until the first call.
    pub fn connect_endpoint(ep: &PodmanEndpoint, timeout: Duration) -> Result<PodmanRuntime> {
        if ep.uri.starts_with("ssh://") {
            return Self::connect_ssh(&ep.uri, ep.identity.clone(), timeout);
        }
        Self::connect(Some(&ep.uri), timeout)
    }

    pub(crate) fn connect_ssh(
        uri: &str,
        identity: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<PodmanRuntime> {
        let invalid = |reason: String| Error::InvalidRequest {
            engine: ENGINE,
            container: String::new(),
            operation: "connect",
            reason,
        };
        let mut target = SshTarget::parse(uri, None).map_err(invalid)?;
        target.identity = identity;
        let endpoint = target.url();
        let tunnel = SshTunnel::new(target).map_err(invalid)?;
        Ok(PodmanRuntime {
            podman: podman_api::Podman::unix(tunnel.local_socket()),
            endpoint,
            timeout,
            exec_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_EXECS),
            tunnel: Some(tunnel),
        })
    }

    /// For `ssh://`: start the ssh process on first use (and again if it
    /// died); an ssh that cannot log in is `Unreachable` naming the endpoint.
    pub(crate) async fn tunnel_ready(&self) -> Result<()> {
        let Some(tunnel) = &self.tunnel else {
            return Ok(());
        };
        tunnel
            .ready(self.timeout)
            .await
            .map_err(|e| Error::Unreachable {
                engine: ENGINE,
                endpoint: self.endpoint.clone(),
                source: e.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"Connection":{"Default":"machine","Connections":{
        "machine":{"URI":"ssh://core@127.0.0.1:50123/run/user/501/podman/podman.sock","Identity":"/k/machine","IsMachine":true},
        "other":{"URI":"ssh://root@10.0.0.2/run/podman/podman.sock"}}},
        "Farm":{}}"#;

    const CONF: &str = r#"
[engine]
active_service = "old"
[engine.service_destinations.old]
uri = "ssh://root@127.0.0.1:2222/run/podman/podman.sock"
identity = "/k/old"
[engine.service_destinations.other]
uri = "unix:///overridden"
"#;

    fn env_with(dir: &Path, json: Option<&str>, conf: Option<&str>) -> PodmanEnv {
        let jpath = dir.join("podman-connections.json");
        let cpath = dir.join("containers.conf");
        if let Some(j) = json {
            std::fs::write(&jpath, j).unwrap();
        }
        if let Some(c) = conf {
            std::fs::write(&cpath, c).unwrap();
        }
        PodmanEnv {
            connections_file: Some(jpath),
            containers_conf: vec![cpath],
            runtime_dir: Some(dir.join("no-runtime")),
            ..PodmanEnv::default()
        }
    }

    #[test]
    fn podman5_connections_json_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with(dir.path(), Some(JSON), None);
        let c = read_connections(&env).unwrap();
        assert_eq!(c.default.as_deref(), Some("machine"));
        assert_eq!(
            c.named["machine"],
            Connection {
                uri: "ssh://core@127.0.0.1:50123/run/user/501/podman/podman.sock".into(),
                identity: Some("/k/machine".into()),
            }
        );
        assert_eq!(c.named["other"].identity, None);
        let ep = resolve(None, None, &env).unwrap();
        assert_eq!(ep.from, "default connection machine");
        assert_eq!(ep.identity.as_deref(), Some(Path::new("/k/machine")));
    }

    #[test]
    fn podman4_service_destinations_are_read_and_json_wins() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with(dir.path(), None, Some(CONF));
        let ep = resolve(None, None, &env).unwrap();
        assert_eq!(
            (ep.uri.as_str(), ep.from.as_str(), ep.identity.as_deref()),
            (
                "ssh://root@127.0.0.1:2222/run/podman/podman.sock",
                "default connection old",
                Some(Path::new("/k/old"))
            )
        );
        let env = env_with(dir.path(), Some(JSON), Some(CONF));
        let c = read_connections(&env).unwrap();
        assert_eq!(c.default.as_deref(), Some("machine"));
        assert_eq!(
            c.named["other"].uri,
            "ssh://root@10.0.0.2/run/podman/podman.sock"
        );
        assert!(c.named.contains_key("old"));
    }

    #[test]
    fn order_host_then_container_host_then_connection_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = env_with(dir.path(), Some(JSON), None);
        env.sshkey = Some("/k/env".into());
        let ep = resolve(None, Some("other"), &env).unwrap();
        assert_eq!(
            (ep.from.as_str(), ep.connection.as_deref()),
            ("connection other", Some("other"))
        );
        env.host = Some("ssh://u@127.0.0.1:1/s.sock".into());
        let ep = resolve(None, Some("other"), &env).unwrap();
        assert_eq!(
            (ep.from.as_str(), ep.identity.as_deref()),
            ("CONTAINER_HOST", Some(Path::new("/k/env")))
        );
        let ep = resolve(Some("unix:///h.sock"), Some("other"), &env).unwrap();
        assert_eq!(
            (ep.uri.as_str(), ep.from.as_str()),
            ("unix:///h.sock", "host setting")
        );
        // No files, no runtime socket: the rootful default.
        let none = env_with(&dir.path().join("missing"), None, None);
        let ep = resolve(None, None, &none).unwrap();
        assert_eq!(
            (ep.uri.as_str(), ep.from.as_str()),
            (ROOTFUL_SOCKET, "default")
        );
        // A rootless socket comes before the rootful one.
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("podman")).unwrap();
        std::fs::write(run.join("podman/podman.sock"), b"").unwrap();
        let with_run = PodmanEnv {
            runtime_dir: Some(run.clone()),
            ..none
        };
        let ep = resolve(None, None, &with_run).unwrap();
        assert_eq!(ep.from, "rootless socket");
    }

    #[test]
    fn unknown_connection_lists_the_known_names() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with(dir.path(), Some(JSON), Some(CONF));
        let err = resolve(None, Some("nope"), &env).unwrap_err();
        assert!(
            err.starts_with("unknown Podman connection `nope` (known: machine, old, other; read: "),
            "{err}"
        );
        let bad = env_with(&dir.path().join("x"), None, None);
        std::fs::create_dir_all(dir.path().join("x")).unwrap();
        std::fs::write(dir.path().join("x/podman-connections.json"), "{").unwrap();
        let err = resolve(None, None, &bad).unwrap_err();
        assert!(err.contains("is not a Podman connections file"), "{err}");
    }

    #[test]
    fn env_lookup_follows_podman_defaults() {
        let env = PodmanEnv::from_lookup(|n| match n {
            "HOME" => Some("/home/u".into()),
            "CONTAINER_SSHKEY" => Some("/k".into()),
            _ => None,
        });
        assert_eq!(
            env.connections_file.as_deref(),
            Some(Path::new(
                "/home/u/.config/containers/podman-connections.json"
            ))
        );
        assert_eq!(env.containers_conf.len(), 3);
        assert_eq!(env.sshkey.as_deref(), Some(Path::new("/k")));
        let env = PodmanEnv::from_lookup(|n| match n {
            "XDG_CONFIG_HOME" => Some("/x".into()),
            "PODMAN_CONNECTIONS_CONF" => Some("/p.json".into()),
            "CONTAINERS_CONF" => Some("/c.conf".into()),
            _ => None,
        });
        assert_eq!(env.connections_file.as_deref(), Some(Path::new("/p.json")));
        assert_eq!(env.containers_conf, vec![PathBuf::from("/c.conf")]);
    }
}
