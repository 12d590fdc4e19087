//! Logs at the highest verbosity hold no key material, on every engine:
//! `bottlectl -vv` and `RUST_LOG=trace bottlectl` (every crate, the engine
//! clients included) for provision, verify and a failing run, with plain
//! and passphrase-protected keys (passphrase from SSH_ASKPASS or a provider),
//! and the library's own trace output captured in this process.

mod fixtures;

use bottle_integration_tests::{engine_tests, TestEnv};
use fixtures::*;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// Forms a key can leak in: every 40-character window (any offset) of the
/// key file's base64 body, and the private scalar as hex and as the start of
/// a Rust `Debug` byte list.
fn secret_forms(key: &Path) -> Vec<String> {
    secret_forms_with(key, "")
}

/// [`secret_forms`] of a key encrypted with `passphrase` (its decrypted
/// scalar is what reaches the agent), plus the passphrase itself.
fn secret_forms_with(key: &Path, passphrase: &str) -> Vec<String> {
    let mut forms = all_windows(key, 40);
    let seed = seed(key, passphrase);
    forms.push(hex::encode(seed));
    forms.push(hex::encode_upper(seed));
    forms.push(
        seed[..6]
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    if !passphrase.is_empty() {
        forms.push(passphrase.to_string());
    }
    forms
}

/// The ed25519 private scalar of a (possibly encrypted) key file.
fn seed(key: &Path, passphrase: &str) -> [u8; 32] {
    let mut parsed = bottle_ssh::ssh_key::PrivateKey::read_openssh_file(key).unwrap();
    if parsed.is_encrypted() {
        parsed = parsed.decrypt(passphrase).unwrap();
    }
    parsed.key_data().ed25519().unwrap().private.to_bytes()
}

/// The index of the first of `forms` found in `log`.
fn find_secret(log: &[u8], forms: &[String]) -> Option<usize> {
    let text = String::from_utf8_lossy(log);
    forms.iter().position(|form| text.contains(form.as_str()))
}

/// Panics naming the form's index (never the secret) if `log` holds any.
fn assert_no_secret(log: &[u8], forms: &[String], what: &str) {
    if let Some(i) = find_secret(log, forms) {
        panic!(
            "{what}: secret form #{i} (of {}) found in the log",
            forms.len()
        );
    }
}

fn has_raw_seed(log: &[u8], key: &Path, passphrase: &str) -> bool {
    let seed = seed(key, passphrase);
    log.windows(seed.len()).any(|w| w == seed)
}

/// Raw seed bytes anywhere in the captured bytes.
fn assert_no_raw_seed(log: &[u8], key: &Path, passphrase: &str, what: &str) {
    assert!(
        !has_raw_seed(log, key, passphrase),
        "{what}: raw private key bytes in the log"
    );
}

const PASSPHRASE: &str = "correct-horse-battery-staple-4711";
const WRONG: &str = "incorrect-donkey-battery-clip-0815";

/// An ed25519 key encrypted with [`PASSPHRASE`] and a manifest for it.
fn locked_key(keys: &Keys) -> (std::path::PathBuf, std::path::PathBuf) {
    let locked = bottle_integration_tests::ssh_fixtures::keygen_with(
        keys.dir.path(),
        "locked/id_ed25519",
        "ed25519",
        &[],
        PASSPHRASE,
    );
    let manifest = keys.dir.path().join("locked.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[ssh]]\nHost = \"l\"\nHostname = \"l.example\"\nUser = \"git\"\nIdentityFile = \"{}\"\n",
            locked.display()
        ),
    )
    .unwrap();
    (locked, manifest)
}

/// An SSH_ASKPASS program printing `passphrase`.
fn askpass(dir: &Path, name: &str, passphrase: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho '{passphrase}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path.to_str().unwrap().to_string()
}

fn all_forms(keys: &Keys) -> Vec<String> {
    keys.paths().into_iter().flat_map(secret_forms).collect()
}

/// bottlectl arguments, extra environment, expected exit code.
type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32);

