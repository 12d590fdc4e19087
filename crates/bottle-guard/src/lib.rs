//! `bottle-guard`: the only path from a bottle to its ssh-agent.
//!
//! Each client connection gets one [`Session`], which reads every request
//! (PROTOCOL.agent) and decides: list identities, bind a session (after
//! checking the host's signature itself), or sign what the key is for
//! ([`policy`]). Everything else — add, remove, lock, unlock, smartcard,
//! unknown messages and extensions — is refused and never reaches the
//! agent. An allowed request is forwarded byte for byte.
//!
//! What a key is for:
//! - a login key signs only an SSH user-authentication request (RFC 4252
//!   §7, parsed to the last byte) for one of its entries' users, and, where
//!   the entry pins host keys, only for a session identifier that a verified
//!   `session-bind@openssh.com` on this connection bound to one of them;
//! - the signing key signs only SSHSIG data (PROTOCOL.sshsig) in its
//!   namespaces, never a login;
//! - data that parses as neither is refused.

pub mod audit;
pub mod hold;
pub mod load;
pub mod policy;
pub mod root;
pub mod wire;

use policy::{Hold, KeyRules, Policy};
use ssh_key::public::KeyData;
use ssh_key::{Certificate, HashAlg, Signature};
use wire::{Malformed, Reader};

/// The longest frame either side may send (as ssh-agent's own limit).
pub const MAX_FRAME: usize = 256 * 1024;
/// Sessions one connection may bind (as ssh-agent's limit).
pub const MAX_BINDS: usize = 16;
/// The longest session identifier (as ssh-agent's limit).
pub const MAX_SESSION_ID: usize = 128;

/// Message numbers (PROTOCOL.agent).
pub mod msg {
    pub const FAILURE: u8 = 5;
    pub const REQUEST_IDENTITIES: u8 = 11;
    pub const SIGN_REQUEST: u8 = 13;
    pub const EXTENSION: u8 = 27;
    /// `SSH_MSG_USERAUTH_REQUEST` (RFC 4252).
    pub const USERAUTH_REQUEST: u8 = 50;
}

/// The reply to a refused request: `SSH_AGENT_FAILURE`.
pub const FAILURE_FRAME: [u8; 5] = [0, 0, 0, 1, msg::FAILURE];

/// The name of a request as the records show it.
pub fn request_name(kind: u8) -> &'static str {
    match kind {
        // Protocol 1's, which ssh-add -D still sends.
        1 => "list-v1",
        9 => "remove-all-v1",
        11 => "list",
        13 => "sign",
        17 => "add",
        18 => "remove",
        19 => "remove-all",
        20 => "add-smartcard",
        21 => "remove-smartcard",
        22 => "lock",
        23 => "unlock",
        25 => "add-constrained",
        26 => "add-smartcard-constrained",
        27 => "extension",
        _ => "unknown",
    }
}

/// What the guard does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it to the agent unchanged.
    Forward(Allowed),
    /// Answer `SSH_AGENT_FAILURE`; the agent never sees it.
    Refuse(String),
}

/// What an allowed request was, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    List,
    /// A session bound to the host key with this fingerprint.
    Bind {
        host_key: String,
    },
    Login {
        key: String,
        user: String,
        /// The bound host key, where one was bound.
        host_key: Option<String>,
        /// The matching rule's approval and limit.
        hold: Hold,
    },
    Sshsig {
        key: String,
        namespace: String,
        hash: String,
        hold: Hold,
    },
}

impl Allowed {
    /// A signature's key, destination (host key and user, or namespace)
    /// and hold; `None` for a listing or a bind.
    pub fn signature(&self) -> Option<(&str, String, Hold)> {
        match self {
            Allowed::Login {
                key,
                user,
                host_key,
                hold,
            } => Some((
                key,
                format!("{} {user}", host_key.as_deref().unwrap_or("any-host")),
                *hold,
            )),
            Allowed::Sshsig {
                key,
                namespace,
                hold,
                ..
            } => Some((key, format!("namespace {namespace}"), *hold)),
            _ => None,
        }
    }
}

/// One client connection's state: the sessions it bound.
#[derive(Debug, Default)]
pub struct Session {
    /// (session identifier, host key fingerprint), verified.
    bound: Vec<(Vec<u8>, String)>,
}

