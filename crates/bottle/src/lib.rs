//! bottle: give a running container's unprivileged user SSH through an agent
//! it cannot read keys from, on Docker or Podman.
//!
//! This facade re-exports the pieces and adds runtime selection, so a library
//! consumer gets exactly what `bottlectl` does:
//!
//! - [`ContainerRuntime`] (from `bottle-runtime`), the one engine abstraction;
//! - [`provision`], [`verify`], [`deprovision`] (from `bottle-ssh`), and
//!   [`provision_with`], [`verify_with`], [`validate_with`] taking
//!   [`Options`]: a [`Passphrase`] provider for encrypted keys (answers are
//!   [`Zeroizing`] strings) and `strict` (an unrestricted key is an error,
//!   not a [`ProvisionReport::warnings`] entry);
//! - [`validate`] / [`validate_target`]: check a plan and its keys before any
//!   engine call; [`list_keys`]: what a container's agent holds
//!   ([`AgentKey`]); errors are [`SshError`];
//! - [`Settings`] and the manifest loader (from `bottle-config`);
//! - [`connect`] / [`select`]: pick and reach an engine from settings;
//! - [`Session`]: an engine selected from settings with their agent layout
//!   (`agent = "sidecar"` gives each bottle a sidecar), target and guard,
//!   and provision, verify and deprovision as `bottlectl` runs them.
//!
//! Cargo features `docker` and `podman` (both default) compile each backend;
//! asking for a backend that was left out is [`SelectError::NotBuiltIn`]
//! ("built without podman support").
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use bottle::config::{load, load_manifest, Overrides, Sources};
//!
//! let config = load(&Sources::standard(None), &Overrides::default())?;
//! let manifest = load_manifest("bottle.toml".as_ref())?;
//! let rt = bottle::connect(&config.settings).await?;
//! let target = config.settings.target();
//! let report = bottle::provision(rt.as_ref(), "my-bottle", &manifest.plan, &target).await?;
//! println!("loaded {} key(s)", report.keys.len());
//! assert!(bottle::verify(rt.as_ref(), "my-bottle", &manifest.plan, &target).await?.ok());
//! # Ok(()) }
//! ```
//!
//! Encrypted keys and `--strict` behaviour, as a library:
//!
//! ```no_run
//! # async fn run(rt: &dyn bottle::ContainerRuntime, plan: &bottle::Plan) -> Result<(), bottle::SshError> {
//! use bottle::{Options, Target, Zeroizing};
//! use std::path::Path;
//!
//! // Never log the answer; say only why there is none.
//! let ask = |key: &Path| -> Result<Zeroizing<String>, String> {
//!     std::env::var("MY_KEY_PASSPHRASE")
//!         .map(Zeroizing::new)
//!         .map_err(|_| format!("no passphrase for {}", key.display()))
//! };
//! let opts = Options { passphrase: Some(&ask), strict: true, ..Default::default() };
//! let target = Target::default();
//! bottle::validate_with(plan, &opts)?; // reads keys, no engine call
//! let report = bottle::provision_with(rt, "my-bottle", plan, &target, &opts).await?;
//! assert!(report.warnings.is_empty()); // strict: unrestricted keys were errors
//! for key in bottle::list_keys(rt, "my-bottle", &target).await? {
//!     println!("{} {} restricted to {:?}", key.key_type, key.fingerprint, key.restricted_to);
//! }
//! # Ok(()) }
//! ```
//!
//! What the embedding program must do itself:
//!
//! - **No core dumps.** Decrypted keys and passphrases live in this process's
//!   memory while a plan is validated and provisioned; a crash would write
//!   them to a core file. Before reading any key, set `RLIMIT_CORE` to 0 and,
//!   on Linux, `prctl(PR_SET_DUMPABLE, 0)` (which also stops same-uid ptrace
//!   and `/proc/<pid>/mem` reads), as `bottlectl` does first thing in `main`
//!   (e.g. with `rustix::process::setrlimit` and `set_dumpable_behavior`).
//! - **Escape before printing.** Reports, [`AgentKey::comment`], [`Check`]
//!   details and error messages carry the container's text as it came (key
//!   comments, file names, script stderr), which the bottle's user controls:
//!   show control characters escaped before they reach a terminal.
//!
//! How `auto` picks (first rule that applies):
//! 1. `runtime = docker|podman|containerd` in settings: that engine
//!    (containerd at the `host` setting, else `CONTAINERD_ADDRESS`, else
//!    `/run/containerd/containerd.sock`, in the `namespace` setting; `auto`
//!    never picks containerd);
//! 2. `host` set: the engine answering there (Podman's API is tried first,
//!    because Podman also serves Docker's);
//! 3. a container was named: the engine that has it (both: an error asking
//!    for `--runtime`);
//! 4. `DOCKER_HOST`, a Docker context (the `context` setting, `DOCKER_CONTEXT`
//!    or Docker's `currentContext`, other than `default`), `CONTAINER_HOST`
//!    or a Podman connection (the `connection` setting, `CONTAINER_CONNECTION`
//!    or Podman's default connection): that engine;
//! 5. whichever default socket answers, Docker first.
//!
//! Docker's endpoint itself is chosen as its CLI does (see
//! [`bottle_docker::resolve`]): `host`, `DOCKER_HOST`, the context, the
//! default socket; TLS from `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH` or the
//! context's store. Podman's likewise (see [`bottle_podman::resolve`]):
//! `host`, `CONTAINER_HOST` (+ `CONTAINER_SSHKEY`), the connection, the
//! default connection, the rootless then rootful socket. An unknown context
//! or connection is a configuration error (exit 2) listing the known ones.
//!
//! ```
//! // Selection needs no engine to explain a disabled backend.
//! let e = bottle::SelectError::NotBuiltIn(bottle::Engine::Podman);
//! assert_eq!(e.to_string(), "bottle was built without podman support");
//! assert!(e.is_usage_error());
//! ```

