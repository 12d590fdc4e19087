//! Settings and their layers.

use bottle_runtime::redact_url;
use bottle_ssh::Target;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Prefix of every environment variable that sets a setting.
pub const ENV_PREFIX: &str = "CLAUDE_BOTTLE_";

/// Every setting's key, in display order.
pub const KEYS: &[&str] = &[
    "runtime",
    "host",
    "context",
    "connection",
    "namespace",
    "container_home",
    "user",
    "agent_socket",
    "public_socket",
    "agent",
    "agent_image",
    "guard",
    "timeout",
];

// Names of metadata we attach to each layer; `Origin` is recovered from them.
const DEFAULT_LAYER: &str = "built-in default";
const SYSTEM_LAYER: &str = "system file";
const USER_LAYER: &str = "user file";
const CONFIG_FLAG_LAYER: &str = "file from --config";
const CONFIG_ENV_LAYER: &str = "file from CLAUDE_BOTTLE_CONFIG";
const ENV_LAYER: &str = "environment variable";
const FLAG_LAYER: &str = "command-line flag";

/// Which container engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// Pick one (see the `bottle` crate's selection rules).
    #[default]
    Auto,
    Docker,
    Podman,
    /// containerd's gRPC API (never chosen by `auto`).
    Containerd,
}

impl RuntimeChoice {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeChoice::Auto => "auto",
            RuntimeChoice::Docker => "docker",
            RuntimeChoice::Podman => "podman",
            RuntimeChoice::Containerd => "containerd",
        }
    }
}

impl fmt::Display for RuntimeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RuntimeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(RuntimeChoice::Auto),
            "docker" => Ok(RuntimeChoice::Docker),
            "podman" => Ok(RuntimeChoice::Podman),
            "containerd" => Ok(RuntimeChoice::Containerd),
            other => Err(format!(
                "`{other}` is not a runtime; expected auto, docker, podman or containerd"
            )),
        }
    }
}

/// Where the ssh-agent runs (`bottle_ssh::sidecar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentChoice {
    /// As root in the bottle (the default).
    #[default]
    Bottle,
    /// In a companion container sharing the bottle's network namespace:
    /// keys out of reach even of root in the bottle.
    Sidecar,
}

impl AgentChoice {
    pub fn name(self) -> &'static str {
        match self {
            AgentChoice::Bottle => "bottle",
            AgentChoice::Sidecar => "sidecar",
        }
    }
}

impl fmt::Display for AgentChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AgentChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bottle" => Ok(AgentChoice::Bottle),
            "sidecar" => Ok(AgentChoice::Sidecar),
            other => Err(format!(
                "`{other}` is not an agent layout; expected bottle or sidecar"
            )),
        }
    }
}

/// Whether bottle-guard stands between the bottle and the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardChoice {
    /// Every request is checked against what each key is for (the default).
    #[default]
    On,
    /// A plain relay: every request reaches the agent. For a machine with no
    /// guard for its architecture; `verify` reports the bottle unguarded.
    Off,
}

impl GuardChoice {
    pub fn name(self) -> &'static str {
        match self {
            GuardChoice::On => "on",
            GuardChoice::Off => "off",
        }
    }
}

