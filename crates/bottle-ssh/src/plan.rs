//! What to provision: the `[gate]` and `[[ssh]]` tables of a manifest.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything the SSH provisioner needs to know about what to set up.
/// Field names follow the manifest (`bottle.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Optional: without it each `Host` points straight at its `Hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// One entry per SSH alias, in the order they are rendered.
    #[serde(default)]
    pub ssh: Vec<SshEntry>,
    /// A key for git commit/tag signing (`gpg.format = ssh`), loaded
    /// without destination restriction (OpenSSH's agent refuses `SSHSIG`
    /// signatures for restricted keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
}

impl Plan {
    /// Read a plan file (the manifest) as key files are read: a regular
    /// file only (a FIFO or device is refused unread; opening never
    /// blocks), at most `max` bytes. The second value says why someone
    /// other than the running user or root could change the file (writable
    /// by group or others, or owned by another user — the file or a
    /// directory above it), if so: whoever can chooses the keys and
    /// restrictions.
    pub fn read_file(path: &Path, max: u64) -> Result<(Vec<u8>, Option<String>), String> {
        let (mut bytes, meta) = crate::keys::read_regular(path, max)?;
        Ok((
            std::mem::take(&mut *bytes),
            crate::keys::exposure(path, &meta),
        ))
    }
}

/// Where the bottle reaches the SSH gate, and its listen port per alias.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub host: String,
    /// One listen port per ssh alias, no more, no less. `i64` so that
    /// out-of-range values reach validation and get a clear error.
    pub ports: BTreeMap<String, i64>,
}

/// One `Host` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshEntry {
    /// The alias used inside the bottle.
    #[serde(rename = "Host")]
    pub host: String,
    /// The real upstream; `HostKeyAlias` and `known_hosts` use it.
    #[serde(rename = "Hostname")]
    pub hostname: String,
    /// The upstream login; a restricted key signs only logins as this user.
    #[serde(rename = "User")]
    pub user: String,
    /// Private key on the machine running the provisioner. Empty (absent)
    /// only with `CertificateAuthority`, which gives the entry a fresh key.
    #[serde(
        rename = "IdentityFile",
        default,
        skip_serializing_if = "path_is_empty"
    )]
    pub identity_file: PathBuf,
    /// Pins the upstream host key, e.g. `ssh-ed25519 AAAA…`.
    #[serde(
        rename = "KnownHostKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub known_host_key: Option<String>,
    /// Upstream port when there is no gate (default 22).
    #[serde(rename = "Port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// How long the agent keeps the key (like `ssh-add -t`): seconds, or
    /// `8h` / `30m` / `1h30m` style. Default: until deprovision.
    #[serde(rename = "Lifetime", default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
    /// `true` is refused: nobody in the bottle could confirm a signature.
    #[serde(rename = "Confirm", default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<bool>,
    /// Restrict the key to this entry's `User` at its `Hostname` and
    /// `KnownHostKey` (`restrict-destination-v00@openssh.com`). Default `true`; has no
    /// effect without `KnownHostKey`.
    #[serde(rename = "Restrict", default, skip_serializing_if = "Option::is_none")]
    pub restrict: Option<bool>,
    /// The private key of an OpenSSH user CA on the machine running the
    /// provisioner. With it the entry gets a fresh ed25519 key at each
    /// provision, with a certificate this CA signs; the CA key never enters
    /// the container. Replaces `IdentityFile`.
    #[serde(
        rename = "CertificateAuthority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<PathBuf>,
    /// The certificate's principals (default: the entry's `User`).
    #[serde(
        rename = "Principals",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub principals: Option<Vec<String>>,
    /// How long the certificate (and the fresh key in the agent) is valid,
    /// as `Lifetime` is written (default `1h`, at most
    /// 7 days).
    #[serde(rename = "Validity", default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<Lifetime>,
    /// The certificate's extensions, OpenSSH's names (default: only
    /// `permit-pty`); an unknown name is refused.
    #[serde(
        rename = "Extensions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<Vec<String>>,
    /// Hold its signatures for an operator's approval (`bottlectl
    /// approve`): `each`, or `per-destination` (the first per host key and
    /// user, or SSHSIG namespace).
    #[serde(rename = "Approve", default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
    /// How long a held signature waits for an answer (default `60s`, at
    /// most a day); unanswered, it is refused.
    #[serde(
        rename = "ApprovalTimeout",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub approval_timeout: Option<Lifetime>,
    /// At most N signatures per DURATION, as `"30/1m"`; beyond, refused.
    #[serde(
        rename = "MaxSignatures",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_signatures: Option<String>,
}

