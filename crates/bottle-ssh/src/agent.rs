//! ssh-agent protocol messages that load keys (built with `ssh-agent-lib`).

use crate::validate::LoadedKey;
use ssh_agent_lib::proto::{AddIdentity, PrivateCredential, Request};
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
        requests.push(Request::AddIdentity(AddIdentity {
            credential: PrivateCredential::Key {
                privkey: k.private.key_data().clone(),
                comment: k.comment.clone(),
            },
        }));
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
