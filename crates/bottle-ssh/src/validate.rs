//! Plan validation and key loading: everything checked before the container
//! is touched.

use crate::certificate;
use crate::error::{Entry, Error};
use crate::keys::Options;
use crate::plan::{Plan, SshEntry, Target};
use crate::signing;
use crate::valid::{CertSpec, Destination, LoadedKey, ValidEntry, ValidatedPlan, MAX_VALUE_LEN};
use ssh_key::{HashAlg, PublicKey};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn entry_name(i: usize, e: &SshEntry) -> Entry {
    Entry::ssh(i, &e.host)
}

fn plan_err(entry: &Entry, field: &str, reason: impl Into<String>) -> Error {
    Error::Plan {
        entry: entry.clone(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Which ssh_config value is checked: they differ in what they allow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Alias,
    Hostname,
    User,
}

/// Why `value` cannot go into ssh_config as `kind`, if it cannot.
///
/// An allow-list, because ssh_config splits on whitespace and `=`, honours
/// quotes and backslashes, starts comments with `#`, expands `%` tokens (in
/// `HostName` and, in newer clients, `User`) and `${VAR}`, and treats `*`, `?`,
/// `!` and `,` as pattern syntax in `Host`. A leading `-` would look like an
/// option wherever the value reaches a command line.
fn config_value_problem(value: &str, kind: Kind) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".into());
    }
    if value.len() > MAX_VALUE_LEN {
        return Some(format!("is longer than {MAX_VALUE_LEN} bytes"));
    }
    if value.starts_with('-') {
        return Some("starts with `-` (would be read as an option)".into());
    }
    for c in value.chars() {
        let ok = c.is_ascii_alphanumeric()
            || matches!(c, '.' | '_' | '-')
            || (kind == Kind::Hostname && c == ':');
        if ok {
            continue;
        }
        let why = match c {
            '\n' | '\r' => "contains a line break (would start a new ssh_config line)".into(),
            '\0' => "contains a NUL byte".into(),
            c if c.is_whitespace() => {
                "contains whitespace (ssh_config splits arguments on it)".into()
            }
            c if c.is_control() => format!("contains control character {c:?}"),
            '"' | '\'' => "contains a quote (ssh_config interprets quotes)".into(),
            '\\' => "contains a backslash (ssh_config interprets escapes)".into(),
            '#' => "contains `#` (starts an ssh_config comment)".into(),
            '=' => "contains `=` (ssh_config separates keyword and value with it)".into(),
            '%' => "contains `%` (ssh expands %-tokens)".into(),
            '$' => "contains `$` (ssh expands ${VAR})".into(),
            '*' | '?' | '!' => format!("contains `{c}` (ssh_config pattern syntax)"),
            ',' => "contains `,` (separates ssh_config pattern lists)".into(),
            c if !c.is_ascii() => format!("contains non-ASCII character {c:?}"),
            c => format!("contains `{c}` (allowed: letters, digits, `.`, `_`, `-`)"),
        };
        return Some(why);
    }
    None
}

fn check_value(entry: &Entry, field: &str, value: &str, kind: Kind) -> Result<(), Error> {
    match config_value_problem(value, kind) {
        Some(reason) => Err(plan_err(entry, field, reason)),
        None => Ok(()),
    }
}

fn check_port(entry: &Entry, field: &str, port: i64) -> Result<u16, Error> {
    if (1..=65535).contains(&port) {
        Ok(port as u16)
    } else {
        Err(plan_err(
            entry,
            field,
            format!("{port} is not a port (1-65535)"),
        ))
    }
}

/// Parse a `KnownHostKey` and return it as `algorithm base64`, comment dropped.
pub(crate) fn normalise_host_key(value: &str) -> Result<String, String> {
    // A trailing line break (a value read from a .pub file) is harmless.
    let value = value.trim();
    if value.contains(['\n', '\r', '\0']) {
        return Err("contains a line break or NUL (one key, one line)".into());
    }
    if value.contains("PRIVATE KEY") {
        return Err("is a private key; give the server's public host key".into());
    }
    let mut key = PublicKey::from_openssh(value)
        .map_err(|e| format!("is not an OpenSSH public key ({e})"))?;
    key.set_comment("");
    key.to_openssh()
        .map(|s| s.trim_end().to_string())
        .map_err(|e| format!("cannot be re-encoded ({e})"))
}

