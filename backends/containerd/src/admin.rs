//! `ContainerAdmin` for containerd: a root filesystem tarball imported as a
//! one-layer OCI image (content, snapshot, diff, image services), and
//! containers with an OCI spec of their own: a new network namespace
//! (loopback only, no CNI) or another container's, by its task's netns path.

use crate::runtime::info_of;
use crate::{ContainerdRuntime, ENGINE, NAME_LABEL};
use bottle_runtime::{
    ContainerAdmin, ContainerDetails, ContainerInfo, ContainerRuntime, ContainerState, Error,
    NetworkMode, Result, RunSpec,
};
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    container::Runtime, ApplyRequest, Container, CreateContainerRequest, CreateImageRequest,
    CreateRequest as LeaseCreate, CreateTaskRequest, DeleteContainerRequest,
    DeleteRequest as LeaseDelete, DeleteTaskRequest, GetImageRequest, Image, KillRequest,
    ListImagesRequest, PauseTaskRequest, ReadContentRequest, ResumeTaskRequest, StartRequest,
    WaitRequest, WriteAction, WriteContentRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request};
use containerd_client::types::Descriptor;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const SNAPSHOTTER: &str = "overlayfs";
const RUNC: &str = "io.containerd.runc.v2";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// A blob read back (manifest, config) is at most this large.
const MAX_BLOB: i64 = 1 << 20;
/// Label holding the container's network mode, for `details`.
const NETWORK_LABEL: &str = "io.bottle.network";

/// `sha256:` and 64 hex digits.
fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()).map_err(|e| {
        Error::Api {
            engine: ENGINE,
            container: String::new(),
            operation: "random id",
            source: Box::new(std::io::Error::from(e)),
        }
    })?;
    Ok(hex::encode(buf))
}

/// The chain id of a layer stack (OCI image spec): what the snapshot of
/// the unpacked layers is named.
fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut ids = diff_ids.iter();
    let mut chain = ids.next()?.clone();
    for d in ids {
        chain = digest_of(format!("{chain} {d}").as_bytes());
    }
    Some(chain)
}

impl ContainerdRuntime {
    fn leased<T>(&self, lease: &str, message: T) -> Request<T> {
        let mut req = self.request(message);
        if let Ok(v) = lease.parse() {
            req.metadata_mut().insert("containerd-lease", v);
        }
        req
    }

    fn api(&self, e: containerd_client::tonic::Status, what: &str, op: &'static str) -> Error {
        self.status_error(e, what, op)
    }

