//! Nothing from the container reaches the operator's terminal raw, and
//! `bottlectl` keeps key bytes out of core dumps.
//!
//! The bottle's user (uid 1000) adds a key whose comment holds terminal
//! control sequences through the public socket and plants a file whose name
//! holds them where verify's key scan finds it: `bottlectl keys` and
//! `verify` show them escaped (`--json` keeps the real text). Both engines.
//!
//! `bottlectl` makes itself non-dumpable with a core size limit of 0 before
//! it reads a key: an `SSH_ASKPASS` program, run while bottlectl waits for a
//! passphrase, inspects its parent. No engine needed.

mod fixtures;

use bottle_integration_tests::{engine_tests, TestEnv};
use fixtures::{bottlectl, bottlectl_path, ensure_bottlectl, expect_code, output, Keys, USER};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// A comment that sets the clipboard (OSC 52), clears the screen, moves the
/// cursor up, returns the carriage, sends a C1 CSI and a bidi override,
/// around printable UTF-8 that must stay as it is.
const COMMENT: &str = "évil 日本\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b[1A\rfake\u{9b}31m\u{202e}end";
/// How the human output shows it.
const COMMENT_SHOWN: &str =
    "évil 日本\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x1b[1A\\rfake\\u{9b}31m\\u{202e}end";

/// A file name verify's key scan reports: OSC 0 (window title), screen clear.
const PLANTED: &str = "/tmp/k\x1b]0;pwned\x07\x1b[2J\u{9b}H";
const PLANTED_SHOWN: &str = "/tmp/k\\x1b]0;pwned\\x07\\x1b[2J\\u{9b}H";