/// `bottlectl -vv` and `RUST_LOG=trace` runs of provision (text and
/// --json), verify, and a provision that fails on a passphrase-protected key:
/// stdout and stderr hold no form of any key and not the passphrase.
async fn check_cli_logs_hold_no_key(env: &TestEnv) {
    ensure_bottlectl().await;
    let keys = Keys::new();
    let manifest = keys.manifest();
    let manifest = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let forms = all_forms(&keys);

    // A key under a passphrase that SSH_ASKPASS gives (right, then wrong).
    let (locked, locked_manifest) = locked_key(&keys);
    let locked_manifest = locked_manifest.to_str().unwrap();
    let right = askpass(keys.dir.path(), "askpass-right", PASSPHRASE);
    let wrong = askpass(keys.dir.path(), "askpass-wrong", WRONG);
    let mut locked_forms = secret_forms_with(&locked, PASSPHRASE);
    locked_forms.push(WRONG.to_string());
    let ask_right = [
        ("SSH_ASKPASS", right.as_str()),
        ("SSH_ASKPASS_REQUIRE", "force"),
        ("RUST_LOG", "trace"),
    ];
    let ask_wrong = [
        ("SSH_ASKPASS", wrong.as_str()),
        ("SSH_ASKPASS_REQUIRE", "force"),
        ("RUST_LOG", "trace"),
    ];

    let b = env.bottle();
    let runs: [Run; 9] = [
        (&["-vv", "provision", b, "--manifest", manifest], &[], 0),
        (&["-vv", "--json", "provision", b, "-m", manifest], &[], 0),
        (
            &["provision", b, "--manifest", manifest],
            &[("RUST_LOG", "trace")],
            0,
        ),
        (
            &["-vv", "verify", b, "--manifest", manifest],
            &[("RUST_LOG", "trace")],
            0,
        ),
        (
            &["-vv", "provision", b, "-m", locked_manifest],
            &ask_right,
            0,
        ),
        (
            &["-vv", "--json", "provision", b, "-m", locked_manifest],
            &ask_right,
            0,
        ),
        (&["-vv", "verify", b, "-m", locked_manifest], &ask_right, 0),
        (
            &["-vv", "provision", b, "-m", locked_manifest],
            &ask_wrong,
            2,
        ),
        (&["-vv", "deprovision", b], &[("RUST_LOG", "trace")], 0),
    ];
    let mut total = 0;
    for (args, envs, code) in runs {
        let what = format!("{args:?} {envs:?}");
        let out = output(bottlectl(env, home.path(), args, envs)).await;
        expect_code(&out, code, &what);
        for stream in [&out.stdout, &out.stderr] {
            assert_no_secret(stream, &forms, &what);
            assert_no_secret(stream, &locked_forms, &what);
            for key in keys.paths() {
                assert_no_raw_seed(stream, key, "", &what);
            }
            assert_no_raw_seed(stream, &locked, PASSPHRASE, &what);
        }
        if envs.len() != 1 && code == 0 {
            // -vv shows our debug lines (so the scan saw real logs).
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("DEBUG"), "{what}: no debug output: {err}");
        }
        if code == 2 {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("wrong passphrase"), "{what}: {err}");
        }
        total += out.stderr.len();
    }
    // Trace level from every crate: the engine clients' wire logging ran.
    assert!(total > 20_000, "only {total} bytes of logs");
}

/// Everything logged in this process, all targets at trace level.
fn captured() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    static INIT: OnceLock<()> = OnceLock::new();
    let log = LOG.get_or_init(|| Mutex::new(Vec::new()));
    INIT.get_or_init(|| {
        struct Sink;
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                captured().lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(|| Sink)
            .with_ansi(false)
            .try_init()
            .expect("install the capturing subscriber");
    });
    log
}

/// The library provisioning, verifying and deprovisioning with every crate
/// logging at trace level into memory: no form of any key in the log.
async fn check_library_trace_holds_no_key(env: &TestEnv) {
    let log = captured();
    let keys = Keys::new();
    let plan = keys.plan();
    provision_ok(env.rt(), env.bottle(), &plan).await;
    verify_ok(env.rt(), env.bottle(), &plan).await;
    // An encrypted key, its passphrase from a provider.
    let (locked, _) = locked_key(&keys);
    let mut locked_plan = plan.clone();
    locked_plan.ssh[1].identity_file = locked.clone();
    let provider = |_: &Path| Ok(zeroize::Zeroizing::new(PASSPHRASE.to_string()));
    let opts = bottle_ssh::Options {
        passphrase: Some(&provider),
        strict: false,
        ..Default::default()
    };
    bottle_ssh::provision_with(
        env.rt(),
        env.bottle(),
        &locked_plan,
        &Default::default(),
        &opts,
    )
    .await
    .unwrap_or_else(|e| panic!("provision with an encrypted key: {e}"));
    bottle_ssh::deprovision(env.rt(), env.bottle(), &Default::default())
        .await
        .unwrap();
    let log = log.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("bottle-ssh step finished"),
        "the library's trace was not captured ({} bytes)",
        log.len()
    );
    assert_no_secret(&log, &all_forms(&keys), "library trace");
    assert_no_secret(
        &log,
        &secret_forms_with(&locked, PASSPHRASE),
        "library trace",
    );
    for key in keys.paths() {
        assert_no_raw_seed(&log, key, "", "library trace");
    }
    assert_no_raw_seed(&log, &locked, PASSPHRASE, "library trace");
}

engine_tests!(check_cli_logs_hold_no_key, check_library_trace_holds_no_key);

/// The scan finds a key window at any offset, the scalar and the passphrase
/// (so a clean result above means something).
#[test]
fn the_scan_finds_what_it_looks_for() {
    let keys = Keys::new();
    let (locked, _) = locked_key(&keys);
    let forms = secret_forms_with(&locked, PASSPHRASE);
    let body = key_body(&locked);
    let planted = [
        format!("noise {} noise", &body[7..47]),
        format!("x={}", hex::encode(seed(&locked, PASSPHRASE))),
        format!("pass {PASSPHRASE}"),
    ];
    for log in planted {
        assert!(
            find_secret(log.as_bytes(), &forms).is_some(),
            "missed a planted secret"
        );
    }
    let mut raw = b"abc".to_vec();
    raw.extend_from_slice(&seed(&keys.a, ""));
    assert!(has_raw_seed(&raw, &keys.a, ""), "missed raw key bytes");
    assert_eq!(find_secret(b"clean log", &forms), None);
}
