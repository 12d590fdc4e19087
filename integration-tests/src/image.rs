//! The test image: a tiny root filesystem assembled from the host's own
//! binaries and their shared libraries, so tests need no registry.
//!
//! The archive is deterministic (sorted entries, fixed mtime, numeric owners),
//! so its SHA-256 names the image (`bottle-test:<12 hex>`) and an engine that
//! already has it is not asked to import it again.

use bottle_runtime::ContainerAdmin;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// Every host binary the image carries, with the Debian package that ships it.
/// The one place to add a tool. Symlinks (e.g. `sh` → `dash`) are kept as
/// symlinks and their targets copied too.
pub const BINARIES: &[(&str, &str)] = &[
    ("/usr/bin/sh", "dash"),
    ("/usr/bin/cat", "coreutils"),
    ("/usr/bin/chmod", "coreutils"),
    ("/usr/bin/chown", "coreutils"),
    ("/usr/bin/cp", "coreutils"),
    ("/usr/bin/cut", "coreutils"),
    ("/usr/bin/dd", "coreutils"),
    ("/usr/bin/echo", "coreutils"),
    ("/usr/bin/env", "coreutils"),
    ("/usr/bin/false", "coreutils"),
    ("/usr/bin/head", "coreutils"),
    ("/usr/bin/id", "coreutils"),
    ("/usr/bin/ln", "coreutils"),
    ("/usr/bin/ls", "coreutils"),
    ("/usr/bin/mkdir", "coreutils"),
    ("/usr/bin/mkfifo", "coreutils"),
    ("/usr/bin/mktemp", "coreutils"),
    ("/usr/bin/mv", "coreutils"),
    ("/usr/bin/od", "coreutils"),
    ("/usr/bin/printf", "coreutils"),
    ("/usr/bin/readlink", "coreutils"),
    ("/usr/bin/rm", "coreutils"),
    ("/usr/bin/rmdir", "coreutils"),
    ("/usr/bin/seq", "coreutils"),
    ("/usr/bin/sha256sum", "coreutils"),
    ("/usr/bin/sleep", "coreutils"),
    ("/usr/bin/sort", "coreutils"),
    ("/usr/bin/stat", "coreutils"),
    ("/usr/bin/tail", "coreutils"),
    ("/usr/bin/tee", "coreutils"),
    ("/usr/bin/test", "coreutils"),
    ("/usr/bin/timeout", "coreutils"),
    ("/usr/bin/touch", "coreutils"),
    ("/usr/bin/tr", "coreutils"),
    ("/usr/bin/true", "coreutils"),
    ("/usr/bin/wc", "coreutils"),
    ("/usr/bin/whoami", "coreutils"),
    ("/usr/bin/grep", "grep"),
    ("/usr/bin/find", "findutils"),
    ("/usr/bin/sed", "sed"),
    ("/usr/bin/ps", "procps"),
    ("/usr/bin/kill", "procps"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-agent", "openssh-client"),
    ("/usr/bin/ssh-add", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/bin/socat", "socat"),
];

/// Repository part of every test image reference.
pub const IMAGE_REPOSITORY: &str = "bottle-test";

/// Fixed mtime so identical inputs give identical archives (2023-11-14).
const MTIME: u64 = 1_700_000_000;

/// A built test image, ready to import.
#[derive(Clone)]
pub struct TestImage {
    /// `bottle-test:<first 12 hex of the archive's SHA-256>`.
    pub reference: String,
    /// Full hex SHA-256 of `tar`.
    pub sha256: String,
    /// The root filesystem as an uncompressed tar.
    pub tar: Vec<u8>,
}

// Archive bytes are not worth printing.
impl fmt::Debug for TestImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestImage")
            .field("reference", &self.reference)
            .field("tar_len", &self.tar.len())
            .finish()
    }
}

