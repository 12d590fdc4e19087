//! The one error type of the provisioner.

use std::path::PathBuf;

/// Something the container lacks that provisioning needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Missing {
    /// A program not found on the container's `PATH`.
    Tool(String),
    /// The target user does not exist (`id` fails).
    User(String),
    /// The target user's home directory does not exist.
    Home(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Tool(t) => write!(f, "program `{t}`"),
            Missing::User(u) => write!(f, "user `{u}`"),
            Missing::Home(h) => write!(f, "home directory `{h}`"),
        }
    }
}

/// A path root's scripts will not trust: it, or a directory above it, is
/// not owned by root, is writable by group or others, or is a symlink where
/// none may be; a socket path holding something bottle did not make; or
/// (`@name`, the `sidecar` layout) the agent's abstract socket name held by
/// another process. Found before any key is sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Untrusted {
    pub path: String,
    /// E.g. `writable by group or others (mode 777) (for socat)`.
    pub reason: String,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// What an [`Untrusted`] is: the risk and the fix differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UntrustedKind {
    Path,
    Socket,
    AbstractName,
}

impl Untrusted {
    fn kind(&self) -> UntrustedKind {
        if self.path.starts_with('@') {
            UntrustedKind::AbstractName
        } else if self.reason.starts_with("exists and is not a socket")
            || self.reason.starts_with("is a socket bottle did not make")
        {
            UntrustedKind::Socket
        } else {
            UntrustedKind::Path
        }
    }

    /// What the operator can do about it, by kind: a taken abstract name is
    /// not a file to chown, a socket bottle did not make not one to chmod.
    pub fn fix(&self) -> &'static str {
        match self.kind() {
            UntrustedKind::AbstractName => {
                "stop the process listening on that name (in the bottle, or in a container \
                 sharing its network namespace), then provision again"
            }
            UntrustedKind::Socket => {
                "remove it if it is a leftover, or set agent_socket/public_socket to a path \
                 bottle can own"
            }
            UntrustedKind::Path => "make them root-owned and not group/other-writable",
        }
    }

    /// Whether it is about owners and modes (a path the user could change).
    pub fn is_permission(&self) -> bool {
        self.kind() == UntrustedKind::Path
    }

    fn risk(&self) -> &'static str {
        match self.kind() {
            UntrustedKind::AbstractName => "a process there could pose as the agent's forwarder",
            UntrustedKind::Socket => "bottle replaces nothing it did not make",
            UntrustedKind::Path => "the bottle's user could replace what is there",
        }
    }
}

