//! The test images: tiny root filesystems assembled from the host's own
//! binaries and their shared libraries, so tests need no registry.
//!
//! [`IMAGES`] describes every variant (userland, users, sudo) in one table:
//! `debian` (dash + GNU tools, the default), `busybox` (Alpine-like),
//! `user1001` (the bottle's user is `dev`, uid 1001, home `/srv/dev`) and
//! `sudo` (the user has passwordless sudo and set-id-root programs exist).
//!
//! Each archive is deterministic (sorted entries, fixed mtime, numeric
//! owners), so its SHA-256 names the image (`bottle-test:<12 hex>` for
//! `debian`, `bottle-test:<name>-<12 hex>` for the others) and an engine that
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
    // ssh-agent runs these for PKCS#11 and FIDO keys: Debian's
    // openssh-client ships both, so the images carry what the hostile user
    // would find there.
    ("/usr/lib/openssh/ssh-pkcs11-helper", "openssh-client"),
    ("/usr/lib/openssh/ssh-sk-helper", "openssh-client"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/bin/socat", "socat"),
    // Commit signing tests (`git commit -S`, `git verify-commit`); 3.6 MiB.
    ("/usr/bin/git", "git"),
];

/// Where the `busybox` image's userland comes from (Debian's
/// `busybox-static`).
pub const BUSYBOX: (&str, &str) = ("/bin/busybox", "busybox-static");

/// The applets the `busybox` image links to `/bin/busybox`, each in the
/// directory `busybox --list-full` names (as Alpine does): a shell userland.
/// Left out: applets for privileges, networking, devices and the system
/// (`su`, `login`, `passwd`, `mount`, `nc`, `wget`, `ping`, `ip`, …).
#[rustfmt::skip]
pub const BUSYBOX_APPLETS: &[&str] = &[
    "[", "[[", "ash", "awk", "base64", "basename", "cat", "chgrp", "chmod", "chown", "cmp", "cp",
    "cut", "date", "dd", "df", "diff", "dirname", "du", "echo", "egrep", "env", "expr", "false",
    "fgrep", "find", "fold", "getopt", "grep", "groups", "gunzip", "gzip", "head", "hexdump",
    "hostname", "id", "kill", "killall", "ln", "logname", "ls", "md5sum", "mkdir", "mkfifo",
    "mknod", "mktemp", "mv", "nl", "nproc", "od", "paste", "pidof", "printf", "ps", "pwd",
    "readlink", "realpath", "rev", "rm", "rmdir", "sed", "seq", "setsid", "sh", "sha1sum",
    "sha256sum", "sha512sum", "shuf", "sleep", "sort", "stat", "strings", "tac", "tail", "tar",
    "tee", "test", "time", "timeout", "touch", "tr", "true", "truncate", "tty", "uname", "uniq",
    "unlink", "usleep", "wc", "which", "whoami", "xargs", "xxd", "yes", "zcat",
];

/// Debian packages whose [`BINARIES`] the `busybox` image carries beside
/// busybox: only OpenSSH and socat.
pub const BUSYBOX_HOST_PACKAGES: &[&str] = &["openssh-client", "openssh-server", "socat"];

/// What the `sudo` image adds from the host (path, mode, Debian package): the
/// setuid binary, its policy plugin and the one PAM module its
/// `/etc/pam.d/sudo` uses (both dlopen'd, so `ldd` of sudo lists neither).
pub const SUDO_FILES: &[(&str, u32, &str)] = &[
    ("/usr/bin/sudo", 0o4755, "sudo"),
    ("/usr/libexec/sudo/sudoers.so", 0o644, "sudo"),
    (
        "/usr/lib/x86_64-linux-gnu/security/pam_permit.so",
        0o644,
        "libpam-modules",
    ),
];

/// Set-id-root programs the `sudo` image carries besides sudo (copies of
/// `/usr/bin/env`: `rootenv id -u` prints 0), for checks that look for them.
pub const SETID_PROGRAMS: &[(&str, u32)] = &[
    ("/usr/local/bin/rootenv", 0o4755),
    ("/usr/local/bin/rootgroupenv", 0o2755),
];

