//! The real OpenSSH client judges the rendered `~/.ssh/config`.
//!
//! - `valid_plans_render_exactly_what_was_meant`: generated valid plans
//!   (proptest; `BOTTLE_ORACLE_CASES`, default 120 plans of 1–10 entries;
//!   CI's `scripts/test.sh` runs 400, a few thousand aliases) are validated and rendered; for every alias,
//!   `ssh -G -F <config> <alias>` must print the intended hostname, user,
//!   port, identityagent, hostkeyalias and checkhostip, and every other line
//!   exactly as with an empty config.
//! - `rejected_values_would_change_what_ssh_does`: each value class the
//!   validator rejects is rendered raw (validation bypassed) and shown to
//!   change `ssh -G`'s answer for the alias or for another host; the few
//!   rejected classes ssh itself would pass through unchanged are listed
//!   explicitly with the reason they are still refused.

use bottle_ssh::{
    render_config, validate, Gate, Plan, SshEntry, Target, ValidEntry, ValidatedPlan,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Keys whose value the provisioner sets; every other `ssh -G` line must be
/// ssh's default.
const SET_KEYS: [&str; 6] = [
    "hostname",
    "user",
    "port",
    "identityagent",
    "hostkeyalias",
    "checkhostip",
];

struct Fixture {
    /// In the build's temporary directory, kept between runs: a static is
    /// never dropped, so a `TempDir` here was left in `/tmp` by every run.
    dir: PathBuf,
    key: PathBuf,
    /// `ssh -G -F /dev/null` lines for a neutral host, minus `host`/`SET_KEYS`.
    defaults: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oracle");
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_ed25519");
        if !key.exists() {
            // Made aside and renamed in: a run beside this one sees a
            // whole key or none.
            let new = tempfile::tempdir_in(&dir).unwrap();
            let made = new.path().join("id_ed25519");
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "oracle", "-f"])
                .arg(&made)
                .output()
                .expect("run ssh-keygen");
            assert!(out.status.success(), "ssh-keygen failed");
            std::fs::rename(made.with_extension("pub"), key.with_extension("pub")).unwrap();
            std::fs::rename(&made, &key).unwrap();
        }
        let defaults = ssh_g(Path::new("/dev/null"), "oracle-baseline")
            .expect("ssh -G with an empty config")
            .into_iter()
            .filter(|l| !is_set_key(l) && key_of(l) != "host")
            .collect();
        Fixture { dir, key, defaults }
    })
}

fn key_of(line: &str) -> &str {
    line.split(' ').next().unwrap_or("")
}

fn is_set_key(line: &str) -> bool {
    SET_KEYS.contains(&key_of(line))
}

/// Host names are case-insensitive and ssh lowercases most of them (not,
/// e.g., `A:`), so they are compared lowercased.
fn normalise(line: &str) -> String {
    match key_of(line) {
        "hostname" | "hostkeyalias" => line.to_ascii_lowercase(),
        _ => line.to_string(),
    }
}

/// `ssh -G -F config host`, lines sorted; `Err` with stderr when ssh refuses.
fn ssh_g(config: &Path, host: &str) -> Result<Vec<String>, String> {
    if host.contains('\0') {
        return Err("a NUL cannot be passed on a command line".into());
    }
    let out = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg(host)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh -G");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(normalise)
        .collect();
    lines.sort();
    Ok(lines)
}

/// How ssh prints a `HostName`: lowercased, and an IPv4 address in
/// `inet_aton` shorthand (`0`, `127.1`, `0x7f.1`, `010.0.0.1`) in dotted
/// quad form — ssh's own reading of such names, not an injection.
fn ssh_hostname(host: &str) -> String {
    inet_aton(host)
        .map(|a| std::net::Ipv4Addr::from(a).to_string())
        .unwrap_or_else(|| host.to_ascii_lowercase())
}

fn inet_aton(s: &str) -> Option<u32> {
    let parts: Vec<u64> = s
        .split('.')
        .map(|p| {
            // glibc wants at least one digit after `0x` ("0x" is a name).
            let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                Some(hex) => (hex, 16),
                None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
                None => (p, 10),
            };
            // Only digits: from_str_radix would also take a sign.
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return None;
            }
            u64::from_str_radix(digits, radix).ok()
        })
        .collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&p| p > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if rest_bits < 64 && *last >= 1u64 << rest_bits {
        return None;
    }
    let mut v: u64 = 0;
    for (i, p) in head.iter().enumerate() {
        v |= p << (24 - 8 * i);
    }
    Some((v | last) as u32)
}

