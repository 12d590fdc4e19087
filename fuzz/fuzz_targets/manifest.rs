//! Manifest parsing + validation + rendering: never a panic, and whatever
//! validates renders to a config that passes the pure-Rust oracle (the
//! `FILE_MARK` comment line, then one
//! block of exactly nine `keyword value` lines per entry, values from the
//! allow-list, nothing else). `ssh -G` itself judges samples in
//! crates/bottle-ssh/tests/oracle.rs and in scripts/fuzz.sh.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One real key: IdentityFile values are redirected to it so the fuzzer
/// never reads arbitrary host files.
fn key() -> &'static PathBuf {
    static KEY: OnceLock<PathBuf> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::var_os("BOTTLE_FUZZ_KEY")
            .map(PathBuf::from)
            .expect(
                "BOTTLE_FUZZ_KEY: an unencrypted OpenSSH private key (scripts/fuzz.sh makes one)",
            );
        assert!(path.is_file(), "BOTTLE_FUZZ_KEY {path:?} is not a file");
        path
    })
}

fn allowed(value: &str, colon: bool) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('-')
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') || (colon && c == ':')
        })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut manifest) =
        bottle_config::parse_manifest(Path::new("/fuzz/bottle.toml"), text.to_string(), None)
    else {
        return;
    };
    for e in &mut manifest.plan.ssh {
        e.identity_file = key().clone();
    }
    let Ok(plan) = bottle_ssh::validate(&manifest.plan) else {
        return;
    };
    let target = bottle_ssh::Target::default();
    let config = bottle_ssh::render_config(&plan, &target);
    let mut lines: Vec<&str> = config.lines().collect();
    assert_eq!(lines.first(), Some(&bottle_ssh::FILE_MARK), "{config}");
    lines.remove(0);
    assert_eq!(lines.len(), plan.entries.len() * 10, "{config}");
    for (block, e) in lines.chunks(10).zip(&plan.entries) {
        let want = [
            ("Host", e.alias.clone()),
            (" HostName", e.connect_host.clone()),
            (" User", e.user.clone()),
            (" Port", e.connect_port.to_string()),
            (" IdentityAgent", target.public_socket.clone()),
            (
                " IdentityFile",
                format!(
                    "{}/.ssh/{}",
                    target.home,
                    bottle_ssh::public_key_file(&e.fingerprint)
                ),
            ),
            (" IdentitiesOnly", "yes".to_string()),
            (" HostKeyAlias", e.hostname.clone()),
            (" CheckHostIP", "no".to_string()),
        ];
        for (line, (kw, value)) in block.iter().zip(want) {
            assert_eq!(*line, format!("{kw} {value}"));
            let colon = kw == " HostName" || kw == " HostKeyAlias";
            let fixed = [
                " IdentityAgent",
                " IdentityFile",
                " IdentitiesOnly",
                " Port",
                " CheckHostIP",
            ];
            if !fixed.contains(&kw) {
                assert!(allowed(&value, colon), "{kw} {value:?} passed validation");
            }
        }
        assert_eq!(block[9], "");
        assert!(e.connect_port >= 1);
    }
    if let Some(known) = bottle_ssh::render_known_hosts(&plan) {
        let mut lines = known.lines();
        assert_eq!(lines.next(), Some(bottle_ssh::FILE_MARK), "{known}");
        for line in lines {
            assert_eq!(line.split(' ').count(), 3, "{line:?}");
        }
    }
});
