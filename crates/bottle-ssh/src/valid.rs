//! The validated plan: what [`crate::validate`] makes of a
//! [`Plan`](crate::Plan) after every check, with its keys loaded. Types
//! only, so the modules that read a validated plan (certificate, signing,
//! render, agent) import it without importing the validation that made it.

use serde::Serialize;
use ssh_key::{Certificate, HashAlg, PrivateKey};
use std::fmt;
use std::path::PathBuf;
/// Longest value accepted in a `Host`, `HostName` or `User` line.
pub const MAX_VALUE_LEN: usize = 255;

/// A plan that passed every check, with its keys loaded (in memory only).
pub struct ValidatedPlan {
    /// The entries, in plan order.
    pub entries: Vec<ValidEntry>,
    /// Distinct keys, in order of first use. A key listed under several
    /// aliases appears once.
    pub keys: Vec<LoadedKey>,
    /// Things the user should hear about but that are not errors (a key
    /// file others can change, a key that cannot be destination-restricted).
    pub warnings: Vec<String>,
    /// The `[signing]` key's git settings; the key itself is in `keys`
    /// (unrestricted, alias `[signing]`).
    pub signing: Option<SigningPlan>,
}

/// A host a key is restricted to: the name ssh looks up in `known_hosts`
/// (the entry's `Hostname`, via `HostKeyAlias`), its pinned host key(s) and
/// the login users the key may sign for there (the entries' `User`s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub hostname: String,
    /// `algorithm base64`, as in `KnownHostKey`.
    pub host_keys: Vec<String>,
    /// Users of this hostname's entries, in plan order: the agent signs a
    /// login request only for one of them (one constraint hop per user).
    pub users: Vec<String>,
}

impl Destination {
    /// `user@hostname`, one per user: what the agent is told.
    pub fn hops(&self) -> impl Iterator<Item = String> + '_ {
        self.users
            .iter()
            .map(move |u| format!("{u}@{}", self.hostname))
    }
}

/// One `[[ssh]]` entry after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidEntry {
    pub alias: String,
    pub hostname: String,
    pub user: String,
    /// Port `HostName` is reached on: the gate's port for this alias, or the
    /// entry's `Port`, or 22.
    pub connect_host: String,
    pub connect_port: u16,
    /// `KnownHostKey` without its comment, e.g. `ssh-ed25519 AAAA…`.
    pub known_host_key: Option<String>,
    pub identity_file: PathBuf,
    /// SHA256 fingerprint of this entry's key.
    pub fingerprint: String,
    /// The guard's hold of its signatures, as policy words.
    pub hold: String,
}

/// A private key read from an `IdentityFile`. `Debug` never shows key bytes.
pub struct LoadedKey {
    pub aliases: Vec<String>,
    pub files: Vec<PathBuf>,
    pub algorithm: String,
    /// `SHA256:…`, as `ssh-add -l -E sha256` prints it.
    pub fingerprint: String,
    pub comment: String,
    /// Agent lifetime in seconds (`Lifetime`), if any.
    pub lifetime: Option<u32>,
    /// Destination restriction; empty when the key is not restricted.
    pub destinations: Vec<Destination>,
    /// Why the key is not restricted (empty when it is).
    pub unrestricted: Vec<String>,
    /// For an entry with `CertificateAuthority`: this is its fresh key, and
    /// what its certificate is made of (issued at provision).
    pub certificate: Option<Box<CertSpec>>,
    pub(crate) private: PrivateKey,
}

impl LoadedKey {
    /// Every `user@hostname` the key is restricted to, in plan order; empty
    /// when unrestricted.
    pub fn restricted_to(&self) -> Vec<String> {
        self.destinations
            .iter()
            .flat_map(Destination::hops)
            .collect()
    }

    /// The public half, in OpenSSH format (`ssh-ed25519 AAAA… comment`).
    pub fn public_openssh(&self) -> String {
        self.private
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| String::new())
    }

    /// The certificate issued for this (fresh) key, if any.
    pub fn issued(&self) -> Option<&ssh_key::Certificate> {
        self.certificate.as_ref()?.issued.as_ref()
    }
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("aliases", &self.aliases)
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &self.fingerprint)
            .field("comment", &self.comment)
            .field("lifetime", &self.lifetime)
            .field("destinations", &self.destinations)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ValidatedPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedPlan")
            .field("entries", &self.entries)
            .field("keys", &self.keys)
            .field("warnings", &self.warnings)
            .field("signing", &self.signing)
            .finish()
    }
}

impl ValidatedPlan {
    /// The distinct fingerprints the agent must hold, sorted.
    pub fn fingerprints(&self) -> Vec<String> {
        let mut v: Vec<String> = self.keys.iter().map(|k| k.fingerprint.clone()).collect();
        v.sort();
        v
    }
}

/// What an entry's certificate is made from, after validation. `Debug`
/// shows no key bytes.
pub struct CertSpec {
    /// The CA key file, as the manifest names it.
    pub authority_file: PathBuf,
    /// `SHA256:…` of the CA's public key (what sshd logs as `CA … SHA256:…`).
    pub authority_fingerprint: String,
    pub principals: Vec<String>,
    /// Seconds; also the fresh key's agent lifetime.
    pub validity: u32,
    /// The certificate's extensions (checked names, by default
    /// [`DEFAULT_EXTENSIONS`](crate::certificate::DEFAULT_EXTENSIONS)).
    pub extensions: Vec<String>,
    /// The certificate issued at provision (or, in verify, the one
    /// provision recorded).
    pub issued: Option<Certificate>,
    /// The CA's private key (decrypted only when provision needs it).
    pub(crate) authority: PrivateKey,
}

impl std::fmt::Debug for CertSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSpec")
            .field("authority_file", &self.authority_file)
            .field("authority_fingerprint", &self.authority_fingerprint)
            .field("principals", &self.principals)
            .field("validity", &self.validity)
            .field("extensions", &self.extensions)
            .field("issued", &self.issued.as_ref().map(CertInfo::of))
            .finish_non_exhaustive()
    }
}

/// What `verify` and `keys` show of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// The key id, `bottle:<engine>:<container>:<alias>`: what the
    /// server logs (`Accepted certificate ID "…"`).
    pub key_id: String,
    pub serial: u64,
    pub principals: Vec<String>,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds: the certificate is refused from then on.
    pub valid_before: u64,
    /// `SHA256:…` of the CA that signed it.
    pub authority: String,
}

impl CertInfo {
    pub fn of(cert: &Certificate) -> CertInfo {
        CertInfo {
            key_id: cert.key_id().to_string(),
            serial: cert.serial(),
            principals: cert.valid_principals().to_vec(),
            valid_after: cert.valid_after(),
            valid_before: cert.valid_before(),
            authority: cert
                .signature_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
        }
    }

    /// `key id …, principals …, expires …` for a check's detail line.
    pub fn describe(&self, now: u64) -> String {
        let when = if self.valid_before > now {
            format!("expires in {} s", self.valid_before - now)
        } else {
            format!("expired {} s ago", now - self.valid_before)
        };
        format!(
            "key id {:?}, serial {}, principals {}, valid until {} ({when})",
            self.key_id,
            self.serial,
            self.principals.join(","),
            self.valid_before
        )
    }
}

/// The `[signing]` key's git settings after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningPlan {
    pub fingerprint: String,
    /// The guard's hold of its signatures, as policy words.
    pub hold: String,
    /// `algorithm base64` of the key (what `user.signingkey` names with `key::`).
    pub public: String,
    pub commits: bool,
    pub tags: bool,
}
