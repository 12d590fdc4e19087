//! Reading private key files: OpenSSH format (plain or passphrase-protected),
//! legacy PEM RSA and EC (`BEGIN RSA|EC PRIVATE KEY`, plain or encrypted) and
//! PKCS#8 RSA and ECDSA (`BEGIN PRIVATE KEY` / `BEGIN ENCRYPTED PRIVATE KEY`). Everything is
//! decrypted in memory; buffers holding secrets are zeroized.

use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, PrivateKey, PublicKey};
use std::collections::BTreeSet;
use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Largest key file read (a 16384-bit RSA key is about 12 KiB).
pub(crate) const MAX_KEY_FILE: u64 = 64 * 1024;

pub(crate) use bottle_runtime::file::read_regular;

/// Why someone other than the running user or root could change the file
/// at `path` (`meta`: its metadata): it, or a directory it is reached
/// through, is writable by group or others (sticky directories such as
/// `/tmp` excepted) or owned by another user. `None` when nobody else can.
pub(crate) fn exposure(path: &Path, meta: &Metadata) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    let foreign = |uid: u32| uid != 0 && uid != me;
    let mut why = Vec::new();
    if meta.mode() & 0o022 != 0 {
        why.push(format!(
            "it is writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        ));
    }
    if foreign(meta.uid()) {
        why.push(format!(
            "it is owned by uid {} (you are uid {me})",
            meta.uid()
        ));
    }
    // The directories named in the path and those it resolves to: whoever
    // can write one can replace what is below it.
    let absolute = std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let mut dirs: BTreeSet<PathBuf> = absolute
        .ancestors()
        .skip(1)
        .map(Path::to_path_buf)
        .collect();
    if let Ok(real) = std::fs::canonicalize(path) {
        dirs.extend(real.ancestors().skip(1).map(Path::to_path_buf));
    }
    for dir in dirs.iter().rev() {
        let Ok(m) = std::fs::metadata(dir) else {
            continue;
        };
        if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
            why.push(format!(
                "directory {dir:?} is writable by group or others (mode {:04o})",
                m.mode() & 0o7777
            ));
        }
        if foreign(m.uid()) {
            why.push(format!("directory {dir:?} is owned by uid {}", m.uid()));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Supplies the passphrase of an encrypted key file. The CLI asks on the
/// terminal or through `SSH_ASKPASS`; library users and tests pass their own.
///
/// `Err(reason)` when no passphrase can be had; the reason is shown to the
/// user next to the key's path, so it must never contain the passphrase.
pub trait Passphrase: Send + Sync {
    fn passphrase(&self, key_file: &Path) -> Result<Zeroizing<String>, String>;
}

impl<F> Passphrase for F
where
    F: Fn(&Path) -> Result<Zeroizing<String>, String> + Send + Sync,
{
    fn passphrase(&self, key_file: &Path) -> Result<Zeroizing<String>, String> {
        self(key_file)
    }
}

/// How keys are loaded and how strictly restrictions are enforced.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    /// Where passphrases come from; `None`: an encrypted key is an error.
    pub passphrase: Option<&'a dyn Passphrase>,
    /// A key that cannot be destination-restricted (an entry without
    /// `KnownHostKey`) is an error instead of a warning.
    pub strict: bool,
    /// No guard: the public socket is a plain relay to the agent, every
    /// request reaches it (setting `guard = "off"`; `verify` says so).
    pub unguarded: bool,
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("passphrase", &self.passphrase.map(|_| "<provider>"))
            .field("strict", &self.strict)
            .field("unguarded", &self.unguarded)
            .finish()
    }
}

fn ask(path: &Path, opts: &Options<'_>) -> Result<Zeroizing<String>, String> {
    match opts.passphrase {
        Some(p) => p.passphrase(path),
        None => Err("is passphrase-protected and no passphrase source was given".into()),
    }
}

const WRONG: &str = "wrong passphrase (or a damaged key file)";

/// Read and parse one private key file. `need_private = false` (verify) only
/// needs the public half: an encrypted OpenSSH key is then not decrypted.
/// Errors name the problem, never key bytes.
#[cfg(test)]
pub(crate) fn load_private_key(
    path: &Path,
    opts: &Options<'_>,
    need_private: bool,
) -> Result<PrivateKey, String> {
    load_key_file(path, opts, need_private).map(|(key, _)| key)
}

/// [`load_private_key`], also returning the file's metadata.
pub(crate) fn load_key_file(
    path: &Path,
    opts: &Options<'_>,
    need_private: bool,
) -> Result<(PrivateKey, Metadata), String> {
    let (bytes, meta) = read_regular(path, MAX_KEY_FILE)?;
    parse_key(&bytes, path, opts, need_private).map(|key| (key, meta))
}

fn parse_key(
    bytes: &[u8],
    path: &Path,
    opts: &Options<'_>,
    need_private: bool,
) -> Result<PrivateKey, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty".into());
    }
    let text = Zeroizing::new(String::from_utf8_lossy(bytes).into_owned());
    let trimmed = text.trim();
    if !trimmed.contains("PRIVATE KEY") {
        if PublicKey::from_openssh(trimmed).is_ok() {
            return Err("is a public key; give the private key file (usually without .pub)".into());
        }
        return Err("is not an OpenSSH private key".into());
    }
    let comment = path.display().to_string();
    if trimmed.contains("BEGIN RSA PRIVATE KEY") {
        return legacy_pem(trimmed, path, opts, &comment, Legacy::Rsa);
    }
    if trimmed.contains("BEGIN EC PRIVATE KEY") {
        return legacy_pem(trimmed, path, opts, &comment, Legacy::Ec);
    }
    if trimmed.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        let pass = ask(path, opts)?;
        return pkcs8(trimmed, Some(&pass), &comment);
    }
    if trimmed.contains("BEGIN PRIVATE KEY") {
        return pkcs8(trimmed, None, &comment);
    }
    if trimmed.contains("BEGIN DSA PRIVATE KEY") {
        return Err("is a DSA key; DSA is not supported".into());
    }
    if !trimmed.contains("BEGIN OPENSSH PRIVATE KEY") {
        return Err(
            "is a PEM key of a kind not supported (RSA and EC PEM, PKCS#8 RSA and ECDSA are); \
             convert it with `ssh-keygen -p -f <file>`"
                .into(),
        );
    }
    let key = match PrivateKey::from_openssh(trimmed.as_bytes()) {
        Ok(key) => key,
        Err(e) => crate::ecdsa_fix::parse_padded(trimmed.as_bytes())
            .ok_or_else(|| format!("is not a valid OpenSSH private key ({e})"))?,
    };
    // Refuse what can never work before asking for a passphrase.
    match key.algorithm() {
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256 => {
            return Err(
                "is a security-key (sk-) key: signing needs its hardware token, \
                 which an agent inside the container cannot reach; use a regular key"
                    .into(),
            )
        }
        Algorithm::Dsa => return Err("is a DSA key; DSA is not supported".into()),
        _ => {}
    }
    if !key.is_encrypted() || !need_private {
        return Ok(key);
    }
    let pass = ask(path, opts)?;
    match key.decrypt(pass.as_bytes()) {
        Ok(k) => Ok(k),
        // ssh-key rejects ECDSA keys with short scalars even when decrypted.
        Err(_) => match crate::ecdsa_fix::decrypt_padded(&key, pass.as_bytes()) {
            Some(Ok(k)) => Ok(k),
            _ => Err(WRONG.to_string()),
        },
    }
}

