//! Work around `ssh-key` 0.6 rejecting ECDSA private keys whose scalar has
//! leading zero bytes.
//!
//! OpenSSH writes the private scalar as a minimal mpint, so a P-521 key
//! (66-byte scalar, top byte 0 or 1) is often 65 bytes or shorter, and about
//! one P-256/P-384 key in 512 is short too. `ssh-key` accepts exactly SIZE or
//! SIZE+1 bytes and fails with "length invalid". This rewrites the unencrypted
//! key blob with the scalar left-padded to SIZE and parses that instead.
//! Every buffer holding key material is zeroized.

use ssh_agent_lib::ssh_encoding::pem;
use ssh_key::PrivateKey;
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"openssh-key-v1\0";
/// Padding block size of an unencrypted OpenSSH key blob.
const BLOCK: usize = 8;

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

fn string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(take(buf, 4)?.try_into().ok()?) as usize;
    take(buf, len)
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Parse `pem_text` with short ECDSA scalars padded; `None` when the key is
/// not an unencrypted ECDSA key or cannot be rewritten.
pub(crate) fn parse_padded(pem_text: &[u8]) -> Option<PrivateKey> {
    let mut decoder = pem::Decoder::new_wrapped(pem_text, 70).ok()?;
    if decoder.type_label() != "OPENSSH PRIVATE KEY" {
        return None;
    }
    let mut binary = Zeroizing::new(Vec::new());
    decoder.decode_to_end(&mut binary).ok()?;
    parse_padded_binary(&binary)
}

/// Decrypt an encrypted ECDSA key that `PrivateKey::decrypt` rejects for its
/// short scalar: decrypt the private section here, then parse it as an
/// unencrypted key with the scalar padded. `None`: not such a key (or an
/// AEAD cipher, whose tag ssh-key does not expose); `Some(Err)`: the
/// checkints differ, i.e. a wrong passphrase.
pub(crate) fn decrypt_padded(key: &PrivateKey, pass: &[u8]) -> Option<Result<PrivateKey, ()>> {
    use ssh_agent_lib::ssh_encoding::Encode;
    if !matches!(key.algorithm(), ssh_key::Algorithm::Ecdsa { .. }) {
        return None;
    }
    let cipher = key.cipher();
    let ciphertext = key.key_data().encrypted()?;
    let (k, iv) = key.kdf().derive_key_and_iv(cipher, pass).ok()?;
    let (k, iv) = (Zeroizing::new(k), Zeroizing::new(iv));
    let mut private = Zeroizing::new(ciphertext.to_vec());
    cipher.decrypt(&k, &iv, &mut private, None).ok()?;
    if private.len() < 8 || private[..4] != private[4..8] {
        return Some(Err(()));
    }
    let mut public = Vec::new();
    key.public_key().key_data().encode(&mut public).ok()?;
    let mut binary = Zeroizing::new(Vec::with_capacity(private.len() + public.len() + 64));
    binary.extend_from_slice(MAGIC);
    put_string(&mut binary, b"none");
    put_string(&mut binary, b"none");
    put_string(&mut binary, b"");
    binary.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut binary, &public);
    put_string(&mut binary, &private);
    Some(parse_padded_binary(&binary).ok_or(()))
}

/// [`parse_padded`] on the decoded (binary) key file.
fn parse_padded_binary(binary: &[u8]) -> Option<PrivateKey> {
    let mut r: &[u8] = binary;
    if take(&mut r, MAGIC.len())? != MAGIC {
        return None;
    }
    let cipher = string(&mut r)?;
    let kdf = string(&mut r)?;
    let kdf_options = string(&mut r)?;
    if cipher != b"none" || kdf != b"none" {
        return None;
    }
    let nkeys = take(&mut r, 4)?;
    let public = string(&mut r)?;
    let private = string(&mut r)?;
    if !r.is_empty() {
        return None;
    }

    let mut p: &[u8] = private;
    let checkints = take(&mut p, 8)?;
    let key_type = string(&mut p)?;
    let size = match key_type {
        b"ecdsa-sha2-nistp256" => 32,
        b"ecdsa-sha2-nistp384" => 48,
        b"ecdsa-sha2-nistp521" => 66,
        _ => return None,
    };
    let curve = string(&mut p)?;
    let point = string(&mut p)?;
    let scalar = string(&mut p)?;
    let comment = string(&mut p)?;
    let digits = &scalar[scalar.iter().take_while(|b| **b == 0).count()..];
    if digits.len() > size {
        return None;
    }

    let mut fixed_private = Zeroizing::new(Vec::with_capacity(private.len() + size + BLOCK));
    fixed_private.extend_from_slice(checkints);
    put_string(&mut fixed_private, key_type);
    put_string(&mut fixed_private, curve);
    put_string(&mut fixed_private, point);
    fixed_private.extend_from_slice(&(size as u32).to_be_bytes());
    fixed_private.extend(std::iter::repeat_n(0u8, size - digits.len()));
    fixed_private.extend_from_slice(digits);
    put_string(&mut fixed_private, comment);
    let mut pad = 1u8;
    while fixed_private.len() % BLOCK != 0 {
        fixed_private.push(pad);
        pad += 1;
    }

    let mut fixed = Zeroizing::new(Vec::with_capacity(binary.len() + size + BLOCK + 4));
    fixed.extend_from_slice(MAGIC);
    put_string(&mut fixed, cipher);
    put_string(&mut fixed, kdf);
    put_string(&mut fixed, kdf_options);
    fixed.extend_from_slice(nkeys);
    put_string(&mut fixed, public);
    put_string(&mut fixed, &fixed_private);
    PrivateKey::from_bytes(&fixed).ok()
}
