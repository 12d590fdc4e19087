//! Logs at the highest verbosity hold no key material, on every engine:
//! `bottlectl -vv` and `RUST_LOG=trace bottlectl` (every crate, the engine
//! clients included) for provision, verify and a failing run, and the
//! library's own trace output captured in this process.

mod fixtures;

use bottle_integration_tests::{engine_tests, TestEnv};
use fixtures::*;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// Forms a key can leak in: every 40-character window (any offset) of the
/// key file's base64 body, and the private scalar as hex and as the start of
/// a Rust `Debug` byte list.
fn secret_forms(key: &Path) -> Vec<String> {
    let mut forms = all_windows(key, 40);
    let parsed = bottle_ssh::ssh_key::PrivateKey::read_openssh_file(key).unwrap();
    let seed = parsed.key_data().ed25519().unwrap().private.to_bytes();
    forms.push(hex::encode(seed));
    forms.push(hex::encode_upper(seed));
    forms.push(
        seed[..6]
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    forms
}

/// Panics naming the form's kind (never the secret) if `log` holds any.
fn assert_no_secret(log: &[u8], forms: &[String], what: &str) {
    let text = String::from_utf8_lossy(log);
    for (i, form) in forms.iter().enumerate() {
        assert!(
            !text.contains(form.as_str()),
            "{what}: secret form #{i} (of {}) found in the log",
            forms.len()
        );
    }
}

/// Raw seed bytes anywhere in the captured bytes.
fn assert_no_raw_seed(log: &[u8], key: &Path, what: &str) {
    let parsed = bottle_ssh::ssh_key::PrivateKey::read_openssh_file(key).unwrap();
    let seed = parsed.key_data().ed25519().unwrap().private.to_bytes();
    assert!(
        !log.windows(seed.len()).any(|w| w == seed),
        "{what}: raw private key bytes in the log"
    );
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

    // A key under a passphrase the tool is never given: the failure must not
    // echo the key file either.
    let passphrase = "correct-horse-battery-staple-4711";
    let locked = keys.dir.path().join("locked/id_ed25519");
    std::fs::create_dir_all(locked.parent().unwrap()).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q", "-t", "ed25519", "-N", passphrase, "-C", "locked", "-f",
        ])
        .arg(&locked)
        .output()
        .unwrap();
    assert!(out.status.success());
    let locked_manifest = keys.dir.path().join("locked.toml");
    std::fs::write(
        &locked_manifest,
        format!(
            "[[ssh]]\nHost = \"l\"\nHostname = \"l.example\"\nUser = \"git\"\nIdentityFile = \"{}\"\n",
            locked.display()
        ),
    )
    .unwrap();
    let mut locked_forms = all_windows(&locked, 40);
    locked_forms.push(passphrase.to_string());

    let b = env.bottle();
    let runs: [Run; 6] = [
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
            &[
                "-vv",
                "provision",
                b,
                "--manifest",
                locked_manifest.to_str().unwrap(),
            ],
            &[("RUST_LOG", "trace")],
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
                assert_no_raw_seed(stream, key, &what);
            }
        }
        if envs.is_empty() {
            // -vv shows our debug lines (so the scan saw real logs).
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("DEBUG"), "{what}: no debug output: {err}");
        }
        if code == 2 {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("passphrase"), "{what}: {err}");
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
    for key in keys.paths() {
        assert_no_raw_seed(&log, key, "library trace");
    }
}

engine_tests!(check_cli_logs_hold_no_key, check_library_trace_holds_no_key);