impl fmt::Display for GuardChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GuardChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" => Ok(GuardChoice::On),
            "off" => Ok(GuardChoice::Off),
            other => Err(format!(
                "`{other}` is not a guard setting; expected on or off"
            )),
        }
    }
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `auto`, `docker` or `podman`.
    pub runtime: RuntimeChoice,
    /// Engine endpoint URI, e.g. `unix:///run/podman/podman.sock`. `None`:
    /// the engine's own default (`DOCKER_HOST`, `CONTAINER_HOST`, well-known sockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Docker context (`$DOCKER_CONFIG/contexts`) used when neither `host`
    /// nor `DOCKER_HOST` is set. Unset in every layer: `DOCKER_CONTEXT`, then
    /// `currentContext` in `$DOCKER_CONFIG/config.json` (neither when
    /// `DOCKER_HOST` is set, as with the docker CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Podman system connection (`podman-connections.json`, containers.conf
    /// `service_destinations`) used when neither `host` nor `CONTAINER_HOST`
    /// is set. Unset in every layer: `CONTAINER_CONNECTION` (not when
    /// `CONTAINER_HOST` is set), then Podman's default connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// containerd namespace (`default`, `k8s.io` for a Kubernetes node's
    /// pods). Unset in every layer: `CONTAINERD_NAMESPACE`, then `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The unprivileged user's home in the container.
    pub container_home: String,
    /// The unprivileged user in the container.
    pub user: String,
    /// Root-only socket of the in-container ssh-agent.
    pub agent_socket: String,
    /// World-connectable forwarder socket the user's ssh talks to.
    pub public_socket: String,
    /// `bottle` (ssh-agent as root in the bottle) or `sidecar` (in a
    /// companion container sharing the bottle's network namespace).
    #[serde(default)]
    pub agent: AgentChoice,
    /// The sidecar's image; `None`: the bottle's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_image: Option<String>,
    /// `on` (bottle-guard checks every request) or `off` (a plain relay).
    #[serde(default)]
    pub guard: GuardChoice,
    /// Timeout of one engine call.
    #[serde(
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let target = Target::default();
        Settings {
            runtime: RuntimeChoice::Auto,
            host: None,
            context: None,
            connection: None,
            namespace: None,
            container_home: target.home,
            user: target.user,
            agent_socket: target.agent_socket,
            public_socket: target.public_socket,
            agent: AgentChoice::Bottle,
            agent_image: None,
            guard: GuardChoice::On,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Settings {
    /// Where the provisioner puts things in the container.
    pub fn target(&self) -> Target {
        Target {
            user: self.user.clone(),
            home: self.container_home.clone(),
            agent_socket: self.agent_socket.clone(),
            public_socket: self.public_socket.clone(),
        }
    }

    /// The value of `key` as shown to users; `None` for an unset `host`,
    /// `context` or `connection`.
    pub fn value_of(&self, key: &str) -> Option<String> {
        match key {
            "runtime" => Some(self.runtime.to_string()),
            // A password in the URL is never shown.
            "host" => self.host.as_deref().map(|h| redact_url(h).into_owned()),
            "context" => self.context.clone(),
            "connection" => self.connection.clone(),
            "namespace" => self.namespace.clone(),
            "container_home" => Some(self.container_home.clone()),
            "user" => Some(self.user.clone()),
            "agent_socket" => Some(self.agent_socket.clone()),
            "public_socket" => Some(self.public_socket.clone()),
            "agent" => Some(self.agent.to_string()),
            "agent_image" => self.agent_image.clone(),
            "guard" => Some(self.guard.to_string()),
            "timeout" => Some(format_duration(self.timeout)),
            _ => None,
        }
    }
}

/// Parse a duration: `30` (seconds), `30s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 30, 30s, 500ms, 2m)"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" | "sec" | "secs" => Duration::from_secs(n),
        "m" | "min" | "mins" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{s}` is not a duration (e.g. 30, 30s, 500ms, 2m)")),
    };
    if d.is_zero() {
        return Err("a timeout of zero would fail every call".to_string());
    }
    Ok(d)
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(n) => parse_duration(&n.to_string()),
        Raw::Text(s) => parse_duration(&s),
    }
    .map_err(serde::de::Error::custom)
}

/// How the explicit config file was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFileVia {
    /// `--config FILE`
    Flag,
    /// `CLAUDE_BOTTLE_CONFIG=FILE`
    Env,
}

/// Where the layers come from. Injectable so tests never read the real
/// `/etc` or the caller's environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Normally `/etc/claude-bottle/config.toml`; skipped when missing.
    pub system_file: Option<PathBuf>,
    /// Normally `$XDG_CONFIG_HOME/claude-bottle/config.toml`; skipped when missing.
    pub user_file: Option<PathBuf>,
    /// From `--config` or `CLAUDE_BOTTLE_CONFIG`; must exist.
    pub config_file: Option<(PathBuf, ConfigFileVia)>,
    /// Environment variables to consider (only `CLAUDE_BOTTLE_*` are read).
    pub env: Vec<(String, String)>,
    /// `CLAUDE_BOTTLE_*` variables that are not settings but known to the
    /// caller (e.g. `CLAUDE_BOTTLE_JSON` read by the CLI). `CLAUDE_BOTTLE_CONFIG`
    /// is always allowed.
    pub ignored_env: Vec<String>,
}

impl Sources {
    /// The standard locations and the process environment. `config_flag` is
    /// the `--config` value, which wins over `CLAUDE_BOTTLE_CONFIG`.
    pub fn standard(config_flag: Option<PathBuf>) -> Sources {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let get = |name: &str| {
            env.iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let user_dir = get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| get("HOME").map(|h| Path::new(&h).join(".config")));
        let config_file = match config_flag {
            Some(p) => Some((p, ConfigFileVia::Flag)),
            None => get("CLAUDE_BOTTLE_CONFIG").map(|p| (PathBuf::from(p), ConfigFileVia::Env)),
        };
        Sources {
            system_file: Some(PathBuf::from("/etc/claude-bottle/config.toml")),
            user_file: user_dir.map(|d| d.join("claude-bottle").join("config.toml")),
            config_file,
            env,
            ignored_env: Vec::new(),
        }
    }
}

/// Values from command-line flags: the top layer. `None` leaves a setting alone.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub runtime: Option<RuntimeChoice>,
    pub host: Option<String>,
    pub context: Option<String>,
    pub connection: Option<String>,
    pub namespace: Option<String>,
    pub container_home: Option<String>,
    pub user: Option<String>,
    pub agent_socket: Option<String>,
    pub public_socket: Option<String>,
    pub agent: Option<AgentChoice>,
    pub agent_image: Option<String>,
    pub guard: Option<GuardChoice>,
    pub timeout: Option<Duration>,
}

/// Where a setting's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "layer", rename_all = "snake_case")]
pub enum Origin {
    Default,
    SystemFile {
        path: PathBuf,
    },
    UserFile {
        path: PathBuf,
    },
    ConfigFile {
        path: PathBuf,
        via: String,
    },
    Env {
        var: String,
    },
    Flag {
        flag: String,
    },
    /// `currentContext` in Docker's own `config.json`.
    DockerConfig {
        path: PathBuf,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str(DEFAULT_LAYER),
            Origin::SystemFile { path } => write!(f, "{SYSTEM_LAYER} {}", path.display()),
            Origin::UserFile { path } => write!(f, "{USER_LAYER} {}", path.display()),
            Origin::ConfigFile { path, via } => write!(f, "file {} (from {via})", path.display()),
            Origin::Env { var } => write!(f, "{ENV_LAYER} {var}"),
            Origin::Flag { flag } => write!(f, "{FLAG_LAYER} {flag}"),
            Origin::DockerConfig { path } => write!(f, "currentContext in {}", path.display()),
        }
    }
}

/// Everything that can go wrong loading settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid TOML", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("unknown setting `{key}` in {}{} (known settings: {})", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default(), KEYS.join(", "))]
    UnknownKey {
        key: String,
        path: PathBuf,
        line: Option<usize>,
    },
    #[error("unknown environment variable {var}: no setting `{}` (known settings: {})", var.trim_start_matches(ENV_PREFIX).to_ascii_lowercase(), KEYS.join(", "))]
    UnknownEnv { var: String },
    #[error("invalid value for `{key}` from {origin}: {message}")]
    Invalid {
        key: String,
        origin: Origin,
        message: String,
    },
}

/// The loaded settings and the layers that made them.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    figment: Figment,
    /// Set when `context` came from Docker's own variables or file.
    context_origin: Option<Origin>,
    /// Set when `connection` came from `CONTAINER_CONNECTION`.
    connection_origin: Option<Origin>,
    /// Set when `namespace` came from `CONTAINERD_NAMESPACE`.
    namespace_origin: Option<Origin>,
}

/// One effective setting, for `bottlectl config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingValue {
    pub key: &'static str,
    /// `None`: unset (only `host` and `context` can be).
    pub value: Option<String>,
    pub env: String,
    pub origin: Origin,
}

impl Config {
    /// Which layer set `key`'s effective value.
    pub fn origin(&self, key: &str) -> Origin {
        if let (Some(origin), "context") = (&self.context_origin, key) {
            return origin.clone();
        }
        if let (Some(origin), "connection") = (&self.connection_origin, key) {
            return origin.clone();
        }
        if let (Some(origin), "namespace") = (&self.namespace_origin, key) {
            return origin.clone();
        }
        match self.figment.find_metadata(key) {
            Some(meta) => origin_of(meta, key),
            None => Origin::Default,
        }
    }

    /// Every setting with its value and origin, in [`KEYS`] order.
    pub fn origins(&self) -> Vec<SettingValue> {
        KEYS.iter()
            .map(|key| SettingValue {
                key,
                value: self.settings.value_of(key),
                env: env_name(key),
                origin: self.origin(key),
            })
            .collect()
    }
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

fn origin_of(meta: &Metadata, key: &str) -> Origin {
    let path = || match &meta.source {
        Some(figment::Source::File(p)) => p.clone(),
        _ => PathBuf::new(),
    };
    match meta.name.as_ref() {
        SYSTEM_LAYER => Origin::SystemFile { path: path() },
        USER_LAYER => Origin::UserFile { path: path() },
        CONFIG_FLAG_LAYER => Origin::ConfigFile {
            path: path(),
            via: "--config".into(),
        },
        CONFIG_ENV_LAYER => Origin::ConfigFile {
            path: path(),
            via: "CLAUDE_BOTTLE_CONFIG".into(),
        },
        ENV_LAYER => Origin::Env { var: env_name(key) },
        FLAG_LAYER => Origin::Flag {
            flag: flag_name(key),
        },
        _ => Origin::Default,
    }
}

/// A figment provider for one layer, with our own metadata name.
struct Layer {
    meta: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.meta.clone()
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn file_layer(
    path: &Path,
    name: &'static str,
    required: bool,
) -> Result<Option<Layer>, ConfigError> {
    let text = match bottle_runtime::file::read_text(path, bottle_runtime::file::MAX_CONFIG_FILE) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let mut dict = Dict::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            let line = line_of_key(&text, &key);
            return Err(ConfigError::UnknownKey {
                key,
                path: path.to_path_buf(),
                line,
            });
        }
        let value = Value::serialize(&value).map_err(|e| ConfigError::Invalid {
            key: key.clone(),
            origin: Origin::Default,
            message: e.to_string(),
        })?;
        dict.insert(key, value);
    }
    Ok(Some(Layer {
        meta: Metadata::from(name, path),
        dict,
    }))
}

// 1-based line of a top-level `key = …` or `[key]`, for the error message.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|line| {
        let l = line.trim_start();
        let rest = l
            .strip_prefix('[')
            .map(|r| r.trim_start_matches('['))
            .unwrap_or(l);
        let rest = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_prefix(key).and_then(|r| r.strip_prefix('"')))
            .or_else(|| rest.strip_prefix(key));
        matches!(rest.map(str::trim_start), Some(r) if r.starts_with('=') || r.starts_with(']') || r.starts_with('.'))
    })
    .map(|i| i + 1)
}