/// Each kind's risk and fix among `untrusted`, once, in order.
fn risks_and_fixes(untrusted: &[Untrusted]) -> String {
    let mut kinds: Vec<&Untrusted> = Vec::new();
    for u in untrusted {
        if !kinds.iter().any(|k| k.kind() == u.kind()) {
            kinds.push(u);
        }
    }
    kinds
        .iter()
        .map(|u| format!("{} ({})", u.risk(), u.fix()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The install command for the missing programs on a distribution named by
/// `/etc/os-release`'s `ID` and `ID_LIKE` words, or the generic advice.
pub(crate) fn install_hint(os_words: &[&str], missing: &[Missing]) -> Option<String> {
    let tools: Vec<&str> = missing
        .iter()
        .filter_map(|m| match m {
            Missing::Tool(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    if tools.is_empty() {
        return None;
    }
    let is = |names: &[&str]| os_words.iter().any(|w| names.contains(w));
    let (command, openssh, other) = if is(&["alpine", "wolfi", "chainguard"]) {
        ("apk add", "openssh-client", "busybox")
    } else if is(&["debian", "ubuntu"]) {
        ("apt-get install -y", "openssh-client", "coreutils")
    } else if is(&[
        "fedora",
        "rhel",
        "centos",
        "rocky",
        "almalinux",
        "amzn",
        "ol",
    ]) {
        ("dnf install -y", "openssh-clients", "coreutils")
    } else {
        return Some(
            "install OpenSSH's client programs (ssh-agent, ssh-add), a POSIX userland \
             (coreutils or busybox) and, where a relay runs, socat with the image's \
             package manager"
                .to_string(),
        );
    };
    let mut packages: Vec<&str> = Vec::new();
    for t in tools {
        let p = match t {
            "ssh-agent" | "ssh-add" | "ssh" => openssh,
            "socat" => "socat",
            _ => other,
        };
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    Some(format!(
        "install with `{command} {}` (as root, in the image)",
        packages.join(" ")
    ))
}

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every way provisioning can fail.
///
/// Which part of a plan an error is about, typed, so a caller can point into
/// its own source (a manifest's `[[ssh]]` table) without reading the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanPart {
    /// An `[[ssh]]` entry: its index in [`Plan::ssh`](crate::Plan::ssh)
    /// (`None` when only its `Host` is known).
    Ssh(Option<usize>),
    /// The gate table.
    Gate,
    /// The `[signing]` section.
    Signing,
    /// The plan as a whole (e.g. no entries).
    Plan,
}

/// Where a plan error is: the typed [`PlanPart`] and the label shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub part: PlanPart,
    pub label: String,
}

impl Entry {
    /// The `[[ssh]]` entry at `index` with this `Host` (shortened for
    /// display).
    pub fn ssh(index: usize, host: &str) -> Entry {
        Entry {
            part: PlanPart::Ssh(Some(index)),
            label: format!("ssh[{index}] (Host {:?})", shortened(host)),
        }
    }

    /// An `[[ssh]]` entry known by its `Host` only.
    pub fn ssh_host(host: &str) -> Entry {
        Entry {
            part: PlanPart::Ssh(None),
            label: format!("ssh (Host {:?})", shortened(host)),
        }
    }

    pub fn gate() -> Entry {
        Entry {
            part: PlanPart::Gate,
            label: "gate".into(),
        }
    }

    pub fn signing() -> Entry {
        Entry {
            part: PlanPart::Signing,
            label: "signing".into(),
        }
    }

    /// The plan as a whole, shown as `label` (e.g. `ssh`).
    pub fn plan(label: &str) -> Entry {
        Entry {
            part: PlanPart::Plan,
            label: label.into(),
        }
    }
}

/// A section of the plan by its name: `gate`, `signing`, else the plan
/// as a whole under that label.
impl From<&str> for Entry {
    fn from(section: &str) -> Entry {
        match section {
            "gate" => Entry::gate(),
            "signing" => Entry::signing(),
            other => Entry::plan(other),
        }
    }
}

fn shortened(host: &str) -> String {
    let mut out: String = host.chars().take(40).collect();
    if out.len() < host.len() {
        out.push('…');
    }
    out
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// Plan errors ([`Error::is_plan_error`]) are found before the container is
/// touched. No variant ever carries key material: key errors name the file,
/// never its contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A plan value is invalid. `entry` says where (shown e.g. as
    /// `ssh[1] (Host "github")` or `gate`, typed in [`Entry::part`]);
    /// `field` is the manifest's field name.
    #[error("{entry}: {field}: {reason}")]
    Plan {
        entry: Entry,
        field: String,
        reason: String,
    },

    /// An `IdentityFile` cannot be used.
    #[error("{entry}: IdentityFile `{}`: {reason}", path.display())]
    KeyFile {
        entry: Entry,
        path: PathBuf,
        reason: String,
    },

    /// A target setting (from configuration) is invalid.
    #[error("target: {field}: {reason}")]
    Target { field: String, reason: String },

    /// This build of bottle has no `bottle-guard` executable (it is built
    /// for x86_64 Linux hosts only), so it cannot guard the agent.
    #[error(
        "no bottle-guard executable for this machine's architecture ({}) in this build, so \
         the agent in container `{container}` cannot be guarded; build bottle on an x86_64 \
         Linux machine, or set guard = \"off\" to relay every request to the agent unguarded",
        std::env::consts::ARCH
    )]
    NoGuard { container: String },

    /// The container lacks a program, the user or its home. Checked before any
    /// key is sent.
    #[error("container `{container}` is missing {}{}", list(missing), hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    MissingInContainer {
        container: String,
        missing: Vec<Missing>,
        /// How to install the missing programs on the image's distribution
        /// (from `/etc/os-release`), when a program is missing.
        hint: Option<String>,
    },

    /// Root's scripts will not run a program or use a directory that the
    /// bottle's user could have changed (a writable `PATH` entry, `/run`,
    /// the state directory). Checked before any key is sent; nothing changed.
    #[error(
        "container `{container}`: root will not use {}: {}",
        untrusted.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        risks_and_fixes(untrusted)
    )]
    UntrustedInContainer {
        container: String,
        untrusted: Vec<Untrusted>,
    },

    /// With `strict`: the bottle's user can become root (passwordless
    /// `sudo`, a setuid-root program), so root in the bottle is the user and
    /// could read the agent's keys. Nothing was changed. Exit code 2.
    #[error("container `{container}`: the user can become root: {}; refusing (strict)", how.join("; "))]
    UserCanBecomeRoot { container: String, how: Vec<String> },

    /// A runtime (engine) call failed.
    #[error("{step}: {source}")]
    Runtime {
        step: &'static str,
        #[source]
        source: bottle_runtime::Error,
    },

    /// A script in the container failed.
    #[error("{step} failed in container `{container}` (exit {exit_code}): {stderr}")]
    Script {
        step: &'static str,
        container: String,
        exit_code: i64,
        stderr: String,
    },

    /// After loading, the agent does not hold exactly the plan's keys.
    #[error("the agent in container `{container}` holds {actual:?}, expected {expected:?}")]
    AgentMismatch {
        container: String,
        expected: Vec<String>,
        actual: Vec<String>,
    },

    /// The `sidecar` agent layout cannot be set up for this bottle (a host
    /// network, a missing image, a container by the sidecar's name that is
    /// not ours, the engine refusing to create it). Nothing in the bottle
    /// was changed.
    #[error("container `{container}`: agent sidecar `{sidecar}`: {reason}")]
    Sidecar {
        container: String,
        sidecar: String,
        reason: String,
    },

    /// A script's output could not be understood.
    #[error("{step}: unexpected output from container `{container}`: {detail}")]
    Protocol {
        step: &'static str,
        container: String,
        detail: String,
    },
}

