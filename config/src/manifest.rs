//! The manifest, `bottle.toml`: what to provision.

use bottle_ssh::Plan;
use miette::{NamedSource, SourceSpan};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Largest manifest read.
pub const MAX_MANIFEST: u64 = 1024 * 1024;

/// A parsed manifest, with identity files already resolved to absolute paths.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub plan: Plan,
    /// Not errors, but to be shown: the file can be changed by someone
    /// other than the running user or root (see [`load_manifest`]).
    pub warnings: Vec<String>,
    source: String,
    spans: Spans,
}

/// Errors in a manifest: where (file, line, column) and what is wrong.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ManifestError {
    #[error("cannot read manifest {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file, too large, or not UTF-8: refused unread where
    /// possible.
    #[error("manifest {path:?} {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
        #[source_code]
        src: NamedSource<String>,
        #[label("here")]
        span: Option<SourceSpan>,
    },
}

impl ManifestError {
    /// Just what is wrong, without the location prefix.
    pub fn message(&self) -> String {
        match self {
            ManifestError::Read { source, .. } => source.to_string(),
            ManifestError::Refused { reason, .. } => reason.clone(),
            ManifestError::Invalid { message, .. } => message.clone(),
        }
    }
}

// Spans of the fields later checks may complain about.
#[derive(Debug, Clone, Default, Deserialize)]
struct Spans {
    #[serde(default)]
    gate: Option<Spanned<GateSpans>>,
    #[serde(default)]
    ssh: Vec<Spanned<EntrySpans>>,
    #[serde(default)]
    signing: Option<Spanned<SigningSpans>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct SigningSpans {
    #[serde(rename = "IdentityFile", default)]
    identity_file: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct GateSpans {
    #[serde(default)]
    host: Option<Spanned<toml::Value>>,
    #[serde(default)]
    ports: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct EntrySpans {
    #[serde(rename = "Host", default)]
    host: Option<Spanned<toml::Value>>,
    #[serde(rename = "Hostname", default)]
    hostname: Option<Spanned<toml::Value>>,
    #[serde(rename = "User", default)]
    user: Option<Spanned<toml::Value>>,
    #[serde(rename = "IdentityFile", default)]
    identity_file: Option<Spanned<toml::Value>>,
    #[serde(rename = "KnownHostKey", default)]
    known_host_key: Option<Spanned<toml::Value>>,
    #[serde(rename = "Port", default)]
    port: Option<Spanned<toml::Value>>,
    #[serde(rename = "Lifetime", default)]
    lifetime: Option<Spanned<toml::Value>>,
    #[serde(rename = "CertificateAuthority", default)]
    certificate_authority: Option<Spanned<toml::Value>>,
    #[serde(rename = "Principals", default)]
    principals: Option<Spanned<toml::Value>>,
    #[serde(rename = "Validity", default)]
    validity: Option<Spanned<toml::Value>>,
    #[serde(rename = "Extensions", default)]
    extensions: Option<Spanned<toml::Value>>,
}

/// Read and parse a manifest file. `~` in `IdentityFile` (of `[[ssh]]` and
/// `[signing]`) and `CertificateAuthority` expands to `$HOME`; relative
/// paths resolve against the manifest's directory.
///
/// Only a regular file of at most [`MAX_MANIFEST`] bytes is read (a FIFO or
/// device is refused without blocking). Whoever can write the manifest
/// chooses the keys loaded and whether they are restricted, so
/// [`Manifest::warnings`] says when someone other than the running user or
/// root can (the file, or a directory above it, writable by group or
/// others, or owned by another user).
pub fn load_manifest(path: &Path) -> Result<Manifest, ManifestError> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(ManifestError::Read {
            path: path.to_path_buf(),
            source: e,
        });
    }
    let refused = |reason: String| ManifestError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    let (bytes, exposure) = Plan::read_file(path, MAX_MANIFEST).map_err(refused)?;
    let text = String::from_utf8(bytes).map_err(|_| refused("is not UTF-8 text".into()))?;
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let mut manifest = parse_manifest(path, text, home.as_deref())?;
    if let Some(why) = exposure {
        manifest.warnings.push(format!(
            "manifest {path:?} can be changed by others: {why}; whoever can change it \
             chooses which keys are loaded and whether they are restricted"
        ));
    }
    Ok(manifest)
}

/// Parse manifest text. `path` names the file in errors and anchors relative
/// `IdentityFile`s; `home` is what `~` expands to.
///
/// ```
/// use std::path::Path;
/// let text = r#"
/// [[ssh]]
/// Host = "github"
/// Hostname = "github.com"
/// User = "git"
/// IdentityFile = "keys/id_ed25519"
/// "#;
/// let m = bottle_config::parse_manifest(Path::new("/srv/bottle.toml"), text.into(), None).unwrap();
/// assert_eq!(m.plan.ssh[0].identity_file, Path::new("/srv/keys/id_ed25519"));
///
/// let err = bottle_config::parse_manifest(Path::new("b.toml"), "[[ssh]]\nHost = 1\n".into(), None)
///     .unwrap_err();
/// assert!(err.to_string().starts_with("b.toml:2:8: "), "{err}");
/// ```
pub fn parse_manifest(
    path: &Path,
    text: String,
    home: Option<&Path>,
) -> Result<Manifest, ManifestError> {
    let mut plan: Plan = match toml::from_str(&text) {
        Ok(plan) => plan,
        Err(e) => {
            let message = e.message().trim().to_string();
            return Err(invalid(path, &text, e.span(), message));
        }
    };
    // Same text parsed again: cannot fail where the first parse succeeded,
    // but fall back to no spans rather than panic.
    let spans: Spans = toml::from_str(&text).unwrap_or_default();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        base
    };
    // `~` and relative paths, as the user's shell would not expand them.
    let resolve = |raw: &Path, field: &str, span: Option<Range<usize>>| {
        let raw_str = raw.to_string_lossy();
        if raw_str == "~" || raw_str.starts_with("~/") {
            let Some(home) = home else {
                return Err(invalid(
                    path,
                    &text,
                    span,
                    format!("{field} starts with `~` but HOME is not set"),
                ));
            };
            Ok(home.join(raw_str.trim_start_matches('~').trim_start_matches('/')))
        } else if raw_str.starts_with('~') {
            Err(invalid(
                path,
                &text,
                span,
                format!("{field}: only `~` and `~/…` are expanded, not `~user`"),
            ))
        } else if raw.is_relative() && !raw_str.is_empty() {
            Ok(base.join(raw))
        } else {
            Ok(raw.to_path_buf())
        }
    };
    for (i, entry) in plan.ssh.iter_mut().enumerate() {
        let spans_of = spans.ssh.get(i).map(|e| e.get_ref());
        let span = spans_of
            .and_then(|e| e.identity_file.as_ref())
            .map(|s| s.span());
        entry.identity_file = resolve(&entry.identity_file, "IdentityFile", span)?;
        if let Some(ca) = &entry.certificate_authority {
            let span = spans_of
                .and_then(|e| e.certificate_authority.as_ref())
                .map(|s| s.span());
            entry.certificate_authority = Some(resolve(ca, "CertificateAuthority", span)?);
        }
    }
    if let Some(signing) = &mut plan.signing {
        let span = spans
            .signing
            .as_ref()
            .and_then(|s| s.get_ref().identity_file.as_ref())
            .map(|s| s.span());
        signing.identity_file = resolve(&signing.identity_file, "IdentityFile", span)?;
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        plan,
        warnings: Vec::new(),
        source: text,
        spans,
    })
}