/// The `SHA256:` fingerprint of a key blob; a certificate's is its key's.
/// The blob must be exactly one key.
pub fn fingerprint(blob: &[u8]) -> Result<String, Malformed> {
    let key = key_data(blob)?;
    Ok(key.fingerprint(HashAlg::Sha256).to_string())
}

fn key_data(blob: &[u8]) -> Result<KeyData, Malformed> {
    use ssh_encoding::Decode;
    let mut r = Reader::new(blob);
    let alg = r.text()?;
    if alg.contains("-cert-v01@openssh.com") {
        let cert = Certificate::from_bytes(blob).map_err(|_| Malformed("bad certificate"))?;
        return Ok(cert.public_key().clone());
    }
    let mut rest = blob;
    let key = KeyData::decode(&mut rest).map_err(|_| Malformed("bad key blob"))?;
    if !rest.is_empty() {
        return Err(Malformed("trailing bytes after the key"));
    }
    Ok(key)
}

impl Session {
    pub fn new() -> Self {
        Session::default()
    }

    /// Decide on one request: `body` is the frame without its length.
    pub fn decide(&mut self, policy: &Policy, body: &[u8]) -> Verdict {
        let Some(&kind) = body.first() else {
            return Verdict::Refuse("empty message".into());
        };
        let refuse = |why: String| Verdict::Refuse(why);
        match kind {
            msg::REQUEST_IDENTITIES if body.len() == 1 => Verdict::Forward(Allowed::List),
            msg::REQUEST_IDENTITIES => refuse("trailing bytes after list".into()),
            msg::SIGN_REQUEST => match self.sign(policy, &body[1..]) {
                Ok(a) => Verdict::Forward(a),
                Err(why) => refuse(why),
            },
            msg::EXTENSION => match self.extension(&body[1..]) {
                Ok(a) => Verdict::Forward(a),
                Err(why) => refuse(why),
            },
            other => refuse(format!("{} is not allowed", request_name(other))),
        }
    }

    fn extension(&mut self, body: &[u8]) -> Result<Allowed, String> {
        let mut r = Reader::new(body);
        let name = r.text().map_err(|e| e.to_string())?;
        if name != "session-bind@openssh.com" {
            return Err("extension is not allowed".into());
        }
        let host_key = r.string().map_err(|e| e.to_string())?;
        let sid = r.string().map_err(|e| e.to_string())?;
        let sig = r.string().map_err(|e| e.to_string())?;
        let _forwarding = r.boolean().map_err(|e| e.to_string())?;
        r.finish().map_err(|e| e.to_string())?;
        if sid.is_empty() || sid.len() > MAX_SESSION_ID {
            return Err("session identifier of a bad length".into());
        }
        let key = key_data(host_key).map_err(|e| e.to_string())?;
        let mut rest = sig;
        let signature = {
            use ssh_encoding::Decode;
            Signature::decode(&mut rest).map_err(|_| "malformed: bad signature".to_string())?
        };
        if !rest.is_empty() {
            return Err("malformed: trailing bytes after the signature".into());
        }
        use signature::Verifier;
        key.verify(sid, &signature)
            .map_err(|_| "the host's signature over the session does not verify".to_string())?;
        if self.bound.iter().any(|(s, _)| s == sid) {
            return Err("session already bound".into());
        }
        if self.bound.len() >= MAX_BINDS {
            return Err("too many sessions bound on one connection".into());
        }
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        self.bound.push((sid.to_vec(), fp.clone()));
        Ok(Allowed::Bind { host_key: fp })
    }

    fn sign(&self, policy: &Policy, body: &[u8]) -> Result<Allowed, String> {
        let mut r = Reader::new(body);
        let blob = r.string().map_err(|e| e.to_string())?;
        let data = r.string().map_err(|e| e.to_string())?;
        let flags = r.u32().map_err(|e| e.to_string())?;
        r.finish().map_err(|e| e.to_string())?;
        // SSH_AGENT_RSA_SHA2_256 and _512: which hash an RSA key signs with.
        if flags & !(2 | 4) != 0 {
            return Err(format!("sign flags {flags:#x} are not allowed"));
        }
        let key = fingerprint(blob).map_err(|e| e.to_string())?;
        let rules = policy
            .keys
            .get(&key)
            .ok_or_else(|| format!("{key} is not a key of this bottle"))?;
        if data.starts_with(b"SSHSIG") {
            let (namespace, hash) = sshsig(data).map_err(|e| e.to_string())?;
            if !rules.namespaces.contains(&namespace) {
                return Err(format!("{key} may not sign in namespace {namespace:?}"));
            }
            return Ok(Allowed::Sshsig {
                key,
                namespace,
                hash,
                hold: rules.sshsig_hold,
            });
        }
        let auth = userauth(data, blob).map_err(|e| e.to_string())?;
        self.login(rules, key, auth)
    }