fn rsa_to_ssh(key: rsa::RsaPrivateKey, comment: &str) -> Result<PrivateKey, String> {
    let pair = RsaKeypair::try_from(&key).map_err(|e| format!("is not a usable RSA key ({e})"))?;
    PrivateKey::new(KeypairData::Rsa(pair), comment)
        .map_err(|e| format!("is not a usable RSA key ({e})"))
}

/// An ECDSA key from SEC1 or PKCS#8 DER, whichever curve it is on.
fn ec_to_ssh(der: &[u8], pkcs8: bool, comment: &str) -> Option<PrivateKey> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use pkcs8::DecodePrivateKey;
    use ssh_key::private::EcdsaKeypair;
    macro_rules! curve {
        ($krate:ident, $variant:ident) => {
            let sk = if pkcs8 {
                $krate::SecretKey::from_pkcs8_der(der).ok()
            } else {
                $krate::SecretKey::from_sec1_der(der).ok()
            };
            if let Some(sk) = sk {
                let pair = EcdsaKeypair::$variant {
                    public: sk.public_key().to_encoded_point(false),
                    private: sk.into(),
                };
                return PrivateKey::new(KeypairData::Ecdsa(pair), comment).ok();
            }
        };
    }
    curve!(p256, NistP256);
    curve!(p384, NistP384);
    curve!(p521, NistP521);
    None
}