/// A place in the manifest, for pointing errors found after parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    /// The `[gate]` table.
    Gate,
    /// `host` in `[gate]`.
    GateHost,
    /// `[gate.ports]`, or one alias in it.
    GatePorts(Option<&'a str>),
    /// The n-th `[[ssh]]` entry (0-based), or one of its fields by manifest name.
    Ssh(usize, Option<&'a str>),
}

impl Manifest {
    /// An error pointing at `location` (or the whole file if it is not there).
    pub fn error_at(&self, location: Location<'_>, message: impl Into<String>) -> ManifestError {
        let span = self.span_of(location);
        invalid(&self.path, &self.source, span, message.into())
    }

    fn span_of(&self, location: Location<'_>) -> Option<Range<usize>> {
        let gate = self.spans.gate.as_ref();
        match location {
            Location::Gate => gate.map(|g| g.span()),
            Location::GateHost => gate
                .and_then(|g| g.get_ref().host.as_ref().map(|h| h.span()))
                .or_else(|| gate.map(|g| g.span())),
            Location::GatePorts(alias) => {
                let ports = gate.and_then(|g| g.get_ref().ports.as_ref());
                alias
                    .and_then(|a| ports.and_then(|p| p.get_ref().get(a)).map(|v| v.span()))
                    .or_else(|| ports.map(|p| p.span()))
                    .or_else(|| gate.map(|g| g.span()))
            }
            Location::Ssh(i, field) => {
                let entry = self.spans.ssh.get(i)?;
                let e = entry.get_ref();
                let f = match field {
                    Some("Host") => e.host.as_ref(),
                    Some("Hostname") => e.hostname.as_ref(),
                    Some("User") => e.user.as_ref(),
                    Some("IdentityFile") => e.identity_file.as_ref(),
                    Some("KnownHostKey") => e.known_host_key.as_ref(),
                    Some("Port") => e.port.as_ref(),
                    Some("Lifetime") => e.lifetime.as_ref(),
                    Some("CertificateAuthority") => e.certificate_authority.as_ref(),
                    Some("Principals") => e.principals.as_ref(),
                    Some("Validity") => e.validity.as_ref(),
                    Some("Extensions") => e.extensions.as_ref(),
                    _ => None,
                };
                Some(f.map(|f| f.span()).unwrap_or_else(|| entry.span()))
            }
        }
    }
}

fn invalid(path: &Path, text: &str, span: Option<Range<usize>>, message: String) -> ManifestError {
    let offset = span.as_ref().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    let file = path.display().to_string();
    ManifestError::Invalid {
        src: NamedSource::new(file.clone(), text.to_string()),
        file,
        line,
        column,
        message,
        span: span.map(|s| SourceSpan::from(s.start..s.end.max(s.start))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[gate]
host = "127.0.0.1"
[gate.ports]
github = 2201

[[ssh]]
Host = "github"
Hostname = "github.com"
User = "git"
IdentityFile = "~/.ssh/id_ed25519"
KnownHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

[[ssh]]
Host = "internal"
Hostname = "git.internal"
User = "git"
IdentityFile = "keys/internal"
Port = 2222
"#;

    #[test]
    fn parses_and_resolves_identity_files() {
        let m = parse_manifest(
            Path::new("/work/project/bottle.toml"),
            GOOD.into(),
            Some(Path::new("/home/me")),
        )
        .unwrap();
        let gate = m.plan.gate.as_ref().unwrap();
        assert_eq!(gate.host, "127.0.0.1");
        assert_eq!(gate.ports["github"], 2201);
        assert_eq!(m.plan.ssh.len(), 2);
        assert_eq!(
            m.plan.ssh[0].identity_file,
            Path::new("/home/me/.ssh/id_ed25519")
        );
        assert_eq!(
            m.plan.ssh[1].identity_file,
            Path::new("/work/project/keys/internal")
        );
        assert_eq!(m.plan.ssh[1].port, Some(2222));
        assert!(m.plan.ssh[0].known_host_key.is_some());
    }

    fn err_of(text: &str) -> (String, usize, usize, String) {
        match parse_manifest(Path::new("bottle.toml"), text.into(), Some(Path::new("/h")))
            .unwrap_err()
        {
            ManifestError::Invalid {
                file,
                line,
                column,
                message,
                ..
            } => (file, line, column, message),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn errors_point_at_line_and_column() {
        // A typo in a field name.
        let (file, line, col, msg) =
            err_of("[[ssh]]\nHost = \"a\"\nHostnme = \"b\"\nUser = \"u\"\nIdentityFile = \"/k\"\n");
        assert_eq!(file, "bottle.toml");
        assert_eq!((line, col), (3, 1), "{msg}");
        assert!(msg.contains("unknown field `Hostnme`"), "{msg}");

        // A wrong type.
        let (_, line, col, msg) =
            err_of("[[ssh]]\nHost = \"a\"\nHostname = \"b\"\nUser = \"u\"\nIdentityFile = \"/k\"\nPort = \"22\"\n");
        assert_eq!((line, col), (6, 8), "{msg}");
        assert!(msg.contains("invalid type"), "{msg}");

        // A missing field points at the entry.
        let (_, line, _, msg) = err_of("\n\n[[ssh]]\nHost = \"a\"\n");
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains("missing field `Hostname`"), "{msg}");

        // Broken syntax.
        let (_, line, _, msg) = err_of("[gate\n");
        assert_eq!(line, 1, "{msg}");

        // Unknown top-level table.
        let (_, line, _, msg) = err_of(
            "[[ssh]]\nHost='a'\nHostname='b'\nUser='u'\nIdentityFile='/k'\n[gates]\nhost='x'\n",
        );
        assert!(msg.contains("unknown field `gates`"), "{msg}");
        assert!(line >= 6, "{line}: {msg}");
    }

    #[test]
    fn tilde_needs_home_and_tilde_user_is_refused() {
        let text = "[[ssh]]\nHost='a'\nHostname='b'\nUser='u'\nIdentityFile='~/k'\n";
        let e = parse_manifest(Path::new("m.toml"), text.into(), None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("m.toml:5:14: IdentityFile starts with `~`"),
            "{e}"
        );
        let text = "[[ssh]]\nHost='a'\nHostname='b'\nUser='u'\nIdentityFile='~bob/k'\n";
        let e =
            parse_manifest(Path::new("m.toml"), text.into(), Some(Path::new("/h"))).unwrap_err();
        assert!(e.to_string().contains("not `~user`"), "{e}");
    }

    #[test]
    fn certificate_and_signing_paths_resolve_and_errors_point_at_them() {
        let text = "[signing]\nIdentityFile = '~/sign'\nTags = true\n\n[[ssh]]\nHost='a'\n\
                    Hostname='b'\nUser='u'\nCertificateAuthority='ca/key'\nPrincipals=['u','v']\n\
                    Validity='30m'\nExtensions=['permit-pty','permit-agent-forwarding']\n";
        let m =
            parse_manifest(Path::new("/srv/m.toml"), text.into(), Some(Path::new("/h"))).unwrap();
        let e = &m.plan.ssh[0];
        assert_eq!(e.identity_file, Path::new(""));
        assert_eq!(
            e.certificate_authority.as_deref(),
            Some(Path::new("/srv/ca/key"))
        );
        assert_eq!(
            e.principals.as_deref(),
            Some(&["u".to_string(), "v".into()][..])
        );
        let s = m.plan.signing.as_ref().unwrap();
        assert_eq!(s.identity_file, Path::new("/h/sign"));
        assert_eq!((s.commits, s.tags), (None, Some(true)));
        let err = m.error_at(Location::Ssh(0, Some("Validity")), "bad");
        assert!(err.to_string().starts_with("/srv/m.toml:11:10: "), "{err}");
        let err = m.error_at(Location::Ssh(0, Some("CertificateAuthority")), "bad");
        assert!(err.to_string().starts_with("/srv/m.toml:9:22: "), "{err}");
        assert_eq!(
            e.extensions.as_deref(),
            Some(&["permit-pty".to_string(), "permit-agent-forwarding".into()][..])
        );
        let err = m.error_at(Location::Ssh(0, Some("Extensions")), "bad");
        assert!(err.to_string().starts_with("/srv/m.toml:12:12: "), "{err}");
        let text = "[signing]\nIdentityFile = '~bob/sign'\n";
        let e =
            parse_manifest(Path::new("m.toml"), text.into(), Some(Path::new("/h"))).unwrap_err();
        assert!(
            e.to_string().starts_with("m.toml:2:16: IdentityFile: only"),
            "{e}"
        );
        let text = "[signing]\nIdentityFile = 'k'\nCommit = true\n";
        let e = parse_manifest(Path::new("m.toml"), text.into(), None).unwrap_err();
        assert!(e.to_string().contains("unknown field `Commit`"), "{e}");
    }

    #[test]
    fn later_errors_point_at_fields() {
        let m = parse_manifest(Path::new("b.toml"), GOOD.into(), Some(Path::new("/h"))).unwrap();
        let e = m.error_at(Location::Ssh(1, Some("Port")), "port clash");
        assert!(e.to_string().starts_with("b.toml:19:8: port clash"), "{e}");
        let e = m.error_at(Location::GatePorts(Some("github")), "bad port");
        assert!(e.to_string().starts_with("b.toml:5:10: bad port"), "{e}");
        let e = m.error_at(Location::Ssh(9, None), "nowhere");
        assert!(e.to_string().starts_with("b.toml:1:1: nowhere"), "{e}");
    }

    #[test]
    fn a_manifest_that_is_not_a_regular_file_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("bottle.toml");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_MANIFEST as usize + 1]).unwrap();
        for (path, want) in [
            (fifo, "is a FIFO"),
            (PathBuf::from("/dev/zero"), "is a character device"),
            (dir.path().to_path_buf(), "is a directory"),
            (big, "is larger than 1048576 bytes"),
        ] {
            // On a thread: a blocking or endless read fails instead of hanging.
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || tx.send(load_manifest(&p).unwrap_err().to_string()));
            let e = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("load_manifest blocked");
            assert!(
                e.contains(want) && e.contains(&format!("{path:?}")),
                "{path:?}: {e}"
            );
        }
    }

    #[test]
    fn a_manifest_others_can_change_is_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bottle.toml");
        std::fs::write(&path, GOOD).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_manifest(&path).unwrap().warnings.is_empty());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let w = load_manifest(&path).unwrap().warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(&format!("manifest {path:?} can be changed by others: "))
                && w[0].contains("mode 0666"),
            "{w:?}"
        );
    }

    #[test]
    fn read_error_names_the_file() {
        let e = load_manifest(Path::new("/nonexistent/bottle.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read manifest /nonexistent/bottle.toml"
        );
    }
}