/// What `ssh -G <alias>` must print for an entry: the defaults plus the
/// provisioner's eight settings. ssh lowercases host names it prints.
fn intended(e: &ValidEntry, target: &Target) -> Vec<String> {
    let mut lines = fixture().defaults.clone();
    // A configured IdentityFile replaces ssh's default list.
    lines.retain(|l| key_of(l) != "identityfile" && key_of(l) != "identitiesonly");
    lines.extend([
        format!(
            "identityfile {}/.ssh/{}",
            target.home.trim_end_matches('/'),
            bottle_ssh::public_key_file(&e.fingerprint)
        ),
        "identitiesonly yes".to_string(),
        format!("hostname {}", ssh_hostname(&e.connect_host)),
        format!("user {}", e.user),
        format!("port {}", e.connect_port),
        format!("identityagent {}", target.public_socket),
        format!("hostkeyalias {}", e.hostname.to_ascii_lowercase()),
        "checkhostip no".to_string(),
    ]);
    lines.sort();
    lines
}

/// `ssh -G` output minus its `host` line (checked separately).
fn without_host(mut lines: Vec<String>, alias: &str) -> Result<Vec<String>, String> {
    let host = lines
        .iter()
        .position(|l| key_of(l) == "host")
        .ok_or("no host line")?;
    let line = lines.remove(host);
    if line != format!("host {alias}") && line != format!("host {}", alias.to_ascii_lowercase()) {
        return Err(format!("host line {line:?} for alias {alias:?}"));
    }
    Ok(lines)
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new_in(&fixture().dir).unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

/// Checks every alias of a rendered plan, a few `ssh -G` at a time.
fn check_rendered(plan: &ValidatedPlan, target: &Target) -> Result<(), String> {
    let config = write_config(&render_config(plan, target));
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .entries
            .iter()
            .map(|e| {
                let path = config.path();
                s.spawn(move || {
                    let got = without_host(ssh_g(path, &e.alias)?, &e.alias)?;
                    let want = intended(e, target);
                    if got == want {
                        return Ok(());
                    }
                    let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).collect();
                    let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).collect();
                    Err(format!(
                        "alias {:?}: ssh -G printed extra {extra:?}, missing {missing:?}",
                        e.alias
                    ))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    results.into_iter().collect()
}

/// Built through serde so that fields added to `SshEntry` later keep their
/// defaults.
fn entry(
    host: impl Into<String>,
    hostname: impl Into<String>,
    user: impl Into<String>,
    identity_file: impl Into<PathBuf>,
    port: Option<i64>,
) -> SshEntry {
    serde_json::from_value(serde_json::json!({
        "Host": host.into(),
        "Hostname": hostname.into(),
        "User": user.into(),
        "IdentityFile": identity_file.into(),
        "Port": port,
    }))
    .unwrap()
}

fn alias() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.][A-Za-z0-9._-]{0,24}"
}

fn hostname() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z0-9_.:][A-Za-z0-9._:-]{0,40}",
        1 => "[a-z0-9][a-z0-9.-]{200,254}",
    ]
}

fn user() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.][A-Za-z0-9._-]{0,31}"
}

fn socket_path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(Target::default().public_socket),
        1 => "(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,12}){1,4}",
    ]
}

type RawEntry = (String, String, String, Option<u16>, u16);