/// `BEGIN PRIVATE KEY` / `BEGIN ENCRYPTED PRIVATE KEY`: RSA or ECDSA.
fn pkcs8(text: &str, pass: Option<&str>, comment: &str) -> Result<PrivateKey, String> {
    use pkcs8::der::Decode;
    use pkcs8::{DecodePrivateKey, EncryptedPrivateKeyInfo, SecretDocument};
    let (_, doc) = SecretDocument::from_pem(text).map_err(|_| "is not valid PEM".to_string())?;
    let der = match pass {
        Some(p) => EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
            .map_err(|_| "is not a valid encrypted PKCS#8 key".to_string())?
            .decrypt(p.as_bytes())
            .map_err(|_| WRONG.to_string())?,
        None => doc,
    };
    if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_der(der.as_bytes()) {
        return rsa_to_ssh(key, comment);
    }
    ec_to_ssh(der.as_bytes(), true, comment).ok_or_else(|| {
        "is a PKCS#8 key that is neither RSA nor ECDSA; convert it with `ssh-keygen -p -f <file>`"
            .to_string()
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Legacy {
    Rsa,
    Ec,
}

/// `BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY`, optionally with
/// `Proc-Type: 4,ENCRYPTED` and `DEK-Info: AES-…-CBC,<iv>` headers (what
/// `ssh-keygen -m PEM` writes).
fn legacy_pem(
    text: &str,
    path: &Path,
    opts: &Options<'_>,
    comment: &str,
    kind: Legacy,
) -> Result<PrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let mut dek: Option<&str> = None;
    let mut encrypted = false;
    let mut body = Zeroizing::new(String::new());
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----") || line.is_empty() {
            continue;
        }
        if let Some(v) = line.strip_prefix("Proc-Type:") {
            encrypted = v.contains("ENCRYPTED");
        } else if let Some(v) = line.strip_prefix("DEK-Info:") {
            dek = Some(v.trim());
        } else {
            body.push_str(line);
        }
    }
    let der = Zeroizing::new(
        <base64ct::Base64 as base64ct::Encoding>::decode_vec(&body)
            .map_err(|_| "is not valid PEM (bad base64)")?,
    );
    let der = if encrypted {
        let dek = dek.ok_or("is encrypted PEM without a DEK-Info header")?;
        let pass = ask(path, opts)?;
        legacy_decrypt(dek, pass.as_bytes(), &der)?
    } else {
        der
    };
    let bad = || {
        if encrypted {
            WRONG.to_string()
        } else {
            "is not a valid PEM key".to_string()
        }
    };
    match kind {
        Legacy::Rsa => rsa_to_ssh(
            rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| bad())?,
            comment,
        ),
        Legacy::Ec => ec_to_ssh(&der, false, comment).ok_or_else(bad),
    }
}

/// OpenSSL's legacy PEM encryption: key = EVP_BytesToKey(MD5, salt = first
/// 8 bytes of the IV, one round), AES-CBC with PKCS#7 padding. No maintained
/// crate implements this pre-PKCS#8 scheme, hence these few lines; tested
/// against `ssh-keygen -m PEM` output.
fn legacy_decrypt(dek: &str, pass: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    use md5::{Digest, Md5};
    let (cipher, iv_hex) = dek
        .split_once(',')
        .ok_or("has a malformed DEK-Info header")?;
    let key_len = match cipher.trim() {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        other => {
            return Err(format!(
                "is encrypted with {other}, which is not supported; re-encrypt it with `ssh-keygen -p -f <file>`"
            ))
        }
    };
    let iv: [u8; 16] = hex::decode(iv_hex.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("has a malformed DEK-Info IV")?;
    let mut key = Zeroizing::new(Vec::with_capacity(key_len + 16));
    let mut prev: Option<Zeroizing<[u8; 16]>> = None;
    while key.len() < key_len {
        let mut h = Md5::new();
        if let Some(p) = &prev {
            h.update(&p[..]);
        }
        h.update(pass);
        h.update(&iv[..8]);
        let d = Zeroizing::new(<[u8; 16]>::from(h.finalize()));
        key.extend_from_slice(&d[..]);
        prev = Some(d);
    }
    key.truncate(key_len);
    let mut buf = Zeroizing::new(data.to_vec());
    let n = match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|_| "bad key length")?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.len()),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|_| "bad key length")?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.len()),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|_| "bad key length")?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.len()),
    }
    .map_err(|_| WRONG.to_string())?;
    buf.truncate(n);
    Ok(buf)
}
