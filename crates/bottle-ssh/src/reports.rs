//! What provision, verify and deprovision report (serializable, for `--json`).

use serde::Serialize;

/// A key loaded into the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    pub aliases: Vec<String>,
    pub algorithm: String,
    pub fingerprint: String,
    pub comment: String,
    /// Agent lifetime in seconds, if limited.
    pub lifetime: Option<u32>,
    /// Hostnames the key is restricted to; empty when unrestricted.
    pub restricted_to: Vec<String>,
    /// The certificate issued for this (fresh) key (`CertificateAuthority`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<crate::CertInfo>,
}

/// A file or directory written into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    /// Octal permission string, e.g. `600`.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
}

/// One step and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    pub name: &'static str,
    pub millis: u64,
}

/// A process the provisioner runs in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    /// True when this run started it; false when a live one was reused.
    pub started: bool,
}

/// What [`provision`](crate::provision()) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionReport {
    pub container: String,
    pub keys: Vec<KeyReport>,
    pub files: Vec<FileReport>,
    /// Files from an earlier run that this plan no longer needs, now removed.
    pub removed: Vec<String>,
    pub agent: ProcessReport,
    pub forwarder: ProcessReport,
    pub steps: Vec<StepReport>,
    /// Not errors, but the user should know (e.g. a key that cannot be
    /// destination-restricted).
    pub warnings: Vec<String>,
}

/// One verify check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What [`verify`](crate::verify()) found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// A check by name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// What [`deprovision`](crate::deprovision()) removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DeprovisionReport {
    pub container: String,
    pub stopped_agent: Option<u32>,
    pub stopped_forwarder: Option<u32>,
    pub removed: Vec<String>,
    /// The guard's records, read before they were removed (the caller
    /// keeps them: see `bottlectl deprovision`).
    #[serde(skip)]
    pub audit: Vec<crate::audit::Record>,
    /// Why the records could not be read (they are gone with the state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_unread: Option<String>,
}
