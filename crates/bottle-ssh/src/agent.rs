//! ssh-agent protocol messages that load keys (built with `ssh-agent-lib`).

use crate::valid::LoadedKey;
use ssh_agent_lib::proto::extension::{
    DestinationConstraint, HostTuple, KeySpec, RestrictDestination,
};
use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Extension, KeyConstraint, PrivateCredential, Request,
};
use ssh_agent_lib::ssh_encoding::Encode;
use zeroize::Zeroizing;

/// `REMOVE_ALL_IDENTITIES` then one `ADD_IDENTITY` per key, each framed with
/// its length, concatenated: the bytes to write to the agent socket.
///
/// The buffer is allocated at its final size up front so no reallocation
/// leaves an unzeroed copy of key material behind.
pub(crate) fn load_keys_message(keys: &[LoadedKey]) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut requests = vec![Request::RemoveAllIdentities];
    for k in keys {
        // A fresh key with its certificate goes in as one identity.
        let credential =
            crate::certificate::agent_credential(k).unwrap_or_else(|| PrivateCredential::Key {
                privkey: k.private.key_data().clone(),
                comment: k.comment.clone(),
            });
        let identity = AddIdentity { credential };
        let constraints = constraints(k)?;
        requests.push(if constraints.is_empty() {
            Request::AddIdentity(identity)
        } else {
            Request::AddIdConstrained(AddIdentityConstrained {
                identity,
                constraints,
            })
        });
    }
    let mut len = 0usize;
    for r in &requests {
        len += r
            .encoded_len_prefixed()
            .map_err(|e| format!("cannot encode agent message: {e}"))?;
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(len));
    for r in &requests {
        r.encode_prefixed(&mut *buf)
            .map_err(|e| format!("cannot encode agent message: {e}"))?;
    }
    debug_assert_eq!(buf.len(), len);
    Ok(buf)
}

/// `Lifetime` and `restrict-destination-v00@openssh.com` (one hop from the
/// local client straight to each destination user, as `ssh-add -h
/// USER@HOST` builds).
pub(crate) fn constraints(k: &LoadedKey) -> Result<Vec<KeyConstraint>, String> {
    let mut out = Vec::new();
    if let Some(secs) = k.lifetime {
        out.push(KeyConstraint::Lifetime(secs));
    }
    if !k.destinations.is_empty() {
        let mut constraints = Vec::new();
        for d in &k.destinations {
            let mut specs = Vec::new();
            for hk in &d.host_keys {
                let key = ssh_key::PublicKey::from_openssh(hk)
                    .map_err(|e| format!("host key of {:?} does not parse: {e}", d.hostname))?;
                specs.push(KeySpec {
                    keyblob: key.key_data().clone(),
                    is_ca: false,
                });
            }
            // ssh-agent matches the hop's user (a pattern; ours are
            // allow-listed, so literal) against the user in the login
            // request it signs; an empty one would allow any user.
            for user in &d.users {
                constraints.push(DestinationConstraint {
                    from: HostTuple {
                        username: String::new(),
                        hostname: String::new(),
                        keys: Vec::new(),
                    },
                    to: HostTuple {
                        username: user.clone(),
                        hostname: d.hostname.clone(),
                        keys: specs.clone(),
                    },
                });
            }
        }
        let ext = Extension::new_key_constraint(RestrictDestination { constraints })
            .map_err(|e| format!("cannot encode the destination constraint: {e}"))?;
        out.push(KeyConstraint::Extension(ext));
    }
    Ok(out)
}