/// Repository part of every test image reference.
pub const IMAGE_REPOSITORY: &str = "bottle-test";

/// Fixed mtime so identical inputs give identical archives (2023-11-14).
const MTIME: u64 = 1_700_000_000;

/// One test image variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageKind {
    Debian,
    Busybox,
    User1001,
    Sudo,
    Bash,
}

impl ImageKind {
    /// Every variant, in [`IMAGES`] order.
    pub const ALL: [ImageKind; 5] = [
        ImageKind::Debian,
        ImageKind::Busybox,
        ImageKind::User1001,
        ImageKind::Sudo,
        ImageKind::Bash,
    ];

    /// The variant's description.
    pub fn spec(self) -> &'static ImageSpec {
        &IMAGES[self as usize]
    }

    /// `debian`, `busybox`, `user1001`, `sudo`, `bash`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// The tools an image's shell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Userland {
    /// Debian 12: merged `/usr`, `dash` as `/bin/sh`, GNU tools ([`BINARIES`]).
    Debian,
    /// Alpine-like: separate `/bin`, `/usr/bin`, `/lib`; `/bin/sh` is
    /// busybox ash ([`BUSYBOX`], [`BUSYBOX_APPLETS`]); of the host's tools only
    /// OpenSSH and socat ([`BUSYBOX_HOST_PACKAGES`]).
    Busybox,
    /// Fedora/UBI-like: the Debian layout and GNU tools, `/bin/sh` is bash.
    Bash,
}

/// An account in a test image: its own group (gid = uid), shell `/bin/sh`,
/// home owned by it (mode 755).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageUser {
    pub name: &'static str,
    pub uid: u32,
    pub home: &'static str,
}

impl ImageUser {
    /// The gid of the user's own group.
    pub fn gid(&self) -> u32 {
        self.uid
    }
}

/// What one variant contains. Every image also has `root`, `sshd` (100) and
/// `nobody` (65534).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec {
    pub kind: ImageKind,
    /// In image tags and test names.
    pub name: &'static str,
    pub userland: Userland,
    /// The bottle's unprivileged user.
    pub user: ImageUser,
    /// The sshd gates' login user (always named `git`:
    /// `ssh_fixtures::start_sshd` authorizes keys for it).
    pub gate_user: ImageUser,
    /// `user` may run anything as root with `sudo -n` ([`SUDO_FILES`]), and
    /// [`SETID_PROGRAMS`] exist.
    pub sudo: bool,
}

const NODE: ImageUser = ImageUser {
    name: "node",
    uid: 1000,
    home: "/home/node",
};

const GIT: ImageUser = ImageUser {
    name: "git",
    uid: 1001,
    home: "/home/git",
};

/// Every test image, indexed by [`ImageKind`]: the one place to describe a
/// variant.
pub const IMAGES: [ImageSpec; 5] = [
    ImageSpec {
        kind: ImageKind::Debian,
        name: "debian",
        userland: Userland::Debian,
        user: NODE,
        gate_user: GIT,
        sudo: false,
    },
    ImageSpec {
        kind: ImageKind::Busybox,
        name: "busybox",
        userland: Userland::Busybox,
        user: NODE,
        gate_user: GIT,
        sudo: false,
    },
    ImageSpec {
        kind: ImageKind::User1001,
        name: "user1001",
        userland: Userland::Debian,
        user: ImageUser {
            name: "dev",
            uid: 1001,
            home: "/srv/dev",
        },
        gate_user: ImageUser {
            name: "git",
            uid: 1002,
            home: "/home/git",
        },
        sudo: false,
    },
    ImageSpec {
        kind: ImageKind::Sudo,
        name: "sudo",
        userland: Userland::Debian,
        user: NODE,
        gate_user: GIT,
        sudo: true,
    },
    ImageSpec {
        kind: ImageKind::Bash,
        name: "bash",
        userland: Userland::Bash,
        user: NODE,
        gate_user: GIT,
        sudo: false,
    },
];

