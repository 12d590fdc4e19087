//! Short-lived user certificates: an entry with `CertificateAuthority` gets
//! a fresh ed25519 key at each provision, generated here in memory, and an
//! OpenSSH user certificate for it signed by the operator's CA key (which
//! never leaves this machine). The agent gets the key and the certificate
//! together, destination-restricted like any key; the user's `~/.ssh` gets
//! the certificate (public) as the entry's `IdentityFile`.

use crate::error::Error;
use crate::valid::{CertInfo, CertSpec, ValidatedPlan};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::rand_core::{OsRng, RngCore};
use ssh_key::{Algorithm, Certificate, HashAlg, PrivateKey, PublicKey};

/// Longest `Validity` accepted: 7 days. A certificate is meant to outlive
/// the bottle's work by little; longer access wants a real key.
pub const MAX_VALIDITY: u32 = 7 * 86400;

/// `Validity` when the entry gives none: one hour.
pub const DEFAULT_VALIDITY: u32 = 3600;

/// How far in the past a certificate starts: a server whose clock is a
/// little behind still accepts it.
pub const BACKDATE: u64 = 60;

/// The least a login needs (no critical options): a terminal. Not
/// `ssh-keygen -s`'s default set: port, agent and X11 forwarding and
/// `~/.ssh/rc` give whoever holds the key more than git over ssh needs.
pub const DEFAULT_EXTENSIONS: [&str; 1] = ["permit-pty"];

/// The extensions `Extensions` may name: OpenSSH's for a user certificate
/// (`no-touch-required` is left out: it only means something for a
/// security-key key, and the fresh key is ed25519).
pub const KNOWN_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// A manifest's `Extensions`, checked: each a known name, none twice
/// (an empty list is allowed: a certificate for commands only, no
/// terminal). Anything else is refused, never dropped: sshd ignores
/// extensions it does not know, so a misspelt one would quietly grant
/// less, and a name of another implementation's could grant more there.
pub fn extensions(given: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for x in given {
        if !KNOWN_EXTENSIONS.contains(&x.as_str()) {
            // Quoted with escapes, and cut: the manifest's text.
            let shown: String = x.chars().take(64).collect();
            let cut = if shown.len() < x.len() { "…" } else { "" };
            return Err(format!(
                "unknown extension {shown:?}{cut} (known: {})",
                KNOWN_EXTENSIONS.join(", ")
            ));
        }
        if out.contains(x) {
            return Err(format!("{x} is listed twice"));
        }
        out.push(x.clone());
    }
    Ok(out)
}

/// Why `p` cannot be a principal, if it cannot. ssh-keygen splits `-n` on
/// commas, `AuthorizedPrincipalsFile` lines on whitespace and treats `#`
/// as a comment, sshd matches some principal lists as patterns: an
/// allow-list keeps a principal one literal name.
pub fn principal_problem(p: &str) -> Option<String> {
    if p.is_empty() {
        return Some("a principal is empty".into());
    }
    if p.len() > crate::valid::MAX_VALUE_LEN {
        return Some(format!(
            "principal is longer than {} bytes",
            crate::valid::MAX_VALUE_LEN
        ));
    }
    if p.starts_with('-') {
        return Some(format!("principal {p:?} starts with `-`"));
    }
    let bad = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))?;
    let why = match bad {
        ',' => "`,` (ssh-keygen -n and principal lists split on it)".to_string(),
        c if c.is_whitespace() => "whitespace (AuthorizedPrincipalsFile splits on it)".to_string(),
        c if c.is_control() => format!("control character {c:?}"),
        '*' | '?' | '!' => format!("`{bad}` (pattern syntax)"),
        c => format!("{c:?} (allowed: letters, digits, `.`, `_`, `-`, `@`)"),
    };
    Some(format!("principal {p:?} contains {why}"))
}

/// A fresh ed25519 key from the operating system's random source.
pub(crate) fn fresh_key(comment: &str) -> Result<PrivateKey, String> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| format!("cannot generate a key: {e}"))?;
    key.set_comment(comment);
    Ok(key)
}