pub mod session;
pub use session::Session;

pub use bottle_config as config;
pub use bottle_runtime as runtime;
pub use bottle_ssh as ssh;

pub use bottle_config::{RuntimeChoice, Settings};
pub use bottle_runtime::{
    ContainerAdmin, ContainerInfo, ContainerRuntime, Engine, EngineInfo, Error as RuntimeError,
};
pub use bottle_ssh::{
    deprovision, list_keys, provision, provision_with, validate, validate_target, validate_with,
    verify, verify_with, AgentKey, Check, DeprovisionReport, Error as SshError, FileReport, Gate,
    KeyReport, Lifetime, Options, Passphrase, Plan, ProcessReport, ProvisionReport, SshEntry,
    StepReport, Target, ValidatedPlan, VerifyReport,
};
/// The secret-string wrapper [`Passphrase`] answers in (wiped when dropped).
pub use zeroize::Zeroizing;

use serde::Serialize;
use std::sync::Arc;

/// containerd's engine (`--runtime containerd`), also when built without it.
pub const CONTAINERD: Engine = Engine::Other("containerd");
use std::time::Duration;

/// One engine endpoint tried during selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub engine: Engine,
    pub endpoint: String,
    /// Why this endpoint: `host setting`, `DOCKER_HOST`, `context NAME`,
    /// `CONTAINER_HOST`, `rootless socket`, `default`.
    pub endpoint_from: String,
    /// How the endpoint is reached: `unix`, `tcp`, `tcp+tls`, `ssh`; empty
    /// when there is no endpoint.
    pub transport: String,
    /// Engine version when it answered.
    pub version: Option<String>,
    pub api_version: Option<String>,
    /// Why it did not answer (with its cause chain), or `not built in`.
    pub error: Option<String>,
    /// When a container was named: whether this engine has it.
    pub has_container: Option<bool>,
    /// The engine runs but refused this process (its socket's permissions):
    /// starting it would not help.
    pub permission_denied: bool,
}

impl Probe {
    pub fn answered(&self) -> bool {
        self.version.is_some()
    }

    /// How to make an engine that did not answer answer (`None` when it
    /// did): the backend's own hint, unless the cause is not the engine's.
    pub fn fix(&self) -> Option<String> {
        if self.answered() {
            return None;
        }
        if self.error.as_deref() == Some("not built in") {
            return Some(format!(
                "rebuild bottlectl with the `{}` feature of the bottle crate",
                self.engine.name()
            ));
        }
        if self.permission_denied {
            return Some(format!(
                "{} runs at {}, but this user may not use its socket: run as a user the socket admits (its owner or group, e.g. `docker` for Docker's), or change the socket's owner or mode",
                self.engine, self.endpoint
            ));
        }
        if self.endpoint_from == "host setting" {
            return Some(format!(
                "the host setting {} does not answer: check `bottlectl config` and the engine there",
                self.endpoint
            ));
        }
        Some(match self.engine {
            #[cfg(feature = "docker")]
            Engine::Docker => bottle_docker::start_hint(&self.endpoint_from, &self.endpoint),
            #[cfg(feature = "podman")]
            Engine::Podman => bottle_podman::start_hint(&self.endpoint_from, &self.endpoint),
            #[cfg(feature = "containerd")]
            CONTAINERD => bottle_containerd::start_hint(&self.endpoint_from, &self.endpoint),
            other => format!("start the {other} engine, or point bottlectl at it with --host"),
        })
    }
}

/// The chosen engine, how it was chosen and what was tried.
#[derive(Debug, Clone)]
pub struct Selection {
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The same engine, for creating containers and importing images.
    pub admin: Arc<dyn ContainerAdmin>,
    pub info: EngineInfo,
    /// One sentence: why this engine.
    pub why: String,
    pub tried: Vec<Probe>,
}

impl Selection {
    pub fn engine(&self) -> Engine {
        self.info.engine
    }
    pub fn endpoint(&self) -> &str {
        &self.info.endpoint
    }
}

/// Why no engine could be selected.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("bottle was built without {} support", .0.name())]
    NotBuiltIn(Engine),
    #[error("no container engine answered ({})", summary(tried))]
    NoEngine { tried: Vec<Probe> },
    #[error("container `{container}` exists in both Docker and Podman; choose one with --runtime docker or --runtime podman")]
    Ambiguous {
        container: String,
        tried: Vec<Probe>,
    },
    #[error("no container named `{container}` in any engine ({})", summary(tried))]
    ContainerNotFound {
        container: String,
        tried: Vec<Probe>,
    },
    /// The engine the settings ask for did not answer or refused the endpoint.
    #[error("cannot use {engine} ({why})")]
    Runtime {
        engine: Engine,
        why: String,
        tried: Vec<Probe>,
        #[source]
        source: Box<RuntimeError>,
    },
}