/// Why the test image could not be built or imported.
#[derive(Debug)]
pub enum ImageError {
    /// A binary the image needs is not installed on the host.
    MissingBinary { path: String, package: &'static str },
    /// `ldd` failed or could not be run.
    Ldd { binary: String, reason: String },
    /// Reading a host file or writing the archive failed.
    Io { path: String, reason: String },
    /// The engine refused `image_exists` or `import_image`.
    Runtime(bottle_runtime::Error),
    /// An earlier build in this process failed like this.
    Cached(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::MissingBinary { path, package } => write!(
                f,
                "the test image needs the host binary {path}, which is missing: \
                 install the Debian package `{package}` (apt-get install {package})"
            ),
            ImageError::Ldd { binary, reason } => {
                write!(f, "cannot list the shared libraries of {binary}: {reason}")
            }
            ImageError::Io { path, reason } => write!(f, "test image: {path}: {reason}"),
            ImageError::Runtime(e) => write!(f, "cannot import the test image: {e}"),
            ImageError::Cached(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImageError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

impl From<bottle_runtime::Error> for ImageError {
    fn from(e: bottle_runtime::Error) -> Self {
        ImageError::Runtime(e)
    }
}

#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32, uid: u32, gid: u32 },
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

/// The root filesystem being assembled: paths without the leading `/`.
#[derive(Default)]
struct Rootfs {
    nodes: BTreeMap<String, Node>,
}

impl Rootfs {
    fn key(path: &str) -> String {
        path.trim_start_matches('/')
            .trim_end_matches('/')
            .to_string()
    }

    fn dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32) {
        self.parents(path);
        self.nodes
            .insert(Self::key(path), Node::Dir { mode, uid, gid });
    }

    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        self.parents(path);
        self.nodes
            .insert(Self::key(path), Node::File { data, mode });
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.nodes
            .insert(Self::key(path), Node::Symlink(target.to_string()));
    }

    /// Missing parents become root-owned 0755 directories; an explicit
    /// `dir()` call later overrides that.
    fn parents(&mut self, path: &str) {
        let key = Self::key(path);
        let mut prefix = String::new();
        let parts: Vec<&str> = key.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.nodes.entry(prefix.clone()).or_insert(Node::Dir {
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
        }
    }

    fn to_tar(&self) -> Result<Vec<u8>, ImageError> {
        let io = |path: &str, e: std::io::Error| ImageError::Io {
            path: format!("/{path}"),
            reason: e.to_string(),
        };
        let mut builder = tar::Builder::new(Vec::new());
        for (path, node) in &self.nodes {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(MTIME);
            match node {
                Node::Dir { mode, uid, gid } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid((*uid).into());
                    header.set_gid((*gid).into());
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(|e| io(path, e))?;
                }
                Node::File { data, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_slice())
                        .map_err(|e| io(path, e))?;
                }
                Node::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .map_err(|e| io(path, e))?;
                }
            }
        }
        builder.into_inner().map_err(|e| io("(archive)", e))
    }
}

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privilege separation:/run/sshd:/usr/bin/false
node:x:1000:1000:node:/home/node:/bin/sh
git:x:1001:1001:git:/home/git:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/bin/false
";

const GROUP: &str = "\
root:x:0:
shadow:x:42:
node:x:1000:
git:x:1001:
nogroup:x:65534:
";

// `*`: no password login, but not locked (a `!` would make sshd refuse
// even public-key logins for the user).
const SHADOW: &str = "\
root:*:19000:0:99999:7:::
sshd:*:19000:0:99999:7:::
node:*:19000:0:99999:7:::
git:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
";

const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n";

/// Build the test image's root filesystem from the host (cached per process).
pub fn test_image() -> Result<Arc<TestImage>, ImageError> {
    static CACHE: OnceLock<Result<Arc<TestImage>, String>> = OnceLock::new();
    // The error is cached as text: a missing binary stays missing.
    match CACHE.get_or_init(|| build_test_image().map(Arc::new).map_err(|e| e.to_string())) {
        Ok(image) => Ok(image.clone()),
        Err(reason) => Err(ImageError::Cached(reason.clone())),
    }
}

