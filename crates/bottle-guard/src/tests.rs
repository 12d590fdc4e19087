//! The decision on hostile and well-formed requests, built from real keys
//! and signatures (ssh-key), no agent.

use super::*;
use crate::policy::{KeyRules, Login};
use crate::wire::put_string;
use signature::Signer;
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

fn key() -> PrivateKey {
    PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap()
}

fn blob(k: &PrivateKey) -> Vec<u8> {
    k.public_key().to_bytes().unwrap()
}

fn fp(k: &PrivateKey) -> String {
    k.public_key().fingerprint(HashAlg::Sha256).to_string()
}

fn sign_request(k: &PrivateKey, data: &[u8]) -> Vec<u8> {
    let mut m = vec![msg::SIGN_REQUEST];
    put_string(&mut m, &blob(k));
    put_string(&mut m, data);
    m.extend_from_slice(&0u32.to_be_bytes());
    m
}

fn userauth_data(
    sid: &[u8],
    user: &str,
    k: &PrivateKey,
    hostbound: Option<&PrivateKey>,
) -> Vec<u8> {
    let mut d = Vec::new();
    put_string(&mut d, sid);
    d.push(msg::USERAUTH_REQUEST);
    put_string(&mut d, user.as_bytes());
    put_string(&mut d, b"ssh-connection");
    let method: &[u8] = match hostbound {
        Some(_) => b"publickey-hostbound-v00@openssh.com",
        None => b"publickey",
    };
    put_string(&mut d, method);
    d.push(1);
    put_string(&mut d, b"ssh-ed25519");
    put_string(&mut d, &blob(k));
    if let Some(h) = hostbound {
        put_string(&mut d, &blob(h));
    }
    d
}

fn sshsig_data(namespace: &str, alg: &str, hash_len: usize) -> Vec<u8> {
    let mut d = b"SSHSIG".to_vec();
    put_string(&mut d, namespace.as_bytes());
    put_string(&mut d, b"");
    put_string(&mut d, alg.as_bytes());
    put_string(&mut d, &vec![0xab; hash_len]);
    d
}

/// `session-bind@openssh.com` for `sid`, signed by `signer` but naming
/// `host` as the host key.
fn bind(host: &PrivateKey, signer: &PrivateKey, sid: &[u8]) -> Vec<u8> {
    let sig: Signature = signer.try_sign(sid).unwrap();
    let mut m = vec![msg::EXTENSION];
    put_string(&mut m, b"session-bind@openssh.com");
    put_string(&mut m, &blob(host));
    put_string(&mut m, sid);
    put_string(&mut m, &Vec::<u8>::try_from(sig).unwrap());
    m.push(0);
    m
}

struct World {
    login: PrivateKey,
    anywhere: PrivateKey,
    signing: PrivateKey,
    host: PrivateKey,
    other_host: PrivateKey,
    policy: Policy,
}

fn world() -> World {
    let (login, anywhere, signing, host, other_host) = (key(), key(), key(), key(), key());
    let mut policy = Policy::default();
    policy.keys.insert(
        fp(&login),
        KeyRules {
            logins: vec![Login {
                users: vec!["git".into()],
                hosts: vec![fp(&host)],
                hold: Default::default(),
            }],
            ..Default::default()
        },
    );
    policy.keys.insert(
        fp(&anywhere),
        KeyRules {
            logins: vec![Login {
                users: vec!["deploy".into()],
                hosts: vec![],
                hold: Default::default(),
            }],
            ..Default::default()
        },
    );
    policy.keys.insert(
        fp(&signing),
        KeyRules {
            logins: vec![],
            namespaces: vec!["git".into()],
            ..Default::default()
        },
    );
    World {
        login,
        anywhere,
        signing,
        host,
        other_host,
        policy,
    }
}

fn refused(v: &Verdict) -> &str {
    match v {
        Verdict::Refuse(why) => why,
        other => panic!("allowed: {other:?}"),
    }
}

