//! Unit tests for key loading (every format, passphrases), lifetimes,
//! Confirm, destination restriction and the agent constraint encoding.

use crate::keys::{load_private_key, Options, Passphrase};
use crate::plan::{Gate, Lifetime, Plan, SshEntry};
use crate::validate::validate_with;
use ssh_agent_lib::proto::extension::RestrictDestination;
use ssh_agent_lib::proto::{KeyConstraint, Request};
use ssh_agent_lib::ssh_encoding::Decode;
use std::path::{Path, PathBuf};
use std::process::Command;
use zeroize::Zeroizing;

const PASS: &str = "correct horse";

pub(crate) fn keygen(dir: &Path, name: &str, pass: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    if args.starts_with(&["-t", "rsa"]) {
        return shared_rsa(&path, pass, args);
    }
    let st = Command::new("ssh-keygen")
        .args(["-q", "-C", "unit", "-N", pass, "-f"])
        .arg(&path)
        .args(args)
        .status()
        .expect("ssh-keygen");
    assert!(st.success(), "ssh-keygen {args:?}");
    path
}

/// An RSA key (`-t rsa` in `args`) written to `path` in the format and
/// with the passphrase asked: one 2048-bit key per test run, rewritten by
/// `ssh-keygen -p` (its prime search took up to a second per key).
fn shared_rsa(path: &Path, pass: &str, args: &[&str]) -> PathBuf {
    static KEY: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    let (private, public) = KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rsa");
        let st = Command::new("ssh-keygen")
            .args([
                "-q", "-C", "unit", "-N", "", "-t", "rsa", "-b", "2048", "-f",
            ])
            .arg(&p)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        let read = |p: &Path| std::fs::read(p).unwrap();
        (read(&p), read(&p.with_extension("pub")))
    });
    assert_eq!(
        args.get(3),
        Some(&"2048"),
        "the shared key is 2048 bits: {args:?}"
    );
    std::fs::write(path, private).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    std::fs::write(pub_path, public).unwrap();
    let format = args.iter().position(|a| *a == "-m").map(|i| args[i + 1]);
    if !pass.is_empty() || format.is_some() {
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-p",
                "-P",
                "",
                "-N",
                pass,
                "-m",
                format.unwrap_or("RFC4716"),
                "-f",
            ])
            .arg(path)
            .output()
            .expect("ssh-keygen -p");
        assert!(out.status.success(), "ssh-keygen -p {args:?}: {out:?}");
    }
    path.to_path_buf()
}

/// [`keygen`] for each `(name, passphrase, args)`, all at once.
fn keygen_all(dir: &Path, specs: &[(&str, &str, &[&str])]) -> Vec<PathBuf> {
    let children: Vec<_> = specs
        .iter()
        .filter(|(name, pass, args)| {
            let rsa = args.starts_with(&["-t", "rsa"]);
            if rsa {
                keygen(dir, name, pass, args);
            }
            !rsa
        })
        .map(|(name, pass, args)| {
            let child = Command::new("ssh-keygen")
                .args(["-q", "-C", "unit", "-N", pass, "-f"])
                .arg(dir.join(name))
                .args(*args)
                .spawn()
                .expect("ssh-keygen");
            (child, args)
        })
        .collect();
    for (mut child, args) in children {
        assert!(child.wait().unwrap().success(), "ssh-keygen {args:?}");
    }
    specs.iter().map(|(name, _, _)| dir.join(name)).collect()
}