/// The key id: names the engine, the container and the alias, so the
/// server's log says which bottle logged in. Only characters the
/// container reference and alias allow reach it.
pub fn key_id(engine: &str, container: &str, alias: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' {
                    c
                } else {
                    '_'
                }
            })
            .take(128)
            .collect()
    };
    format!(
        "bottle:{}:{}:{}",
        clean(engine),
        clean(container),
        clean(alias)
    )
}

/// The alias a key id names (its last `:` field).
pub fn key_id_alias(key_id: &str) -> Option<&str> {
    key_id.strip_prefix("bottle:")?.rsplit(':').next()
}

/// Sign a user certificate for `subject` with the spec's CA: random nonce
/// and serial, valid from [`BACKDATE`] seconds before `now` to `now` +
/// validity, the spec's extensions (by default only `permit-pty`), no
/// critical options.
pub(crate) fn issue(
    spec: &CertSpec,
    subject: &PublicKey,
    key_id: &str,
    now: u64,
) -> Result<Certificate, String> {
    if spec.authority.is_encrypted() {
        return Err("the CA key is still encrypted".into());
    }
    let err = |e: ssh_key::Error| format!("cannot build the certificate: {e}");
    let mut b = Builder::new_with_random_nonce(
        &mut OsRng,
        subject.key_data().clone(),
        now.saturating_sub(BACKDATE),
        now + u64::from(spec.validity),
    )
    .map_err(err)?;
    b.serial(OsRng.next_u64()).map_err(err)?;
    b.cert_type(CertType::User).map_err(err)?;
    b.key_id(key_id).map_err(err)?;
    for p in &spec.principals {
        b.valid_principal(p.clone()).map_err(err)?;
    }
    for ext in &spec.extensions {
        b.extension(ext.as_str(), "").map_err(err)?;
    }
    b.sign(&spec.authority)
        .map_err(|e| format!("the CA key cannot sign the certificate: {e}"))
}

/// The certificate as one `algorithm base64` line (issued without comment).
pub fn openssh_line(cert: &Certificate) -> String {
    let line = cert.to_openssh().unwrap_or_default();
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(alg), Some(body)) => format!("{alg} {body}"),
        _ => String::new(),
    }
}

/// A recorded `cert:<base64>` word back to a certificate.
pub(crate) fn parse_recorded(word: &str) -> Option<Certificate> {
    let b64 = word.strip_prefix("cert:")?;
    let bytes = <base64ct::Base64 as base64ct::Encoding>::decode_vec(b64).ok()?;
    Certificate::from_bytes(&bytes).ok()
}

/// `cert:<base64>` of a certificate, for the root-only key record.
pub(crate) fn record_word(cert: &Certificate) -> String {
    let bytes = cert.to_bytes().unwrap_or_default();
    format!(
        "cert:{}",
        <base64ct::Base64 as base64ct::Encoding>::encode_string(&bytes)
    )
}

/// Issue each certificate entry's certificate (provision): key id naming
/// `engine`, `container` and the alias. A plan without certificate
/// entries is left as it is.
pub(crate) fn certify(
    valid: &mut ValidatedPlan,
    engine: &str,
    container: &str,
    now: u64,
) -> Result<(), Error> {
    let valid_entries = &valid.entries;
    for k in valid.keys.iter_mut() {
        let Some(spec) = k.certificate.as_deref_mut() else {
            continue;
        };
        let id = key_id(engine, container, &k.aliases[0]);
        let cert = issue(spec, k.private.public_key(), &id, now).map_err(|reason| Error::Plan {
            entry: match valid_entries.iter().position(|e| e.alias == k.aliases[0]) {
                Some(i) => crate::error::Entry::ssh(i, &k.aliases[0]),
                None => crate::error::Entry::ssh_host(&k.aliases[0]),
            },
            field: "CertificateAuthority".into(),
            reason,
        })?;
        spec.issued = Some(cert);
    }
    Ok(())
}