/// A built test image, ready to import.
#[derive(Clone)]
pub struct TestImage {
    pub kind: ImageKind,
    /// `bottle-test:<first 12 hex of the archive's SHA-256>`, with
    /// `<name>-` before the hex for variants other than `debian`.
    pub reference: String,
    /// Full hex SHA-256 of `tar`.
    pub sha256: String,
    /// The root filesystem as an uncompressed tar.
    pub tar: Vec<u8>,
    /// Absolute paths of the executable regular files (not the libraries).
    pub programs: Vec<String>,
    /// Absolute paths of the busybox applet links (empty on other userlands).
    pub applets: Vec<String>,
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
                 install the Debian package `{package}` (apt-get install {package}, \
                 or run scripts/engines.sh)"
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
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        data: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink(String),
}

/// The root filesystem being assembled: paths without the leading `/`.
#[derive(Default)]
struct Rootfs {
    nodes: BTreeMap<String, Node>,
    /// Absolute paths of the programs added (not their libraries).
    programs: std::collections::BTreeSet<String>,
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

    /// A root-owned file.
    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        self.parents(path);
        self.nodes.insert(
            Self::key(path),
            Node::File {
                data,
                mode,
                uid: 0,
                gid: 0,
            },
        );
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
                Node::File {
                    data,
                    mode,
                    uid,
                    gid,
                } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid((*uid).into());
                    header.set_gid((*gid).into());
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

const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n";

/// `/etc/passwd`, `/etc/group` and `/etc/shadow` for `spec`. For `debian`
/// these are byte for byte what the single test image had.
fn account_files(spec: &ImageSpec) -> (String, String, String) {
    let nologin = match spec.userland {
        Userland::Debian | Userland::Bash => "/usr/bin/false",
        Userland::Busybox => "/bin/false",
    };
    let users = [spec.user, spec.gate_user];
    let mut passwd = format!(
        "root:x:0:0:root:/root:/bin/sh\n\
         sshd:x:100:65534:sshd privilege separation:/run/sshd:{nologin}\n"
    );
    let mut group = "root:x:0:\nshadow:x:42:\n".to_string();
    // `*`: no password login, but not locked (a `!` would make sshd refuse
    // even public-key logins for the user).
    let mut shadow = "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n".to_string();
    for u in users {
        passwd.push_str(&format!(
            "{0}:x:{1}:{2}:{0}:{3}:/bin/sh\n",
            u.name,
            u.uid,
            u.gid(),
            u.home
        ));
        group.push_str(&format!("{}:x:{}:\n", u.name, u.gid()));
        shadow.push_str(&format!("{}:*:19000:0:99999:7:::\n", u.name));
    }
    passwd.push_str(&format!(
        "nobody:x:65534:65534:nobody:/nonexistent:{nologin}\n"
    ));
    group.push_str("nogroup:x:65534:\n");
    shadow.push_str("nobody:*:19000:0:99999:7:::\n");
    (passwd, group, shadow)
}

/// Build the `debian` test image (cached per process).
pub fn test_image() -> Result<Arc<TestImage>, ImageError> {
    image(ImageKind::Debian)
}

/// Build the test image `kind` from the host (cached per process).
pub fn image(kind: ImageKind) -> Result<Arc<TestImage>, ImageError> {
    type Cell = OnceLock<Result<Arc<TestImage>, String>>;
    static CACHE: [Cell; ImageKind::ALL.len()] = [const { OnceLock::new() }; ImageKind::ALL.len()];
    // The error is cached as text: a missing binary stays missing.
    match CACHE[kind as usize]
        .get_or_init(|| build_image(kind).map(Arc::new).map_err(|e| e.to_string()))
    {
        Ok(image) => Ok(image.clone()),
        Err(reason) => Err(ImageError::Cached(reason.clone())),
    }
}

/// Build the `debian` test image from the host, uncached.
pub fn build_test_image() -> Result<TestImage, ImageError> {
    build_image(ImageKind::Debian)
}

/// Build the test image `kind` from the host, uncached.
pub fn build_image(kind: ImageKind) -> Result<TestImage, ImageError> {
    let spec = kind.spec();
    let mut fs = Rootfs::default();
    let layout = spec.userland;

    match layout {
        // Debian 12 is merged-/usr.
        Userland::Debian | Userland::Bash => {
            for (link, target) in [
                ("/bin", "usr/bin"),
                ("/sbin", "usr/sbin"),
                ("/lib", "usr/lib"),
                ("/lib64", "usr/lib64"),
            ] {
                fs.symlink(link, target);
            }
            for dir in ["/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64"] {
                fs.dir(dir, 0o755, 0, 0);
            }
        }
        Userland::Busybox => {
            for dir in [
                "/bin",
                "/sbin",
                "/lib",
                "/lib64",
                "/usr/bin",
                "/usr/sbin",
                "/usr/lib",
            ] {
                fs.dir(dir, 0o755, 0, 0);
            }
        }
    }
    fs.symlink("/var/run", "../run");
    for dir in [
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
    for u in [spec.user, spec.gate_user] {
        fs.dir(u.home, 0o755, u.uid, u.gid());
    }

    let (passwd, group, shadow) = account_files(spec);
    fs.file("/etc/passwd", passwd.into_bytes(), 0o644);
    fs.file("/etc/group", group.into_bytes(), 0o644);
    fs.file("/etc/shadow", shadow.into_bytes(), 0o600);
    fs.file("/etc/nsswitch.conf", NSSWITCH.as_bytes().to_vec(), 0o644);
    // Engines bind-mount over these; they only have to exist.
    for file in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        fs.file(file, Vec::new(), 0o644);
    }

    let mut applets = Vec::new();
    match layout {
        Userland::Debian => {
            for (path, package) in BINARIES {
                add_binary(&mut fs, layout, path, package, 0o755)?;
            }
        }
        Userland::Bash => {
            for (path, package) in BINARIES {
                add_binary(&mut fs, layout, path, package, 0o755)?;
            }
            add_binary(&mut fs, layout, "/usr/bin/bash", "bash", 0o755)?;
            // Replaces the host's `sh -> dash`.
            fs.symlink("/usr/bin/sh", "bash");
        }
        Userland::Busybox => {
            applets = add_busybox(&mut fs)?;
            for (path, package) in BINARIES
                .iter()
                .filter(|(_, package)| BUSYBOX_HOST_PACKAGES.contains(package))
            {
                add_binary(&mut fs, layout, path, package, 0o755)?;
            }
        }
    }
    if spec.sudo {
        add_sudo(&mut fs, spec)?;
    }

    let tar = fs.to_tar()?;
    let sha256 = hex::encode(Sha256::digest(&tar));
    let reference = match kind {
        ImageKind::Debian => format!("{IMAGE_REPOSITORY}:{}", &sha256[..12]),
        _ => format!("{IMAGE_REPOSITORY}:{}-{}", spec.name, &sha256[..12]),
    };
    Ok(TestImage {
        kind,
        reference,
        sha256,
        tar,
        programs: fs.programs.iter().cloned().collect(),
        applets,
    })
}

/// `/bin/busybox` and a link to it for each of [`BUSYBOX_APPLETS`], where
/// `busybox --list-full` puts it. Returns the links.
fn add_busybox(fs: &mut Rootfs) -> Result<Vec<String>, ImageError> {
    let (path, package) = BUSYBOX;
    add_binary(fs, Userland::Busybox, path, package, 0o755)?;
    let out = Command::new(path)
        .arg("--list-full")
        .output()
        .map_err(|e| ImageError::Io {
            path: path.to_string(),
            reason: format!("cannot run `{path} --list-full`: {e}"),
        })?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut links = Vec::new();
    for applet in BUSYBOX_APPLETS {
        // `bin/sh`, `usr/bin/env`, …
        let rel = listing
            .lines()
            .map(str::trim)
            .find(|line| line.rsplit('/').next() == Some(applet))
            .ok_or_else(|| ImageError::Io {
                path: path.to_string(),
                reason: format!(
                    "this busybox has no `{applet}` applet; install the Debian \
                     package `{package}`"
                ),
            })?;
        let link = format!("/{rel}");
        fs.symlink(&link, path);
        links.push(link);
    }
    links.sort();
    Ok(links)
}

/// sudo, its plugin and PAM configuration allowing `spec.user` everything
/// without a password, and the [`SETID_PROGRAMS`].
fn add_sudo(fs: &mut Rootfs, spec: &ImageSpec) -> Result<(), ImageError> {
    for (path, mode, package) in SUDO_FILES {
        add_binary(fs, spec.userland, path, package, *mode)?;
    }
    let sudoers = format!(
        // `!fqdn`: the bottle's hostname is in no /etc/hosts with network
        // none; resolving it only adds a warning to every run.
        "Defaults !lecture, !fqdn\nroot ALL=(ALL:ALL) ALL\n{} ALL=(ALL:ALL) NOPASSWD: ALL\n",
        spec.user.name
    );
    fs.file("/etc/sudoers", sudoers.into_bytes(), 0o440);
    let pam = "auth required pam_permit.so\naccount required pam_permit.so\n\
               password required pam_permit.so\nsession required pam_permit.so\n";
    for service in ["/etc/pam.d/sudo", "/etc/pam.d/other"] {
        fs.file(service, pam.as_bytes().to_vec(), 0o644);
    }
    add_binary(fs, spec.userland, "/usr/bin/env", "coreutils", 0o755)?;
    for (path, mode) in SETID_PROGRAMS {
        copy_host_file(fs, "/usr/bin/env", path, *mode)?;
        fs.programs.insert(path.to_string());
    }
    Ok(())
}

/// Import the `debian` test image into the engine unless it already has it;
/// returns the reference to run (`bottle-test:<hash>`).
pub async fn ensure_test_image(rt: &dyn ContainerAdmin) -> Result<String, ImageError> {
    ensure_image(rt, ImageKind::Debian).await
}

/// Import the test image `kind` into the engine unless it already has it;
/// returns the reference to run.
pub async fn ensure_image(rt: &dyn ContainerAdmin, kind: ImageKind) -> Result<String, ImageError> {
    let image = image(kind)?;
    if !rt.image_exists(&image.reference).await? {
        rt.import_image(image.tar.clone(), &image.reference).await?;
    }
    Ok(image.reference.clone())
}

/// Copy a host binary (`mode`) and the libraries `ldd` lists for it.
fn add_binary(
    fs: &mut Rootfs,
    layout: Userland,
    path: &str,
    package: &'static str,
    mode: u32,
) -> Result<(), ImageError> {
    let missing = || ImageError::MissingBinary {
        path: path.to_string(),
        package,
    };
    if mode & 0o111 != 0 {
        fs.programs.insert(path.to_string());
    }
    let meta = std::fs::symlink_metadata(path).map_err(|_| missing())?;
    let real = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(|_| missing())?;
        fs.symlink(path, &target.to_string_lossy());
        let real = std::fs::canonicalize(path).map_err(|_| missing())?;
        let real = real.to_string_lossy().into_owned();
        copy_host_file(fs, &real, &real, mode)?;
        real
    } else {
        copy_host_file(fs, path, path, mode)?;
        path.to_string()
    };
    for lib in shared_libraries(&real)? {
        add_library(fs, layout, &lib)?;
    }
    Ok(())
}

