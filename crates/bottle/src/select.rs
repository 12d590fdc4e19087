//! Choosing an engine: the rules of `auto` (see the crate docs), what was
//! tried, and the errors when none can be used. Which engines exist and
//! how each is reached is the backends' (`backends.rs`).

use crate::backends::{backend, built_in, where_for, Handles, Where, AUTO, BACKENDS};
use crate::{
    error_chain, ContainerAdmin, ContainerRuntime, Engine, EngineInfo, RuntimeChoice, RuntimeError,
    Settings, CONTAINERD,
};
use serde::Serialize;
use std::sync::Arc;
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
        Some(match backend(self.engine) {
            Some(b) => b.start_hint(&self.endpoint_from, &self.endpoint),
            None => format!(
                "start the {} engine, or point bottlectl at it with --host",
                self.engine
            ),
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

/// Pick an engine for `settings` and connect to it. The same rules and errors
/// as `bottlectl`; see the crate docs.
pub async fn connect(settings: &Settings) -> Result<Arc<dyn ContainerRuntime>, SelectError> {
    Ok(select(settings, None).await?.runtime)
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
        let h = backend(engine)
            .ok_or(SelectError::NotBuiltIn(engine))?
            .connect(at, timeout)?;
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
        transport: at.transport.clone(),
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
    let unprobed = |engine, from: String, error: String| Probe {
        engine,
        endpoint: String::new(),
        endpoint_from: from,
        transport: String::new(),
        version: None,
        api_version: None,
        error: Some(error),
        has_container: None,
        permission_denied: false,
    };
    let mut out = Vec::new();
    for engine in AUTO {
        let Some(b) = backend(engine) else {
            out.push(unprobed(
                engine,
                "not built in".into(),
                "not built in".into(),
            ));
            continue;
        };
        match b.locate(settings) {
            Ok(at) => out.push(
                probe(engine, &at, settings.timeout, container, connections)
                    .await
                    .probe,
            ),
            // The endpoint could not even be chosen (e.g. an unknown context).
            Err(e) => out.push(unprobed(
                engine,
                b.named_by(settings)
                    .unwrap_or_else(|| "endpoint selection".into()),
                error_chain(&e),
            )),
        }
    }
    // The others (containerd): never chosen by `auto`, so listed only when
    // they answer or are the runtime asked for.
    for b in BACKENDS.iter().filter(|b| !AUTO.contains(&b.engine())) {
        if let Ok(at) = b.locate(settings) {
            let p = probe(b.engine(), &at, settings.timeout, container, connections)
                .await
                .probe;
            if p.answered() || explicit(settings.runtime) == Some(b.engine()) {
                out.push(p);
            }
        }
    }
    out
}

/// The engine `runtime` names (`None` for `auto`).
fn explicit(runtime: RuntimeChoice) -> Option<Engine> {
    match runtime {
        RuntimeChoice::Docker => Some(Engine::Docker),
        RuntimeChoice::Podman => Some(Engine::Podman),
        RuntimeChoice::Containerd => Some(CONTAINERD),
        RuntimeChoice::Auto => None,
    }
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
    if let Some(engine) = explicit(settings.runtime) {
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
            at.note
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

    let engines: Vec<Engine> = AUTO.into_iter().filter(|e| built_in(*e)).collect();
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
        let said = backend(*engine).and_then(|b| b.user_named(&at.from));
        if let Some(said) = said {
            named.push((*engine, at, said));
        } else {
            defaults.push((*engine, at));
        }
    }
    if !named.is_empty() {
        for (engine, at, said) in &named {
            let mut c = probe(*engine, at, timeout, None, connections).await;
            tried.push(c.probe.clone());
            if let Some(e) = c.config_problem(at, &tried) {
                return Err(e);
            }
            if c.ok() {
                let why = format!("runtime auto: {said} ({})", at.endpoint);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Each backend's own hint, where it is built in.
        if built_in(Engine::Docker) {
            assert!(
                hint(down(Engine::Docker, "DOCKER_HOST")).contains("DOCKER_HOST=unix:///x.sock")
            );
            assert!(hint(down(Engine::Docker, "default")).contains("docker.socket"));
        }
        if built_in(Engine::Podman) {
            assert!(hint(down(Engine::Podman, "rootless socket")).contains("systemctl --user"));
        }
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