/// `ssh-keygen -l` reads the `.pub` next to the key: an independent oracle.
fn fingerprint(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn pass_fn(p: &'static str) -> impl Passphrase {
    move |_: &Path| -> Result<Zeroizing<String>, String> { Ok(Zeroizing::new(p.to_string())) }
}

#[test]
fn every_supported_format_loads_with_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let provider = pass_fn(PASS);
    let opts = Options {
        passphrase: Some(&provider),
        strict: false,
        ..Default::default()
    };
    // ssh-keygen runs them side by side: bcrypt and RSA take it a while.
    let cases = keygen_all(
        d,
        &[
            ("ed_enc", PASS, &["-t", "ed25519"]),
            ("ec256_enc", PASS, &["-t", "ecdsa", "-b", "256"]),
            ("ec384", "", &["-t", "ecdsa", "-b", "384"]),
            ("ec521_enc", PASS, &["-t", "ecdsa", "-b", "521"]),
            ("rsa_enc", PASS, &["-t", "rsa", "-b", "2048"]),
            ("rsa_pem", "", &["-t", "rsa", "-b", "2048", "-m", "PEM"]),
            (
                "rsa_pem_enc",
                PASS,
                &["-t", "rsa", "-b", "2048", "-m", "PEM"],
            ),
            ("rsa_p8", "", &["-t", "rsa", "-b", "2048", "-m", "PKCS8"]),
            (
                "rsa_p8_enc",
                PASS,
                &["-t", "rsa", "-b", "2048", "-m", "PKCS8"],
            ),
            ("ec256_pem", "", &["-t", "ecdsa", "-b", "256", "-m", "PEM"]),
            (
                "ec384_pem_enc",
                PASS,
                &["-t", "ecdsa", "-b", "384", "-m", "PEM"],
            ),
            (
                "ec521_pem_enc",
                PASS,
                &["-t", "ecdsa", "-b", "521", "-m", "PEM"],
            ),
            ("ec256_p8", "", &["-t", "ecdsa", "-b", "256", "-m", "PKCS8"]),
            (
                "ec521_p8_enc",
                PASS,
                &["-t", "ecdsa", "-b", "521", "-m", "PKCS8"],
            ),
        ],
    );
    let head = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(head(&cases[6]), "-----BEGIN RSA PRIVATE KEY-----");
    assert!(std::fs::read_to_string(&cases[6])
        .unwrap()
        .contains("DEK-Info: AES-128-CBC"));
    assert_eq!(head(&cases[7]), "-----BEGIN PRIVATE KEY-----");
    assert_eq!(head(&cases[8]), "-----BEGIN ENCRYPTED PRIVATE KEY-----");
    assert_eq!(head(&cases[10]), "-----BEGIN EC PRIVATE KEY-----");
    assert!(std::fs::read_to_string(&cases[10])
        .unwrap()
        .contains("DEK-Info: AES-128-CBC"));
    assert_eq!(head(&cases[12]), "-----BEGIN PRIVATE KEY-----");
    assert_eq!(head(&cases[13]), "-----BEGIN ENCRYPTED PRIVATE KEY-----");
    for path in &cases {
        let key = load_private_key(path, &opts, true)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!key.is_encrypted(), "{}", path.display());
        assert_eq!(
            key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
            fingerprint(path),
            "{}",
            path.display()
        );
    }
}

#[test]
fn wrong_or_missing_passphrase_is_a_clear_error_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wrong = pass_fn("not-the-passphrase");
    let with_wrong = Options {
        passphrase: Some(&wrong),
        strict: false,
        ..Default::default()
    };
    for path in [
        keygen(d, "ed", PASS, &["-t", "ed25519"]),
        keygen(d, "pem", PASS, &["-t", "rsa", "-b", "2048", "-m", "PEM"]),
        keygen(d, "p8", PASS, &["-t", "rsa", "-b", "2048", "-m", "PKCS8"]),
        keygen(d, "ecpem", PASS, &["-t", "ecdsa", "-m", "PEM"]),
        keygen(d, "ecp8", PASS, &["-t", "ecdsa", "-m", "PKCS8"]),
    ] {
        let e = load_private_key(&path, &with_wrong, true).unwrap_err();
        assert!(e.contains("wrong passphrase"), "{}: {e}", path.display());
        assert!(
            !e.contains("not-the-passphrase") && !e.contains(PASS),
            "{e}"
        );
        let e = load_private_key(&path, &Options::default(), true).unwrap_err();
        assert!(
            e.contains("passphrase-protected"),
            "{}: {e}",
            path.display()
        );
    }
    // A provider's refusal reaches the user as is.
    let refuse = |_: &Path| -> Result<Zeroizing<String>, String> { Err("no terminal".into()) };
    let path = d.join("ed");
    let e = load_private_key(
        &path,
        &Options {
            passphrase: Some(&refuse),
            strict: false,
            ..Default::default()
        },
        true,
    )
    .unwrap_err();
    assert_eq!(e, "no terminal");
    // verify only needs the public half: no passphrase asked.
    let key = load_private_key(&path, &Options::default(), false).unwrap();
    assert_eq!(
        key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        fingerprint(&path)
    );
}

