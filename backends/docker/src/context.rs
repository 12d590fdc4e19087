//! Which Docker endpoint to use, the way the docker CLI picks it: a host
//! setting, `DOCKER_HOST`, a named context, the default socket; TLS from
//! `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH` or from the context's store.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The context that means "the default socket" (Docker's own name for it).
pub const DEFAULT_CONTEXT: &str = "default";

pub(crate) const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Client TLS material for a `tcp://` endpoint. The server's certificate is
/// always verified against `ca`; `cert` and `key` authenticate the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir` (Docker's names).
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// A resolved endpoint: where, why, and with which TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerEndpoint {
    /// The engine's address as given (`unix:///…`, `tcp://…`).
    pub host: String,
    /// Why this one: `host setting`, `DOCKER_HOST`, `context NAME`, `default`.
    pub from: String,
    /// The context it came from, when one did.
    pub context: Option<String>,
    /// TLS for a `tcp://` host; `None` is plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// The Docker variables selection reads. Injectable so tests never depend
/// on the caller's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerEnv {
    /// `DOCKER_HOST`.
    pub host: Option<String>,
    /// `DOCKER_TLS_VERIFY` set and not empty (as the docker CLI reads it).
    pub tls_verify: bool,
    /// `DOCKER_CERT_PATH`, else the config directory.
    pub cert_path: Option<PathBuf>,
    /// `DOCKER_CONFIG`, else `~/.docker`.
    pub config_dir: Option<PathBuf>,
}