/// Verify and `keys` only read what provision recorded: for each
/// certificate entry, the recorded certificate signed by its CA for its
/// alias becomes the entry's key (fingerprint, public key file), so the
/// rest of verify compares the container with what provision did. An
/// entry with no such record keeps its (fresh, unmatched) key and fails
/// the comparisons.
pub(crate) fn adopt_recorded(valid: &mut ValidatedPlan, recorded: &[Certificate]) {
    for k in valid.keys.iter_mut() {
        let Some(spec) = k.certificate.as_deref_mut() else {
            continue;
        };
        let alias = &k.aliases[0];
        let found = recorded.iter().find(|c| {
            c.signature_key().fingerprint(HashAlg::Sha256).to_string() == spec.authority_fingerprint
                && key_id_alias(c.key_id()) == Some(alias.as_str())
        });
        let Some(cert) = found else { continue };
        let fingerprint = cert.public_key().fingerprint(HashAlg::Sha256).to_string();
        for e in valid.entries.iter_mut().filter(|e| &e.alias == alias) {
            e.fingerprint = fingerprint.clone();
        }
        k.fingerprint = fingerprint;
        spec.issued = Some(cert.clone());
    }
}

/// One verify check per certificate entry: its certificate is recorded,
/// signed by its CA for its principals, and not expired. `(name, ok,
/// detail)`.
pub(crate) fn checks(valid: &ValidatedPlan, now: u64) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    for k in &valid.keys {
        let Some(spec) = k.certificate.as_deref() else {
            continue;
        };
        let name = format!("certificate for {}", k.aliases[0]);
        let Some(cert) = &spec.issued else {
            out.push((
                name,
                false,
                "no certificate recorded by provision (run provision)".to_string(),
            ));
            continue;
        };
        let info = CertInfo::of(cert);
        let principals_ok = info.principals == spec.principals;
        let ok = principals_ok && now < info.valid_before && cert.verify_signature().is_ok();
        let mut detail = info.describe(now);
        if !principals_ok {
            detail.push_str(&format!(
                "; the plan wants principals {}",
                spec.principals.join(",")
            ));
        }
        out.push((name, ok, detail));
    }
    out
}

/// The agent credential for a fresh key with its certificate: key and
/// certificate in one `ADD_IDENTITY` (what `ssh-add` sends for
/// `key` + `key-cert.pub`). `None` for a key without one. OpenSSH's agent
/// accepts it with the destination constraint and signs with it for a
/// bound session; a plain key plus a `CertificateFile` is refused by the
/// restricted agent (docs/security.md, "Certificates").
pub(crate) fn agent_credential(
    k: &crate::valid::LoadedKey,
) -> Option<ssh_agent_lib::proto::PrivateCredential> {
    let cert = k.issued()?;
    let pair = k.private.key_data().ed25519()?;
    Some(ssh_agent_lib::proto::PrivateCredential::Cert {
        algorithm: Algorithm::Ed25519,
        certificate: Box::new(cert.clone()),
        privkey: ssh_agent_lib::proto::PrivateKeyData::Ed25519(pair.clone()),
        comment: k.comment.clone(),
    })
}