fn path_is_empty(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

/// The `[signing]` table: one key git signs commits and tags with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// Private key on the machine running the provisioner. It must be a
    /// dedicated signing key: it is loaded unrestricted, so it could also
    /// log in wherever it is authorized.
    #[serde(rename = "IdentityFile")]
    pub identity_file: PathBuf,
    /// How long the agent keeps the key (as in `[[ssh]]`).
    #[serde(rename = "Lifetime", default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
    /// Sign every commit (`commit.gpgsign`, default `true`).
    #[serde(rename = "Commits", default, skip_serializing_if = "Option::is_none")]
    pub commits: Option<bool>,
    /// Sign every annotated tag (`tag.gpgsign`, default `false`).
    #[serde(rename = "Tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<bool>,
    /// Hold its signatures for an operator's approval (`bottlectl
    /// approve`): `each`, or `per-destination` (the first per host key and
    /// user, or SSHSIG namespace).
    #[serde(rename = "Approve", default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
    /// How long a held signature waits for an answer (default `60s`, at
    /// most a day); unanswered, it is refused.
    #[serde(
        rename = "ApprovalTimeout",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub approval_timeout: Option<Lifetime>,
    /// At most N signatures per DURATION, as `"30/1m"`; beyond, refused.
    #[serde(
        rename = "MaxSignatures",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_signatures: Option<String>,
}

/// An agent key lifetime as written in the manifest: `3600` or `"1h"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Lifetime {
    Seconds(i64),
    Text(String),
}

/// The guard's hold of a key's signatures, as its policy words (see
/// `bottle_guard::policy`): ` approve=… timeout=… max=N/SECONDS`, or "".
pub(crate) fn hold_words(
    approve: Option<&str>,
    timeout: Option<&Lifetime>,
    max: Option<&str>,
) -> Result<String, (&'static str, String)> {
    const DAY: u32 = 86_400;
    let mut out = String::new();
    if let Some(a) = approve {
        if a != "each" && a != "per-destination" {
            return Err((
                "Approve",
                format!("{a:?} is not `each` or `per-destination`"),
            ));
        }
        let secs = match timeout {
            Some(t) => t.seconds().map_err(|r| ("ApprovalTimeout", r))?,
            None => 60,
        };
        if secs > DAY {
            return Err(("ApprovalTimeout", format!("{secs} s is longer than a day")));
        }
        out.push_str(&format!(" approve={a} timeout={secs}"));
    } else if timeout.is_some() {
        return Err(("ApprovalTimeout", "has no effect without `Approve`".into()));
    }
    if let Some(m) = max {
        let bad = || {
            (
                "MaxSignatures",
                format!("{m:?} is not N/DURATION, e.g. \"30/1m\""),
            )
        };
        let (n, window) = m.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
        let window = Lifetime::Text(window.trim().to_string())
            .seconds()
            .map_err(|_| bad())?;
        if window > DAY {
            return Err((
                "MaxSignatures",
                format!("a window of {window} s is longer than a day"),
            ));
        }
        out.push_str(&format!(" max={n}/{window}"));
    }
    Ok(out)
}

impl Lifetime {
    /// The lifetime in seconds (1 to `u32::MAX`, what the agent protocol carries).
    pub fn seconds(&self) -> Result<u32, String> {
        let secs: i64 = match self {
            Lifetime::Seconds(n) => *n,
            Lifetime::Text(t) => parse_duration(t)?,
        };
        if secs < 1 {
            return Err(format!("{secs} is not a lifetime (at least 1 second)"));
        }
        u32::try_from(secs).map_err(|_| format!("{secs} seconds is too long"))
    }
}

/// `90`, `30s`, `5m`, `8h`, `2d`, `1w`, `1h30m` (ssh-add's time format).
fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a duration (e.g. `3600`, `30m`, `8h`, `1h30m`)");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        let n: i64 = digits.parse().map_err(|_| bad())?;
        total = total.checked_add(n).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Where things go inside the container. Comes from configuration
/// (`container_home`, `user`, `agent_socket`, `public_socket`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Target {
    /// The unprivileged user's name.
    pub user: String,
    /// That user's home directory in the container.
    pub home: String,
    /// Root-only socket of the in-container ssh-agent.
    pub agent_socket: String,
    /// World-connectable forwarder socket the user's ssh talks to.
    pub public_socket: String,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            user: "node".into(),
            home: "/home/node".into(),
            agent_socket: "/run/claude-bottle-agent.sock".into(),
            public_socket: "/run/claude-bottle-agent-public.sock".into(),
        }
    }
}