#[test]
fn listing_is_forwarded_and_management_is_refused() {
    let w = world();
    let mut s = Session::new();
    assert_eq!(s.decide(&w.policy, &[11]), Verdict::Forward(Allowed::List));
    refused(&s.decide(&w.policy, &[11, 0]));
    refused(&s.decide(&w.policy, &[]));
    // add, remove, remove-all, smartcard add/remove, lock, unlock,
    // constrained adds, and types nobody defined.
    for kind in [17u8, 18, 19, 20, 21, 22, 23, 25, 26, 0, 1, 99, 255] {
        let mut m = vec![kind];
        put_string(&mut m, b"/usr/local/lib/x.so");
        put_string(&mut m, b"");
        assert!(
            refused(&s.decide(&w.policy, &m)).contains("not allowed"),
            "{kind}"
        );
    }
    let mut ext = vec![msg::EXTENSION];
    put_string(&mut ext, b"query");
    refused(&s.decide(&w.policy, &ext));
}

#[test]
fn the_signing_key_signs_only_sshsig_in_its_namespaces() {
    let w = world();
    let mut s = Session::new();
    let ok = s.decide(
        &w.policy,
        &sign_request(&w.signing, &sshsig_data("git", "sha512", 64)),
    );
    match ok {
        Verdict::Forward(Allowed::Sshsig {
            namespace, hash, ..
        }) => {
            assert_eq!(namespace, "git");
            assert!(hash.starts_with("sha512:abab"), "{hash}");
        }
        other => panic!("{other:?}"),
    }
    assert!(refused(&s.decide(
        &w.policy,
        &sign_request(&w.signing, &sshsig_data("file", "sha512", 64))
    ))
    .contains("namespace"));
    refused(&s.decide(
        &w.policy,
        &sign_request(&w.signing, &sshsig_data("git", "md5", 16)),
    ));
    refused(&s.decide(
        &w.policy,
        &sign_request(&w.signing, &sshsig_data("git", "sha256", 64)),
    ));
    let mut trailing = sshsig_data("git", "sha256", 32);
    trailing.push(0);
    refused(&s.decide(&w.policy, &sign_request(&w.signing, &trailing)));
    // A login, even to a bound pinned host, and raw bytes.
    let sid = [7u8; 32];
    s.decide(&w.policy, &bind(&w.host, &w.host, &sid));
    let login = userauth_data(&sid, "root", &w.signing, None);
    assert!(
        refused(&s.decide(&w.policy, &sign_request(&w.signing, &login)))
            .contains("not a login key")
    );
    refused(&s.decide(
        &w.policy,
        &sign_request(&w.signing, b"raw bytes of the user's choice"),
    ));
    // A login key does not sign SSHSIG.
    refused(&s.decide(
        &w.policy,
        &sign_request(&w.login, &sshsig_data("git", "sha512", 64)),
    ));
}

#[test]
fn a_pinned_login_needs_a_verified_bind_of_its_host_for_that_session() {
    let w = world();
    let sid = [1u8; 32];
    let auth = sign_request(&w.login, &userauth_data(&sid, "git", &w.login, None));

    let mut s = Session::new();
    assert!(refused(&s.decide(&w.policy, &auth)).contains("not bound"));
    // Forged: names the pinned host key, signed by another key.
    assert!(
        refused(&s.decide(&w.policy, &bind(&w.host, &w.other_host, &sid)))
            .contains("does not verify")
    );
    refused(&s.decide(&w.policy, &auth));
    // Bound to a host that is not pinned.
    let mut s = Session::new();
    assert!(matches!(
        s.decide(&w.policy, &bind(&w.other_host, &w.other_host, &sid)),
        Verdict::Forward(_)
    ));
    refused(&s.decide(&w.policy, &auth));
    // Replayed: a real bind of the pinned host, for another session.
    let mut s = Session::new();
    assert!(matches!(
        s.decide(&w.policy, &bind(&w.host, &w.host, &[2u8; 32])),
        Verdict::Forward(_)
    ));
    refused(&s.decide(&w.policy, &auth));
    // The same session bound twice.
    refused(&s.decide(&w.policy, &bind(&w.host, &w.host, &[2u8; 32])));

    let mut s = Session::new();
    assert!(matches!(
        s.decide(&w.policy, &bind(&w.host, &w.host, &sid)),
        Verdict::Forward(Allowed::Bind { .. })
    ));
    match s.decide(&w.policy, &auth) {
        Verdict::Forward(Allowed::Login { user, host_key, .. }) => {
            assert_eq!(user, "git");
            assert_eq!(host_key, Some(fp(&w.host)));
        }
        other => panic!("{other:?}"),
    }
    // Another user, or a hostbound request naming another host key.
    let root = sign_request(&w.login, &userauth_data(&sid, "root", &w.login, None));
    assert!(refused(&s.decide(&w.policy, &root)).contains("\"root\""));
    let other = sign_request(
        &w.login,
        &userauth_data(&sid, "git", &w.login, Some(&w.other_host)),
    );
    refused(&s.decide(&w.policy, &other));
    let same = sign_request(
        &w.login,
        &userauth_data(&sid, "git", &w.login, Some(&w.host)),
    );
    assert!(matches!(s.decide(&w.policy, &same), Verdict::Forward(_)));
}