impl SelectError {
    /// True for a usage or configuration problem (a backend not built in,
    /// a container in both engines, an invalid request); false for an
    /// engine problem. The caller's policy turns it into an exit code.
    pub fn is_usage_error(&self) -> bool {
        match self {
            SelectError::NotBuiltIn(_) | SelectError::Ambiguous { .. } => true,
            SelectError::Runtime { source, .. } => {
                matches!(**source, RuntimeError::InvalidRequest { .. })
            }
            _ => false,
        }
    }

    /// What was tried before giving up.
    pub fn tried(&self) -> &[Probe] {
        match self {
            SelectError::NotBuiltIn(_) => &[],
            SelectError::NoEngine { tried }
            | SelectError::Ambiguous { tried, .. }
            | SelectError::ContainerNotFound { tried, .. }
            | SelectError::Runtime { tried, .. } => tried,
        }
    }
}

fn summary(tried: &[Probe]) -> String {
    if tried.is_empty() {
        return "nothing tried".into();
    }
    tried
        .iter()
        .map(|p| match (&p.version, &p.error, p.has_container) {
            (Some(_), _, Some(false)) => format!("{} at {}: not there", p.engine, p.endpoint),
            (Some(v), _, _) => format!("{} {v} at {}", p.engine, p.endpoint),
            (None, Some(e), _) => format!("{} at {}: {e}", p.engine, p.endpoint),
            (None, None, _) => format!("{} at {}", p.engine, p.endpoint),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Docker context or Podman connection the user has, and whether
/// selection uses it: for `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedEndpoint {
    pub engine: Engine,
    /// `context` or `connection`.
    pub kind: &'static str,
    pub name: String,
    /// Its endpoint, when it could be read.
    pub endpoint: Option<String>,
    /// Whether `settings` reach the engine through it.
    pub used: bool,
    /// Why it is (not) used, or why it cannot be read.
    pub why: String,
}

/// Every Docker context (`$DOCKER_CONFIG/contexts`) and Podman connection
/// (`podman-connections.json`, containers.conf) and whether `settings` use
/// it, by comparing with the endpoint each engine would be reached at.
pub fn named_endpoints(settings: &Settings) -> Vec<NamedEndpoint> {
    let mut out = Vec::new();
    let chosen = |engine| match where_for(engine, settings) {
        Ok(at) => Ok(at.from),
        Err(e) => Err(error_chain(&e)),
    };
    let entry = |engine,
                 kind,
                 name: &str,
                 endpoint: Result<String, String>,
                 chosen: &Result<String, String>,
                 marks: &[String]| {
        let (endpoint, read_error) = match endpoint {
            Ok(e) => (Some(e), None),
            Err(e) => (None, Some(e)),
        };
        let (used, why) = match (chosen, read_error) {
            (_, Some(e)) => (false, e),
            (Ok(from), None) if marks.iter().any(|m| m == from) => {
                (true, format!("selected ({from})"))
            }
            (Ok(from), None) => (false, format!("not used: the endpoint comes from {from}")),
            (Err(e), None) => (false, format!("not used: {e}")),
        };
        NamedEndpoint {
            engine,
            kind,
            name: name.to_string(),
            endpoint,
            used,
            why,
        }
    };
    #[cfg(feature = "docker")]
    {
        let env = bottle_docker::DockerEnv::from_process();
        if let Some(dir) = &env.config_dir {
            let from = chosen(Engine::Docker);
            for name in bottle_docker::context_names(dir) {
                let endpoint = if name == bottle_docker::DEFAULT_CONTEXT {
                    bottle_docker::resolve(None, Some(&name), &bottle_docker::DockerEnv::default())
                } else {
                    bottle_docker::read_context(dir, &name)
                };
                let mut marks = vec![format!("context {name}")];
                if name == bottle_docker::DEFAULT_CONTEXT {
                    marks.push("default".into());
                }
                out.push(entry(
                    Engine::Docker,
                    "context",
                    &name,
                    endpoint.map(|e| e.host),
                    &from,
                    &marks,
                ));
            }
        }
    }
    #[cfg(feature = "podman")]
    {
        let env = bottle_podman::PodmanEnv::from_process();
        let from = chosen(Engine::Podman);
        match bottle_podman::read_connections(&env) {
            Ok(conns) => {
                for (name, c) in &conns.named {
                    let marks = [
                        format!("connection {name}"),
                        format!("default connection {name}"),
                    ];
                    out.push(entry(
                        Engine::Podman,
                        "connection",
                        name,
                        Ok(c.uri.clone()),
                        &from,
                        &marks,
                    ));
                }
            }
            Err(e) => out.push(entry(Engine::Podman, "connection", "", Err(e), &from, &[])),
        }
    }
    #[cfg(not(any(feature = "docker", feature = "podman")))]
    let _ = (settings, &chosen, &entry);
    out
}

/// An error and its sources, `": "`-joined (one formatter for every crate).
pub use bottle_runtime::error_chain;

/// Pick an engine for `settings` and connect to it. The same rules and errors
/// as `bottlectl`; see the crate docs.
pub async fn connect(settings: &Settings) -> Result<Arc<dyn ContainerRuntime>, SelectError> {
    Ok(select(settings, None).await?.runtime)
}

type Handles = (Arc<dyn ContainerRuntime>, Arc<dyn ContainerAdmin>);

/// The endpoint an engine uses without a `host` setting, and why.
pub fn default_endpoint(engine: Engine) -> Option<(String, &'static str)> {
    match engine {
        #[cfg(feature = "docker")]
        Engine::Docker => Some(bottle_docker::DockerRuntime::default_endpoint()),
        #[cfg(feature = "podman")]
        Engine::Podman => Some(bottle_podman::PodmanRuntime::default_endpoint()),
        #[cfg(feature = "containerd")]
        CONTAINERD => {
            let (address, from) = bottle_containerd::default_address();
            Some((
                format!("unix://{}", address.trim_start_matches("unix://")),
                from,
            ))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Where an engine is reached, and why.
#[derive(Debug, Clone)]
struct Where {
    endpoint: String,
    from: String,
    /// Docker's resolved endpoint with its TLS material.
    #[cfg(feature = "docker")]
    docker: Option<bottle_docker::DockerEndpoint>,
    /// Podman's resolved endpoint with its ssh identity.
    #[cfg(feature = "podman")]
    podman: Option<bottle_podman::PodmanEndpoint>,
    /// containerd's namespace setting.
    #[cfg(feature = "containerd")]
    namespace: Option<String>,
}

impl Where {
    #[allow(dead_code)] // unused when built with neither backend
    fn plain(endpoint: String, from: &str) -> Where {
        Where {
            endpoint,
            from: from.to_string(),
            #[cfg(feature = "docker")]
            docker: None,
            #[cfg(feature = "podman")]
            podman: None,
            #[cfg(feature = "containerd")]
            namespace: None,
        }
    }
}

/// How `at` is reached, from its scheme (and Docker's TLS material).
fn transport_of(at: &Where) -> String {
    #[cfg(feature = "docker")]
    if at.docker.as_ref().is_some_and(|d| d.tls.is_some()) && at.endpoint.starts_with("tcp://") {
        return "tcp+tls".into();
    }
    let e = at.endpoint.as_str();
    match e.split_once("://") {
        Some(("unix", _)) => "unix".into(),
        Some(("tcp" | "http", _)) => "tcp".into(),
        Some((scheme, _)) => scheme.to_string(),
        None if e.starts_with('/') => "unix".into(),
        None => String::new(),
    }
}

/// A configuration problem in choosing `engine`'s endpoint (exit 2).
#[cfg(any(feature = "docker", feature = "podman"))]
fn config_error(engine: Engine, reason: String) -> SelectError {
    SelectError::Runtime {
        engine,
        why: "endpoint selection".into(),
        tried: vec![],
        source: Box::new(RuntimeError::InvalidRequest {
            engine,
            container: String::new(),
            operation: "connect",
            reason,
        }),
    }
}

/// The endpoint `engine` is reached at for `settings`.
fn where_for(engine: Engine, settings: &Settings) -> Result<Where, SelectError> {
    match engine {
        #[cfg(feature = "docker")]
        Engine::Docker => {
            let ep = bottle_docker::resolve(
                settings.host.as_deref(),
                settings.context.as_deref(),
                &bottle_docker::DockerEnv::from_process(),
            )
            .map_err(|reason| config_error(engine, reason))?;
            Ok(Where {
                endpoint: ep.host.clone(),
                from: ep.from.clone(),
                docker: Some(ep),
                #[cfg(feature = "podman")]
                podman: None,
                #[cfg(feature = "containerd")]
                namespace: None,
            })
        }
        #[cfg(feature = "podman")]
        Engine::Podman => {
            let ep = bottle_podman::resolve(
                settings.host.as_deref(),
                settings.connection.as_deref(),
                &bottle_podman::PodmanEnv::from_process(),
            )
            .map_err(|reason| config_error(engine, reason))?;
            Ok(Where {
                endpoint: ep.uri.clone(),
                from: ep.from.clone(),
                #[cfg(feature = "docker")]
                docker: None,
                podman: Some(ep),
                #[cfg(feature = "containerd")]
                namespace: None,
            })
        }
        #[cfg(feature = "containerd")]
        CONTAINERD => {
            let (address, from) = match &settings.host {
                Some(h) => (h.clone(), "host setting"),
                None => bottle_containerd::default_address(),
            };
            let mut at = Where::plain(
                format!("unix://{}", address.trim_start_matches("unix://")),
                from,
            );
            at.namespace = settings.namespace.clone();
            Ok(at)
        }
        #[allow(unreachable_patterns)]
        _ => {
            let _ = settings;
            Err(SelectError::NotBuiltIn(engine))
        }
    }
}

/// `, namespace `NS`` for containerd (every call is in one namespace, and
/// a container in another is not found): the setting, else the backend's
/// default. Nothing for the other engines.
fn namespace_of(engine: Engine, at: &Where) -> String {
    #[cfg(feature = "containerd")]
    if engine == CONTAINERD {
        let ns = match &at.namespace {
            Some(ns) => ns.clone(),
            None => bottle_containerd::default_namespace().0,
        };
        return format!(", namespace `{}`", ns.escape_debug());
    }
    let _ = (engine, at);
    String::new()
}

/// The containerd namespace `settings` select: the `namespace` setting,
/// else `CONTAINERD_NAMESPACE`, else `default` (`None` when built without
/// containerd). Errors name it: a container in another namespace is not
/// found.
pub fn containerd_namespace(settings: &Settings) -> Option<String> {
    #[cfg(feature = "containerd")]
    return Some(match &settings.namespace {
        Some(ns) => ns.clone(),
        None => bottle_containerd::default_namespace().0,
    });
    #[cfg(not(feature = "containerd"))]
    {
        let _ = settings;
        None
    }
}

fn make(engine: Engine, at: &Where, timeout: Duration) -> Result<Handles, SelectError> {
    let endpoint = at.endpoint.as_str();
    match engine {
        #[cfg(feature = "docker")]
        Engine::Docker => handles(
            engine,
            endpoint,
            match &at.docker {
                Some(ep) => bottle_docker::DockerRuntime::connect_endpoint(ep, timeout),
                None => bottle_docker::DockerRuntime::connect(Some(endpoint), timeout),
            },
        ),
        #[cfg(feature = "podman")]
        Engine::Podman => handles(
            engine,
            endpoint,
            match &at.podman {
                Some(ep) => bottle_podman::PodmanRuntime::connect_endpoint(ep, timeout),
                None => bottle_podman::PodmanRuntime::connect(Some(endpoint), timeout),
            },
        ),
        #[cfg(feature = "containerd")]
        CONTAINERD => handles(
            engine,
            endpoint,
            bottle_containerd::ContainerdRuntime::connect(
                Some(endpoint),
                at.namespace.as_deref(),
                timeout,
            ),
        ),
        #[allow(unreachable_patterns)]
        _ => {
            let _ = (endpoint, timeout);
            Err(SelectError::NotBuiltIn(engine))
        }
    }
}

/// One connected backend as both trait objects, or the connect error.
#[allow(dead_code)] // unused when built with neither backend
fn handles<R: ContainerAdmin>(
    engine: Engine,
    endpoint: &str,
    connected: Result<R, RuntimeError>,
) -> Result<Handles, SelectError> {
    let rt = Arc::new(connected.map_err(|e| SelectError::Runtime {
        engine,
        why: format!("endpoint {endpoint}"),
        tried: vec![],
        source: Box::new(e),
    })?);
    Ok((rt.clone(), rt))
}

fn built_in(engine: Engine) -> bool {
    match engine {
        Engine::Docker => cfg!(feature = "docker"),
        Engine::Podman => cfg!(feature = "podman"),
        CONTAINERD => cfg!(feature = "containerd"),
        Engine::Other(_) => false,
    }
}

/// Connections made while choosing, kept so one bottlectl run connects to
/// an endpoint once (an `ssh://` endpoint is one ssh login per connection):
/// `doctor` probes every engine and then selects over the same ones.
#[derive(Default)]
struct Connections(std::sync::Mutex<Vec<(Engine, String, Handles)>>);

impl Connections {
    fn get_or_make(
        &self,
        engine: Engine,
        at: &Where,
        timeout: Duration,
    ) -> Result<Handles, SelectError> {
        let mut made = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, h)) = made
            .iter()
            .find(|(e, endpoint, _)| *e == engine && *endpoint == at.endpoint)
        {
            return Ok(h.clone());
        }
        let h = make(engine, at, timeout)?;
        made.push((engine, at.endpoint.clone(), h.clone()));
        Ok(h)
    }
}

/// A candidate endpoint, probed.
struct Candidate {
    handles: Option<Handles>,
    info: Option<EngineInfo>,
    probe: Probe,
    error: Option<RuntimeError>,
}

impl Candidate {
    fn ok(&self) -> bool {
        self.error.is_none() && self.handles.is_some() && self.info.is_some()
    }

    /// A configuration problem (e.g. an unreadable TLS file) ends selection
    /// at once as exit 2, instead of trying the next engine.
    fn config_problem(&mut self, at: &Where, tried: &[Probe]) -> Option<SelectError> {
        if !matches!(self.error, Some(RuntimeError::InvalidRequest { .. })) {
            return None;
        }
        let source = self.error.take()?;
        Some(SelectError::Runtime {
            engine: self.probe.engine,
            why: format!("endpoint from {}", at.from),
            tried: tried.to_vec(),
            source: Box::new(source),
        })
    }
}

async fn probe(
    engine: Engine,
    at: &Where,
    timeout: Duration,
    container: Option<&str>,
    connections: &Connections,
) -> Candidate {
    let (endpoint, from) = (
        bottle_runtime::redact_url(&at.endpoint).into_owned(),
        at.from.as_str(),
    );
    let mut probe = Probe {
        engine,
        endpoint: endpoint.clone(),
        endpoint_from: from.to_string(),
        transport: transport_of(at),
        version: None,
        api_version: None,
        error: None,
        has_container: None,
        permission_denied: false,
    };
    let handles = match connections.get_or_make(engine, at, timeout) {
        Ok(h) => h,
        Err(SelectError::Runtime { source, .. }) => {
            probe.error = Some(error_chain(source.as_ref()));
            return Candidate {
                handles: None,
                info: None,
                probe,
                error: Some(*source),
            };
        }
        Err(e) => {
            probe.error = Some(if matches!(e, SelectError::NotBuiltIn(_)) {
                "not built in".into()
            } else {
                e.to_string()
            });
            return Candidate {
                handles: None,
                info: None,
                probe,
                error: None,
            };
        }
    };
    tracing::debug!(engine = engine.name(), %endpoint, from, "probing engine");
    match handles.0.version().await {
        Ok(info) => {
            probe.version = Some(info.version.clone());
            probe.api_version = Some(info.api_version.clone());
            let mut error = None;
            if let Some(name) = container {
                match handles.0.inspect(name).await {
                    Ok(_) => probe.has_container = Some(true),
                    Err(RuntimeError::ContainerNotFound { .. }) => {
                        probe.has_container = Some(false)
                    }
                    Err(e) => {
                        probe.error = Some(error_chain(&e));
                        error = Some(e);
                    }
                }
            }
            tracing::info!(engine = engine.name(), %endpoint, version = %info.version, "engine answered");
            Candidate {
                handles: Some(handles),
                info: Some(info),
                probe,
                error,
            }
        }
        Err(e) => {
            tracing::info!(engine = engine.name(), %endpoint, error = %error_chain(&e), "engine did not answer");
            probe.error = Some(error_chain(&e));
            probe.permission_denied = matches!(e, RuntimeError::PermissionDenied { .. });
            Candidate {
                handles: None,
                info: None,
                probe,
                error: Some(e),
            }
        }
    }
}

// Only called for candidates with `ok()`.
fn chosen(c: Candidate, why: String, tried: Vec<Probe>) -> Selection {
    match (c.handles, c.info) {
        (Some((runtime, admin)), Some(info)) => Selection {
            runtime,
            admin,
            info,
            why,
            tried,
        },
        _ => unreachable!("chosen() is only called for candidates that answered"),
    }
}

/// Probe both engines where they would be reached without choosing: for
/// `doctor`. Uses the `host` setting for both when it is set.
pub async fn probe_all(settings: &Settings, container: Option<&str>) -> Vec<Probe> {
    probe_all_over(settings, container, &Connections::default()).await
}

/// [`probe_all`], then [`select`] over the same connections: each endpoint
/// is connected to once (for `ssh://`, one login), as in any other run.
pub async fn probe_all_then_select(
    settings: &Settings,
    container: Option<&str>,
) -> (Vec<Probe>, Result<Selection, SelectError>) {
    let connections = Connections::default();
    let probes = probe_all_over(settings, None, &connections).await;
    let selection = select_over(settings, container, &connections).await;
    (probes, selection)
}

async fn probe_all_over(
    settings: &Settings,
    container: Option<&str>,
    connections: &Connections,
) -> Vec<Probe> {
    let mut out = Vec::new();
    for engine in [Engine::Docker, Engine::Podman] {
        let at = match where_for(engine, settings) {
            Ok(at) => at,
            Err(SelectError::NotBuiltIn(_)) => Where::plain(String::new(), "not built in"),
            Err(e) => {
                // The endpoint could not even be chosen (e.g. an unknown context).
                out.push(Probe {
                    engine,
                    endpoint: String::new(),
                    endpoint_from: match engine {
                        Engine::Docker => settings.context.as_ref().map(|c| format!("context {c}")),
                        Engine::Podman => settings
                            .connection
                            .as_ref()
                            .map(|c| format!("connection {c}")),
                        Engine::Other(_) => None,
                    }
                    .unwrap_or_else(|| "endpoint selection".into()),
                    transport: String::new(),
                    version: None,
                    api_version: None,
                    error: Some(error_chain(&e)),
                    has_container: None,
                    permission_denied: false,
                });
                continue;
            }
        };
        out.push(
            probe(engine, &at, settings.timeout, container, connections)
                .await
                .probe,
        );
    }
    // containerd: never chosen by `auto`, so listed only when it answers
    // or is the runtime asked for.
    if built_in(CONTAINERD) {
        if let Ok(at) = where_for(CONTAINERD, settings) {
            let p = probe(CONTAINERD, &at, settings.timeout, container, connections)
                .await
                .probe;
            if p.answered() || settings.runtime == RuntimeChoice::Containerd {
                out.push(p);
            }
        }
    }
    out
}

/// Pick an engine as `auto` would (or the one the settings name), connect
/// and ping it. `container` (when given) steers `auto` to the engine that
/// has it; it is not required to be running. The decision is logged at
/// `info` (tracing), each endpoint tried at `info`/`debug`.
pub async fn select(
    settings: &Settings,
    container: Option<&str>,
) -> Result<Selection, SelectError> {
    select_over(settings, container, &Connections::default()).await
}

async fn select_over(
    settings: &Settings,
    container: Option<&str>,
    connections: &Connections,
) -> Result<Selection, SelectError> {
    let result = select_inner(settings, container, connections).await;
    match &result {
        Ok(sel) => tracing::info!(
            engine = sel.engine().name(),
            endpoint = sel.endpoint(),
            why = %sel.why,
            tried = sel.tried.len(),
            "engine selected"
        ),
        Err(e) => tracing::info!(error = %error_chain(e), "no engine selected"),
    }
    result
}

async fn select_inner(
    settings: &Settings,
    container: Option<&str>,
    connections: &Connections,
) -> Result<Selection, SelectError> {
    let timeout = settings.timeout;
    let endpoint_for = |engine: Engine| where_for(engine, settings);

    // 1. An explicit runtime.
    let explicit = match settings.runtime {
        RuntimeChoice::Docker => Some(Engine::Docker),
        RuntimeChoice::Podman => Some(Engine::Podman),
        RuntimeChoice::Containerd => Some(CONTAINERD),
        RuntimeChoice::Auto => None,
    };
    if let Some(engine) = explicit {
        if !built_in(engine) {
            return Err(SelectError::NotBuiltIn(engine));
        }
        let at = endpoint_for(engine)?;
        let c = probe(engine, &at, timeout, None, connections).await;
        let tried = vec![c.probe.clone()];
        let why = format!(
            "runtime = {} in settings (endpoint from {}{})",
            engine.name(),
            at.from,
            namespace_of(engine, &at)
        );
        if c.ok() {
            return Ok(chosen(c, why, tried));
        }
        return match c.error {
            None => Err(SelectError::NotBuiltIn(engine)),
            Some(source) => Err(SelectError::Runtime {
                engine,
                why,
                tried,
                source: Box::new(source),
            }),
        };
    }

    let engines: Vec<Engine> = [Engine::Docker, Engine::Podman]
        .into_iter()
        .filter(|e| built_in(*e))
        .collect();
    if engines.is_empty() {
        return Err(SelectError::NotBuiltIn(Engine::Docker));
    }

    // 2. A host: whichever engine answers there; Podman first because it
    // also serves Docker's API, so a Docker client would succeed on it too.
    if let Some(host) = &settings.host {
        let mut tried = Vec::new();
        for engine in engines.iter().rev() {
            let at = endpoint_for(*engine)?;
            let mut c = probe(*engine, &at, timeout, None, connections).await;
            tried.push(c.probe.clone());
            if let Some(e) = c.config_problem(&at, &tried) {
                return Err(e);
            }
            if c.ok() {
                let why = format!(
                    "runtime auto: {} answered at the host setting {host}",
                    engine
                );
                return Ok(chosen(c, why, tried));
            }
        }
        return Err(SelectError::NoEngine { tried });
    }

    // 3. A named container: the engine that has it.
    if let Some(name) = container {
        let mut tried = Vec::new();
        let mut having = Vec::new();
        for engine in &engines {
            let at = endpoint_for(*engine)?;
            let mut c = probe(*engine, &at, timeout, Some(name), connections).await;
            tried.push(c.probe.clone());
            if let Some(e) = c.config_problem(&at, &tried) {
                return Err(e);
            }
            if c.probe.has_container == Some(true) {
                having.push(c);
            }
        }
        return match having.len() {
            1 => {
                let c = having.pop().expect("one");
                let why = format!(
                    "runtime auto: container `{name}` exists in {} (at {})",
                    c.probe.engine, c.probe.endpoint
                );
                Ok(chosen(c, why, tried))
            }
            0 if tried.iter().all(|p| !p.answered()) => Err(SelectError::NoEngine { tried }),
            0 => Err(SelectError::ContainerNotFound {
                container: name.to_string(),
                tried,
            }),
            _ => Err(SelectError::Ambiguous {
                container: name.to_string(),
                tried,
            }),
        };
    }

    // 4. DOCKER_HOST, a Docker context, CONTAINER_HOST: the user already
    // said where to go.
    let mut tried = Vec::new();
    let mut named = Vec::new();
    let mut defaults = Vec::new();
    for engine in &engines {
        let at = endpoint_for(*engine)?;
        let user_named = at.from == "DOCKER_HOST"
            || at.from == "CONTAINER_HOST"
            || at.from.starts_with("connection ")
            || at.from.starts_with("default connection ")
            || (at.from.starts_with("context ")
                && at.from != format!("context {}", DEFAULT_DOCKER_CONTEXT));
        if user_named {
            named.push((*engine, at));
        } else {
            defaults.push((*engine, at));
        }
    }
    if !named.is_empty() {
        for (engine, at) in &named {
            let mut c = probe(*engine, at, timeout, None, connections).await;
            tried.push(c.probe.clone());
            if let Some(e) = c.config_problem(at, &tried) {
                return Err(e);
            }
            if c.ok() {
                let why = format!(
                    "runtime auto: {} ({})",
                    describe_named(&at.from),
                    at.endpoint
                );
                return Ok(chosen(c, why, tried));
            }
        }
        return Err(SelectError::NoEngine { tried });
    }

    // 5. Whichever default socket answers.
    for (engine, at) in &defaults {
        let mut c = probe(*engine, at, timeout, None, connections).await;
        tried.push(c.probe.clone());
        if let Some(e) = c.config_problem(at, &tried) {
            return Err(e);
        }
        if c.ok() {
            let why = format!(
                "runtime auto: {engine} answered at {} ({} endpoint)",
                at.endpoint, at.from
            );
            return Ok(chosen(c, why, tried));
        }
    }
    Err(SelectError::NoEngine { tried })
}

/// Docker's name for "the default socket".
const DEFAULT_DOCKER_CONTEXT: &str = "default";

fn describe_named(from: &str) -> String {
    if let Some(name) = from.strip_prefix("context ") {
        return format!("Docker context `{name}` is selected");
    }
    if let Some(name) = from.strip_prefix("default connection ") {
        return format!("Podman's default connection `{name}` is selected");
    }
    match from.strip_prefix("connection ") {
        Some(name) => format!("Podman connection `{name}` is selected"),
        None => format!("{from} is set"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The re-exported key API works through the facade alone: a closure is a
    /// `Passphrase`, `Options::strict` turns the unpinned-entry warning into
    /// a plan error. No engine involved (validation reads only the key file).
    #[test]
    fn facade_key_api_passphrase_and_strict() {
        let dir = std::env::temp_dir().join(format!("bottle-facade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_enc");
        let _ = std::fs::remove_file(&key);
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "facade-test", "-C", "t", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        let plan = Plan {
            signing: None,
            gate: None,
            ssh: vec![SshEntry {
                host: "up".into(),
                hostname: "up.example.invalid".into(),
                user: "git".into(),
                identity_file: key.clone(),
                ..SshEntry::default()
            }],
        };
        let ask = |_: &std::path::Path| Ok(Zeroizing::new("facade-test".to_string()));
        let lax = Options {
            passphrase: Some(&ask),
            strict: false,
            ..Default::default()
        };
        let v = validate_with(&plan, &lax).expect("decrypts with the provider");
        assert_eq!(v.keys.len(), 1);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        // Without a provider the encrypted key is a plan error.
        let e: SshError = validate(&plan).unwrap_err();
        assert!(e.is_plan_error());
        let strict = Options {
            strict: true,
            ..lax
        };
        let e = validate_with(&plan, &strict).unwrap_err();
        assert!(e.is_plan_error());
        assert_eq!(e.field(), Some("KnownHostKey"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Only meaningful in a build without a backend, e.g.
    // `cargo test -p bottle --no-default-features --features docker`.
    #[cfg(not(feature = "podman"))]
    #[tokio::test]
    async fn a_backend_that_is_not_built_in_is_a_clear_error() {
        let settings = Settings {
            runtime: RuntimeChoice::Podman,
            ..Settings::default()
        };
        let err = connect(&settings).await.unwrap_err();
        assert_eq!(err.to_string(), "bottle was built without podman support");
        assert!(err.is_usage_error());
        assert!(default_endpoint(Engine::Podman).is_none());
    }

    #[cfg(not(feature = "docker"))]
    #[tokio::test]
    async fn docker_not_built_in_is_a_clear_error() {
        let settings = Settings {
            runtime: RuntimeChoice::Docker,
            ..Settings::default()
        };
        let err = connect(&settings).await.unwrap_err();
        assert_eq!(err.to_string(), "bottle was built without docker support");
    }

    #[test]
    fn a_down_engine_gets_its_backends_hint_a_refused_one_does_not() {
        let down = |engine, from: &str| Probe {
            engine,
            endpoint: "unix:///x.sock".into(),
            endpoint_from: from.into(),
            transport: "unix".into(),
            version: None,
            api_version: None,
            error: Some("refused".into()),
            has_container: None,
            permission_denied: false,
        };
        let hint = |p: Probe| p.fix().unwrap();
        assert!(hint(down(Engine::Docker, "DOCKER_HOST")).contains("DOCKER_HOST=unix:///x.sock"));
        assert!(hint(down(Engine::Docker, "default")).contains("docker.socket"));
        assert!(hint(down(Engine::Podman, "rootless socket")).contains("systemctl --user"));
        assert!(hint(down(Engine::Podman, "host setting")).contains("host setting"));
        assert!(hint(down(Engine::Other("kube"), "default")).contains("kube"));
        let denied = Probe {
            permission_denied: true,
            ..down(Engine::Podman, "default")
        };
        let text = hint(denied);
        assert!(
            text.contains("may not use its socket") && !text.contains("systemctl"),
            "{text}"
        );
        let up = Probe {
            version: Some("1".into()),
            ..down(Engine::Docker, "default")
        };
        assert_eq!(up.fix(), None);
    }

    #[test]
    fn summary_names_every_endpoint() {
        let tried = vec![
            Probe {
                engine: Engine::Docker,
                endpoint: "unix:///a.sock".into(),
                endpoint_from: "default".into(),
                transport: "unix".into(),
                version: None,
                api_version: None,
                error: Some("refused".into()),
                has_container: None,
                permission_denied: false,
            },
            Probe {
                engine: Engine::Podman,
                endpoint: "unix:///b.sock".into(),
                endpoint_from: "default".into(),
                transport: "unix".into(),
                version: Some("4.3.1".into()),
                api_version: Some("4.3.1".into()),
                error: None,
                has_container: Some(false),
                permission_denied: false,
            },
        ];
        let e = SelectError::ContainerNotFound {
            container: "x".into(),
            tried,
        };
        assert_eq!(
            e.to_string(),
            "no container named `x` in any engine (Docker at unix:///a.sock: refused; Podman at unix:///b.sock: not there)"
        );
        assert!(!e.is_usage_error());
    }
}
