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

mod backends;
mod endpoints;
mod select;
pub mod session;
pub mod watch;
pub use endpoints::{containerd_namespace, default_endpoint, named_endpoints, NamedEndpoint};
pub use select::{
    connect, probe_all, probe_all_then_select, select, Probe, SelectError, Selection,
};
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

/// containerd's engine (`--runtime containerd`), also when built without it.
pub const CONTAINERD: Engine = Engine::Other("containerd");

/// An error and its sources, `": "`-joined (one formatter for every crate).
pub use bottle_runtime::error_chain;

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
}