#[test]
fn security_key_and_dsa_keys_are_refused_before_any_passphrase() {
    use ssh_key::private::{KeypairData, SkEd25519};
    let dir = tempfile::tempdir().unwrap();
    let public =
        ssh_key::public::SkEd25519::new(ssh_key::public::Ed25519PublicKey([7u8; 32]), "ssh:");
    let sk = SkEd25519::new(public, 1, vec![1u8; 64]).unwrap();
    let key = ssh_key::PrivateKey::new(KeypairData::SkEd25519(sk), "token").unwrap();
    let path = dir.path().join("id_ed25519_sk");
    std::fs::write(
        &path,
        key.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let never =
        |_: &Path| -> Result<Zeroizing<String>, String> { panic!("asked for a passphrase") };
    let opts = Options {
        passphrase: Some(&never),
        strict: false,
        ..Default::default()
    };
    let e = load_private_key(&path, &opts, true).unwrap_err();
    assert!(
        e.contains("security-key") && e.contains("hardware token"),
        "{e}"
    );

    let dsa = keygen(dir.path(), "dsa", "", &["-t", "dsa"]);
    let e = load_private_key(&dsa, &opts, true).unwrap_err();
    assert!(e.contains("DSA is not supported"), "{e}");
}

#[test]
fn lifetimes_parse_like_ssh_add() {
    for (text, secs) in [
        ("90", 90),
        ("30s", 30),
        ("30m", 1800),
        ("8h", 28800),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
    ] {
        assert_eq!(Lifetime::Text(text.into()).seconds(), Ok(secs), "{text}");
    }
    assert_eq!(Lifetime::Seconds(2).seconds(), Ok(2));
    for bad in ["", "0", "h", "5x", "-5", "1.5h", "99999999999999999999"] {
        assert!(Lifetime::Text(bad.into()).seconds().is_err(), "{bad}");
    }
    assert!(Lifetime::Seconds(0).seconds().is_err());
    assert!(Lifetime::Seconds(-1).seconds().is_err());
    assert!(Lifetime::Seconds(i64::from(u32::MAX) + 1)
        .seconds()
        .is_err());
}

fn host_key(dir: &Path, name: &str) -> String {
    let p = keygen(dir, name, "", &["-t", "ed25519"]);
    std::fs::read_to_string(p.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn entry(alias: &str, hostname: &str, key: &Path, pin: Option<&str>) -> SshEntry {
    SshEntry {
        host: alias.into(),
        hostname: hostname.into(),
        user: "git".into(),
        identity_file: key.to_path_buf(),
        known_host_key: pin.map(str::to_string),
        ..Default::default()
    }
}

fn plan(entries: Vec<SshEntry>) -> Plan {
    Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.host.clone(), 2200 + i as i64))
                .collect(),
        }),
        ssh: entries,
    }
}

#[test]
fn manifest_fields_deserialize_and_confirm_is_refused() {
    let p: Plan = toml::from_str(
        r#"
        [[ssh]]
        Host = "a"
        Hostname = "a.example"
        User = "git"
        IdentityFile = "/k"
        Lifetime = "8h"
        Restrict = false
        Confirm = false
        [[ssh]]
        Host = "b"
        Hostname = "b.example"
        User = "git"
        IdentityFile = "/k"
        Lifetime = 60
        "#,
    )
    .unwrap();
    assert_eq!(p.ssh[0].lifetime, Some(Lifetime::Text("8h".into())));
    assert_eq!(p.ssh[0].restrict, Some(false));
    assert_eq!(p.ssh[1].lifetime, Some(Lifetime::Seconds(60)));
    assert_eq!(p.ssh[1].restrict, None);

    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k", "", &["-t", "ed25519"]);
    let mut e = entry("a", "a.example", &k, None);
    e.confirm = Some(true);
    let err = validate_with(&plan(vec![e]), &Options::default()).unwrap_err();
    assert_eq!(err.field(), Some("Confirm"));
    assert!(
        err.to_string().contains("nobody inside the bottle"),
        "{err}"
    );

    let mut e = entry("a", "a.example", &k, None);
    e.lifetime = Some(Lifetime::Text("soon".into()));
    let err = validate_with(&plan(vec![e]), &Options::default()).unwrap_err();
    assert_eq!(err.field(), Some("Lifetime"));

    // One key, two lifetimes: the agent holds it once, so that is an error.
    let mut a = entry("a", "a.example", &k, None);
    a.lifetime = Some(Lifetime::Seconds(60));
    let b = entry("b", "b.example", &k, None);
    let err = validate_with(&plan(vec![a, b]), &Options::default()).unwrap_err();
    assert_eq!(err.field(), Some("Lifetime"));
}