impl DockerEnv {
    /// From the process environment.
    pub fn from_process() -> DockerEnv {
        DockerEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any variable lookup (empty values count as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> DockerEnv {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let config_dir = get("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|h| Path::new(&h).join(".docker")));
        DockerEnv {
            host: get("DOCKER_HOST").map(|h| h.trim().to_string()),
            tls_verify: get("DOCKER_TLS_VERIFY").is_some(),
            cert_path: get("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .or_else(|| config_dir.clone()),
            config_dir,
        }
    }

    /// `DOCKER_TLS_VERIFY` for `host` (named by `from`): TLS from the
    /// certificate directory, or a refusal when it would not be verified TLS.
    fn env_tls(&self, host: &str, from: &str) -> Result<Option<TlsFiles>, String> {
        if !self.tls_verify {
            return Ok(None);
        }
        if !is_network(host) {
            return Err(format!(
                "DOCKER_TLS_VERIFY is set but the {from} `{host}` is not a tcp:// address; bottle never drops a TLS request (unset DOCKER_TLS_VERIFY or use tcp://)"
            ));
        }
        match &self.cert_path {
            Some(dir) => Ok(Some(TlsFiles::in_dir(dir))),
            None => Err(
                "DOCKER_TLS_VERIFY is set but there is no DOCKER_CERT_PATH (or HOME) to find ca.pem, cert.pem and key.pem in".to_string(),
            ),
        }
    }
}

/// A host spoken to over TCP: `http://` is `tcp://` (TLS when asked for).
pub(crate) fn is_network(host: &str) -> bool {
    host.starts_with("tcp://") || host.starts_with("http://")
}

/// Pick the endpoint: `host` (the host setting), then `DOCKER_HOST`, then
/// the context `context` names (`default`: the default socket), then the
/// default socket. `DOCKER_TLS_VERIFY` applies to the first two. The error
/// is a configuration problem (an unknown or unreadable context).
pub fn resolve(
    host: Option<&str>,
    context: Option<&str>,
    env: &DockerEnv,
) -> Result<DockerEndpoint, String> {
    let plain = |host: &str, from: &str| -> Result<DockerEndpoint, String> {
        let host = host.trim();
        Ok(DockerEndpoint {
            host: host.to_string(),
            from: from.to_string(),
            context: None,
            tls: env.env_tls(host, from)?,
        })
    };
    if let Some(h) = host.filter(|h| !h.trim().is_empty()) {
        return plain(h, "host setting");
    }
    if let Some(h) = &env.host {
        return plain(h, "DOCKER_HOST");
    }
    match context.map(str::trim).filter(|c| !c.is_empty()) {
        Some(DEFAULT_CONTEXT) => Ok(DockerEndpoint {
            host: DEFAULT_ENDPOINT.to_string(),
            from: format!("context {DEFAULT_CONTEXT}"),
            context: Some(DEFAULT_CONTEXT.to_string()),
            tls: None,
        }),
        Some(name) => {
            let dir = env.config_dir.as_deref().ok_or_else(|| {
                format!("Docker context `{name}`: no DOCKER_CONFIG or HOME to find it in")
            })?;
            read_context(dir, name)
        }
        None => Ok(DockerEndpoint {
            host: DEFAULT_ENDPOINT.to_string(),
            from: "default".to_string(),
            context: None,
            tls: None,
        }),
    }
}

// The context store's layout (docker/cli `cli/context/store`): one
// directory per context, named by the hex SHA-256 of its name.
fn context_id(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Endpoints", default)]
    endpoints: BTreeMap<String, MetaEndpoint>,
}

#[derive(Deserialize)]
struct MetaEndpoint {
    #[serde(rename = "Host", default)]
    host: Option<String>,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The names of the contexts in `config_dir`'s store, `default` first.
pub fn context_names(config_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(config_dir.join("contexts").join("meta"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let text = bottle_runtime::file::read_text(
                &entry.path().join("meta.json"),
                bottle_runtime::file::MAX_CONFIG_FILE,
            )
            .ok()?;
            let meta: Meta = serde_json::from_str(&text).ok()?;
            Some(meta.name).filter(|n| !n.is_empty() && n != DEFAULT_CONTEXT)
        })
        .collect();
    names.sort();
    names.insert(0, DEFAULT_CONTEXT.to_string());
    names
}

/// Read context `name` from the store in `config_dir`.
pub fn read_context(config_dir: &Path, name: &str) -> Result<DockerEndpoint, String> {
    let id = context_id(name);
    let meta_path = config_dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let text =
        match bottle_runtime::file::read_text(&meta_path, bottle_runtime::file::MAX_CONFIG_FILE) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "unknown Docker context `{name}` (known: {}; store {})",
                    context_names(config_dir).join(", "),
                    config_dir.join("contexts").display()
                ))
            }
            Err(e) => return Err(format!("cannot read {}: {e}", meta_path.display())),
        };
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a Docker context: {e}", meta_path.display()))?;
    let ep = meta
        .endpoints
        .get("docker")
        .and_then(|d| d.host.as_deref().map(|h| (h.trim(), d.skip_tls_verify)))
        .filter(|(h, _)| !h.is_empty());
    let Some((host, skip_verify)) = ep else {
        return Err(format!(
            "Docker context `{name}` has no docker endpoint ({})",
            meta_path.display()
        ));
    };
    let tls_dir = config_dir
        .join("contexts")
        .join("tls")
        .join(&id)
        .join("docker");
    if skip_verify {
        // bollard's TLS transport always verifies; skipping would mean a
        // hand-written transport, and a silent downgrade is worse.
        return Err(format!(
            "Docker context `{name}` sets SkipTLSVerify; bottle always verifies the engine's certificate (give the context a ca.pem instead)"
        ));
    }
    // Any entry there (even a dangling link) is a request for TLS.
    let has_tls = std::fs::symlink_metadata(&tls_dir).is_ok();
    let tls = match (has_tls, is_network(host)) {
        (true, true) => Some(TlsFiles::in_dir(&tls_dir)),
        (true, false) => {
            return Err(format!(
                "Docker context `{name}` has TLS material ({}) but its host `{host}` is not a tcp:// address; bottle never drops a TLS request",
                tls_dir.display()
            ))
        }
        (false, _) => None,
    };
    Ok(DockerEndpoint {
        host: host.to_string(),
        from: format!("context {name}"),
        context: Some(name.to_string()),
        tls,
    })
}

/// Whether a plain-HTTP `tcp://`/`http://` address is this machine only.
pub(crate) fn is_loopback_addr(addr: &str) -> bool {
    let rest = addr
        .strip_prefix("tcp://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr);
    let hostport = rest.split('/').next().unwrap_or("");
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_context(dir: &Path, name: &str, host: &str, skip: bool, tls: bool) {
        let id = context_id(name);
        let meta = dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(
                r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":{skip}}}}}}}"#
            ),
        )
        .unwrap();
        if tls {
            std::fs::create_dir_all(dir.join("contexts/tls").join(&id).join("docker")).unwrap();
        }
    }

    #[test]
    fn context_ids_are_sha256_of_the_name() {
        // Docker's id of the context "default" (printed by `docker context inspect`).
        assert_eq!(
            context_id("default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
    }

    #[test]
    fn order_host_then_docker_host_then_context_then_default() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), "tlsctx", "tcp://127.0.0.1:2376", false, true);
        write_context(dir.path(), "plain", "unix:///run/other.sock", false, false);
        let mut env = DockerEnv {
            config_dir: Some(dir.path().to_path_buf()),
            ..DockerEnv::default()
        };
        let ep = resolve(None, Some("tlsctx"), &env).unwrap();
        assert_eq!(ep.host, "tcp://127.0.0.1:2376");
        assert_eq!(ep.from, "context tlsctx");
        let tls_dir = dir
            .path()
            .join("contexts/tls")
            .join(context_id("tlsctx"))
            .join("docker");
        assert_eq!(ep.tls, Some(TlsFiles::in_dir(&tls_dir)));
        let ep = resolve(None, Some("plain"), &env).unwrap();
        assert_eq!((ep.host.as_str(), ep.tls), ("unix:///run/other.sock", None));
        let ep = resolve(None, Some("default"), &env).unwrap();
        assert_eq!(ep.host, DEFAULT_ENDPOINT);
        assert_eq!(resolve(None, None, &env).unwrap().from, "default");

        env.host = Some("tcp://127.0.0.1:1".into());
        let ep = resolve(None, Some("tlsctx"), &env).unwrap();
        assert_eq!((ep.from.as_str(), ep.tls), ("DOCKER_HOST", None));
        env.tls_verify = true;
        env.cert_path = Some("/certs".into());
        let ep = resolve(None, Some("tlsctx"), &env).unwrap();
        assert_eq!(ep.tls, Some(TlsFiles::in_dir(Path::new("/certs"))));
        env.tls_verify = false;
        let ep = resolve(Some("unix:///h.sock"), Some("tlsctx"), &env).unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.from.as_str()),
            ("unix:///h.sock", "host setting")
        );
    }

    #[test]
    fn a_request_for_tls_is_never_dropped() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), "skip", "tcp://127.0.0.1:2376", true, false);
        write_context(dir.path(), "httptls", "http://127.0.0.1:2376", false, true);
        write_context(dir.path(), "unixtls", "unix:///run/d.sock", false, true);
        let env = DockerEnv {
            config_dir: Some(dir.path().to_path_buf()),
            ..DockerEnv::default()
        };
        // SkipTLSVerify without a TLS directory: refused all the same.
        let err = resolve(None, Some("skip"), &env).unwrap_err();
        assert!(err.contains("SkipTLSVerify"), "{err}");
        // http:// is tcp://: the context's TLS material applies.
        let ep = resolve(None, Some("httptls"), &env).unwrap();
        assert!(ep.tls.is_some(), "{ep:?}");
        let err = resolve(None, Some("unixtls"), &env).unwrap_err();
        assert!(err.contains("has TLS material"), "{err}");
        // DOCKER_TLS_VERIFY with http://: TLS; with a unix socket or no
        // certificate directory: refused, naming the variable.
        let mut env = DockerEnv {
            host: Some("http://127.0.0.1:2376".into()),
            tls_verify: true,
            cert_path: Some("/certs".into()),
            ..DockerEnv::default()
        };
        let ep = resolve(None, None, &env).unwrap();
        assert_eq!(ep.tls, Some(TlsFiles::in_dir(Path::new("/certs"))));
        env.cert_path = None;
        let err = resolve(None, None, &env).unwrap_err();
        assert!(err.contains("DOCKER_TLS_VERIFY"), "{err}");
        env.cert_path = Some("/certs".into());
        let err = resolve(Some("unix:///run/d.sock"), None, &env).unwrap_err();
        assert!(err.contains("DOCKER_TLS_VERIFY"), "{err}");
    }

    #[test]
    fn unknown_context_lists_the_known_names_and_skip_verify_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), "b-ctx", "tcp://127.0.0.1:2376", false, false);
        write_context(dir.path(), "a-ctx", "tcp://127.0.0.1:2376", true, true);
        let env = DockerEnv {
            config_dir: Some(dir.path().to_path_buf()),
            ..DockerEnv::default()
        };
        let err = resolve(None, Some("nope"), &env).unwrap_err();
        assert!(
            err.starts_with("unknown Docker context `nope` (known: default, a-ctx, b-ctx;"),
            "{err}"
        );
        let err = resolve(None, Some("a-ctx"), &env).unwrap_err();
        assert!(err.contains("SkipTLSVerify"), "{err}");
    }

    #[test]
    fn env_lookup_follows_docker_defaults() {
        let env = DockerEnv::from_lookup(|n| match n {
            "HOME" => Some("/home/u".into()),
            "DOCKER_TLS_VERIFY" => Some("1".into()),
            "DOCKER_HOST" => Some(" ".into()),
            _ => None,
        });
        assert_eq!(env.host, None);
        assert!(env.tls_verify);
        assert_eq!(
            env.config_dir.as_deref(),
            Some(Path::new("/home/u/.docker"))
        );
        assert_eq!(env.cert_path.as_deref(), Some(Path::new("/home/u/.docker")));
    }

    #[test]
    fn loopback_addresses() {
        for a in [
            "tcp://127.0.0.1:2375",
            "tcp://localhost:2375",
            "http://[::1]:2375",
            "tcp://127.8.0.1:1",
        ] {
            assert!(is_loopback_addr(a), "{a}");
        }
        for a in [
            "tcp://192.0.2.1:2375",
            "tcp://example.invalid:2375",
            "tcp://[2001:db8::1]:2375",
        ] {
            assert!(!is_loopback_addr(a), "{a}");
        }
    }
}