/// Both streams, decoded.
fn both(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No ESC, BEL, other C0 but `\n`/`\t`, DEL or C1 character in `text`.
fn assert_no_controls(text: &str, what: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        .collect();
    assert!(bad.is_empty(), "{what}: raw {bad:?} in {text:?}");
    assert!(!text.contains('\u{202e}'), "{what}: raw bidi override");
}

async fn check_container_text_is_escaped(env: &TestEnv) {
    ensure_bottlectl().await;
    let keys = Keys::new();
    let manifest = keys.manifest();
    let manifest = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let b = env.bottle();
    let out = output(bottlectl(
        env,
        home.path(),
        &["provision", b, "-m", manifest],
        &[],
    ))
    .await;
    expect_code(&out, 0, "provision");

    // A key with the hostile comment in the agent (its file removed again,
    // so verify only reports the planted one).
    let add = env
        .exec_as(
            // Root, at the agent's own socket: the guard refuses an add
            // from the public one.
            "0",
            &[
                "sh",
                "-c",
                r#"set -e
                   d=$(mktemp -d)
                   ssh-keygen -q -t ed25519 -N '' -C "$1" -f "$d/k"
                   SSH_AUTH_SOCK=/run/claude-bottle-agent.sock ssh-add "$d/k"
                   rm -rf "$d""#,
                "sh",
                COMMENT,
            ],
        )
        .await;
    assert!(add.success(), "ssh-add as root: {}", add.stderr_lossy());

    let out = output(bottlectl(env, home.path(), &["keys", b], &[])).await;
    expect_code(&out, 0, "keys");
    let text = both(&out);
    assert_no_controls(&text, "bottlectl keys");
    assert!(text.contains(COMMENT_SHOWN), "keys: {text}");

    let out = output(bottlectl(env, home.path(), &["--json", "keys", b], &[])).await;
    expect_code(&out, 0, "keys --json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("keys JSON");
    let comments: Vec<&str> = json["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .filter_map(|k| k["comment"].as_str())
        .collect();
    assert!(comments.contains(&COMMENT), "--json comments: {comments:?}");
    // The JSON text itself carries no C1 control or bidi override raw:
    // they are \uXXXX escapes (the same string once parsed).
    let raw = String::from_utf8_lossy(&out.stdout);
    assert_no_controls(&raw, "keys --json");
    assert!(
        raw.contains("\\u009b") && raw.contains("\\u202e"),
        "keys --json: {raw}"
    );

    // A comment with a line break splits ssh-add's listing: the line that
    // cannot be read is quoted in an error (exit 3), which is escaped too.
    let add = env
        .exec_as(
            "0",
            &[
                "sh",
                "-c",
                r#"set -e
                   d=$(mktemp -d)
                   ssh-keygen -q -t ed25519 -N '' -C "$1" -f "$d/k"
                   SSH_AUTH_SOCK=/run/claude-bottle-agent.sock ssh-add "$d/k"
                   rm -rf "$d""#,
                "sh",
                "\x1b[2J\x1b]52;c;eA==\x07two\nlines",
            ],
        )
        .await;
    assert!(add.success(), "ssh-add as root: {}", add.stderr_lossy());
    let out = output(bottlectl(env, home.path(), &["keys", b], &[])).await;
    let text = both(&out);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "keys after a two-line comment: {text}"
    );
    assert_no_controls(&text, "bottlectl keys (two-line comment)");
    assert!(
        text.contains("\\x1b[2J\\x1b]52;c;eA==\\x07two"),
        "keys: {text}"
    );
    // As the user: a file with PEM armour whose name holds the sequences.
    let plant = env
        .exec_as(
            USER,
            &[
                "sh",
                "-c",
                r#"printf '%s\n' '-----BEGIN OPENSSH PRIVATE KEY-----' > "$1""#,
                "sh",
                PLANTED,
            ],
        )
        .await;
    assert!(plant.success(), "plant: {}", plant.stderr_lossy());

    let out = output(bottlectl(
        env,
        home.path(),
        &["verify", b, "-m", manifest],
        &[],
    ))
    .await;
    expect_code(&out, 1, "verify with a planted key file");
    let text = both(&out);
    assert_no_controls(&text, "bottlectl verify");
    assert!(text.contains(PLANTED_SHOWN), "verify: {text}");

    let out = output(bottlectl(
        env,
        home.path(),
        &["--json", "verify", b, "-m", manifest],
        &[],
    ))
    .await;
    expect_code(&out, 1, "verify --json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    let scan = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "no private key file")
        .expect("key scan check");
    assert!(
        scan["detail"].as_str().unwrap().contains(PLANTED),
        "--json detail: {scan}"
    );
}

engine_tests!(check_container_text_is_escaped);

/// While bottlectl (uid 65534, core limit raised to unlimited first) waits
/// for a passphrase, its `/proc/<pid>` files are root's (not dumpable) and
/// its core file size limit is 0.
#[test]
fn bottlectl_is_not_dumpable_and_writes_no_core() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = d.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "right", "-C", "locked", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let manifest = d.join("bottle.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[ssh]]\nHost = \"l\"\nHostname = \"l.example\"\nUser = \"git\"\nIdentityFile = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let results = d.join("results");
    std::fs::create_dir(&results).unwrap();
    std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o777)).unwrap();
    let found = results.join("found");
    let askpass = d.join("askpass");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\n\
             {{ stat -c 'owner %u' /proc/$PPID/status; grep 'Max core file size' /proc/$PPID/limits; \
             grep '^Uid:' /proc/$PPID/status; }} > '{}'\n\
             echo wrong\n",
            found.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();

    // prlimit as root raises the core limit (often 0 already) so the test
    // sees bottlectl lower it; setpriv: a non-root uid, whose /proc files
    // show the owner the kernel gives them.
    let mut cmd = Command::new("prlimit");
    cmd.arg("--core=unlimited:unlimited")
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(bottlectl_path());
    let out = bottle_integration_tests::hermetic(&mut cmd, d)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .args(["--runtime", "docker", "--host", "unix:///nonexistent.sock"])
        .args(["provision", "any", "-m", manifest.to_str().unwrap()])
        .output()
        .expect("run bottlectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The wrong passphrase is refused before any engine call.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("passphrase"), "{stderr}");

    let found = std::fs::read_to_string(&found).expect("askpass ran and wrote what it found");
    assert!(
        found.lines().any(|l| l == "owner 0"),
        "bottlectl's /proc files are not root's (dumpable): {found}"
    );
    assert!(
        found.lines().any(|l| l.starts_with("Uid:\t65534\t")),
        "bottlectl did not run as 65534: {found}"
    );
    let limit = found
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))
        .unwrap_or_else(|| panic!("no core limit line: {found}"));
    assert_eq!(
        limit.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "bytes"],
        "core file size limit: {found}"
    );
}