fn env_layer(sources: &Sources) -> Result<Layer, ConfigError> {
    let mut dict = Dict::new();
    let mut vars: Vec<&(String, String)> = sources.env.iter().collect();
    vars.sort();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest == "CONFIG" || sources.ignored_env.iter().any(|i| i == var) {
            continue;
        }
        let key = rest.to_ascii_lowercase();
        if !KEYS.contains(&key.as_str()) || rest != rest.to_ascii_uppercase() {
            return Err(ConfigError::UnknownEnv { var: var.clone() });
        }
        // Environment values are plain strings (no TOML-style guessing), so
        // `CLAUDE_BOTTLE_USER=1000` stays the string "1000".
        dict.insert(key, Value::from(value.clone()));
    }
    Ok(Layer {
        meta: Metadata::named(ENV_LAYER),
        dict,
    })
}

fn flag_layer(o: &Overrides) -> Layer {
    let mut dict = Dict::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            dict.insert(k.to_string(), Value::from(v));
        }
    };
    put("runtime", o.runtime.map(|r| r.to_string()));
    put("host", o.host.clone());
    put("context", o.context.clone());
    put("connection", o.connection.clone());
    put("namespace", o.namespace.clone());
    put("container_home", o.container_home.clone());
    put("user", o.user.clone());
    put("agent_socket", o.agent_socket.clone());
    put("public_socket", o.public_socket.clone());
    put("agent", o.agent.map(|a| a.to_string()));
    put("agent_image", o.agent_image.clone());
    put("guard", o.guard.map(|g| g.to_string()));
    put("timeout", o.timeout.map(format_duration));
    Layer {
        meta: Metadata::named(FLAG_LAYER),
        dict,
    }
}

