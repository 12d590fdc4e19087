//! Container lifecycle, for test fixtures and `bottlectl demo`.
//!
//! Provisioning itself never needs these: it works on a container someone
//! else started. They live in a separate trait so the provisioning contract
//! ([`ContainerRuntime`]) stays small.

use crate::{ContainerInfo, ContainerRuntime, Result};
use async_trait::async_trait;

/// Which network a container joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// No network at all (loopback only).
    None,
    /// Share the network namespace of another container (name or id).
    Container(String),
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub image: String,
    /// `None`: let the engine pick a name.
    pub name: Option<String>,
    pub cmd: Vec<String>,
    /// `uid`, `uid:gid` or a name; empty means the image's default.
    pub user: String,
    pub network: NetworkMode,
    pub labels: Vec<(String, String)>,
    /// Mount the root filesystem read-only.
    pub read_only: bool,
    /// Absolute paths that get a fresh, writable tmpfs
    /// ([`TMPFS_OPTIONS`](Self::TMPFS_OPTIONS)), e.g. `/run` and `/tmp`
    /// beside `read_only`.
    pub tmpfs: Vec<String>,
    /// Mount the [`tmpfs`](Self::tmpfs) paths `noexec` (both engines' own
    /// default) instead of `exec`: [`tmpfs_options`](Self::tmpfs_options).
    pub tmpfs_noexec: bool,
}

impl RunSpec {
    /// Mount options of every [`tmpfs`](Self::tmpfs) path, the same on both
    /// engines (their own defaults differ). The tmpfs starts empty, with the
    /// mode of the image's directory there (runc keeps it: e.g. `/run` 755,
    /// `/tmp` 1777). `exec` (both engines default to `noexec`): the
    /// provisioner's guard runs from its state directory under `/run`.
    pub const TMPFS_OPTIONS: &'static [&'static str] = &["rw", "nosuid", "nodev", "exec"];

    pub fn new<I, S>(image: impl Into<String>, cmd: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RunSpec {
            image: image.into(),
            name: None,
            cmd: cmd.into_iter().map(Into::into).collect(),
            user: String::new(),
            network: NetworkMode::None,
            labels: Vec::new(),
            read_only: false,
            tmpfs: Vec::new(),
            tmpfs_noexec: false,
        }
    }

    /// The mount options of this spec's tmpfs paths:
    /// [`TMPFS_OPTIONS`](Self::TMPFS_OPTIONS), or with `noexec` for
    /// [`tmpfs_noexec`](Self::tmpfs_noexec).
    pub fn tmpfs_options(&self) -> &'static [&'static str] {
        if self.tmpfs_noexec {
            &["rw", "nosuid", "nodev", "noexec"]
        } else {
            Self::TMPFS_OPTIONS
        }
    }
}

/// What [`ContainerAdmin::details`] reports beyond [`ContainerInfo`]: what a
/// companion container (bottle-ssh's `sidecar` agent layout) is made from
/// and checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDetails {
    pub info: ContainerInfo,
    /// The image's id (`sha256:…`), what a companion is created from.
    pub image: String,
    /// The engine's network mode: `none`, `host`, `bridge`,
    /// `container:<id>`, `slirp4netns`, …
    pub network: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// When the container last started, as the engine reports it; changes
    /// on every start (a new network namespace).
    pub started_at: String,
    pub privileged: bool,
    /// Destinations of its mounts (volumes, binds, tmpfs), as listed by the engine.
    pub mounts: Vec<String>,
}

/// Create, start, stop, pause and remove containers; import images.
#[async_trait]
pub trait ContainerAdmin: ContainerRuntime {
    /// What the container is made from and joined to
    /// ([`ContainerDetails`]). `NotSupported` unless the backend offers it.
    async fn details(&self, container: &str) -> Result<ContainerDetails> {
        let _ = container;
        Err(crate::Error::NotSupported {
            engine: self.engine(),
            operation: "container details",
        })
    }

    /// Whether an image with this reference (e.g. `bottle-test:abc123`) exists.
    async fn image_exists(&self, reference: &str) -> Result<bool>;

    /// Import a root filesystem tarball as an image named `reference`.
    async fn import_image(&self, rootfs_tar: Vec<u8>, reference: &str) -> Result<()>;

    /// Create and start a container; returns it as inspected after start.
    async fn run(&self, spec: &RunSpec) -> Result<ContainerInfo>;

    /// Start a stopped container.
    async fn start(&self, container: &str) -> Result<()>;

    /// Stop a container without grace (timeout 0 s).
    async fn stop(&self, container: &str) -> Result<()>;

    async fn pause(&self, container: &str) -> Result<()>;

    async fn unpause(&self, container: &str) -> Result<()>;

    /// Remove a container, forcibly, whatever its state. Removing a container
    /// that does not exist is not an error.
    async fn remove(&self, container: &str) -> Result<()>;
}