fn plan_strategy() -> impl Strategy<Value = (Plan, Target)> {
    (
        prop::collection::vec(
            (
                alias(),
                hostname(),
                user(),
                prop::option::of(1u16..),
                1u16..,
            ),
            1..=10,
        ),
        prop::option::of(hostname()),
        socket_path(),
    )
        .prop_map(|(raw, gate_host, socket): (Vec<RawEntry>, _, _)| {
            let key = fixture().key.clone();
            let mut seen = std::collections::BTreeSet::new();
            let raw: Vec<RawEntry> = raw
                .into_iter()
                .filter(|e| seen.insert(e.0.to_ascii_lowercase()))
                .collect();
            let gate = gate_host.map(|host| Gate {
                host,
                ports: raw.iter().map(|e| (e.0.clone(), i64::from(e.4))).collect(),
            });
            let ssh = raw
                .into_iter()
                .map(|(host, hostname, user, port, _)| SshEntry {
                    host,
                    hostname,
                    user,
                    identity_file: key.clone(),
                    known_host_key: None,
                    port: port.map(i64::from),
                    ..Default::default()
                })
                .collect();
            let target = Target {
                public_socket: socket,
                ..Target::default()
            };
            (
                Plan {
                    signing: None,
                    gate,
                    ssh,
                },
                target,
            )
        })
}