/// The CA public keys, whose bytes verify's key scan also looks for (a
/// captured stream carrying the CA key would hold its public point).
pub(crate) fn authorities(valid: &ValidatedPlan) -> Vec<&PrivateKey> {
    let mut out: Vec<&PrivateKey> = Vec::new();
    for spec in valid.keys.iter().filter_map(|k| k.certificate.as_deref()) {
        if !out
            .iter()
            .any(|a| a.fingerprint(HashAlg::Sha256).to_string() == spec.authority_fingerprint)
        {
            out.push(&spec.authority);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn spec(validity: u32) -> CertSpec {
        let ca = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        CertSpec {
            authority_file: "ca".into(),
            authority_fingerprint: ca.fingerprint(HashAlg::Sha256).to_string(),
            principals: vec!["git".into(), "deploy".into()],
            validity,
            extensions: DEFAULT_EXTENSIONS.map(String::from).to_vec(),
            issued: None,
            authority: ca,
        }
    }

    #[test]
    fn issued_certificates_carry_what_was_asked() {
        let s = spec(3600);
        let fresh = fresh_key("c").unwrap();
        let id = key_id("docker", "my-bottle", "github");
        assert_eq!(id, "bottle:docker:my-bottle:github");
        assert_eq!(key_id_alias(&id), Some("github"));
        let now = 1_800_000_000;
        let a = issue(&s, fresh.public_key(), &id, now).unwrap();
        let b = issue(&s, fresh.public_key(), &id, now).unwrap();
        assert_ne!(a.serial(), b.serial(), "serials are random");
        assert_eq!(a.key_id(), id);
        assert_eq!(a.cert_type(), CertType::User);
        assert_eq!(a.valid_after(), now - BACKDATE);
        assert_eq!(a.valid_before(), now + 3600);
        assert_eq!(a.valid_principals(), ["git", "deploy"]);
        assert!(a.critical_options().is_empty());
        // The least: no forwarding of any kind, no ~/.ssh/rc.
        let extensions: Vec<&str> = a.extensions().keys().map(String::as_str).collect();
        assert_eq!(extensions, ["permit-pty"]);
        assert_eq!(a.public_key(), fresh.public_key().key_data());
        a.validate_at(now, &[s.authority.fingerprint(HashAlg::Sha256)])
            .unwrap();
        assert!(a
            .validate_at(now + 3600, &[s.authority.fingerprint(HashAlg::Sha256)])
            .is_err());
        // The record round-trips; the line is what ssh-keygen -L reads.
        assert_eq!(parse_recorded(&record_word(&a)).unwrap(), a);
        assert!(openssh_line(&a).starts_with("ssh-ed25519-cert-v01@openssh.com AAAA"));
        let info = CertInfo::of(&a);
        assert!(info.describe(now).contains("expires in 3600 s"));
        assert!(info.describe(now + 3700).contains("expired 100 s ago"));
    }

    #[test]
    fn principals_are_single_literal_names() {
        for ok in ["git", "alice@example.com", "deploy-1.x_y"] {
            assert_eq!(principal_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("a b", "whitespace"),
            ("a,b", "`,`"),
            ("a\tb", "whitespace"),
            ("a\u{1b}b", "control"),
            ("a\nb", "whitespace"),
            ("*", "pattern"),
            ("-x", "`-`"),
            ("a\"b", "allowed"),
        ] {
            let got = principal_problem(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got}");
        }
    }

    #[test]
    fn key_ids_hold_no_quote_or_space() {
        assert_eq!(key_id("podman", "a b\"c\\", "x"), "bottle:podman:a_b_c_:x");
    }

    mod bad_input {
        use crate::error::Error;
        use crate::plan::{Lifetime, Plan, Signing, SshEntry};
        use crate::validate::validate;
        use std::path::{Path, PathBuf};

        fn keygen(dir: &Path, name: &str, pass: &str) -> PathBuf {
            let path = dir.join(name);
            let st = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-C", "unit", "-N", pass, "-f"])
                .arg(&path)
                .status()
                .expect("ssh-keygen");
            assert!(st.success());
            path
        }

        fn cert_entry(ca: &Path) -> SshEntry {
            SshEntry {
                host: "gh".into(),
                hostname: "github.com".into(),
                user: "git".into(),
                certificate_authority: Some(ca.to_path_buf()),
                ..Default::default()
            }
        }

        fn plan(ssh: Vec<SshEntry>, signing: Option<Signing>) -> Plan {
            Plan {
                gate: None,
                ssh,
                signing,
            }
        }

        fn refused(plan: &Plan, field: &str, why: &str) {
            let e: Error = validate(plan).expect_err(why);
            assert_eq!(e.class(), crate::ErrorClass::Input, "{e}");
            assert_eq!(e.field(), Some(field), "{e}");
            assert!(e.to_string().contains(why), "{e} lacks {why:?}");
        }

        #[test]
        fn bad_certificate_and_signing_input_is_a_plan_error_naming_the_field() {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let ca = keygen(d, "ca", "");
            let login = keygen(d, "login", "");
            let enc = keygen(d, "enc", "secret");
            let garbage = d.join("garbage");
            std::fs::write(&garbage, "not a key\n").unwrap();
            let with = |f: &dyn Fn(&mut SshEntry)| {
                let mut e = cert_entry(&ca);
                f(&mut e);
                plan(vec![e], None)
            };
            // A good one first: a fresh ed25519 key, lifetime = validity.
            let v = validate(&with(&|e| e.validity = Some(Lifetime::Text("90s".into())))).unwrap();
            assert_eq!(v.keys[0].algorithm, "ssh-ed25519");
            assert_eq!(v.keys[0].lifetime, Some(90));
            let spec = v.keys[0].certificate.as_ref().unwrap();
            assert_eq!(spec.principals, ["git"], "default principal: the User");
            assert_ne!(
                v.keys[0].fingerprint,
                validate(&with(&|_| {})).unwrap().keys[0].fingerprint,
                "a fresh key each time"
            );

            let pub_ca = ca.with_extension("pub");
            refused(
                &with(&|e| e.certificate_authority = Some(garbage.clone())),
                "CertificateAuthority",
                "is not an OpenSSH private key",
            );
            refused(
                &with(&|e| e.certificate_authority = Some(pub_ca.clone())),
                "CertificateAuthority",
                "is a public key",
            );
            refused(
                &with(&|e| e.certificate_authority = Some(enc.clone())),
                "CertificateAuthority",
                "passphrase",
            );
            refused(
                &with(&|e| e.certificate_authority = Some(d.join("absent"))),
                "CertificateAuthority",
                "cannot be read",
            );
            for (p, why) in [
                ("a b", "whitespace"),
                ("a,b", "`,`"),
                ("a\u{7}b", "control"),
                ("a\nb", "whitespace"),
                ("", "empty"),
            ] {
                refused(
                    &with(&|e| e.principals = Some(vec!["ok".into(), p.into()])),
                    "Principals",
                    why,
                );
            }
            refused(
                &with(&|e| e.principals = Some(Vec::new())),
                "Principals",
                "is empty",
            );
            for (v, why) in [
                (Lifetime::Seconds(0), "not a lifetime"),
                (Lifetime::Seconds(-5), "not a lifetime"),
                (Lifetime::Text("0s".into()), "not a lifetime"),
                (Lifetime::Text("-1h".into()), "not a duration"),
                (Lifetime::Text("8d".into()), "longer than the maximum"),
                (Lifetime::Seconds(604801), "longer than the maximum"),
            ] {
                refused(&with(&|e| e.validity = Some(v.clone())), "Validity", why);
            }
            assert!(validate(&with(&|e| e.validity = Some(Lifetime::Text("7d".into())))).is_ok());
            refused(
                &with(&|e| e.identity_file = login.clone()),
                "CertificateAuthority",
                "not both",
            );
            refused(
                &with(&|e| e.lifetime = Some(Lifetime::Seconds(60))),
                "Lifetime",
                "Validity instead",
            );
            let mut plain = cert_entry(&ca);
            plain.certificate_authority = None;
            refused(&plan(vec![plain.clone()], None), "IdentityFile", "missing");
            plain.identity_file = login.clone();
            plain.validity = Some(Lifetime::Seconds(60));
            refused(&plan(vec![plain.clone()], None), "Validity", "only applies");
            plain.validity = None;

            // The signing key must not be a login key.
            let signing = |key: &Path| Signing {
                identity_file: key.to_path_buf(),
                ..Default::default()
            };
            refused(
                &plan(vec![plain.clone()], Some(signing(&login))),
                "IdentityFile",
                "dedicated",
            );
            let e = validate(&plan(vec![plain.clone()], Some(signing(&garbage)))).unwrap_err();
            assert_eq!(
                (e.class(), e.entry()),
                (crate::ErrorClass::Input, Some("signing")),
                "{e}"
            );
            let sign = keygen(d, "sign", "");
            let v = validate(&plan(vec![plain], Some(signing(&sign)))).unwrap();
            let k = v.keys.iter().find(|k| k.aliases == ["[signing]"]).unwrap();
            assert!(k.destinations.is_empty(), "signing keys are unrestricted");
            assert!(
                !v.warnings.iter().any(|w| w.contains("signing")),
                "no warning for the signing key: {:?}",
                v.warnings
            );
            let s = v.signing.unwrap();
            assert_eq!((s.commits, s.tags), (true, false));
            assert!(s.public.starts_with("ssh-ed25519 AAAA"));
        }

        #[test]
        fn verify_adopts_the_recorded_certificate_and_reports_expiry() {
            let dir = tempfile::tempdir().unwrap();
            let ca = keygen(dir.path(), "ca", "");
            let other = keygen(dir.path(), "other", "");
            let mut e = cert_entry(&ca);
            e.validity = Some(Lifetime::Seconds(600));
            let p = plan(vec![e], None);
            let mut issued = validate(&p).unwrap();
            let now = 1_800_000_000;
            super::super::certify(&mut issued, "docker", "b1", now).unwrap();
            let cert = issued.keys[0].issued().unwrap().clone();
            assert_eq!(cert.key_id(), "bottle:docker:b1:gh");
            let word = super::super::record_word(&cert);

            let mut later = validate(&p).unwrap();
            assert_ne!(later.keys[0].fingerprint, issued.keys[0].fingerprint);
            assert!(
                !super::super::checks(&later, now)[0].1,
                "nothing recorded yet"
            );
            // A certificate from another CA for the same alias is not adopted.
            let mut wrong_ca = cert_entry(&other);
            wrong_ca.validity = Some(Lifetime::Seconds(600));
            let mut foreign = validate(&plan(vec![wrong_ca], None)).unwrap();
            super::super::certify(&mut foreign, "docker", "b1", now).unwrap();
            super::super::adopt_recorded(&mut later, &[foreign.keys[0].issued().unwrap().clone()]);
            assert!(later.keys[0].issued().is_none());

            super::super::adopt_recorded(
                &mut later,
                &[super::super::parse_recorded(&word).unwrap()],
            );
            assert_eq!(later.keys[0].fingerprint, issued.keys[0].fingerprint);
            assert_eq!(later.entries[0].fingerprint, issued.keys[0].fingerprint);
            assert_eq!(
                crate::render::render_public_keys(&later),
                crate::render::render_public_keys(&issued),
                "the public key file holds the recorded certificate"
            );
            let (name, ok, detail) = &super::super::checks(&later, now + 10)[0];
            assert_eq!(name, "certificate for gh");
            assert!(ok, "{detail}");
            assert!(detail.contains("bottle:docker:b1:gh") && detail.contains("principals git"));
            let (_, ok, detail) = &super::super::checks(&later, now + 600)[0];
            assert!(!ok && detail.contains("expired 0 s ago"), "{detail}");
        }

        /// `Extensions` lands in the issued certificate as `ssh-keygen -L`
        /// reads it (the default: `permit-pty` alone); an unknown or
        /// repeated name is refused naming the field, as is `Extensions`
        /// without a CA.
        #[test]
        fn configured_extensions_land_in_the_certificate_and_unknown_ones_are_refused() {
            let dir = tempfile::tempdir().unwrap();
            let ca = keygen(dir.path(), "ca", "");
            let listed = |exts: Option<&[&str]>| {
                let mut e = cert_entry(&ca);
                e.extensions = exts.map(|x| x.iter().map(|s| s.to_string()).collect());
                let mut v = validate(&plan(vec![e], None)).unwrap();
                super::super::certify(&mut v, "docker", "b1", super::super::tests::now()).unwrap();
                let cert = dir.path().join("cert.pub");
                let line = super::super::openssh_line(v.keys[0].issued().unwrap());
                std::fs::write(&cert, format!("{line}\n")).unwrap();
                let out = std::process::Command::new("ssh-keygen")
                    .arg("-L")
                    .arg("-f")
                    .arg(&cert)
                    .output()
                    .expect("ssh-keygen");
                assert!(out.status.success());
                let text = String::from_utf8(out.stdout).unwrap();
                // The indented lines under "Extensions:", up to the next field.
                let after = text.split("Extensions:").nth(1).unwrap_or_default();
                after
                    .lines()
                    .skip(1)
                    .map(str::trim)
                    .take_while(|l| l.starts_with("permit-") || l.starts_with("no-"))
                    .map(String::from)
                    .collect::<Vec<_>>()
            };
            assert_eq!(listed(None), ["permit-pty"]);
            assert_eq!(
                listed(Some(&["permit-agent-forwarding", "permit-pty"])),
                ["permit-agent-forwarding", "permit-pty"]
            );
            assert_eq!(
                listed(Some(&["permit-port-forwarding"])),
                ["permit-port-forwarding"]
            );
            let with = |x: &[&str]| {
                let mut e = cert_entry(&ca);
                e.extensions = Some(x.iter().map(|s| s.to_string()).collect());
                plan(vec![e], None)
            };
            refused(
                &with(&["permit-everything"]),
                "Extensions",
                "unknown extension \"permit-everything\"",
            );
            refused(
                &with(&["no-touch-required"]),
                "Extensions",
                "unknown extension",
            );
            refused(&with(&["permit-pty\u{1b}[2J"]), "Extensions", "\\u{1b}");
            refused(
                &with(&["PERMIT-PTY"]),
                "Extensions",
                "known: permit-X11-forwarding",
            );
            refused(
                &with(&["permit-pty", "permit-pty"]),
                "Extensions",
                "listed twice",
            );
            let mut plain = cert_entry(&ca);
            plain.certificate_authority = None;
            plain.identity_file = keygen(dir.path(), "login", "");
            plain.extensions = Some(vec!["permit-pty".into()]);
            refused(&plan(vec![plain], None), "Extensions", "only applies");
        }

        /// OpenSSH's own agent takes key and certificate in one constrained
        /// add (lifetime + restrict-destination), as this crate encodes it,
        /// and lists the certificate back.
        #[test]
        fn openssh_agent_accepts_the_certificate_with_its_restriction() {
            use ssh_agent_lib::proto::{AddIdentity, AddIdentityConstrained, Request};
            use ssh_agent_lib::ssh_encoding::Encode;
            use std::io::{Read, Write};
            let dir = tempfile::tempdir().unwrap();
            let ca = keygen(dir.path(), "ca", "");
            let host = keygen(dir.path(), "host", "");
            let mut e = cert_entry(&ca);
            e.known_host_key = Some(std::fs::read_to_string(host.with_extension("pub")).unwrap());
            let mut v = validate(&plan(vec![e], None)).unwrap();
            super::super::certify(&mut v, "docker", "b1", super::super::tests::now()).unwrap();
            let k = &v.keys[0];
            assert_eq!(k.restricted_to(), ["git@github.com"]);
            let request = Request::AddIdConstrained(AddIdentityConstrained {
                identity: AddIdentity {
                    credential: super::super::agent_credential(k).unwrap(),
                },
                constraints: crate::agent::constraints(k).unwrap(),
            });
            let mut bytes = Vec::new();
            request.encode_prefixed(&mut bytes).unwrap();

            let sock = dir.path().join("agent.sock");
            let mut agent = std::process::Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&sock)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("ssh-agent");
            let mut tries = 0;
            while !sock.exists() && tries < 200 {
                std::thread::sleep(std::time::Duration::from_millis(10));
                tries += 1;
            }
            let mut conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            conn.write_all(&bytes).unwrap();
            let mut reply = [0u8; 5];
            conn.read_exact(&mut reply).unwrap();
            let listed = std::process::Command::new("ssh-add")
                .arg("-L")
                .env("SSH_AUTH_SOCK", &sock)
                .output()
                .unwrap();
            agent.kill().ok();
            agent.wait().ok();
            assert_eq!(reply[4], 6, "SSH_AGENT_SUCCESS");
            let listed = String::from_utf8_lossy(&listed.stdout);
            assert!(
                listed.starts_with(&super::super::openssh_line(k.issued().unwrap())),
                "{listed}"
            );
        }
    }
}