/// Build the test image's root filesystem from the host, uncached.
pub fn build_test_image() -> Result<TestImage, ImageError> {
    let mut fs = Rootfs::default();

    // Debian 12 is merged-/usr.
    for (link, target) in [
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/var/run", "../run"),
    ] {
        fs.symlink(link, target);
    }
    for dir in [
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib64",
        "/etc/ssh",
        "/dev",
        "/proc",
        "/sys",
        "/run/sshd",
        "/var/empty",
    ] {
        fs.dir(dir, 0o755, 0, 0);
    }
    fs.dir("/root", 0o700, 0, 0);
    fs.dir("/tmp", 0o1777, 0, 0);
    fs.dir("/var/tmp", 0o1777, 0, 0);
    fs.dir("/home", 0o755, 0, 0);
    fs.dir("/home/node", 0o755, 1000, 1000);
    fs.dir("/home/git", 0o755, 1001, 1001);

    fs.file("/etc/passwd", PASSWD.as_bytes().to_vec(), 0o644);
    fs.file("/etc/group", GROUP.as_bytes().to_vec(), 0o644);
    fs.file("/etc/shadow", SHADOW.as_bytes().to_vec(), 0o600);
    fs.file("/etc/nsswitch.conf", NSSWITCH.as_bytes().to_vec(), 0o644);
    // Engines bind-mount over these; they only have to exist.
    for file in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        fs.file(file, Vec::new(), 0o644);
    }

    for (path, package) in BINARIES {
        add_binary(&mut fs, path, package)?;
    }

    let tar = fs.to_tar()?;
    let sha256 = hex::encode(Sha256::digest(&tar));
    Ok(TestImage {
        reference: format!("{IMAGE_REPOSITORY}:{}", &sha256[..12]),
        sha256,
        tar,
    })
}

/// Import the test image into the engine unless it already has it; returns
/// the reference to run (`bottle-test:<hash>`).
pub async fn ensure_test_image(rt: &dyn ContainerAdmin) -> Result<String, ImageError> {
    let image = test_image()?;
    if !rt.image_exists(&image.reference).await? {
        rt.import_image(image.tar.clone(), &image.reference).await?;
    }
    Ok(image.reference.clone())
}

fn add_binary(fs: &mut Rootfs, path: &str, package: &'static str) -> Result<(), ImageError> {
    let missing = || ImageError::MissingBinary {
        path: path.to_string(),
        package,
    };
    let meta = std::fs::symlink_metadata(path).map_err(|_| missing())?;
    let real = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(|_| missing())?;
        fs.symlink(path, &target.to_string_lossy());
        let real = std::fs::canonicalize(path).map_err(|_| missing())?;
        let real = real.to_string_lossy().into_owned();
        copy_host_file(fs, &real, &real, 0o755)?;
        real
    } else {
        copy_host_file(fs, path, path, 0o755)?;
        path.to_string()
    };
    for lib in shared_libraries(&real)? {
        add_library(fs, &lib)?;
    }
    Ok(())
}

/// Put a library where the image's loader finds it: the host path with its
/// directory canonicalised (`/lib/x86_64-linux-gnu` → `/usr/lib/…`), under the
/// name `ldd` reported (the soname), as a regular file.
fn add_library(fs: &mut Rootfs, lib: &str) -> Result<(), ImageError> {
    let path = Path::new(lib);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(ImageError::Io {
            path: lib.to_string(),
            reason: "not a library path".to_string(),
        });
    };
    let dir = std::fs::canonicalize(dir).map_err(|e| ImageError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let dest = dir.join(name);
    copy_host_file(fs, lib, &dest.to_string_lossy(), 0o755)
}

