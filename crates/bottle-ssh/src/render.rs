//! What goes into `~/.ssh/config` and `~/.ssh/known_hosts`.

use crate::plan::Target;
use crate::valid::ValidatedPlan;

/// First line of every file provision writes in the user's `~/.ssh`: how a
/// later provision or deprovision tells its own file (to replace or remove)
/// from one the user wrote.
pub const FILE_MARK: &str =
    "# Written by bottle: replaced by each provision, removed by deprovision.";

/// The `config` file: [`FILE_MARK`], then one block per entry, in plan
/// order, each followed by a blank line. Every value was checked by
/// [`crate::validate`]. Each block names its entry's public key file with
/// `IdentitiesOnly yes`, so ssh asks the agent for that key only (not
/// every key in agent order: deploy keys sharing a `Hostname`, servers'
/// `MaxAuthTries`).
pub fn render_config(plan: &ValidatedPlan, target: &Target) -> String {
    let mut out = format!("{FILE_MARK}\n");
    let ssh = format!("{}/.ssh", target.home.trim_end_matches('/'));
    for e in &plan.entries {
        out.push_str(&format!(
            "Host {}\n HostName {}\n User {}\n Port {}\n IdentityAgent {}\n IdentityFile {ssh}/{}\n IdentitiesOnly yes\n HostKeyAlias {}\n CheckHostIP no\n\n",
            e.alias,
            e.connect_host,
            e.user,
            e.connect_port,
            target.public_socket,
            public_key_file(&e.fingerprint),
            e.hostname
        ));
    }
    out
}

/// The name, in `~/.ssh`, of the public key file for the key with this
/// fingerprint: `bottle-<16 hex>.pub` (a name the shell need not quote).
pub fn public_key_file(fingerprint: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = hex::encode(Sha256::digest(fingerprint.as_bytes()));
    format!("bottle-{}.pub", &hex[..16])
}

/// One public key file per distinct key: its name ([`public_key_file`]) and
/// text ([`FILE_MARK`], then `algorithm base64`, no comment). ssh skips the
/// `#` line when it reads the file; only public halves are ever written.
/// For a fresh key with a certificate the file holds the certificate
/// (`…-cert-v01@openssh.com base64`): ssh then asks the agent for the
/// certificate identity, which the agent holds with the key.
pub fn render_public_keys(plan: &ValidatedPlan) -> Vec<(String, String)> {
    plan.keys
        .iter()
        .map(|k| {
            let public = match k.issued() {
                Some(cert) => crate::certificate::openssh_line(cert),
                None => k.public_openssh(),
            };
            let mut fields = public.split_whitespace();
            let (alg, body) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
            (
                public_key_file(&k.fingerprint),
                format!("{FILE_MARK}\n{alg} {body}\n"),
            )
        })
        .collect()
}

/// The `known_hosts` file ([`FILE_MARK`], then one line per pinned key), or
/// `None` when no entry pins a host key. `HostKeyAlias` makes ssh look keys
/// up by `Hostname` alone (no port).
pub fn render_known_hosts(plan: &ValidatedPlan) -> Option<String> {
    let mut lines = String::new();
    for e in &plan.entries {
        if let Some(k) = &e.known_host_key {
            lines.push_str(&format!("{} {}\n", e.hostname, k));
        }
    }
    (!lines.is_empty()).then(|| format!("{FILE_MARK}\n{lines}"))
}