/// Load settings from `sources`, with `overrides` (command-line flags) on top.
pub fn load(sources: &Sources, overrides: &Overrides) -> Result<Config, ConfigError> {
    let defaults = match Value::serialize(Settings::default()) {
        Ok(Value::Dict(_, dict)) => dict,
        _ => Dict::new(),
    };
    let mut figment = Figment::from(Layer {
        meta: Metadata::named(DEFAULT_LAYER),
        dict: defaults,
    });
    if let Some(path) = &sources.system_file {
        if let Some(layer) = file_layer(path, SYSTEM_LAYER, false)? {
            figment = figment.merge(layer);
        }
    }
    if let Some(path) = &sources.user_file {
        if let Some(layer) = file_layer(path, USER_LAYER, false)? {
            figment = figment.merge(layer);
        }
    }
    if let Some((path, via)) = &sources.config_file {
        let name = match via {
            ConfigFileVia::Flag => CONFIG_FLAG_LAYER,
            ConfigFileVia::Env => CONFIG_ENV_LAYER,
        };
        if let Some(layer) = file_layer(path, name, true)? {
            figment = figment.merge(layer);
        }
    }
    figment = figment.merge(env_layer(sources)?);
    figment = figment.merge(flag_layer(overrides));

    let settings: Settings = figment.extract().map_err(|e| {
        let key = e.path.last().cloned().unwrap_or_default();
        let origin = e
            .metadata
            .as_ref()
            .map(|m| origin_of(m, &key))
            .unwrap_or(Origin::Default);
        ConfigError::Invalid {
            key,
            origin,
            message: e.kind.to_string(),
        }
    })?;
    let mut settings = settings;
    let context_origin = if settings.context.is_none() {
        docker_context(sources)?.map(|(name, origin)| {
            settings.context = Some(name);
            origin
        })
    } else {
        None
    };
    let connection_origin = match (&settings.connection, podman_connection(sources)) {
        (None, Some(name)) => {
            settings.connection = Some(name);
            Some(Origin::Env {
                var: "CONTAINER_CONNECTION".into(),
            })
        }
        _ => None,
    };
    let namespace_origin = match (
        &settings.namespace,
        env_value(sources, "CONTAINERD_NAMESPACE"),
    ) {
        (None, Some(name)) => {
            settings.namespace = Some(name);
            Some(Origin::Env {
                var: "CONTAINERD_NAMESPACE".into(),
            })
        }
        _ => None,
    };
    Ok(Config {
        settings,
        figment,
        context_origin,
        connection_origin,
        namespace_origin,
    })
}