#[test]
fn destinations_are_the_union_of_a_keys_entries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (h1, h2) = (host_key(d, "h1"), host_key(d, "h2"));
    let k = keygen(d, "k", "", &["-t", "ed25519"]);
    let other = keygen(d, "other", "", &["-t", "ed25519"]);
    let v = validate_with(
        &plan(vec![
            entry("a", "a.example", &k, Some(&h1)),
            entry("b", "b.example", &k, Some(&h2)),
            entry("a2", "a.example", &k, Some(&h2)),
            entry("o", "o.example", &other, None),
        ]),
        &Options::default(),
    )
    .unwrap();
    let hosts: Vec<_> = v.keys[0]
        .destinations
        .iter()
        .map(|d| (d.hostname.as_str(), d.host_keys.len()))
        .collect();
    assert_eq!(hosts, [("a.example", 2), ("b.example", 1)]);
    assert!(v.keys[1].destinations.is_empty());
    assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    assert!(
        v.warnings[0].contains("\"o\" has no KnownHostKey"),
        "{:?}",
        v.warnings
    );

    // Restrict = false on one entry leaves the shared key unrestricted.
    let mut b = entry("b", "b.example", &k, Some(&h2));
    b.restrict = Some(false);
    let v = validate_with(
        &plan(vec![entry("a", "a.example", &k, Some(&h1)), b]),
        &Options::default(),
    )
    .unwrap();
    assert!(v.keys[0].destinations.is_empty());
    assert!(
        v.warnings[0].contains("Restrict = false"),
        "{:?}",
        v.warnings
    );

    // strict: an entry that cannot be restricted is an error naming it.
    let err = validate_with(
        &plan(vec![
            entry("a", "a.example", &k, Some(&h1)),
            entry("o", "o.example", &other, None),
        ]),
        &Options {
            passphrase: None,
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.field(), Some("KnownHostKey"));
    assert_eq!(err.entry(), Some("ssh[1] (Host \"o\")"));
}

/// The agent stream, split into its requests.
fn decode(keys: &[crate::valid::LoadedKey]) -> Vec<Request> {
    let msg = crate::agent::load_keys_message(keys).unwrap();
    let mut r: &[u8] = &msg;
    let mut requests = Vec::new();
    while !r.is_empty() {
        let len = u32::from_be_bytes(r[..4].try_into().unwrap()) as usize;
        let mut body = &r[4..4 + len];
        requests.push(Request::decode(&mut body).unwrap());
        r = &r[4 + len..];
    }
    requests
}

#[test]
fn constrained_add_encodes_lifetime_and_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let h1 = host_key(d, "h1");
    let k = keygen(d, "k", "", &["-t", "ed25519"]);
    let plain = keygen(d, "plain", "", &["-t", "ed25519"]);
    let mut a = entry("a", "a.example", &k, Some(&h1));
    a.lifetime = Some(Lifetime::Text("2h".into()));
    let v = validate_with(
        &plan(vec![a, entry("p", "p.example", &plain, None)]),
        &Options::default(),
    )
    .unwrap();
    let requests = decode(&v.keys);
    assert!(matches!(requests[0], Request::RemoveAllIdentities));
    let Request::AddIdConstrained(c) = &requests[1] else {
        panic!("first key is not a constrained add")
    };
    assert_eq!(c.constraints[0], KeyConstraint::Lifetime(7200));
    let KeyConstraint::Extension(ext) = &c.constraints[1] else {
        panic!("no extension constraint")
    };
    let rd: RestrictDestination = ext.parse_key_constraint().unwrap().unwrap();
    assert_eq!(rd.constraints.len(), 1);
    assert_eq!(rd.constraints[0].to.hostname, "a.example");
    // The entry's User: ssh-agent signs only a login request for that user.
    assert_eq!(rd.constraints[0].to.username, "git");
    assert_eq!(rd.constraints[0].from.hostname, "");
    assert_eq!(rd.constraints[0].from.username, "");
    let pinned = ssh_key::PublicKey::from_openssh(&h1).unwrap();
    assert_eq!(&rd.constraints[0].to.keys[0].keyblob, pinned.key_data());
    assert!(
        matches!(requests[2], Request::AddIdentity(_)),
        "unconstrained key"
    );
}