/// Check a target (from configuration): values reach ssh_config and socat
/// address strings, so they are held to an allow-list too.
pub fn validate_target(target: &Target) -> Result<(), Error> {
    let terr = |field: &str, reason: String| Error::Target {
        field: field.to_string(),
        reason,
    };
    if let Some(why) = config_value_problem(&target.user, Kind::User) {
        return Err(terr("user", why));
    }
    // Root's own exec would then write into the home it is given (another
    // account's, by default) and hand the agent to root: never meant.
    if matches!(target.user.as_str(), "root" | "0") {
        return Err(terr(
            "user",
            format!(
                "`{}` is root: bottle serves the bottle's unprivileged user (set `user` to that account, e.g. node)",
                target.user
            ),
        ));
    }
    for (field, path) in [
        ("home", &target.home),
        ("agent_socket", &target.agent_socket),
        ("public_socket", &target.public_socket),
    ] {
        if !path.starts_with('/') || path.len() < 2 {
            return Err(terr(field, format!("{path:?} is not an absolute path")));
        }
        if path.split('/').any(|p| p == "." || p == "..") {
            return Err(terr(field, format!("{path:?} contains `.` or `..`")));
        }
        // socat splits addresses on `:` and `,`; ssh_config on whitespace etc.
        if let Some(c) = path
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
        {
            return Err(terr(
                field,
                format!("{path:?} contains {c:?} (allowed: letters, digits, `/`, `.`, `_`, `-`)"),
            ));
        }
    }
    if target.agent_socket == target.public_socket {
        return Err(terr(
            "public_socket",
            "must differ from agent_socket".to_string(),
        ));
    }
    Ok(())
}

/// Validate a plan and load its keys. Reads the key files; nothing else.
/// An encrypted key is an error here: see [`validate_with`].
pub fn validate(plan: &Plan) -> Result<ValidatedPlan, Error> {
    validate_with(plan, &Options::default())
}

/// [`validate`] with a passphrase source and strictness.
pub fn validate_with(plan: &Plan, opts: &Options<'_>) -> Result<ValidatedPlan, Error> {
    validate_inner(plan, opts, true)
}