/// A non-blank variable of `sources`, trimmed.
fn env_value(sources: &Sources, name: &str) -> Option<String> {
    sources
        .env
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_string())
}

/// `CONTAINER_CONNECTION`, when no layer names a connection; not when
/// `CONTAINER_HOST` is set (it comes first). Podman's default connection is
/// the backend's to find (it reads the connection files).
fn podman_connection(sources: &Sources) -> Option<String> {
    let get = |name: &str| {
        sources
            .env
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    };
    if get("CONTAINER_HOST").is_some() {
        return None;
    }
    get("CONTAINER_CONNECTION")
}

/// The Docker context Docker itself would use, when no layer names one:
/// `DOCKER_CONTEXT`, else `currentContext` in `$DOCKER_CONFIG/config.json`
/// (default `~/.docker`); neither when `DOCKER_HOST` is set (it wins, as
/// with the docker CLI). A missing file is no context; an unreadable or
/// invalid one is an error (the docker CLI refuses it too).
fn docker_context(sources: &Sources) -> Result<Option<(String, Origin)>, ConfigError> {
    let get = |name: &str| {
        sources
            .env
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    };
    if get("DOCKER_HOST").is_some() {
        return Ok(None);
    }
    if let Some(name) = get("DOCKER_CONTEXT") {
        let origin = Origin::Env {
            var: "DOCKER_CONTEXT".into(),
        };
        return Ok(Some((name, origin)));
    }
    let Some(dir) = get("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| get("HOME").map(|h| Path::new(&h).join(".docker")))
    else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let text = match bottle_runtime::file::read_text(&path, bottle_runtime::file::MAX_CONFIG_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    #[derive(Deserialize)]
    struct DockerConfigFile {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    let file: DockerConfigFile = serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
        key: "context".into(),
        origin: Origin::DockerConfig { path: path.clone() },
        message: format!("not valid JSON: {e}"),
    })?;
    Ok(file
        .current_context
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .map(|c| (c, Origin::DockerConfig { path })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    fn jail_sources(jail: &Jail) -> Sources {
        let dir = jail.directory();
        Sources {
            system_file: Some(dir.join("etc/claude-bottle/config.toml")),
            user_file: Some(dir.join("xdg/claude-bottle/config.toml")),
            config_file: None,
            env: std::env::vars().collect(),
            ignored_env: vec![],
        }
    }

    fn create(jail: &mut Jail, rel: &str, text: &str) {
        let path = jail.directory().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn clear_env(jail: &mut Jail) {
        // Never the caller's own Docker configuration.
        let docker = jail.directory().join("docker");
        jail.set_env("DOCKER_CONFIG", docker.display());
        for (k, _) in std::env::vars() {
            if k.starts_with(ENV_PREFIX)
                || [
                    "DOCKER_HOST",
                    "DOCKER_CONTEXT",
                    "CONTAINER_HOST",
                    "CONTAINER_CONNECTION",
                    "CONTAINERD_NAMESPACE",
                ]
                .contains(&k.as_str())
            {
                jail.set_env(&k, "");
                std::env::remove_var(&k);
            }
        }
    }

    #[test]
    fn defaults_come_from_the_default_layer() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings, Settings::default());
            for v in config.origins() {
                assert_eq!(v.origin, Origin::Default, "{}", v.key);
            }
            assert_eq!(config.settings.container_home, "/home/node");
            assert_eq!(config.settings.timeout, Duration::from_secs(30));
            Ok(())
        });
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let dir = jail.directory().to_path_buf();
            // Each layer sets one more key than the one above it, so every
            // key ends up owned by a different layer.
            create(
                jail,
                "etc/claude-bottle/config.toml",
                "user = 'sys'\ncontainer_home = '/sys'\nagent_socket = '/sys.sock'\npublic_socket = '/syspub.sock'\ntimeout = 5\n",
            );
            create(
                jail,
                "xdg/claude-bottle/config.toml",
                "user = 'usr'\ncontainer_home = '/usr'\nagent_socket = '/usr.sock'\npublic_socket = '/usrpub.sock'\n",
            );
            create(
                jail,
                "explicit.toml",
                "user = 'exp'\ncontainer_home = '/exp'\nagent_socket = '/exp.sock'\n",
            );
            jail.set_env("CLAUDE_BOTTLE_USER", "envuser");
            jail.set_env("CLAUDE_BOTTLE_CONTAINER_HOME", "/home/dev");
            let mut sources = jail_sources(jail);
            sources.config_file = Some((dir.join("explicit.toml"), ConfigFileVia::Flag));
            let overrides = Overrides {
                user: Some("flaguser".into()),
                ..Overrides::default()
            };
            let config = load(&sources, &overrides).map_err(|e| e.to_string())?;
            let s = &config.settings;
            assert_eq!(s.user, "flaguser");
            assert_eq!(s.container_home, "/home/dev");
            assert_eq!(s.agent_socket, "/exp.sock");
            assert_eq!(s.public_socket, "/usrpub.sock");
            assert_eq!(s.timeout, Duration::from_secs(5));
            assert_eq!(s.runtime, RuntimeChoice::Auto);

            assert_eq!(
                config.origin("user"),
                Origin::Flag {
                    flag: "--user".into()
                }
            );
            assert_eq!(
                config.origin("container_home"),
                Origin::Env {
                    var: "CLAUDE_BOTTLE_CONTAINER_HOME".into()
                }
            );
            assert_eq!(
                config.origin("agent_socket"),
                Origin::ConfigFile {
                    path: dir.join("explicit.toml"),
                    via: "--config".into()
                }
            );
            assert_eq!(
                config.origin("public_socket"),
                Origin::UserFile {
                    path: dir.join("xdg/claude-bottle/config.toml")
                }
            );
            assert_eq!(
                config.origin("timeout"),
                Origin::SystemFile {
                    path: dir.join("etc/claude-bottle/config.toml")
                }
            );
            assert_eq!(config.origin("runtime"), Origin::Default);
            assert_eq!(config.origin("host"), Origin::Default);
            Ok(())
        });
    }

    #[test]
    fn standard_sources_use_xdg_and_claude_bottle_config() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let dir = jail.directory().to_path_buf();
            jail.set_env("XDG_CONFIG_HOME", dir.join("xdg").display());
            jail.set_env("CLAUDE_BOTTLE_CONFIG", dir.join("c.toml").display());
            create(
                jail,
                "xdg/claude-bottle/config.toml",
                "runtime = 'docker'\n",
            );
            create(jail, "c.toml", "host = 'unix:///tmp/x.sock'\n");
            let mut sources = Sources::standard(None);
            assert_eq!(
                sources.system_file.as_deref(),
                Some(Path::new("/etc/claude-bottle/config.toml"))
            );
            sources.system_file = None; // never read the real /etc in tests
            let config = load(&sources, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.runtime, RuntimeChoice::Docker);
            assert_eq!(config.settings.host.as_deref(), Some("unix:///tmp/x.sock"));
            assert_eq!(
                config.origin("host"),
                Origin::ConfigFile {
                    path: dir.join("c.toml"),
                    via: "CLAUDE_BOTTLE_CONFIG".into()
                }
            );
            assert_eq!(
                config.origin("host").to_string(),
                format!(
                    "file {} (from CLAUDE_BOTTLE_CONFIG)",
                    dir.join("c.toml").display()
                )
            );
            // --config wins over CLAUDE_BOTTLE_CONFIG.
            let flag = Sources::standard(Some(dir.join("other.toml")));
            assert_eq!(
                flag.config_file,
                Some((dir.join("other.toml"), ConfigFileVia::Flag))
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_file_key_names_key_file_and_line() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            create(
                jail,
                "xdg/claude-bottle/config.toml",
                "user = 'a'\n\ncontainer_hom = '/x'\n",
            );
            let err = load(&jail_sources(jail), &Overrides::default()).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ConfigError::UnknownKey { ref key, line: Some(3), .. } if key == "container_hom"),
                "{msg}"
            );
            assert!(
                msg.contains("container_hom")
                    && msg.contains("xdg/claude-bottle/config.toml line 3"),
                "{msg}"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_env_var_is_an_error_but_config_and_ignored_are_not() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            jail.set_env("CLAUDE_BOTTLE_CONTAINER_HOMEE", "/x");
            let err = load(&jail_sources(jail), &Overrides::default()).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("unknown environment variable CLAUDE_BOTTLE_CONTAINER_HOMEE"),
                "{err}"
            );
            std::env::remove_var("CLAUDE_BOTTLE_CONTAINER_HOMEE");
            jail.set_env("CLAUDE_BOTTLE_JSON", "1");
            jail.set_env("CLAUDE_BOTTLE_CONFIG", "/nonexistent-but-not-a-setting");
            let mut sources = jail_sources(jail);
            assert!(load(&sources, &Overrides::default()).is_err());
            sources.ignored_env.push("CLAUDE_BOTTLE_JSON".into());
            load(&sources, &Overrides::default()).map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_key_and_layer() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            jail.set_env("CLAUDE_BOTTLE_RUNTIME", "dockr");
            let err = load(&jail_sources(jail), &Overrides::default()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(
                    "invalid value for `runtime` from environment variable CLAUDE_BOTTLE_RUNTIME"
                ),
                "{msg}"
            );
            std::env::remove_var("CLAUDE_BOTTLE_RUNTIME");
            create(
                jail,
                "etc/claude-bottle/config.toml",
                "timeout = '3 parsecs'\n",
            );
            let msg = load(&jail_sources(jail), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains("`timeout` from system file"), "{msg}");
            create(jail, "etc/claude-bottle/config.toml", "timeout = [\n");
            let err = load(&jail_sources(jail), &Overrides::default()).unwrap_err();
            assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_explicit_file_is_an_error_missing_standard_files_are_not() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let mut sources = jail_sources(jail);
            load(&sources, &Overrides::default()).map_err(|e| e.to_string())?;
            sources.config_file = Some((jail.directory().join("nope.toml"), ConfigFileVia::Flag));
            let err = load(&sources, &Overrides::default()).unwrap_err();
            assert!(matches!(err, ConfigError::Read { .. }), "{err}");
            Ok(())
        });
    }

    #[test]
    fn guard_from_each_layer_with_its_origin() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.guard, GuardChoice::On);
            assert_eq!(config.origin("guard"), Origin::Default);
            create(jail, "xdg/claude-bottle/config.toml", "guard = \"off\"\n");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.guard, GuardChoice::Off);
            assert_eq!(config.settings.value_of("guard").as_deref(), Some("off"));
            jail.set_env("CLAUDE_BOTTLE_GUARD", "on");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.guard, GuardChoice::On);
            let overrides = Overrides {
                guard: Some(GuardChoice::Off),
                ..Overrides::default()
            };
            let config = load(&jail_sources(jail), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.guard, GuardChoice::Off);
            assert_eq!(
                config.origin("guard").to_string(),
                "command-line flag --guard"
            );
            // Anything but on or off is refused, never read as off.
            jail.set_env("CLAUDE_BOTTLE_GUARD", "no");
            let err = load(&jail_sources(jail), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("guard"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn agent_layout_from_each_layer_with_its_origin() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.agent, AgentChoice::Bottle);
            assert_eq!(config.origin("agent"), Origin::Default);
            assert_eq!(config.settings.agent_image, None);
            create(
                jail,
                "xdg/claude-bottle/config.toml",
                "agent = \"sidecar\"\n",
            );
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.agent, AgentChoice::Sidecar);
            jail.set_env("CLAUDE_BOTTLE_AGENT", "bottle");
            jail.set_env("CLAUDE_BOTTLE_AGENT_IMAGE", "agent:1");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.agent, AgentChoice::Bottle);
            assert_eq!(
                config.origin("agent").to_string(),
                "environment variable CLAUDE_BOTTLE_AGENT"
            );
            assert_eq!(config.settings.agent_image.as_deref(), Some("agent:1"));
            let overrides = Overrides {
                agent: Some(AgentChoice::Sidecar),
                ..Overrides::default()
            };
            let config = load(&jail_sources(jail), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.agent, AgentChoice::Sidecar);
            assert_eq!(
                config.origin("agent").to_string(),
                "command-line flag --agent"
            );
            jail.set_env("CLAUDE_BOTTLE_AGENT", "outside");
            let err = load(&jail_sources(jail), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("agent"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn namespace_layers_then_containerd_namespace() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.namespace, None);
            assert_eq!(config.origin("namespace"), Origin::Default);
            jail.set_env("CONTAINERD_NAMESPACE", "k8s.io");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.namespace.as_deref(), Some("k8s.io"));
            assert_eq!(
                config.origin("namespace").to_string(),
                "environment variable CONTAINERD_NAMESPACE"
            );
            create(
                jail,
                "xdg/claude-bottle/config.toml",
                "namespace = \"filed\"\nruntime = \"containerd\"\n",
            );
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.namespace.as_deref(), Some("filed"));
            assert_eq!(config.settings.runtime, RuntimeChoice::Containerd);
            let overrides = Overrides {
                namespace: Some("flagged".into()),
                ..Overrides::default()
            };
            let config = load(&jail_sources(jail), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.namespace.as_deref(), Some("flagged"));
            assert_eq!(
                config.origin("namespace").to_string(),
                "command-line flag --namespace"
            );
            Ok(())
        });
    }

    #[test]
    fn connection_layers_then_container_connection_unless_container_host() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.connection, None);
            jail.set_env("CONTAINER_CONNECTION", "envconn");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.connection.as_deref(), Some("envconn"));
            assert_eq!(
                config.origin("connection").to_string(),
                "environment variable CONTAINER_CONNECTION"
            );
            create(
                jail,
                "xdg/claude-bottle/config.toml",
                "connection = \"filed\"\n",
            );
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.connection.as_deref(), Some("filed"));
            jail.set_env("CLAUDE_BOTTLE_CONNECTION", "ours");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.connection.as_deref(), Some("ours"));
            let overrides = Overrides {
                connection: Some("flagconn".into()),
                ..Overrides::default()
            };
            let config = load(&jail_sources(jail), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.connection.as_deref(), Some("flagconn"));
            assert_eq!(
                config.origin("connection").to_string(),
                "command-line flag --connection"
            );
            // CONTAINER_HOST wins over CONTAINER_CONNECTION (not over ours).
            std::env::remove_var("CLAUDE_BOTTLE_CONNECTION");
            create(jail, "xdg/claude-bottle/config.toml", "");
            jail.set_env("CONTAINER_HOST", "unix:///x.sock");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.connection, None);
            assert_eq!(config.origin("connection"), Origin::Default);
            Ok(())
        });
    }

    #[test]
    fn context_layers_then_docker_context_then_current_context() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            let cfg = jail.directory().join("docker/config.json");
            create(
                jail,
                "docker/config.json",
                r#"{"auths":{},"currentContext":"cur"}"#,
            );
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.context.as_deref(), Some("cur"));
            assert_eq!(
                config.origin("context"),
                Origin::DockerConfig { path: cfg.clone() }
            );
            assert_eq!(
                config.origin("context").to_string(),
                format!("currentContext in {}", cfg.display())
            );
            jail.set_env("DOCKER_CONTEXT", "envctx");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.context.as_deref(), Some("envctx"));
            assert_eq!(
                config.origin("context").to_string(),
                "environment variable DOCKER_CONTEXT"
            );
            jail.set_env("CLAUDE_BOTTLE_CONTEXT", "ours");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.context.as_deref(), Some("ours"));
            let overrides = Overrides {
                context: Some("flagctx".into()),
                ..Overrides::default()
            };
            let config = load(&jail_sources(jail), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.context.as_deref(), Some("flagctx"));
            assert_eq!(
                config.origin("context").to_string(),
                "command-line flag --context"
            );
            // DOCKER_HOST wins over Docker's own context choice (not over ours).
            std::env::remove_var("CLAUDE_BOTTLE_CONTEXT");
            jail.set_env("DOCKER_HOST", "unix:///x.sock");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.context, None);
            assert_eq!(config.origin("context"), Origin::Default);
            std::env::remove_var("DOCKER_HOST");
            std::env::remove_var("DOCKER_CONTEXT");
            create(jail, "docker/config.json", "{ nope");
            let msg = load(&jail_sources(jail), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains("`context` from currentContext in"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn env_values_stay_strings_and_timeouts_parse() {
        Jail::expect_with(|jail| {
            clear_env(jail);
            jail.set_env("CLAUDE_BOTTLE_USER", "1000");
            jail.set_env("CLAUDE_BOTTLE_TIMEOUT", "1500ms");
            let config =
                load(&jail_sources(jail), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.settings.user, "1000");
            assert_eq!(config.settings.timeout, Duration::from_millis(1500));
            assert_eq!(config.settings.value_of("timeout").unwrap(), "1500ms");
            Ok(())
        });
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("").is_err());
    }
}