fn cases() -> u32 {
    std::env::var("BOTTLE_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        // A quick default for `cargo test -p bottle-ssh`; CI runs 400
        // (scripts/test.sh).
        .unwrap_or(120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn valid_plans_render_exactly_what_was_meant((plan, target) in plan_strategy()) {
        bottle_ssh::validate_target(&target).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let valid = validate(&plan).map_err(|e| TestCaseError::fail(format!("valid plan rejected: {e}")))?;
        prop_assert_eq!(valid.entries.len(), plan.ssh.len());
        check_rendered(&valid, &target).map_err(TestCaseError::fail)?;
    }
}

/// One entry rendered without validation, e.g. to see what a rejected value
/// would have done: a valid plan whose values are then overwritten (no
/// struct literals, so fields added to `ValidatedPlan` later do not matter).
fn raw_plan(alias: &str, hostname: &str, user: &str) -> ValidatedPlan {
    let safe = Plan {
        signing: None,
        gate: None,
        ssh: vec![entry(
            "safe",
            "safe.example",
            "git",
            fixture().key.clone(),
            Some(2222),
        )],
    };
    let mut plan = validate(&safe).unwrap();
    let e = &mut plan.entries[0];
    e.alias = alias.into();
    e.hostname = hostname.into();
    e.connect_host = hostname.into();
    e.user = user.into();
    plan
}

/// Whether `ssh -G` answers as intended for `alias`, and with the defaults
/// for every other probe host. `None` when it does; otherwise what differs.
fn harm(plan: &ValidatedPlan, probes: &[&str]) -> Option<String> {
    let target = Target::default();
    let entry = &plan.entries[0];
    let config = write_config(&render_config(plan, &target));
    let own = ssh_g(config.path(), &entry.alias).and_then(|l| without_host(l, &entry.alias));
    match own {
        Err(e) => return Some(format!("ssh -G {:?}: {e}", entry.alias)),
        Ok(got) if got != intended(entry, &target) => {
            let extra: Vec<_> = got
                .iter()
                .filter(|l| !intended(entry, &target).contains(l))
                .cloned()
                .collect();
            return Some(format!("ssh -G {:?} printed {extra:?}", entry.alias));
        }
        Ok(_) => {}
    }
    for probe in probes {
        let got = match ssh_g(config.path(), probe) {
            Ok(l) => l,
            Err(e) => return Some(format!("ssh -G {probe:?}: {e}")),
        };
        let defaults = ssh_g(Path::new("/dev/null"), probe).ok();
        if defaults.as_ref() != Some(&got) {
            return Some(format!("the block also applies to {probe:?}"));
        }
    }
    None
}

struct Rejected {
    field: &'static str,
    value: String,
    /// Other host names the block must not apply to.
    probes: &'static [&'static str],
    /// `Some(reason)`: ssh -G is unchanged by this value, and it is refused
    /// anyway for this reason.
    policy: Option<&'static str>,
}

const CR: &str = "a carriage return hides text on terminals; some readers split lines on it";
const BACKSLASH: &str = "`\\` escapes inside quoted ssh_config arguments and in shells";
const HASH: &str = "`#` starts a comment at the start of an ssh_config word and in shells";
const NON_ASCII: &str = "non-ASCII names are ambiguous (Unicode normalisation, IDN)";

fn rejected_cases() -> Vec<Rejected> {
    let r = |field, value: &str, probes, policy| Rejected {
        field,
        value: value.to_string(),
        probes,
        policy,
    };
    let long = "a".repeat(256);
    let mut v = Vec::new();
    for field in ["Host", "Hostname", "User"] {
        // Only in `Host` does ssh itself refuse these (as a command-line host).
        let host_only = |why| (field != "Host").then_some(why);
        v.extend([
            r(field, "a b", &["a", "b"], None),
            r(field, "a\tb", &["a", "b"], None),
            r(field, "a\nProxyCommand sh -c x", &["a"], None),
            r(field, "a\n LocalCommand touch /tmp/x", &["a"], None),
            r(field, "a\nMatch all", &["a", "zz"], None),
            r(field, "a\rb", &["a"], host_only(CR)),
            r(field, "a\0b", &["a"], None),
            r(field, "a\"b", &["ab", "a"], None),
            r(field, "a'b", &["ab", "a"], None),
            r(field, "a\\b", &["ab", "a"], host_only(BACKSLASH)),
        ]);
    }
    v.extend([
        // Host patterns.
        r("Host", "a*", &["abc"], None),
        r("Host", "a?", &["ab"], None),
        r("Host", "!a", &[], None),
        r("Host", "a,b", &[], None),
        r("Host", "-oProxyCommand=sh", &[], None),
        // ssh refuses these as a command-line host.
        r("Host", "a;b", &[], None),
        r("Host", "a$b", &[], None),
        // HostName expands tokens.
        r("Hostname", "%d.example", &[], None),
    ]);
    // Refused by the allow-list although this ssh (9.2) passes them through:
    // they reach shells and command lines (`git clone <alias>:repo`, `%r`/`%h`
    // in a user's own ProxyCommand), or exceed DNS/useful lengths.
    v.extend([
        r("Hostname", "a#b", &[], Some(HASH)),
        r(
            "Hostname",
            "a,b",
            &[],
            Some("`,` separates pattern lists (Match host, known_hosts)"),
        ),
        r("Hostname", "é.example", &[], Some(NON_ASCII)),
        r(
            "User",
            "%u",
            &[],
            Some("OpenSSH 9.6+ expands %-tokens in User"),
        ),
        r("Host", "a#b", &["a"], Some(HASH)),
        r(
            "Host",
            "a=b",
            &["a"],
            Some("`=` separates keyword and value in ssh_config"),
        ),
        r("Host", "é", &[], Some(NON_ASCII)),
        r(
            "User",
            "a@b",
            &[],
            Some("`@` splits user@host on ssh/git command lines"),
        ),
        r(
            "User",
            "a=b",
            &[],
            Some("`=` separates keyword and value in ssh_config"),
        ),
        r("User", "a#b", &[], Some(HASH)),
        r(
            "User",
            "é",
            &[],
            Some("non-ASCII user names are not portable (useradd refuses them)"),
        ),
        r(
            "Hostname",
            "a=b",
            &[],
            Some("`=` separates keyword and value in ssh_config"),
        ),
        r(
            "Host",
            &long,
            &[],
            Some("longer than 255 bytes (DNS names are at most 253)"),
        ),
        r(
            "Hostname",
            &long,
            &[],
            Some("longer than 255 bytes (DNS names are at most 253)"),
        ),
        r(
            "User",
            &long,
            &[],
            Some("longer than 255 bytes (user names are at most 32 on Linux)"),
        ),
    ]);
    v
}

#[test]
fn rejected_values_would_change_what_ssh_does() {
    let key = fixture().key.clone();
    let mut table = String::new();
    let mut wrong = Vec::new();
    for case in rejected_cases() {
        let mut entry = SshEntry {
            host: "safe-alias".into(),
            hostname: "safe.example".into(),
            user: "git".into(),
            identity_file: key.clone(),
            known_host_key: None,
            port: Some(2222),
            ..Default::default()
        };
        match case.field {
            "Host" => entry.host = case.value.clone(),
            "Hostname" => entry.hostname = case.value.clone(),
            _ => entry.user = case.value.clone(),
        }
        // The validator refuses it, naming the field.
        let plan = Plan {
            signing: None,
            gate: None,
            ssh: vec![entry.clone()],
        };
        match validate(&plan) {
            Ok(_) => wrong.push(format!("{} {:?}: accepted", case.field, case.value)),
            Err(e) => {
                assert_eq!(e.field(), Some(case.field), "{e}");
                assert!(e.to_string().contains("ssh[0]"), "{e}");
            }
        }
        // Rendered anyway, what would ssh do?
        let raw = raw_plan(&entry.host, &entry.hostname, &entry.user);
        let found = harm(&raw, case.probes);
        let shown = format!("{:?}", case.value);
        let shown: String = shown.chars().take(40).collect();
        match (&found, case.policy) {
            (Some(h), None) => {
                let h = h.lines().next().unwrap_or_default();
                table.push_str(&format!("{:8} {shown:42} harmful: {h}\n", case.field))
            }
            (None, Some(p)) => {
                table.push_str(&format!("{:8} {shown:42} policy: {p}\n", case.field))
            }
            (None, None) => wrong.push(format!(
                "{} {shown}: ssh -G is unchanged; refusing it needs a stated reason",
                case.field
            )),
            (Some(h), Some(_)) => wrong.push(format!(
                "{} {shown}: listed as harmless but changes ssh -G: {h}",
                case.field
            )),
        }
    }
    println!("{table}");
    assert!(wrong.is_empty(), "{}\n{table}", wrong.join("\n"));
}

/// Mixed-case and IPv6 host names, the highest port; and the check can fail.
#[test]
fn oracle_sees_a_gate_and_a_direct_entry() {
    let key = fixture().key.clone();
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![
            SshEntry {
                host: "direct".into(),
                hostname: "Git.Example.COM".into(),
                user: "git".into(),
                identity_file: key.clone(),
                known_host_key: None,
                port: None,
                ..Default::default()
            },
            SshEntry {
                host: "v6".into(),
                hostname: "::1".into(),
                user: "u".into(),
                identity_file: key,
                known_host_key: None,
                port: Some(65535),
                ..Default::default()
            },
        ],
    };
    let valid = validate(&plan).unwrap();
    check_rendered(&valid, &Target::default()).unwrap();
    // And the check can fail: a wrong port is noticed.
    let mut broken = validate(&plan).unwrap();
    broken.entries[0].connect_port = 23;
    let config = write_config(&render_config(&valid, &Target::default()));
    let got = without_host(ssh_g(config.path(), "direct").unwrap(), "direct").unwrap();
    assert_ne!(got, intended(&broken.entries[0], &Target::default()));
}