/// One hop per (user, hostname): a key shared by entries with different
/// `User`s names each of them, with the hostname's pinned keys.
#[test]
fn a_shared_key_names_every_user_of_each_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (h1, h2) = (host_key(d, "h1"), host_key(d, "h2"));
    let k = keygen(d, "k", "", &["-t", "ed25519"]);
    let mut deploy = entry("a2", "a.example", &k, Some(&h1));
    deploy.user = "deploy".into();
    let v = validate_with(
        &plan(vec![
            entry("a", "a.example", &k, Some(&h1)),
            deploy,
            entry("b", "b.example", &k, Some(&h2)),
        ]),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(
        v.keys[0].restricted_to(),
        ["git@a.example", "deploy@a.example", "git@b.example"]
    );
    let Request::AddIdConstrained(c) = &decode(&v.keys)[1] else {
        panic!("not a constrained add")
    };
    let KeyConstraint::Extension(ext) = &c.constraints[0] else {
        panic!("no extension constraint")
    };
    let rd: RestrictDestination = ext.parse_key_constraint().unwrap().unwrap();
    let hops: Vec<_> = rd
        .constraints
        .iter()
        .map(|c| {
            (
                c.to.username.as_str(),
                c.to.hostname.as_str(),
                c.to.keys.len(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        [
            ("git", "a.example", 1),
            ("deploy", "a.example", 1),
            ("git", "b.example", 1)
        ]
    );
}

/// Runs `f` on a thread: a read that blocks (a FIFO with no writer) or
/// never ends (`/dev/zero`) fails the test instead of hanging it.
fn within_seconds<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("did not return in time (blocked or unbounded read)")
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

#[test]
fn identity_files_that_are_not_regular_files_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let link = d.join("link-to-fifo");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let big = d.join("big");
    std::fs::write(&big, vec![b'A'; 1024 * 1024 + 1]).unwrap();
    let just_over = d.join("just_over");
    std::fs::write(
        &just_over,
        vec![b'A'; crate::keys::MAX_KEY_FILE as usize + 1],
    )
    .unwrap();
    for (path, want) in [
        (fifo.clone(), "is a FIFO, not a regular file"),
        (link, "is a FIFO, not a regular file"),
        (PathBuf::from("/dev/zero"), "is a character device"),
        (PathBuf::from("/dev/null"), "is a character device"),
        (d.to_path_buf(), "is a directory"),
        (big, "is larger than 65536 bytes"),
        (just_over, "is larger than 65536 bytes"),
    ] {
        let shown = path.display().to_string();
        let err = within_seconds(10, move || {
            let mut e = entry("a", "a.example", &path, None);
            e.identity_file = path;
            validate_with(&plan(vec![e]), &Options::default()).unwrap_err()
        });
        assert_eq!(err.field(), Some("IdentityFile"), "{shown}: {err}");
        assert_eq!(err.entry(), Some("ssh[0] (Host \"a\")"), "{shown}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(want) && text.contains(&shown),
            "{shown}: {text}"
        );
    }
    // The manifest is read the same way.
    let err = within_seconds(10, move || Plan::read_file(&fifo, 1024).unwrap_err());
    assert!(err.contains("is a FIFO"), "{err}");
}

/// A FIFO swapped in between the type check and the open: the open must not
/// block, and what is read is only ever the regular file.
#[test]
fn a_fifo_swapped_in_while_opening_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let key = keygen(&d, "real", "", &["-t", "ed25519"]);
    let path = d.join("k");
    std::fs::copy(&key, &path).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (d, key, path, stop) = (d.clone(), key.clone(), path.clone(), stop.clone());
        std::thread::spawn(move || {
            let (f, r) = (d.join("f"), d.join("r"));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                mkfifo(&f);
                std::fs::rename(&f, &path).unwrap();
                std::fs::copy(&key, &r).unwrap();
                std::fs::rename(&r, &path).unwrap();
            }
        })
    };
    let (ok, refused) = within_seconds(10, move || {
        let (mut ok, mut refused) = (0, 0);
        let t = std::time::Instant::now();
        // Until each outcome came often enough to show the race (at most
        // 3 s): a read that blocked on the FIFO would hit the timeout.
        while (ok < 25 || refused < 25) && t.elapsed() < std::time::Duration::from_secs(3) {
            match load_private_key(&path, &Options::default(), true) {
                Ok(_) => ok += 1,
                Err(_) => refused += 1,
            }
        }
        (ok, refused)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    // Both happened: the swap really raced the reads.
    assert!(ok > 0 && refused > 0, "{ok} loaded, {refused} refused");
}

#[test]
fn key_files_others_can_change_are_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = keygen(d, "k", "", &["-t", "ed25519"]);
    let v = validate_with(
        &plan(vec![entry("a", "a.example", &k, None)]),
        &Options::default(),
    )
    .unwrap();
    assert!(
        !v.warnings.iter().any(|w| w.contains("changed by others")),
        "{:?}",
        v.warnings
    );

    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Two entries, one file: one warning.
    let v = validate_with(
        &plan(vec![
            entry("a", "a.example", &k, None),
            entry("b", "b.example", &k, None),
        ]),
        &Options::default(),
    )
    .unwrap();
    let w: Vec<_> = v
        .warnings
        .iter()
        .filter(|w| w.contains("changed by others"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", v.warnings);
    assert!(
        w[0].contains(&format!("{k:?}")) && w[0].contains("mode 0666"),
        "{}",
        w[0]
    );

    // A writable directory lets others put a link to another key there.
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    let open = d.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let inside = open.join("k");
    std::fs::copy(&k, &inside).unwrap();
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600)).unwrap();
    let v = validate_with(
        &plan(vec![entry("a", "a.example", &inside, None)]),
        &Options::default(),
    )
    .unwrap();
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains(&format!("directory {open:?} is writable"))
                && w.contains("mode 0777")),
        "{:?}",
        v.warnings
    );
    // Sticky (like /tmp): others cannot replace what is not theirs.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let v = validate_with(
        &plan(vec![entry("a", "a.example", &inside, None)]),
        &Options::default(),
    )
    .unwrap();
    assert!(
        !v.warnings.iter().any(|w| w.contains("changed by others")),
        "{:?}",
        v.warnings
    );
}

