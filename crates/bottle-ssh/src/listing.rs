//! `list_keys`: what the agent holds, as the user sees it through the public
//! socket, plus what the agent protocol cannot report (remaining lifetime,
//! destination restriction) from provision's root-only record.

use crate::{parse_key_state, protocol, script_error, unix_now, Error, Target, KEYS_FILE};
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
    let root = out.stdout_lossy();
    let state = parse_key_state(root.lines());
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
    let mut keys = Vec::new();
    for line in listing.lines() {
        let key = parse_listing_line(line)
            .ok_or_else(|| protocol(STEP, container, format!("cannot read `{line}`")))?;
        let rec = state.iter().find(|(fp, _)| *fp == key.fingerprint);
        keys.push(AgentKey {
            lifetime_remaining: rec
                .and_then(|(_, s)| s.deadline)
                .map(|d| d.saturating_sub(now)),
            restricted_to: rec.map(|(_, s)| s.hosts.clone()),
            ..key
        });
    }
    Ok(keys)
}

/// `256 SHA256:abc comment with spaces (ED25519)`
pub(crate) fn parse_listing_line(line: &str) -> Option<AgentKey> {
    let (bits, rest) = line.split_once(' ')?;
    let (fingerprint, rest) = rest.split_once(' ')?;
    if !fingerprint.starts_with("SHA256:") {
        return None;
    }
    let open = rest.rfind(" (")?;
    let key_type = rest[open + 2..].strip_suffix(')')?;
    Some(AgentKey {
        key_type: key_type.to_string(),
        bits: bits.parse().ok()?,
        fingerprint: fingerprint.to_string(),
        comment: rest[..open].to_string(),
        lifetime_remaining: None,
        restricted_to: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_parse() {
        let k = parse_listing_line("256 SHA256:abc/+x a comment (with) spaces (ED25519)").unwrap();
        assert_eq!(k.bits, 256);
        assert_eq!(k.fingerprint, "SHA256:abc/+x");
        assert_eq!(k.comment, "a comment (with) spaces");
        assert_eq!(k.key_type, "ED25519");
        assert!(parse_listing_line("The agent has no identities.").is_none());
        assert!(parse_listing_line("3072 MD5:aa:bb c (RSA)").is_none());
    }
}