/// Fuzz corpus entries (the seeds in fuzz/corpus, or `BOTTLE_ORACLE_CORPUS`
/// after scripts/fuzz.sh) that validate are judged by `ssh -G` too, up to
/// `BOTTLE_FUZZ_SSH_SAMPLES` (default 200) of them.
#[test]
fn fuzz_corpus_passes_ssh_g() {
    let dir = std::env::var_os("BOTTLE_ORACLE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/manifest")
        });
    let limit: usize = std::env::var("BOTTLE_FUZZ_SSH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut judged = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        if judged >= limit {
            break;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(mut plan) = toml::from_str::<Plan>(&text) else {
            continue;
        };
        for e in &mut plan.ssh {
            e.identity_file = fixture().key.clone();
        }
        let Ok(valid) = validate(&plan) else {
            continue;
        };
        check_rendered(&valid, &Target::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        judged += 1;
    }
    assert!(judged > 0, "no valid manifest in {}", dir.display());
    println!("{judged} valid corpus manifests judged by ssh -G");
}

/// The hostname model agrees with ssh on the names where `inet_aton`
/// shorthand is decided by one character (a case proptest once found).
#[test]
fn numeric_hostnames_read_as_ssh_reads_them() {
    for host in [
        "0",
        "00",
        "0x",
        "0X",
        "0x0",
        "0x.1",
        "1.0x",
        "0x7f.1",
        "127.1",
        "010.0.0.1",
        "08",
        "256",
        "1.2.3.4.5",
        "4294967295",
        "4294967296",
        "0xffffffff",
        "1..2",
        ".1",
    ] {
        let config = write_config(&format!("Host a\n  HostName {host}\n"));
        let printed = ssh_g(config.path(), "a").expect("ssh -G");
        let got: Vec<&String> = printed.iter().filter(|l| key_of(l) == "hostname").collect();
        let want = format!("hostname {}", ssh_hostname(host));
        assert_eq!(got, [&want], "{host}: ssh -G against the model");
    }
}