#[test]
fn an_unpinned_login_goes_anywhere_as_its_user_only() {
    let w = world();
    let mut s = Session::new();
    let sid = [3u8; 20];
    let ok = sign_request(
        &w.anywhere,
        &userauth_data(&sid, "deploy", &w.anywhere, None),
    );
    assert!(matches!(
        s.decide(&w.policy, &ok),
        Verdict::Forward(Allowed::Login { host_key: None, .. })
    ));
    let root = sign_request(&w.anywhere, &userauth_data(&sid, "root", &w.anywhere, None));
    refused(&s.decide(&w.policy, &root));
}

#[test]
fn malformed_requests_are_refused() {
    let w = world();
    let mut s = Session::new();
    let sid = [4u8; 32];
    s.decide(&w.policy, &bind(&w.host, &w.host, &sid));
    let good = userauth_data(&sid, "git", &w.login, None);
    assert!(matches!(
        s.decide(&w.policy, &sign_request(&w.login, &good)),
        Verdict::Forward(_)
    ));
    // Trailing bytes in the userauth blob, and after the sign request.
    let mut t = good.clone();
    t.push(0);
    assert!(refused(&s.decide(&w.policy, &sign_request(&w.login, &t))).contains("trailing"));
    let mut r = sign_request(&w.login, &good);
    r.push(0);
    refused(&s.decide(&w.policy, &r));
    // Every truncation of a good request.
    let full = sign_request(&w.login, &good);
    for cut in 1..full.len() {
        refused(&s.decide(&w.policy, &full[..cut]));
    }
    // Another service, another key in the blob than the one signing,
    // unknown flags, a key the policy does not know.
    let svc = String::from_utf8_lossy(&good).replace("ssh-connection", "ssh-userauthx");
    refused(&s.decide(&w.policy, &sign_request(&w.login, svc.as_bytes())));
    let other_key = userauth_data(&sid, "git", &w.anywhere, None);
    refused(&s.decide(&w.policy, &sign_request(&w.login, &other_key)));
    let mut flags = sign_request(&w.login, &good);
    let n = flags.len();
    flags[n - 1] = 8;
    refused(&s.decide(&w.policy, &flags));
    let stranger = key();
    refused(&s.decide(
        &w.policy,
        &sign_request(&stranger, &userauth_data(&sid, "git", &stranger, None)),
    ));
    // A bind with trailing bytes, or an empty session id.
    let mut b = bind(&w.host, &w.host, &[5u8; 32]);
    b.push(0);
    refused(&s.decide(&w.policy, &b));
    refused(&s.decide(&w.policy, &bind(&w.host, &w.host, &[])));
}

#[test]
fn binds_per_connection_are_bounded() {
    let w = world();
    let mut s = Session::new();
    for i in 0..MAX_BINDS {
        let sid = [i as u8 + 1; 32];
        assert!(matches!(
            s.decide(&w.policy, &bind(&w.host, &w.host, &sid)),
            Verdict::Forward(_)
        ));
    }
    refused(&s.decide(&w.policy, &bind(&w.host, &w.host, &[200u8; 32])));
}