/// Put a library where the image's loader finds it, as a regular file under
/// the name `ldd` reported (the soname). Merged /usr (Debian): the host path
/// with its directory canonicalised (`/lib/x86_64-linux-gnu` → `/usr/lib/…`);
/// otherwise the path exactly as `ldd` reported it (`/lib64/ld-linux…`).
fn add_library(fs: &mut Rootfs, layout: Userland, lib: &str) -> Result<(), ImageError> {
    if layout == Userland::Busybox {
        return copy_host_file(fs, lib, lib, 0o755);
    }
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

    /// One archive entry: mode, uid, gid, link target, body.
    type Entry = (u32, u64, u64, Option<String>, Vec<u8>);

    fn entries(tar: &[u8]) -> BTreeMap<String, Entry> {
        let mut seen = BTreeMap::new();
        let mut archive = tar::Archive::new(tar);
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
            assert_eq!(h.mtime().unwrap(), MTIME, "{path}");
            let old = seen.insert(
                path.clone(),
                (
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    link,
                    body,
                ),
            );
            assert!(old.is_none(), "{path} twice");
        }
        seen
    }

    fn meta(seen: &BTreeMap<String, Entry>, p: &str) -> (u32, u64, u64) {
        let (mode, uid, gid, _, _) = seen.get(p).unwrap_or_else(|| panic!("no {p}"));
        (*mode, *uid, *gid)
    }

    fn text(seen: &BTreeMap<String, Entry>, p: &str) -> String {
        String::from_utf8(seen[p].4.clone()).unwrap()
    }

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
        let err = add_binary(
            &mut fs,
            Userland::Debian,
            "/usr/bin/bottle-no-such-tool",
            "bottle-pkg",
            0o755,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/usr/bin/bottle-no-such-tool"), "{msg}");
        assert!(msg.contains("apt-get install bottle-pkg"), "{msg}");
    }

    #[test]
    fn table_matches_kinds() {
        let mut names = Vec::new();
        for kind in ImageKind::ALL {
            let spec = kind.spec();
            assert_eq!(spec.kind, kind);
            assert_eq!(spec.gate_user.name, "git");
            assert_ne!(spec.user.uid, spec.gate_user.uid);
            names.push(spec.name);
        }
        assert_eq!(names, ["debian", "busybox", "user1001", "sudo", "bash"]);
    }

    /// Owners and set-id bits survive the archive.
    #[test]
    fn tar_keeps_file_owners_and_setid_modes() {
        let mut fs = Rootfs::default();
        fs.file("/a", b"x".to_vec(), 0o4755);
        fs.nodes.insert(
            "b".into(),
            Node::File {
                data: Vec::new(),
                mode: 0o2750,
                uid: 7,
                gid: 9,
            },
        );
        let seen = entries(&fs.to_tar().unwrap());
        assert_eq!(meta(&seen, "a"), (0o4755, 0, 0));
        assert_eq!(meta(&seen, "b"), (0o2750, 7, 9));
    }

    #[test]
    fn every_image_is_deterministic_and_distinct() {
        let mut references = Vec::new();
        for kind in ImageKind::ALL {
            let a = build_image(kind).unwrap();
            let b = build_image(kind).unwrap();
            assert_eq!(a.sha256, b.sha256, "{kind:?}");
            assert_eq!(a.tar, b.tar, "{kind:?}");
            assert_eq!(a.kind, kind);
            assert!(a.tar.len() < 64 << 20, "{kind:?} is {} bytes", a.tar.len());
            let tag = match kind {
                ImageKind::Debian => a.sha256[..12].to_string(),
                _ => format!("{}-{}", kind.name(), &a.sha256[..12]),
            };
            assert_eq!(a.reference, format!("bottle-test:{tag}"));
            // The cache hands out the same build.
            assert_eq!(image(kind).unwrap().sha256, a.sha256);
            references.push(a.reference);
        }
        references.dedup();
        assert_eq!(references.len(), ImageKind::ALL.len(), "{references:?}");
        assert_eq!(test_image().unwrap().kind, ImageKind::Debian);
    }

    #[test]
    fn debian_image_has_the_layout() {
        let a = build_test_image().unwrap();
        let seen = entries(&a.tar);
        assert_eq!(meta(&seen, "root"), (0o700, 0, 0));
        assert_eq!(meta(&seen, "tmp"), (0o1777, 0, 0));
        assert_eq!(meta(&seen, "home/node"), (0o755, 1000, 1000));
        assert_eq!(meta(&seen, "home/git"), (0o755, 1001, 1001));
        assert_eq!(meta(&seen, "run/sshd"), (0o755, 0, 0));
        assert_eq!(seen["bin"].3.as_deref(), Some("usr/bin"));
        assert_eq!(seen["lib64"].3.as_deref(), Some("usr/lib64"));
        assert_eq!(
            text(&seen, "etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             sshd:x:100:65534:sshd privilege separation:/run/sshd:/usr/bin/false\n\
             node:x:1000:1000:node:/home/node:/bin/sh\n\
             git:x:1001:1001:git:/home/git:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/bin/false\n"
        );
        assert_eq!(
            text(&seen, "etc/group"),
            "root:x:0:\nshadow:x:42:\nnode:x:1000:\ngit:x:1001:\nnogroup:x:65534:\n"
        );
        assert_eq!(meta(&seen, "etc/shadow"), (0o600, 0, 0));
        for (path, _) in BINARIES {
            assert!(seen.contains_key(path.trim_start_matches('/')), "{path}");
            assert!(a.programs.iter().any(|p| p == path), "{path}");
        }
        assert_eq!(a.programs.len(), BINARIES.len());
        assert!(a.applets.is_empty());
        // The loader every binary names must be in the image.
        assert!(seen.contains_key("usr/lib64/ld-linux-x86-64.so.2"));
        assert!(seen.contains_key("usr/lib/x86_64-linux-gnu/libc.so.6"));
        // Nothing set-id: the baseline a "can the user become root" check
        // compares against.
        for (path, (mode, ..)) in &seen {
            assert_eq!(mode & 0o6000, 0, "{path}");
        }
        assert!(!seen.contains_key("etc/sudoers"));
    }

    #[test]
    fn busybox_image_is_busybox_plus_openssh_and_socat() {
        let a = build_image(ImageKind::Busybox).unwrap();
        let seen = entries(&a.tar);
        // Separate /bin and /usr/bin, as on Alpine.
        for dir in ["bin", "sbin", "lib", "lib64", "usr/bin", "usr/sbin"] {
            assert_eq!(meta(&seen, dir), (0o755, 0, 0), "{dir}");
            assert_eq!(seen[dir].3, None, "{dir} is a link");
        }
        assert_eq!(meta(&seen, "bin/busybox"), (0o755, 0, 0));
        assert_eq!(seen["bin/sh"].3.as_deref(), Some("/bin/busybox"));
        assert_eq!(seen["usr/bin/env"].3.as_deref(), Some("/bin/busybox"));
        assert_eq!(a.applets.len(), BUSYBOX_APPLETS.len());
        for applet in BUSYBOX_APPLETS {
            let link = a
                .applets
                .iter()
                .find(|l| l.rsplit('/').next() == Some(applet))
                .unwrap_or_else(|| panic!("no {applet}"));
            assert_eq!(
                seen[link.trim_start_matches('/')].3.as_deref(),
                Some("/bin/busybox"),
                "{link}"
            );
        }
        // Of the host's programs only OpenSSH and socat; no GNU tool, no dash.
        let mut expected: Vec<String> = BINARIES
            .iter()
            .filter(|(_, p)| BUSYBOX_HOST_PACKAGES.contains(p))
            .map(|(path, _)| path.to_string())
            .chain([BUSYBOX.0.to_string()])
            .collect();
        expected.sort();
        assert_eq!(a.programs, expected);
        for path in ["usr/sbin/sshd", "usr/bin/ssh-agent", "usr/bin/socat"] {
            assert_eq!(meta(&seen, path).0, 0o755, "{path}");
        }
        for gnu in ["usr/bin/dash", "bin/dash", "usr/bin/coreutils"] {
            assert!(!seen.contains_key(gnu), "{gnu}");
        }
        for (path, (mode, _, _, _, body)) in &seen {
            // Executable regular files (dirs and links have no body).
            if mode & 0o111 != 0 && !body.is_empty() && !path.contains(".so") {
                assert!(
                    a.programs.contains(&format!("/{path}")),
                    "unexpected program /{path}"
                );
            }
        }
        // Libraries where ldd found them, the loader a regular file.
        assert_eq!(seen["lib64/ld-linux-x86-64.so.2"].3, None);
        assert!(seen.contains_key("lib/x86_64-linux-gnu/libc.so.6"));
        let passwd = text(&seen, "etc/passwd");
        assert!(passwd.contains("sshd privilege separation:/run/sshd:/bin/false\n"));
        assert!(passwd.contains("node:x:1000:1000:node:/home/node:/bin/sh\n"));
    }

    #[test]
    fn user1001_image_has_dev_outside_home() {
        let a = build_image(ImageKind::User1001).unwrap();
        let seen = entries(&a.tar);
        assert_eq!(meta(&seen, "srv"), (0o755, 0, 0));
        assert_eq!(meta(&seen, "srv/dev"), (0o755, 1001, 1001));
        assert_eq!(meta(&seen, "home/git"), (0o755, 1002, 1002));
        assert!(!seen.contains_key("home/node"));
        let passwd = text(&seen, "etc/passwd");
        assert!(passwd.contains("\ndev:x:1001:1001:dev:/srv/dev:/bin/sh\n"));
        assert!(passwd.contains("\ngit:x:1002:1002:git:/home/git:/bin/sh\n"));
        assert!(!passwd.contains("node"), "{passwd}");
        assert!(text(&seen, "etc/group").contains("\ndev:x:1001:\ngit:x:1002:\n"));
        assert!(text(&seen, "etc/shadow").contains("\ndev:*:"));
        // Otherwise the debian image.
        assert_eq!(seen["bin"].3.as_deref(), Some("usr/bin"));
        assert_eq!(a.programs.len(), BINARIES.len());
    }

    #[test]
    fn sudo_image_lets_node_become_root() {
        let a = build_image(ImageKind::Sudo).unwrap();
        let seen = entries(&a.tar);
        assert_eq!(meta(&seen, "usr/bin/sudo"), (0o4755, 0, 0));
        assert_eq!(meta(&seen, "usr/libexec/sudo/sudoers.so"), (0o644, 0, 0));
        // sudo's own library, found through its RUNPATH.
        assert!(seen.contains_key("usr/libexec/sudo/libsudo_util.so.0"));
        assert!(seen.contains_key("usr/lib/x86_64-linux-gnu/security/pam_permit.so"));
        assert!(seen.contains_key("usr/lib/x86_64-linux-gnu/libpam.so.0"));
        assert_eq!(meta(&seen, "etc/sudoers"), (0o440, 0, 0));
        assert!(text(&seen, "etc/sudoers").contains("\nnode ALL=(ALL:ALL) NOPASSWD: ALL\n"));
        let pam = text(&seen, "etc/pam.d/sudo");
        assert!(
            pam.lines().all(|l| l.ends_with(" required pam_permit.so")),
            "{pam}"
        );
        for (path, mode) in SETID_PROGRAMS {
            assert_eq!(meta(&seen, path.trim_start_matches('/')), (*mode, 0, 0));
            assert!(a.programs.iter().any(|p| p == path), "{path}");
        }
        let setid: Vec<&String> = seen
            .iter()
            .filter(|(_, (mode, ..))| mode & 0o6000 != 0)
            .map(|(path, _)| path)
            .collect();
        assert_eq!(
            setid,
            [
                "usr/bin/sudo",
                "usr/local/bin/rootenv",
                "usr/local/bin/rootgroupenv"
            ]
        );
    }
}