#[test]
fn encrypted_p521_key_with_a_short_scalar_loads() {
    let dir = tempfile::tempdir().unwrap();
    let provider = pass_fn(PASS);
    let opts = Options {
        passphrase: Some(&provider),
        strict: false,
        ..Default::default()
    };
    // About half of P-521 keys have a short scalar, which ssh-key rejects.
    let names: Vec<String> = (0..40).map(|i| format!("p521_{i}")).collect();
    let path = names
        .chunks(4)
        .flat_map(|batch| {
            let specs: Vec<(&str, &str, &[&str])> = batch
                .iter()
                // One bcrypt round (not 16): the search decrypts every key,
                // and the rounds are not what this test is about.
                .map(|n| {
                    (
                        n.as_str(),
                        PASS,
                        &["-t", "ecdsa", "-b", "521", "-a", "1"][..],
                    )
                })
                .collect();
            keygen_all(dir.path(), &specs)
        })
        .find(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            ssh_key::PrivateKey::from_openssh(&text)
                .unwrap()
                .decrypt(PASS)
                .is_err()
        })
        .expect("a short-scalar P-521 key in 40 tries");
    let key = load_private_key(&path, &opts, true).unwrap();
    assert!(!key.is_encrypted());
    assert_eq!(
        key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        fingerprint(&path)
    );
    // Signing with such a key through the agent: ssh_keys.rs e2e.
    assert!(crate::ecdsa_fix::decrypt_padded(
        &ssh_key::PrivateKey::from_openssh(std::fs::read_to_string(&path).unwrap()).unwrap(),
        b"wrong"
    )
    .is_some_and(|r| r.is_err()));
    let wrong = pass_fn("wrong");
    let e = load_private_key(
        &path,
        &Options {
            passphrase: Some(&wrong),
            strict: false,
            ..Default::default()
        },
        true,
    )
    .unwrap_err();
    assert!(e.contains("wrong passphrase"), "{e}");
}
