//! Fixture for the Podman backend tests: a tiny image imported from host
//! binaries (no registry needed) and a container guard that removes itself.

use bottle_podman::PodmanRuntime;
use bottle_runtime::{ContainerAdmin, ContainerInfo, ContainerRuntime, RunSpec};
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// Bump when the image content changes.
pub const IMAGE: &str = "localhost/bottle-podman-test:3";

const BINARIES: &[&str] = &[
    "/bin/sh",
    "/bin/cat",
    "/bin/sleep",
    "/usr/bin/stat",
    "/usr/bin/id",
    "/usr/bin/head",
    "/usr/bin/touch",
];

/// The engine at the default endpoint, or `None` (with the reason printed)
/// when it does not answer. Under CI=true an unreachable engine fails the test.
pub async fn engine() -> Option<Arc<PodmanRuntime>> {
    let rt = PodmanRuntime::connect(None, Duration::from_secs(60)).expect("connect");
    match rt.version().await {
        Ok(_) => Some(Arc::new(rt)),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and Podman does not answer: {e} ({e:?})")
        }
        Err(e) => {
            eprintln!("SKIPPED: Podman does not answer at {}: {e}", rt.endpoint());
            None
        }
    }
}

/// Import the test image unless it is already there.
pub async fn ensure_image(rt: &PodmanRuntime) {
    if rt.image_exists(IMAGE).await.expect("image_exists") {
        return;
    }
    rt.import_image(rootfs(), IMAGE)
        .await
        .expect("import_image");
    assert!(rt.image_exists(IMAGE).await.expect("image_exists"));
}

/// A root filesystem with a few host binaries, their libraries, and users
/// root(0) and node(1000, /home/node).
fn rootfs() -> Vec<u8> {
    let mut files: BTreeSet<String> = BINARIES.iter().map(|s| s.to_string()).collect();
    for bin in BINARIES {
        let out = Command::new("ldd").arg(bin).output().expect("ldd");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libc.so.6 => /lib/.../libc.so.6 (0x..)" or "/lib64/ld-linux... (0x..)"
            if let Some(path) = line
                .split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(str::to_string)
            {
                files.insert(path);
            }
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = BTreeSet::new();
    for f in &files {
        let mut p = std::path::Path::new(f).parent();
        while let Some(d) = p.filter(|d| d.as_os_str() != "/") {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    for d in [
        "/etc", "/tmp", "/home", "/root", "/proc", "/sys", "/dev", "/run", "/var/tmp",
    ] {
        dirs.insert(d.to_string());
    }
    for d in &dirs {
        let mode = if d.ends_with("/tmp") { 0o1777 } else { 0o755 };
        append(&mut b, d, None, mode, 0);
    }
    append(&mut b, "/home/node", None, 0o755, 1000);
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("read {f}: {e}"));
        append(&mut b, f, Some(&bytes), 0o755, 0);
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n";
    append(&mut b, "/etc/passwd", Some(passwd.as_bytes()), 0o644, 0);
    append(
        &mut b,
        "/etc/group",
        Some(b"root:x:0:\nnode:x:1000:\n"),
        0o644,
        0,
    );
    b.into_inner().expect("tar")
}

fn append(b: &mut tar::Builder<Vec<u8>>, path: &str, body: Option<&[u8]>, mode: u32, id: u64) {
    let mut h = tar::Header::new_gnu();
    h.set_mode(mode);
    h.set_uid(id);
    h.set_gid(id);
    h.set_mtime(0);
    let name = path.trim_start_matches('/');
    match body {
        Some(bytes) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(bytes.len() as u64);
            b.append_data(&mut h, name, bytes).expect("append file");
        }
        None => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{name}/"), std::io::empty())
                .expect("append dir");
        }
    }
}

/// A running test container, removed when dropped.
pub struct Bottle {
    pub rt: Arc<PodmanRuntime>,
    pub info: ContainerInfo,
}

impl Bottle {
    pub async fn start(rt: &Arc<PodmanRuntime>, test: &str) -> Bottle {
        ensure_image(rt).await;
        let mut spec = RunSpec::new(IMAGE, ["/bin/sleep", "infinity"]);
        spec.labels = vec![("bottle.test".into(), test.into())];
        let info = rt.run(&spec).await.expect("run");
        assert!(info.is_running(), "{info:?}");
        Bottle {
            rt: rt.clone(),
            info,
        }
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }
}

impl Drop for Bottle {
    fn drop(&mut self) {
        // Drop cannot await: remove on a fresh runtime in its own thread.
        let rt = self.rt.clone();
        let id = self.info.id.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(rt.remove(&id))
        })
        .join();
    }
}