/// The kinds of [`Error`], as a caller decides what to do about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The plan or target is wrong: fix the input.
    Input,
    /// The container is refused by the operator's policy (`strict`).
    Refused,
    /// The engine or the container failed.
    Container,
}

impl Error {
    /// True for errors in the plan or target: fix the input.
    pub fn is_plan_error(&self) -> bool {
        matches!(
            self,
            Error::Plan { .. } | Error::KeyFile { .. } | Error::Target { .. }
        )
    }

    /// True for errors from the engine or the container (and refusals).
    pub fn is_container_error(&self) -> bool {
        !self.is_plan_error()
    }

    /// What kind of failure this is, for a caller's policy (`bottlectl`
    /// turns it into its exit code; this crate has no exit codes).
    pub fn class(&self) -> ErrorClass {
        if self.is_plan_error() {
            ErrorClass::Input
        } else if matches!(self, Error::UserCanBecomeRoot { .. }) {
            ErrorClass::Refused
        } else {
            ErrorClass::Container
        }
    }

    /// The field a plan error is about (`Host`, `IdentityFile`, …).
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Plan { field, .. } | Error::Target { field, .. } => Some(field),
            Error::KeyFile { .. } => Some("IdentityFile"),
            _ => None,
        }
    }

    /// The entry a plan error is about.
    pub fn entry(&self) -> Option<&str> {
        match self {
            Error::Plan { entry, .. } | Error::KeyFile { entry, .. } => Some(&entry.label),
            _ => None,
        }
    }

    /// Where in the plan a plan error is, typed.
    pub fn part(&self) -> Option<PlanPart> {
        match self {
            Error::Plan { entry, .. } | Error::KeyFile { entry, .. } => Some(entry.part),
            _ => None,
        }
    }

    pub(crate) fn runtime(step: &'static str) -> impl FnOnce(bottle_runtime::Error) -> Error {
        move |source| Error::Runtime { step, source }
    }
}