    fn login(&self, rules: &KeyRules, key: String, auth: Userauth) -> Result<Allowed, String> {
        if rules.logins.is_empty() {
            return Err(format!("{key} is not a login key"));
        }
        let bound = self
            .bound
            .iter()
            .find(|(sid, _)| *sid == auth.session_id)
            .map(|(_, host)| host.clone());
        // A hostbound request names the host key: it must be the bound one.
        if let (Some(named), Some(host)) = (&auth.host_key, &bound) {
            if named != host {
                return Err("the request names another host key than the bound one".into());
            }
        }
        for login in &rules.logins {
            if !login.users.contains(&auth.user) {
                continue;
            }
            if login.hosts.is_empty() {
                return Ok(Allowed::Login {
                    key,
                    user: auth.user,
                    host_key: bound,
                    hold: login.hold,
                });
            }
            if let Some(host) = &bound {
                if login.hosts.contains(host) {
                    return Ok(Allowed::Login {
                        key,
                        user: auth.user,
                        host_key: bound.clone(),
                        hold: login.hold,
                    });
                }
            }
        }
        Err(match bound {
            None if rules.logins.iter().any(|l| l.users.contains(&auth.user)) => {
                format!(
                    "{key} logs in only to its pinned hosts, and this session is not bound to one"
                )
            }
            None => format!("{key} may not log in as {:?}", auth.user),
            Some(host) => format!("{key} may not log in as {:?} to {host}", auth.user),
        })
    }
}

/// A parsed user-authentication request.
struct Userauth {
    session_id: Vec<u8>,
    user: String,
    /// The server host key a `publickey-hostbound-v00@openssh.com`
    /// request names.
    host_key: Option<String>,
}

fn userauth(data: &[u8], signing_blob: &[u8]) -> Result<Userauth, Malformed> {
    let mut r = Reader::new(data);
    let session_id = r.string()?;
    if session_id.is_empty() || session_id.len() > MAX_SESSION_ID {
        return Err(Malformed("neither a login request nor SSHSIG data"));
    }
    if r.byte()? != msg::USERAUTH_REQUEST {
        return Err(Malformed("neither a login request nor SSHSIG data"));
    }
    let user = r.text()?.to_string();
    if r.text()? != "ssh-connection" {
        return Err(Malformed("a login request for another service"));
    }
    let hostbound = match r.text()? {
        "publickey" => false,
        "publickey-hostbound-v00@openssh.com" => true,
        _ => return Err(Malformed("a login request for another method")),
    };
    if !r.boolean()? {
        return Err(Malformed("a login request without a signature flag"));
    }
    let _alg = r.text()?;
    if r.string()? != signing_blob {
        return Err(Malformed("a login request for another key"));
    }
    let host_key = if hostbound {
        Some(fingerprint(r.string()?)?)
    } else {
        None
    };
    r.finish()?;
    Ok(Userauth {
        session_id: session_id.to_vec(),
        user,
        host_key,
    })
}

/// SSHSIG's signed data: `SSHSIG`, namespace, reserved, hash algorithm and
/// the message's hash. Returns the namespace and `alg:hex`.
fn sshsig(data: &[u8]) -> Result<(String, String), Malformed> {
    let mut r = Reader::new(data);
    r.fixed(6)?;
    let namespace = r.text()?.to_string();
    if namespace.is_empty() {
        return Err(Malformed("SSHSIG without a namespace"));
    }
    let _reserved = r.string()?;
    let alg = r.text()?;
    let len = match alg {
        "sha256" => 32,
        "sha512" => 64,
        _ => return Err(Malformed("SSHSIG with an unknown hash algorithm")),
    };
    let hash = r.string()?;
    if hash.len() != len {
        return Err(Malformed("SSHSIG hash of the wrong length"));
    }
    r.finish()?;
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    Ok((namespace, format!("{alg}:{hex}")))
}

#[cfg(test)]
mod tests;
