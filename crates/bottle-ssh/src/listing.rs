//! `list_keys`: what the agent holds, as the user sees it through the public
//! socket, plus what the agent protocol cannot report (remaining lifetime,
//! destination restriction) from provision's root-only record.

use crate::{protocol, script_error, unix_now, unreadable, Error, Target, KEYS_FILE};
use crate::{scripts, validate_target, STATE_DIR};
use bottle_runtime::{ContainerRuntime, ExecRequest};
use serde::Serialize;

/// One key the agent holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentKey {
    /// Key type as `ssh-add -l` prints it, e.g. `ED25519`, `RSA`, `ECDSA`.
    pub key_type: String,
    pub bits: u32,
    /// `SHA256:…`
    pub fingerprint: String,
    pub comment: String,
    /// Seconds until the agent forgets the key, when provision set a
    /// `Lifetime` (the agent protocol does not report it; provision records it).
    pub lifetime_remaining: Option<u64>,
    /// Whether provision loaded the key destination-restricted, and to which
    /// hosts. `None` when provision left no record of this key.
    pub restricted_to: Option<Vec<String>>,
    /// The key's certificate as provision recorded it (key id, principals,
    /// expiry), for a `CertificateAuthority` entry's fresh key.
    pub certificate: Option<crate::CertInfo>,
}

/// List the agent's keys through the public socket, as the target user.
/// Two execs: one as root (the record), one as the user (the listing).
pub async fn list_keys(
    rt: &dyn ContainerRuntime,
    container: &str,
    target: &Target,
) -> Result<Vec<AgentKey>, Error> {
    const STEP: &str = "list keys";
    validate_target(target)?;
    let out = rt
        .exec(
            container,
            ExecRequest::script(scripts::KEYS_ROOT, [STATE_DIR, KEYS_FILE]).user("0"),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, container, &out));
    }
    let state = protocol::key_record(&out.stdout_lossy());
    let out = rt
        .exec(
            container,
            ExecRequest::script(scripts::KEYS_USER, [target.public_socket.as_str()])
                .user(target.user.as_str()),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    let listing = out.stdout_lossy();
    // ssh-add -l: 0 keys listed, 1 the agent has none, 2 no agent.
    match out.exit_code {
        0 => {}
        1 => return Ok(Vec::new()),
        _ => return Err(script_error(STEP, container, &out)),
    }
    let now = unix_now();
    let listing = protocol::listing(&listing).map_err(|e| unreadable(STEP, container, e))?;
    Ok(listing
        .into_iter()
        .map(|(bits, fingerprint, comment, key_type)| {
            let rec = state.iter().find(|s| s.fingerprint == fingerprint);
            AgentKey {
                key_type: key_type.to_string(),
                bits,
                fingerprint: fingerprint.to_string(),
                comment: comment.to_string(),
                lifetime_remaining: rec.and_then(|s| s.deadline).map(|d| d.saturating_sub(now)),
                restricted_to: rec.map(|s| s.hosts.clone()),
                certificate: rec
                    .and_then(|s| {
                        s.extra
                            .iter()
                            .find_map(|w| crate::certificate::parse_recorded(w))
                    })
                    .map(|c| crate::CertInfo::of(&c)),
            }
        })
        .collect())
}
