//! Test fixtures: a Docker runtime (or a reason to skip), a tiny image built
//! from the host's binaries, and bottles that are removed on drop.

#![allow(dead_code)]

use bottle_docker::DockerRuntime;
use bottle_runtime::{ContainerAdmin, ContainerRuntime, RunSpec};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const LABEL: &str = "bottle-docker-test";

/// The runtime to test, or `None` (with a printed reason) when Docker is not
/// in `BOTTLE_TEST_RUNTIMES` or not reachable. Under `CI=true` an unreachable
/// Docker fails the test instead.
pub async fn docker() -> Option<Arc<DockerRuntime>> {
    if let Ok(list) = std::env::var("BOTTLE_TEST_RUNTIMES") {
        if !list.split(',').any(|e| e.trim() == "docker") {
            eprintln!("SKIP: docker is not in BOTTLE_TEST_RUNTIMES={list}");
            return None;
        }
    }
    let rt = DockerRuntime::connect(None, TIMEOUT).expect("default endpoint parses");
    match rt.version().await {
        Ok(_) => Some(Arc::new(rt)),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and Docker is not usable: {e} ({:?})", e)
        }
        Err(e) => {
            eprintln!("SKIP: Docker is not usable here: {e}");
            None
        }
    }
}

/// A running container from the test image; removed (forcibly) on drop.
pub struct Bottle {
    pub id: String,
    endpoint: String,
}

impl Drop for Bottle {
    fn drop(&mut self) {
        let (endpoint, id) = (self.endpoint.clone(), self.id.clone());
        // Drop cannot await: remove from a private runtime on another thread.
        let _ = std::thread::spawn(move || {
            let rt = DockerRuntime::connect(Some(&endpoint), TIMEOUT).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(rt.remove(&id))
        })
        .join();
    }
}

impl Bottle {
    /// Remove `id` on drop, like a bottle this module started.
    pub fn adopt(rt: &DockerRuntime, id: &str) -> Bottle {
        Bottle {
            id: id.to_string(),
            endpoint: rt.endpoint().to_string(),
        }
    }
}

pub async fn bottle(rt: &DockerRuntime) -> Bottle {
    bottle_as(rt, "").await
}

/// A bottle whose default user is `user` (empty: the image's, root).
pub async fn bottle_as(rt: &DockerRuntime, user: &str) -> Bottle {
    let image = test_image(rt).await;
    let mut spec = RunSpec::new(image, ["/usr/bin/sleep", "infinity"]);
    spec.user = user.to_string();
    spec.labels.push((LABEL.to_string(), "1".to_string()));
    let info = rt.run(&spec).await.expect("run test bottle");
    assert!(info.is_running(), "{info:?}");
    Bottle {
        id: info.id,
        endpoint: rt.endpoint().to_string(),
    }
}

/// Binaries the tests use; each is copied with the shared libraries `ldd` lists.
const BINARIES: &[&str] = &[
    "/usr/bin/sh",
    "/usr/bin/cat",
    "/usr/bin/id",
    "/usr/bin/sleep",
    "/usr/bin/stat",
    "/usr/bin/wc",
    "/usr/bin/head",
    "/usr/bin/true",
    "/usr/bin/touch",
];

/// Import (once per content) the test image and return its reference.
pub async fn test_image(rt: &DockerRuntime) -> String {
    let tar = rootfs_tar();
    let mut h = DefaultHasher::new();
    tar.hash(&mut h);
    let reference = format!("bottle-docker-test:{:016x}", h.finish());
    if !rt.image_exists(&reference).await.expect("image_exists") {
        rt.import_image(tar, &reference)
            .await
            .expect("import_image");
        assert!(rt.image_exists(&reference).await.unwrap());
    }
    reference
}

/// A deterministic root filesystem archive (sorted, fixed mtime).
fn rootfs_tar() -> Vec<u8> {
    // path -> (mode, uid, gid, contents or None for a directory)
    let mut files: BTreeMap<String, (u32, u32, Option<Vec<u8>>)> = BTreeMap::new();
    let dir = |files: &mut BTreeMap<_, _>, p: &str, mode, uid| {
        files.insert(p.to_string(), (mode, uid, None));
    };
    for d in ["etc", "usr", "usr/bin", "proc", "sys", "dev", "run", "root"] {
        dir(&mut files, d, 0o755, 0);
    }
    dir(&mut files, "tmp", 0o1777, 0);
    dir(&mut files, "var", 0o755, 0);
    dir(&mut files, "var/tmp", 0o1777, 0);
    dir(&mut files, "home", 0o755, 0);
    dir(&mut files, "home/node", 0o755, 1000);
    files.insert(
        "etc/passwd".into(),
        (
            0o644,
            0,
            Some(b"root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n".to_vec()),
        ),
    );
    files.insert(
        "etc/group".into(),
        (0o644, 0, Some(b"root:x:0:\nnode:x:1000:\n".to_vec())),
    );
    for bin in BINARIES {
        let bytes = std::fs::read(bin).unwrap_or_else(|e| panic!("read {bin}: {e}"));
        files.insert(bin.trim_start_matches('/').into(), (0o755, 0, Some(bytes)));
        for lib in shared_libraries(bin) {
            let rel = lib.trim_start_matches('/').to_string();
            let mut parent = String::new();
            for part in rel.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
                parent = if parent.is_empty() {
                    part.to_string()
                } else {
                    format!("{parent}/{part}")
                };
                files.entry(parent.clone()).or_insert((0o755, 0, None));
            }
            let bytes = std::fs::read(&lib).unwrap_or_else(|e| panic!("read {lib}: {e}"));
            files.insert(rel, (0o755, 0, Some(bytes)));
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (path, (mode, uid, contents)) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_uid((*uid).into());
        header.set_gid((*uid).into());
        header.set_mtime(0);
        match contents {
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, path, bytes.as_slice())
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), std::io::empty())
            }
        }
        .unwrap();
    }
    // `/bin` is a link into `/usr/bin`, as on a merged-/usr system.
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_mode(0o777);
    header.set_mtime(0);
    header.set_size(0);
    builder.append_link(&mut header, "bin", "usr/bin").unwrap();
    builder.into_inner().unwrap()
}

/// Absolute paths of the shared objects (including the loader) `bin` needs.
fn shared_libraries(bin: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}