/// `need_private = false`: only fingerprints are needed (verify), so an
/// encrypted OpenSSH key is not decrypted.
pub(crate) fn validate_inner(
    plan: &Plan,
    opts: &Options<'_>,
    need_private: bool,
) -> Result<ValidatedPlan, Error> {
    if plan.ssh.is_empty() {
        return Err(plan_err(
            &Entry::plan("ssh"),
            "ssh",
            "the plan has no [[ssh]] entries",
        ));
    }
    if let Some(gate) = &plan.gate {
        check_value(&Entry::gate(), "host", &gate.host, Kind::Hostname)?;
    }

    let mut entries = Vec::with_capacity(plan.ssh.len());
    let mut keys: Vec<LoadedKey> = Vec::new();
    let mut seen_aliases: BTreeMap<String, usize> = BTreeMap::new();
    // Key files checked for who else can change them, and what was found.
    let mut exposed: Vec<PathBuf> = Vec::new();
    let mut file_warnings = Vec::new();

    for (i, e) in plan.ssh.iter().enumerate() {
        let name = entry_name(i, e);
        check_value(&name, "Host", &e.host, Kind::Alias)?;
        // ssh matches Host patterns case-insensitively.
        if let Some(first) = seen_aliases.insert(e.host.to_ascii_lowercase(), i) {
            return Err(plan_err(
                &name,
                "Host",
                format!("alias duplicates ssh[{first}] (aliases must be unique)"),
            ));
        }
        check_value(&name, "Hostname", &e.hostname, Kind::Hostname)?;
        check_value(&name, "User", &e.user, Kind::User)?;
        let own_port = match e.port {
            Some(p) => check_port(&name, "Port", p)?,
            None => 22,
        };
        let (connect_host, connect_port) = match &plan.gate {
            Some(gate) => {
                let p = gate.ports.get(&e.host).ok_or_else(|| {
                    plan_err(
                        &Entry::gate(),
                        &format!("ports.{}", e.host),
                        format!("no gate port for alias {:?} ({name})", e.host),
                    )
                })?;
                (
                    gate.host.clone(),
                    check_port(&Entry::gate(), &format!("ports.{}", e.host), *p)?,
                )
            }
            None => (e.hostname.clone(), own_port),
        };
        let known_host_key = match &e.known_host_key {
            Some(k) => Some(normalise_host_key(k).map_err(|r| plan_err(&name, "KnownHostKey", r))?),
            None => None,
        };
        let hold = crate::plan::hold_words(
            e.approve.as_deref(),
            e.approval_timeout.as_ref(),
            e.max_signatures.as_deref(),
        )
        .map_err(|(field, r)| plan_err(&name, field, r))?;
        if e.confirm == Some(true) {
            return Err(plan_err(
                &name,
                "Confirm",
                "`true` cannot work: nobody inside the bottle can confirm each use of the key",
            ));
        }
        let lifetime = match &e.lifetime {
            Some(l) => Some(l.seconds().map_err(|r| plan_err(&name, "Lifetime", r))?),
            None => None,
        };
        if let Some(ca) = &e.certificate_authority {
            let spec = cert_spec(&name, e, ca, lifetime.is_some(), opts, need_private)?;
            let key = certificate::fresh_key(&format!("bottle certificate for {}", e.host))
                .map_err(|r| plan_err(&name, "CertificateAuthority", r))?;
            let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
            if !exposed.contains(ca) {
                if let Some(why) = crate::keys::exposure(ca, &spec.1) {
                    file_warnings.push(format!(
                        "CertificateAuthority {ca:?} ({name}) can be changed by others: {why}; \
                         whoever can change it chooses the CA that certifies the bottle's keys"
                    ));
                }
                exposed.push(ca.clone());
            }
            keys.push(LoadedKey {
                aliases: vec![e.host.clone()],
                files: Vec::new(),
                algorithm: key.algorithm().as_str().to_string(),
                fingerprint: fingerprint.clone(),
                comment: key.comment().to_string(),
                lifetime: Some(spec.0.validity),
                destinations: Vec::new(),
                unrestricted: Vec::new(),
                certificate: Some(Box::new(spec.0)),
                private: key,
            });
            entries.push(ValidEntry {
                alias: e.host.clone(),
                hostname: e.hostname.clone(),
                user: e.user.clone(),
                connect_host,
                connect_port,
                known_host_key,
                identity_file: PathBuf::new(),
                fingerprint,
                hold,
            });
            continue;
        }
        for (field, given) in [
            ("Principals", e.principals.is_some()),
            ("Validity", e.validity.is_some()),
            ("Extensions", e.extensions.is_some()),
        ] {
            if given {
                return Err(plan_err(
                    &name,
                    field,
                    "only applies with CertificateAuthority",
                ));
            }
        }
        if e.identity_file.as_os_str().is_empty() {
            return Err(plan_err(
                &name,
                "IdentityFile",
                "missing (give a private key file, or CertificateAuthority for a fresh certified key)",
            ));
        }
        let (key, meta) = crate::keys::load_key_file(&e.identity_file, opts, need_private)
            .map_err(|reason| Error::KeyFile {
                entry: name.clone(),
                path: e.identity_file.clone(),
                reason,
            })?;
        if !exposed.contains(&e.identity_file) {
            if let Some(why) = crate::keys::exposure(&e.identity_file, &meta) {
                file_warnings.push(format!(
                    "IdentityFile {:?} ({name}) can be changed by others: {why}; whoever can \
                     change it chooses the key loaded into the bottle",
                    e.identity_file
                ));
            }
            exposed.push(e.identity_file.clone());
        }
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match keys.iter_mut().find(|k| k.fingerprint == fingerprint) {
            Some(k) => {
                if k.lifetime != lifetime {
                    return Err(plan_err(
                        &name,
                        "Lifetime",
                        format!(
                            "differs from that of {:?}, which uses the same key (the agent holds a key once)",
                            k.aliases[0]
                        ),
                    ));
                }
                k.aliases.push(e.host.clone());
                if !k.files.contains(&e.identity_file) {
                    k.files.push(e.identity_file.clone());
                }
            }
            None => keys.push(LoadedKey {
                aliases: vec![e.host.clone()],
                files: vec![e.identity_file.clone()],
                algorithm: key.algorithm().as_str().to_string(),
                fingerprint: fingerprint.clone(),
                comment: key.comment().to_string(),
                lifetime,
                destinations: Vec::new(),
                unrestricted: Vec::new(),
                certificate: None,
                private: key,
            }),
        }
        entries.push(ValidEntry {
            alias: e.host.clone(),
            hostname: e.hostname.clone(),
            user: e.user.clone(),
            connect_host,
            connect_port,
            known_host_key,
            identity_file: e.identity_file.clone(),
            fingerprint,
            hold,
        });
    }

    if let Some(gate) = &plan.gate {
        if let Some(extra) = gate
            .ports
            .keys()
            .find(|a| !plan.ssh.iter().any(|e| &e.host == *a))
        {
            return Err(plan_err(
                &Entry::gate(),
                &format!("ports.{extra}"),
                format!("port for {extra:?}, which is not an ssh alias"),
            ));
        }
    }

    let mut warnings = file_warnings;
    warnings.extend(restrict(plan, &entries, &mut keys, opts.strict)?);
    let signing = match &plan.signing {
        Some(s) => Some(signing::load(
            s,
            &mut keys,
            opts,
            need_private,
            &mut warnings,
        )?),
        None => None,
    };
    Ok(ValidatedPlan {
        entries,
        keys,
        warnings,
        signing,
    })
}