fn copy_host_file(fs: &mut Rootfs, src: &str, dest: &str, mode: u32) -> Result<(), ImageError> {
    if fs.nodes.contains_key(&Rootfs::key(dest)) {
        return Ok(());
    }
    let data = std::fs::read(src).map_err(|e| ImageError::Io {
        path: src.to_string(),
        reason: e.to_string(),
    })?;
    fs.file(dest, data, mode);
    Ok(())
}

/// The absolute paths of a dynamic executable's libraries, loader included.
fn shared_libraries(binary: &str) -> Result<Vec<String>, ImageError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ImageError::Ldd {
            binary: binary.to_string(),
            reason: format!("cannot run ldd ({e}); install the Debian package `libc-bin`"),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // Static binaries need nothing.
        if stdout.contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(ImageError::Ldd {
            binary: binary.to_string(),
            reason: format!(
                "ldd exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    parse_ldd(binary, &stdout)
}

fn parse_ldd(binary: &str, output: &str) -> Result<Vec<String>, ImageError> {
    let mut libs = Vec::new();
    for line in output.lines().map(str::trim) {
        if line.contains("not found") {
            return Err(ImageError::Ldd {
                binary: binary.to_string(),
                reason: format!("a library is missing on the host: {line}"),
            });
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or the loader
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`; vdso has no path.
        let candidate = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        if let Some(path) = candidate.split_whitespace().next() {
            if path.starts_with('/') {
                libs.push(path.to_string());
            }
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parses_ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd("/x", out).unwrap(),
            vec![
                "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                "/lib64/ld-linux-x86-64.so.2".to_string()
            ]
        );
        let err = parse_ldd("/x", "\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn missing_binary_names_the_package() {
        let mut fs = Rootfs::default();
        let err = add_binary(&mut fs, "/usr/bin/bottle-no-such-tool", "bottle-pkg").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/usr/bin/bottle-no-such-tool"), "{msg}");
        assert!(msg.contains("apt-get install bottle-pkg"), "{msg}");
    }

    #[test]
    fn image_is_deterministic_and_has_the_layout() {
        let a = build_test_image().unwrap();
        let b = build_test_image().unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert_eq!(a.reference, format!("bottle-test:{}", &a.sha256[..12]));
        assert!(a.tar.len() < 64 << 20, "image is {} bytes", a.tar.len());

        let mut seen = BTreeMap::new();
        let mut archive = tar::Archive::new(a.tar.as_slice());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let path = path.trim_end_matches('/').to_string();
            seen.insert(
                path,
                (
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    link,
                    body,
                ),
            );
        }
        let meta = |p: &str| {
            let (mode, uid, gid, _, _) = &seen[p];
            (*mode, *uid, *gid)
        };
        assert_eq!(meta("root"), (0o700, 0, 0));
        assert_eq!(meta("tmp"), (0o1777, 0, 0));
        assert_eq!(meta("home/node"), (0o755, 1000, 1000));
        assert_eq!(meta("home/git"), (0o755, 1001, 1001));
        assert_eq!(meta("run/sshd"), (0o755, 0, 0));
        assert_eq!(seen["bin"].3.as_deref(), Some("usr/bin"));
        assert_eq!(seen["lib64"].3.as_deref(), Some("usr/lib64"));
        let passwd = String::from_utf8(seen["etc/passwd"].4.clone()).unwrap();
        assert!(passwd.contains("node:x:1000:1000:node:/home/node:"));
        assert!(passwd.contains("git:x:1001:1001:git:/home/git:/bin/sh"));
        for (path, _) in BINARIES {
            assert!(seen.contains_key(path.trim_start_matches('/')), "{path}");
        }
        // The loader every binary names must be in the image.
        assert!(seen.contains_key("usr/lib64/ld-linux-x86-64.so.2"));
        assert!(seen.contains_key("usr/lib/x86_64-linux-gnu/libc.so.6"));
    }
}