    async fn write_blob(
        &self,
        ch: &Channel,
        lease: &str,
        data: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<String> {
        let digest = digest_of(data);
        let total = data.len() as i64;
        let reference = format!("bottle-import-{}", &digest[7..]);
        let mut reqs = Vec::new();
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[][..]]
        } else {
            data.chunks(1 << 20).collect()
        };
        let mut offset = 0i64;
        for chunk in chunks {
            reqs.push(WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: digest.clone(),
                offset,
                data: chunk.to_vec(),
                labels: HashMap::new(),
            });
            offset += chunk.len() as i64;
        }
        reqs.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            expected: digest.clone(),
            offset,
            data: Vec::new(),
            labels,
        });
        let stream = futures_util::stream::iter(reqs);
        let result = ContentClient::new(ch.clone())
            .write(self.leased(lease, stream))
            .await;
        match result {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                while let Some(m) = resp.message().await.transpose() {
                    if let Err(e) = m {
                        if e.code() == Code::AlreadyExists {
                            break;
                        }
                        return Err(self.api(e, "", "image import"));
                    }
                }
            }
            Err(e) if e.code() == Code::AlreadyExists => {}
            Err(e) => return Err(self.api(e, "", "image import")),
        }
        Ok(digest)
    }

    async fn read_blob(&self, ch: &Channel, digest: &str, what: &str) -> Result<Vec<u8>> {
        let mut stream = ContentClient::new(ch.clone())
            .read(self.request(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(|e| self.api(e, what, "image read"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream
            .message()
            .await
            .map_err(|e| self.api(e, what, "image read"))?
        {
            out.extend_from_slice(&m.data);
            if out.len() as i64 > MAX_BLOB {
                return Err(Error::InvalidRequest {
                    engine: ENGINE,
                    container: what.to_string(),
                    operation: "image read",
                    reason: format!("blob {digest} is larger than {MAX_BLOB} bytes"),
                });
            }
        }
        Ok(out)
    }

    /// The image named `reference`, or by id (what `details` reports) the
    /// image whose manifest that is.
    async fn find_image(&self, ch: &Channel, reference: &str) -> Result<Option<Image>> {
        let mut images = ImagesClient::new(ch.clone());
        match images
            .get(self.request(GetImageRequest {
                name: reference.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().image),
            Err(e) if e.code() == Code::NotFound && is_digest(reference) => Ok(images
                .list(self.request(ListImagesRequest {
                    filters: vec![format!(
                        "target.digest=={}",
                        crate::runtime::quote(reference)
                    )],
                }))
                .await
                .map_err(|e| self.api(e, reference, "image lookup"))?
                .into_inner()
                .images
                .into_iter()
                .find(|i| i.target.as_ref().is_some_and(|t| t.digest == reference))),
            Err(e) if e.code() == Code::NotFound => Ok(None),
            Err(e) => Err(self.api(e, reference, "image lookup")),
        }
    }

    /// The snapshot (chain id) an image's layers unpack to.
    async fn image_chain(&self, ch: &Channel, reference: &str) -> Result<String> {
        let found = self.find_image(ch, reference).await?;
        let image = found
            .ok_or_else(|| Error::InvalidRequest {
                engine: ENGINE,
                container: reference.to_string(),
                operation: "image lookup",
                reason: format!(
                    "image `{}` does not exist in namespace `{}`",
                    reference.escape_debug(),
                    self.namespace()
                ),
            })?
            .target
            .ok_or_else(|| Error::InvalidRequest {
                engine: ENGINE,
                container: reference.to_string(),
                operation: "image lookup",
                reason: "the image has no target".into(),
            })?;
        let bad = |reason: String| Error::InvalidRequest {
            engine: ENGINE,
            container: reference.to_string(),
            operation: "image lookup",
            reason,
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(&self.read_blob(ch, &image.digest, reference).await?)
                .map_err(|e| bad(format!("manifest: {e}")))?;
        let config_digest = manifest["config"]["digest"].as_str().ok_or_else(|| {
            bad("the manifest names no config (an index is not supported)".into())
        })?;
        let config: serde_json::Value =
            serde_json::from_slice(&self.read_blob(ch, config_digest, reference).await?)
                .map_err(|e| bad(format!("config: {e}")))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        chain_id(&diff_ids).ok_or_else(|| bad("the image has no layers".into()))
    }

    async fn import_inner(&self, rootfs_tar: Vec<u8>, reference: &str) -> Result<()> {
        let ch = self.channel().await?;
        let lease = format!("bottle-import-{}", random_hex(8)?);
        LeasesClient::new(ch.clone())
            .create(self.request(LeaseCreate {
                id: lease.clone(),
                labels: HashMap::new(),
            }))
            .await
            .map_err(|e| self.api(e, reference, "image import"))?;
        let result = self.import_leased(&ch, &lease, rootfs_tar, reference).await;
        let _ = LeasesClient::new(ch.clone())
            .delete(self.request(LeaseDelete {
                id: lease,
                sync: false,
            }))
            .await;
        result
    }

    async fn import_leased(
        &self,
        ch: &Channel,
        lease: &str,
        rootfs_tar: Vec<u8>,
        reference: &str,
    ) -> Result<()> {
        let layer_size = rootfs_tar.len() as i64;
        let layer = self
            .write_blob(ch, lease, &rootfs_tar, HashMap::new())
            .await?;
        drop(rootfs_tar);
        // Uncompressed: the layer's digest is its diff id, and with one
        // layer also the chain id.
        let chain = layer.clone();
        let config = serde_json::json!({
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer]},
        });
        let config = serde_json::to_vec(&config).expect("json");
        let config_digest = self
            .write_blob(
                ch,
                lease,
                &config,
                HashMap::from([(
                    format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
                    chain.clone(),
                )]),
            )
            .await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer, "size": layer_size}],
        });
        let manifest = serde_json::to_vec(&manifest).expect("json");
        let manifest_digest = self
            .write_blob(
                ch,
                lease,
                &manifest,
                HashMap::from([
                    ("containerd.io/gc.ref.content.config".into(), config_digest),
                    ("containerd.io/gc.ref.content.l.0".into(), layer.clone()),
                ]),
            )
            .await?;
        // Unpack: an active snapshot, the layer applied, committed as the chain id.
        let mut snapshots = SnapshotsClient::new(ch.clone());
        let key = format!("bottle-unpack-{}", random_hex(8)?);
        let prepared = snapshots
            .prepare(self.leased(
                lease,
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.clone(),
                    parent: String::new(),
                    labels: HashMap::new(),
                },
            ))
            .await;
        match prepared {
            Ok(p) => {
                let mounts = p.into_inner().mounts;
                let applied = DiffClient::new(ch.clone())
                    .apply(self.leased(
                        lease,
                        ApplyRequest {
                            diff: Some(Descriptor {
                                media_type: LAYER_TYPE.into(),
                                digest: layer.clone(),
                                size: layer_size,
                                annotations: HashMap::new(),
                            }),
                            mounts,
                            payloads: HashMap::new(),
                            sync_fs: false,
                        },
                    ))
                    .await;
                if let Err(e) = applied {
                    let _ = snapshots
                        .remove(self.request(RemoveSnapshotRequest {
                            snapshotter: SNAPSHOTTER.into(),
                            key,
                        }))
                        .await;
                    return Err(self.api(e, reference, "image unpack"));
                }
                let committed = snapshots
                    .commit(self.leased(
                        lease,
                        CommitSnapshotRequest {
                            snapshotter: SNAPSHOTTER.into(),
                            name: chain.clone(),
                            key: key.clone(),
                            labels: HashMap::new(),
                        },
                    ))
                    .await;
                match committed {
                    Ok(_) => {}
                    // Unpacked before (another image with this layer).
                    Err(e) if e.code() == Code::AlreadyExists => {
                        let _ = snapshots
                            .remove(self.request(RemoveSnapshotRequest {
                                snapshotter: SNAPSHOTTER.into(),
                                key,
                            }))
                            .await;
                    }
                    Err(e) => return Err(self.api(e, reference, "image unpack")),
                }
            }
            Err(e) => return Err(self.api(e, reference, "image unpack")),
        }
        let image = Image {
            name: reference.to_string(),
            labels: HashMap::new(),
            target: Some(Descriptor {
                media_type: MANIFEST_TYPE.into(),
                digest: manifest_digest,
                size: manifest.len() as i64,
                annotations: HashMap::new(),
            }),
            created_at: None,
            updated_at: None,
        };
        match ImagesClient::new(ch.clone())
            .create(self.leased(
                lease,
                CreateImageRequest {
                    image: Some(image),
                    source_date_epoch: None,
                },
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Code::AlreadyExists => Ok(()),
            Err(e) => Err(self.api(e, reference, "image import")),
        }
    }

    /// The OCI spec of a new container.
    fn spec_for(&self, spec: &RunSpec, id: &str, netns: Option<String>) -> Result<Vec<u8>> {
        let (uid, gid) = match spec.user.as_str() {
            "" => (0u32, 0u32),
            u => {
                let (a, b) = u.split_once(':').unwrap_or((u, "0"));
                match (a.parse(), b.parse()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => {
                        return Err(Error::InvalidRequest {
                            engine: ENGINE,
                            container: spec.name.clone().unwrap_or_default(),
                            operation: "run",
                            reason: format!(
                            "user `{}`: this backend runs containers as a numeric uid[:gid] only",
                            u.escape_debug()
                        ),
                        })
                    }
                }
            }
        };
        let caps = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ];
        let mut mounts = vec![
            serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
            serde_json::json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            serde_json::json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
            serde_json::json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
            serde_json::json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
            serde_json::json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        ];
        for path in &spec.tmpfs {
            mounts.push(serde_json::json!({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": spec.tmpfs_options()}));
        }
        let network = match netns {
            Some(path) => serde_json::json!({"type": "network", "path": path}),
            None => serde_json::json!({"type": "network"}),
        };
        let value = serde_json::json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": false,
                "user": {"uid": uid, "gid": gid},
                "args": spec.cmd,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": false,
            },
            "root": {"path": "rootfs", "readonly": spec.read_only},
            "hostname": &id[..12],
            "mounts": mounts,
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "cgroupsPath": format!("/{}/{}", self.namespace(), id),
                "namespaces": [
                    {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, network,
                ],
                "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            },
        });
        Ok(serde_json::to_vec(&value).expect("json"))
    }

    /// The container's snapshot and the container, under `lease`.
    async fn create_leased(
        &self,
        ch: &Channel,
        lease: &str,
        container: Container,
        chain: String,
        what: &str,
    ) -> Result<()> {
        let id = container.id.clone();
        SnapshotsClient::new(ch.clone())
            .prepare(self.leased(
                lease,
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: id.clone(),
                    parent: chain,
                    labels: HashMap::new(),
                },
            ))
            .await
            .map_err(|e| self.api(e, what, "run"))?;
        if let Err(e) = ContainersClient::new(ch.clone())
            .create(self.leased(
                lease,
                CreateContainerRequest {
                    container: Some(container),
                },
            ))
            .await
        {
            let _ = SnapshotsClient::new(ch.clone())
                .remove(self.request(RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: id,
                }))
                .await;
            return Err(self.api(e, what, "run"));
        }
        Ok(())
    }

    /// Create and start the task of container `id` (its snapshot `id`).
    async fn start_task(&self, ch: &Channel, id: &str, what: &str) -> Result<()> {
        let mounts = SnapshotsClient::new(ch.clone())
            .mounts(self.request(MountsRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.to_string(),
            }))
            .await
            .map_err(|e| self.api(e, what, "start"))?
            .into_inner()
            .mounts;
        let mut tasks = TasksClient::new(ch.clone());
        tasks
            .create(self.request(CreateTaskRequest {
                container_id: id.to_string(),
                rootfs: mounts,
                ..Default::default()
            }))
            .await
            .map_err(|e| self.api(e, what, "start"))?;
        if let Err(e) = tasks
            .start(self.request(StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
        {
            let _ = self.delete_task(ch, id).await;
            return Err(self.api(e, what, "start"));
        }
        Ok(())
    }

    /// Kill the task (if any) without grace and delete it.
    async fn delete_task(
        &self,
        ch: &Channel,
        id: &str,
    ) -> std::result::Result<(), containerd_client::tonic::Status> {
        let mut tasks = TasksClient::new(ch.clone());
        match tasks
            .kill(self.request(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal: 9,
                all: true,
            }))
            .await
        {
            Ok(_) => {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    tasks.wait(self.request(WaitRequest {
                        container_id: id.to_string(),
                        exec_id: String::new(),
                    })),
                )
                .await;
            }
            Err(e) if e.code() == Code::NotFound => return Ok(()),
            // Already stopped: nothing to kill, the task is still deleted.
            Err(e) if e.code() == Code::FailedPrecondition => {}
            Err(e) => return Err(e),
        }
        match tasks
            .delete(self.request(DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Code::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn pid_of(&self, container: &str) -> Result<(Container, u32)> {
        let c = self.find(container).await?;
        let (state, pid) = self.state_of(&c.id, container).await?;
        if state != ContainerState::Running {
            return Err(Error::ContainerNotRunning {
                engine: ENGINE,
                container: container.to_string(),
                state: state.to_string(),
            });
        }
        Ok((c, pid))
    }
}

#[async_trait::async_trait]
impl ContainerAdmin for ContainerdRuntime {
    async fn details(&self, container: &str) -> Result<ContainerDetails> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "inspect", async {
            let c = self.find(container).await?;
            let (state, pid) = self.state_of(&c.id, container).await?;
            // A task's start: its init process's /proc entry (containerd
            // keeps no start time).
            let started_at = (pid > 0)
                .then(|| std::fs::metadata(format!("/proc/{pid}")).ok())
                .flatten()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
                .unwrap_or_default();
            let ch = self.channel().await?;
            let image = ImagesClient::new(ch)
                .get(self.request(GetImageRequest {
                    name: c.image.clone(),
                }))
                .await
                .ok()
                .and_then(|i| i.into_inner().image)
                .and_then(|i| i.target)
                .map(|t| t.digest)
                .unwrap_or_else(|| c.image.clone());
            let spec: serde_json::Value = c
                .spec
                .as_ref()
                .and_then(|s| serde_json::from_slice(&s.value).ok())
                .unwrap_or_default();
            let mounts = spec["mounts"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|m| m["destination"].as_str().map(String::from))
                        .filter(|d| !d.starts_with("/dev") && d != "/proc" && d != "/sys")
                        .collect()
                })
                .unwrap_or_default();
            let privileged = spec["process"]["capabilities"]["bounding"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == "CAP_SYS_ADMIN"));
            Ok(ContainerDetails {
                image,
                network: c
                    .labels
                    .get(NETWORK_LABEL)
                    .cloned()
                    .unwrap_or_else(|| "unknown".into()),
                labels: c.labels.clone().into_iter().collect(),
                started_at,
                privileged,
                mounts,
                info: info_of(&c, state),
            })
        })
        .await
    }

    async fn image_exists(&self, reference: &str) -> Result<bool> {
        self.timed(reference, "image inspect", async {
            let ch = self.channel().await?;
            Ok(self.find_image(&ch, reference).await?.is_some())
        })
        .await
    }

    async fn import_image(&self, rootfs_tar: Vec<u8>, reference: &str) -> Result<()> {
        self.timed(
            reference,
            "image import",
            self.import_inner(rootfs_tar, reference),
        )
        .await
    }

    async fn run(&self, spec: &RunSpec) -> Result<ContainerInfo> {
        let what = spec.name.clone().unwrap_or_default();
        if let Some(name) = &spec.name {
            bottle_runtime::check_docker_style_ref(ENGINE, name)?;
        }
        self.timed(&what, "run", async {
            let ch = self.channel().await?;
            if let Some(name) = &spec.name {
                match self.find(name).await {
                    Err(Error::ContainerNotFound { .. }) => {}
                    Err(e) => return Err(e),
                    Ok(_) => {
                        return Err(Error::InvalidRequest {
                            engine: ENGINE,
                            container: name.clone(),
                            operation: "run",
                            reason: format!(
                                "a container named so exists in namespace `{}`",
                                self.namespace()
                            ),
                        })
                    }
                }
            }
            let (netns, network) = match &spec.network {
                NetworkMode::None => (None, "none".to_string()),
                NetworkMode::Container(other) => {
                    let (c, pid) = self.pid_of(other).await?;
                    (
                        Some(format!("/proc/{pid}/ns/net")),
                        format!("container:{}", c.id),
                    )
                }
            };
            let id = random_hex(32)?;
            let chain = self.image_chain(&ch, &spec.image).await?;
            let body = self.spec_for(spec, &id, netns)?;
            let mut labels: HashMap<String, String> = spec.labels.iter().cloned().collect();
            labels.insert(
                NAME_LABEL.into(),
                spec.name.clone().unwrap_or_else(|| id.clone()),
            );
            labels.insert(NETWORK_LABEL.into(), network);
            // A lease keeps the new snapshot from containerd's garbage
            // collector until the container refers to it.
            let lease = format!("bottle-run-{}", random_hex(8)?);
            LeasesClient::new(ch.clone())
                .create(self.request(LeaseCreate {
                    id: lease.clone(),
                    labels: HashMap::new(),
                }))
                .await
                .map_err(|e| self.api(e, &what, "run"))?;
            let container = Container {
                id: id.clone(),
                labels,
                image: spec.image.clone(),
                runtime: Some(Runtime {
                    name: RUNC.into(),
                    options: None,
                }),
                spec: Some(prost_types::Any {
                    type_url: SPEC_TYPE.into(),
                    value: body,
                }),
                snapshotter: SNAPSHOTTER.into(),
                snapshot_key: id.clone(),
                ..Default::default()
            };
            let created = self
                .create_leased(&ch, &lease, container, chain, &what)
                .await;
            let _ = LeasesClient::new(ch.clone())
                .delete(self.request(LeaseDelete {
                    id: lease,
                    sync: false,
                }))
                .await;
            created?;
            self.start_task(&ch, &id, &what).await?;
            self.inspect(&id).await.map(|mut i| {
                if let Some(n) = &spec.name {
                    i.name = n.clone();
                }
                i
            })
        })
        .await
    }

    async fn start(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "start", async {
            let c = self.find(container).await?;
            let ch = self.channel().await?;
            // A stopped task left behind (its process exited) goes first.
            if self.state_of(&c.id, container).await?.0 != ContainerState::Running {
                self.delete_task(&ch, &c.id)
                    .await
                    .map_err(|e| self.api(e, container, "start"))?;
            }
            self.start_task(&ch, &c.id, container).await
        })
        .await
    }

    async fn stop(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "stop", async {
            let c = self.find(container).await?;
            let ch = self.channel().await?;
            self.delete_task(&ch, &c.id)
                .await
                .map_err(|e| self.api(e, container, "stop"))
        })
        .await
    }

    async fn pause(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "pause", async {
            let c = self.find(container).await?;
            TasksClient::new(self.channel().await?)
                .pause(self.request(PauseTaskRequest {
                    container_id: c.id.clone(),
                }))
                .await
                .map_err(|e| self.api(e, container, "pause"))?;
            Ok(())
        })
        .await
    }

    async fn unpause(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "unpause", async {
            let c = self.find(container).await?;
            TasksClient::new(self.channel().await?)
                .resume(self.request(ResumeTaskRequest {
                    container_id: c.id.clone(),
                }))
                .await
                .map_err(|e| self.api(e, container, "unpause"))?;
            Ok(())
        })
        .await
    }

    async fn remove(&self, container: &str) -> Result<()> {
        if bottle_runtime::check_docker_style_ref(ENGINE, container).is_err() {
            return Ok(());
        }
        self.timed(container, "remove", async {
            let c = match self.find(container).await {
                Ok(c) => c,
                Err(Error::ContainerNotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let ch = self.channel().await?;
            // A paused task cannot be killed to an exit: resume it first.
            let _ = TasksClient::new(ch.clone())
                .resume(self.request(ResumeTaskRequest {
                    container_id: c.id.clone(),
                }))
                .await;
            self.delete_task(&ch, &c.id)
                .await
                .map_err(|e| self.api(e, container, "remove"))?;
            match ContainersClient::new(ch.clone())
                .delete(self.request(DeleteContainerRequest { id: c.id.clone() }))
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Code::NotFound => {}
                Err(e) => return Err(self.api(e, container, "remove")),
            }
            let _ = SnapshotsClient::new(ch)
                .remove(self.request(RemoveSnapshotRequest {
                    snapshotter: c.snapshotter.clone(),
                    key: c.snapshot_key.clone(),
                }))
                .await;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(&["sha256:a".into()]).as_deref(), Some("sha256:a"));
        assert_eq!(
            chain_id(&["sha256:a".into(), "sha256:b".into()]).unwrap(),
            digest_of(b"sha256:a sha256:b")
        );
    }
}