/// An entry's `CertificateAuthority`, `Principals`, `Validity` and
/// `Extensions`, checked,
/// and the CA key file's metadata (for the exposure warning).
fn cert_spec(
    name: &Entry,
    e: &SshEntry,
    ca: &std::path::Path,
    has_lifetime: bool,
    opts: &Options<'_>,
    need_private: bool,
) -> Result<(CertSpec, std::fs::Metadata), Error> {
    if !e.identity_file.as_os_str().is_empty() {
        return Err(plan_err(
            name,
            "CertificateAuthority",
            "an entry has either IdentityFile or CertificateAuthority (which gives it a fresh key), not both",
        ));
    }
    if has_lifetime {
        return Err(plan_err(
            name,
            "Lifetime",
            "a certified key stays in the agent for its Validity; give Validity instead",
        ));
    }
    let validity = match &e.validity {
        Some(v) => v.seconds().map_err(|r| plan_err(name, "Validity", r))?,
        None => certificate::DEFAULT_VALIDITY,
    };
    if validity > certificate::MAX_VALIDITY {
        return Err(plan_err(
            name,
            "Validity",
            format!(
                "{validity} seconds is longer than the maximum, {} (7 days)",
                certificate::MAX_VALIDITY
            ),
        ));
    }
    let principals = e.principals.clone().unwrap_or_else(|| vec![e.user.clone()]);
    if principals.is_empty() {
        return Err(plan_err(
            name,
            "Principals",
            "is empty (a certificate without principals is valid for every user)",
        ));
    }
    for p in &principals {
        if let Some(why) = certificate::principal_problem(p) {
            return Err(plan_err(name, "Principals", why));
        }
    }
    let extensions = match &e.extensions {
        Some(given) => {
            certificate::extensions(given).map_err(|why| plan_err(name, "Extensions", why))?
        }
        None => certificate::DEFAULT_EXTENSIONS
            .iter()
            .map(|x| x.to_string())
            .collect(),
    };
    let (authority, meta) = crate::keys::load_key_file(ca, opts, need_private)
        .map_err(|reason| plan_err(name, "CertificateAuthority", format!("{ca:?} {reason}")))?;
    let authority_fingerprint = authority.fingerprint(HashAlg::Sha256).to_string();
    Ok((
        CertSpec {
            authority_file: ca.to_path_buf(),
            authority_fingerprint,
            principals,
            validity,
            extensions,
            issued: None,
            authority,
        },
        meta,
    ))
}

/// Each key's destinations: the union over its entries of (`Hostname`,
/// `KnownHostKey`, `User`). One entry that cannot or must not be restricted leaves
/// the key unrestricted, since a restriction would break that entry.
fn restrict(
    plan: &Plan,
    entries: &[ValidEntry],
    keys: &mut [LoadedKey],
    strict: bool,
) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    for (i, (e, v)) in plan.ssh.iter().zip(entries).enumerate() {
        let key = keys
            .iter_mut()
            .find(|k| k.fingerprint == v.fingerprint)
            .expect("every entry's key is loaded");
        if e.restrict == Some(false) {
            key.unrestricted
                .push(format!("{:?} has Restrict = false", v.alias));
            continue;
        }
        let Some(hk) = &v.known_host_key else {
            if strict {
                return Err(plan_err(
                    &entry_name(i, e),
                    "KnownHostKey",
                    "missing, so its key cannot be destination-restricted (strict mode); \
                     pin the upstream's host key or set Restrict = false",
                ));
            }
            key.unrestricted.push(format!(
                "{:?} has no KnownHostKey, so its key cannot be destination-restricted",
                v.alias
            ));
            continue;
        };
        match key
            .destinations
            .iter_mut()
            .find(|d| d.hostname == v.hostname)
        {
            Some(d) => {
                if !d.host_keys.contains(hk) {
                    d.host_keys.push(hk.clone());
                }
                if !d.users.contains(&v.user) {
                    d.users.push(v.user.clone());
                }
            }
            None => key.destinations.push(Destination {
                hostname: v.hostname.clone(),
                host_keys: vec![hk.clone()],
                users: vec![v.user.clone()],
            }),
        }
    }
    for k in keys.iter_mut() {
        if !k.unrestricted.is_empty() {
            k.destinations.clear();
            let why = k.unrestricted.join("; ");
            warnings.push(format!(
                "key {} ({}) is not destination-restricted: {why}",
                k.fingerprint,
                k.aliases.join(", ")
            ));
        }
    }
    Ok(warnings)
}
