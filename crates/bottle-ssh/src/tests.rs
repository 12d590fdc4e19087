//! Unit tests: rendering, validation, key loading, agent message encoding.

use crate::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn keygen(dir: &Path, rel: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if args.starts_with(&["-t", "rsa"]) {
        return crate::keys_tests::keygen(dir, rel, "", args);
    }
    let st = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", "unit", "-f"])
        .arg(&path)
        .args(args)
        .status()
        .expect("ssh-keygen");
    assert!(st.success(), "ssh-keygen {args:?}");
    path
}

fn ed25519(dir: &Path, rel: &str) -> PathBuf {
    keygen(dir, rel, &["-t", "ed25519"])
}

fn entry(host: &str, hostname: &str, key: &Path) -> SshEntry {
    SshEntry {
        host: host.into(),
        hostname: hostname.into(),
        user: "git".into(),
        identity_file: key.to_path_buf(),
        known_host_key: None,
        port: None,
        ..Default::default()
    }
}

fn gated(entries: Vec<SshEntry>, ports: &[(&str, i64)]) -> Plan {
    Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: ports.iter().map(|(a, p)| (a.to_string(), *p)).collect(),
        }),
        ssh: entries,
    }
}

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

#[test]
fn renders_the_config_exactly_with_a_gate() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519(dir.path(), "k");
    let mut b = entry("gitlab", "gitlab.com", &k);
    b.known_host_key = Some(format!("{HOST_KEY} some comment\n"));
    let plan = gated(
        vec![entry("github", "github.com", &k), b],
        &[("github", 2201), ("gitlab", 2202)],
    );
    let v = validate(&plan).unwrap();
    let config = render_config(&v, &Target::default());
    let pub_file = format!(
        "/home/node/.ssh/{}",
        public_key_file(&v.keys[0].fingerprint)
    );
    assert_eq!(
        config,
        format!("# Written by bottle: replaced by each provision, removed by deprovision.\n\
         Host github\n HostName 127.0.0.1\n User git\n Port 2201\n IdentityAgent /run/claude-bottle-agent-public.sock\n IdentityFile {pub_file}\n IdentitiesOnly yes\n HostKeyAlias github.com\n CheckHostIP no\n\n\
         Host gitlab\n HostName 127.0.0.1\n User git\n Port 2202\n IdentityAgent /run/claude-bottle-agent-public.sock\n IdentityFile {pub_file}\n IdentitiesOnly yes\n HostKeyAlias gitlab.com\n CheckHostIP no\n\n")
    );
    // One public key file per distinct key: the mark, then the public half
    // without its comment; never private material.
    let pubs = render_public_keys(&v);
    assert_eq!(pubs.len(), 1);
    let public = std::fs::read_to_string(k.with_extension("pub")).unwrap();
    let want: Vec<&str> = public.split_whitespace().take(2).collect();
    assert_eq!(pubs[0].1, format!("{FILE_MARK}\n{}\n", want.join(" ")));
    assert!(pubs[0].0.starts_with("bottle-") && pubs[0].0.ends_with(".pub"));
    // Comment and trailing newline dropped; only entries with a key.
    assert_eq!(
        render_known_hosts(&v).unwrap(),
        format!("{FILE_MARK}\ngitlab.com {HOST_KEY}\n")
    );
}

#[test]
fn renders_without_a_gate_straight_to_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519(dir.path(), "k");
    let mut b = entry("b", "b.example.org", &k);
    b.port = Some(2222);
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![entry("a", "a.example.org", &k), b],
    };
    let v = validate(&plan).unwrap();
    let t = Target {
        public_socket: "/run/pub.sock".into(),
        ..Target::default()
    };
    let pub_file = format!(
        "/home/node/.ssh/{}",
        public_key_file(&v.keys[0].fingerprint)
    );
    assert_eq!(
        render_config(&v, &t),
        format!("# Written by bottle: replaced by each provision, removed by deprovision.\n\
         Host a\n HostName a.example.org\n User git\n Port 22\n IdentityAgent /run/pub.sock\n IdentityFile {pub_file}\n IdentitiesOnly yes\n HostKeyAlias a.example.org\n CheckHostIP no\n\n\
         Host b\n HostName b.example.org\n User git\n Port 2222\n IdentityAgent /run/pub.sock\n IdentityFile {pub_file}\n IdentitiesOnly yes\n HostKeyAlias b.example.org\n CheckHostIP no\n\n")
    );
    assert_eq!(render_known_hosts(&v), None);
}

/// The real OpenSSH client reads the rendered file back as intended.
#[test]
fn openssh_client_reads_the_rendered_config_as_intended() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519(dir.path(), "k");
    let plan = gated(
        vec![
            entry("github", "github.com", &k),
            entry("my-host.2", "git.example.org", &k),
        ],
        &[("github", 2201), ("my-host.2", 65535)],
    );
    let v = validate(&plan).unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(&cfg, render_config(&v, &Target::default())).unwrap();
    for (alias, port, hka) in [
        ("github", "2201", "github.com"),
        ("my-host.2", "65535", "git.example.org"),
    ] {
        let out = Command::new("ssh")
            .args(["-G", "-F"])
            .arg(&cfg)
            .arg(alias)
            .output()
            .expect("ssh -G");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
                .map(str::to_string)
        };
        assert_eq!(get("hostname").as_deref(), Some("127.0.0.1"), "{alias}");
        assert_eq!(get("user").as_deref(), Some("git"));
        assert_eq!(get("port").as_deref(), Some(port));
        assert_eq!(
            get("identityagent").as_deref(),
            Some("/run/claude-bottle-agent-public.sock")
        );
        assert_eq!(get("hostkeyalias").as_deref(), Some(hka));
        assert_eq!(get("checkhostip").as_deref(), Some("no"));
    }
}

/// Hostile and bad values: each must fail naming the entry and the field.
#[test]
fn hostile_values_are_rejected_naming_entry_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519(dir.path(), "k");
    let base = || {
        gated(
            vec![
                entry("ok", "ok.example", &k),
                entry("two", "two.example", &k),
            ],
            &[("ok", 2201), ("two", 2202)],
        )
    };
    let long = "a".repeat(300);
    let bad_strings: Vec<&str> = vec![
        "",
        " a",
        "a b",
        "a\tb",
        "a\nProxyCommand sh",
        "a\n Match exec x",
        "a\r",
        "a\0b",
        "\"a\"",
        "a'b",
        "a#b",
        "a=b",
        "-oProxyCommand=x",
        "a%h",
        "${HOME}",
        "a\\b",
        "h\u{e9}",
        "a;b",
        "$(id)",
        &long,
    ];
    let mut cases: Vec<(String, Plan, &str, &str)> = Vec::new();
    for s in &bad_strings {
        let mut p = base();
        p.ssh[1].hostname = s.to_string();
        cases.push((
            format!("Hostname {s:?}"),
            p,
            "ssh[1] (Host \"two\")",
            "Hostname",
        ));
        let mut p = base();
        p.ssh[1].user = s.to_string();
        cases.push((format!("User {s:?}"), p, "ssh[1] (Host \"two\")", "User"));
        let mut p = base();
        p.ssh[0].host = s.to_string();
        p.gate = None; // so the gate port lookup is not what fails
        let name: String = s.chars().take(40).collect();
        let name = if name.len() < s.len() {
            format!("ssh[0] (Host {:?})", format!("{name}…"))
        } else {
            format!("ssh[0] (Host {s:?})")
        };
        cases.push((
            format!("Host {s:?}"),
            p,
            Box::leak(name.into_boxed_str()),
            "Host",
        ));
    }
    for s in ["a*", "a?", "!a", "a,b", "*"] {
        let mut p = base();
        p.gate = None;
        p.ssh[1].host = s.into();
        let name = format!("ssh[1] (Host {s:?})");
        cases.push((
            format!("Host {s:?}"),
            p,
            Box::leak(name.into_boxed_str()),
            "Host",
        ));
    }
    // Gate table.
    let mut p = base();
    p.gate.as_mut().unwrap().ports.remove("two");
    cases.push(("missing gate port".into(), p, "gate", "ports.two"));
    let mut p = base();
    p.gate.as_mut().unwrap().ports.insert("three".into(), 2203);
    cases.push(("extra gate port".into(), p, "gate", "ports.three"));
    for port in [0, 65536, -1] {
        let mut p = base();
        p.gate.as_mut().unwrap().ports.insert("ok".into(), port);
        cases.push((format!("gate port {port}"), p, "gate", "ports.ok"));
    }
    let mut p = base();
    p.gate.as_mut().unwrap().host = "a b".into();
    cases.push(("gate host".into(), p, "gate", "host"));
    let mut p = base();
    p.gate = None;
    p.ssh[0].port = Some(70000);
    cases.push(("Port".into(), p, "ssh[0] (Host \"ok\")", "Port"));
    let mut p = base();
    p.ssh[1].host = "OK".into(); // ssh matches Host case-insensitively
    p.gate.as_mut().unwrap().ports.insert("OK".into(), 2203);
    cases.push(("duplicate alias".into(), p, "ssh[1] (Host \"OK\")", "Host"));
    // KnownHostKey.
    let private = std::fs::read_to_string(&k).unwrap();
    for bad in [
        "garbage".to_string(),
        private,
        format!("{HOST_KEY}\nssh-ed25519 AAAA"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9G".into(),
    ] {
        let mut p = base();
        p.ssh[1].known_host_key = Some(bad.clone());
        cases.push((
            format!("KnownHostKey {:?}", &bad[..bad.len().min(30)]),
            p,
            "ssh[1] (Host \"two\")",
            "KnownHostKey",
        ));
    }
    // IdentityFile.
    let pubkey = k.with_extension("pub");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let random = dir.path().join("random");
    std::fs::write(
        &random,
        (0..600u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let truncated = dir.path().join("truncated");
    let full = std::fs::read_to_string(&k).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let encrypted = keygen(dir.path(), "enc", &["-t", "ed25519"]);
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "secret-pass", "-f"])
        .arg(&encrypted)
        .status()
        .unwrap()
        .success());
    // DSA PEM is refused: a clear error, not a crash.
    let pem = keygen(dir.path(), "pem", &["-t", "dsa", "-m", "PEM"]);
    for (what, path) in [
        ("missing", dir.path().join("nope")),
        ("directory", dir.path().to_path_buf()),
        ("empty", empty),
        ("public key", pubkey),
        ("random bytes", random),
        ("truncated", truncated),
        ("encrypted", encrypted.clone()),
        ("PEM", pem),
    ] {
        let mut p = base();
        p.ssh[1].identity_file = path;
        cases.push((
            format!("IdentityFile {what}"),
            p,
            "ssh[1] (Host \"two\")",
            "IdentityFile",
        ));
    }
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for (what, plan, entry, field) in cases {
        let err = match validate(&plan) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        assert!(err.is_plan_error(), "{what}: {err}");
        assert_eq!(err.class(), ErrorClass::Input);
        assert_eq!(err.entry(), Some(entry), "{what}: {err}");
        assert_eq!(err.field(), Some(field), "{what}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(field), "{what}: {msg}");
        assert!(!msg.contains("PRIVATE KEY"), "{what}: message shows a key");
    }
    // The encrypted key error says so.
    let mut p = base();
    p.ssh[0].identity_file = encrypted;
    let msg = validate(&p).unwrap_err().to_string();
    assert!(
        msg.contains("passphrase-protected and no passphrase source"),
        "{msg}"
    );
}

#[test]
fn empty_plan_and_bad_targets_are_rejected() {
    assert!(validate(&Plan::default()).unwrap_err().is_plan_error());
    let bad = [
        Target {
            agent_socket: "relative.sock".into(),
            ..Target::default()
        },
        Target {
            public_socket: "/run/a,fork:b".into(),
            ..Target::default()
        },
        Target {
            home: "/home/../etc".into(),
            ..Target::default()
        },
        Target {
            user: "no de".into(),
            ..Target::default()
        },
        Target {
            public_socket: Target::default().agent_socket,
            ..Target::default()
        },
        Target {
            user: "root".into(),
            ..Target::default()
        },
        Target {
            user: "0".into(),
            ..Target::default()
        },
    ];
    for t in bad {
        let e = validate_target(&t).unwrap_err();
        assert!(
            matches!(e, Error::Target { .. }) && e.is_plan_error(),
            "{t:?}"
        );
    }
    validate_target(&Target::default()).unwrap();
}

#[test]
fn loads_every_supported_key_type_whatever_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ed25519(dir.path(), "one/id_ed25519"),
        ed25519(dir.path(), "two/id_ed25519"), // same file name, other folder
        keygen(dir.path(), "ecdsa256", &["-t", "ecdsa", "-b", "256"]),
        keygen(dir.path(), "ecdsa384", &["-t", "ecdsa", "-b", "384"]),
        keygen(dir.path(), "ecdsa521", &["-t", "ecdsa", "-b", "521"]),
        keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]),
        ed25519(dir.path(), "we;ird $(id) -name"),
    ];
    let entries: Vec<SshEntry> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| entry(&format!("h{i}"), "example.org", k))
        .collect();
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: entries,
    };
    let v = validate(&plan).unwrap();
    assert_eq!(v.keys.len(), keys.len());
    let algs: Vec<&str> = v.keys.iter().map(|k| k.algorithm.as_str()).collect();
    assert_eq!(
        algs,
        [
            "ssh-ed25519",
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp521",
            "ssh-rsa",
            "ssh-ed25519"
        ]
    );
    for (k, path) in v.keys.iter().zip(&keys) {
        // The fingerprint is the one ssh-keygen reports.
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.split_whitespace().nth(1), Some(k.fingerprint.as_str()));
        assert_eq!(k.comment, "unit");
    }
}

/// ECDSA keys whose private scalar OpenSSH wrote short (about half of all
/// P-521 keys) load, with ssh-keygen's fingerprint, and round-trip through
/// the agent message encoding.
#[test]
fn ecdsa_keys_with_short_scalars_load() {
    use ssh_agent_lib::proto::{PrivateCredential, Request};
    use ssh_agent_lib::ssh_encoding::Decode;
    let dir = tempfile::tempdir().unwrap();
    let mut short = 0;
    // At least 12 keys, and on until one is short (each is with about
    // even odds; 12 in a row with none failed CI once, at 2^-12).
    for i in 0.. {
        if i >= 12 && short > 0 {
            break;
        }
        assert!(i < 64, "no short scalar among 64 P-521 keys");
        let path = keygen(
            dir.path(),
            &format!("p521-{i}"),
            &["-t", "ecdsa", "-b", "521"],
        );
        let text = std::fs::read_to_string(&path).unwrap();
        if ssh_key::PrivateKey::from_openssh(&text).is_err() {
            short += 1;
        }
        let plan = Plan {
            signing: None,
            gate: None,
            ssh: vec![entry("a", "a.org", &path)],
        };
        let v = validate(&plan).unwrap_or_else(|e| panic!("key {i}: {e}"));
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let fp = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            fp.split_whitespace().nth(1),
            Some(v.keys[0].fingerprint.as_str())
        );
        // The message after REMOVE_ALL (5 bytes) is the ADD_IDENTITY.
        let bytes = agent::load_keys_message(&v.keys).unwrap();
        let len = u32::from_be_bytes(bytes[5..9].try_into().unwrap()) as usize;
        let mut body = &bytes[9..9 + len];
        match Request::decode(&mut body).unwrap() {
            Request::AddIdentity(add) => match add.credential {
                PrivateCredential::Key { privkey, .. } => {
                    assert_eq!(&privkey, v.keys[0].private.key_data());
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
    assert!(short > 0, "the workaround went untested");
}

#[test]
fn the_same_key_under_two_aliases_loads_once() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519(dir.path(), "k");
    let copy = dir.path().join("copy-of-k");
    std::fs::copy(&k, &copy).unwrap();
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![entry("a", "a.org", &k), entry("b", "b.org", &copy)],
    };
    let v = validate(&plan).unwrap();
    assert_eq!(v.keys.len(), 1);
    assert_eq!(v.keys[0].aliases, ["a", "b"]);
    assert_eq!(v.keys[0].files, [k, copy]);
    assert_eq!(v.fingerprints().len(), 1);
}

/// The bytes sent to the agent decode (with ssh-agent-lib) to REMOVE_ALL
/// then one ADD_IDENTITY per distinct key, carrying exactly that key.
#[test]
fn agent_messages_round_trip() {
    use ssh_agent_lib::proto::{PrivateCredential, Request};
    use ssh_agent_lib::ssh_encoding::Decode;
    let dir = tempfile::tempdir().unwrap();
    let a = ed25519(dir.path(), "a");
    let b = keygen(dir.path(), "b", &["-t", "rsa", "-b", "2048"]);
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![
            entry("a", "a.org", &a),
            entry("b", "b.org", &b),
            entry("c", "c.org", &a),
        ],
    };
    let v = validate(&plan).unwrap();
    let bytes = agent::load_keys_message(&v.keys).unwrap();
    let mut rest: &[u8] = &bytes;
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let mut body = &rest[4..4 + len];
        decoded.push(Request::decode(&mut body).unwrap());
        assert!(body.is_empty());
        rest = &rest[4 + len..];
    }
    assert_eq!(decoded.len(), 3);
    assert!(matches!(decoded[0], Request::RemoveAllIdentities));
    for (req, key) in decoded[1..].iter().zip(&v.keys) {
        match req {
            Request::AddIdentity(add) => match &add.credential {
                PrivateCredential::Key { privkey, comment } => {
                    assert_eq!(privkey, key.private.key_data());
                    assert_eq!(comment, "unit");
                }
                other => panic!("unexpected credential {other:?}"),
            },
            other => panic!("unexpected request {other:?}"),
        }
    }
}

/// Debug output of loaded keys never contains key material.
#[test]
fn debug_output_has_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519(dir.path(), "k");
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![entry("a", "a.org", &k)],
    };
    let v = validate(&plan).unwrap();
    let text = std::fs::read_to_string(&k).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let shown = format!("{v:?} {:?}", v.keys[0]);
    assert!(shown.contains(&v.keys[0].fingerprint));
    for chunk in body.as_bytes().chunks(16) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        assert!(!shown.contains(chunk), "Debug shows key bytes");
    }
}

#[test]
fn errors_are_classed_for_the_callers_policy() {
    let e = Error::MissingInContainer {
        container: "c".into(),
        missing: vec![Missing::Tool("socat".into()), Missing::User("node".into())],
        hint: None,
    };
    assert_eq!(e.class(), ErrorClass::Container);
    assert_eq!(
        e.to_string(),
        "container `c` is missing program `socat`, user `node`"
    );
    let e = Error::Plan {
        entry: Entry::ssh(0, "a"),
        field: "User".into(),
        reason: "is empty".into(),
    };
    assert_eq!(e.class(), ErrorClass::Input);
    assert_eq!(e.to_string(), "ssh[0] (Host \"a\"): User: is empty");
}

/// A lint tool for the scripts, or `None` (printed) when it is not
/// installed outside CI; in CI (`CI=true`) a missing tool fails the test.
fn lint_tool(name: &str) -> Option<&str> {
    if Command::new(name).arg("--version").output().is_ok()
        || Command::new(name).arg("--help").output().is_ok()
    {
        return Some(name);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} is not installed (scripts/engines.sh installs it)"
    );
    eprintln!("SKIP: {name} is not installed");
    None
}

/// The `.sh` files under `src/scripts/`, by path relative to `src/`: what
/// the scripts are joined from at compile time.
fn script_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "sh") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&src.join("scripts"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&src).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Parts of a script that set variables another part reads: shellcheck
/// sees them whole in the joined script, alone they only miss their pair.
const FRAGMENTS: &[&str] = &[
    "scripts/common/check_tools.sh",
    "scripts/user_files/head.sh",
    "scripts/user_files/body.sh",
    // Root's scripts: helpers and trust checks joined before each body.
    "scripts/common/helpers.sh",
    "scripts/common/trust.sh",
    "scripts/common/load_keys.sh",
    "scripts/provision/head.sh",
    "scripts/provision/body.sh",
    "scripts/provision_guarded/provision_guarded.sh",
    "scripts/deliver_guard/deliver_guard.sh",
    "scripts/preflight_root/preflight_root.sh",
    "scripts/verify_root/verify_root.sh",
    "scripts/deprovision/deprovision.sh",
    "scripts/sidecar/owns_abstract.sh",
    "scripts/sidecar/agent.sh",
    "scripts/sidecar/relay.sh",
    "scripts/sidecar/verify.sh",
];

#[test]
fn every_script_passes_shellcheck_and_parses_in_dash_and_busybox() {
    let files = script_files();
    assert!(
        files.len() >= 8,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let joined: Vec<(String, String)> = scripts::all()
        .into_iter()
        .chain(crate::audit::scripts())
        .map(|(n, s)| (format!("{n} (joined)"), s))
        .collect();
    let dump = tempfile::tempdir().unwrap();
    let mut whole = Vec::new();
    let mut fragments = Vec::new();
    for (i, (name, script)) in joined.iter().chain(&files).enumerate() {
        if let Ok(dir) = std::env::var("BOTTLE_DUMP_SCRIPTS") {
            if let Some(n) = name.strip_suffix(" (joined)") {
                std::fs::write(format!("{dir}/{n}.sh"), script).unwrap();
            }
        }
        let path = dump.path().join(format!("{i}.sh"));
        std::fs::write(&path, script).unwrap();
        let entry = (name.as_str(), path);
        match FRAGMENTS.contains(&name.as_str()) {
            true => fragments.push(entry),
            false => whole.push(entry),
        }
    }
    let fails = |tool: &str, args: &[&str], files: &[(&str, PathBuf)]| -> Option<String> {
        let out = Command::new(tool)
            .args(args)
            .args(files.iter().map(|f| &f.1))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Name each script by what it is, not by its temporary file.
        let text = files.iter().fold(text, |t, (name, p)| {
            t.replace(&p.display().to_string(), name)
        });
        (!out.status.success()).then_some(text)
    };
    // shellcheck a few times, side by side (it starts slowly and takes
    // seconds on root's long scripts); the shells once per file.
    if let Some(tool) = lint_tool("shellcheck") {
        let style = &["-s", "sh", "-S", "style"][..];
        let fragment = &["-s", "sh", "-S", "style", "-e", "SC2154,SC2034"][..];
        let (first, second) = whole.split_at(whole.len() / 2);
        let found: Vec<String> = std::thread::scope(|s| {
            [(style, first), (style, second), (fragment, &fragments[..])]
                .map(|(args, files)| s.spawn(move || fails(tool, args, files)))
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        assert!(found.is_empty(), "shellcheck:\n{}", found.join("\n"));
    }
    for (tool, args) in [("dash", &["-n"][..]), ("busybox", &["sh", "-n"][..])] {
        let Some(tool) = lint_tool(tool) else {
            continue;
        };
        for f in whole.iter().chain(&fragments) {
            if let Some(e) = fails(tool, args, std::slice::from_ref(f)) {
                panic!("{tool} {args:?} on {}:\n{e}", f.0);
            }
        }
    }
}

#[test]
fn missing_programs_name_the_install_command_for_the_distribution() {
    let tools = |names: &[&str]| -> Vec<Missing> {
        names.iter().map(|n| Missing::Tool(n.to_string())).collect()
    };
    let hint = |os: &[&str], names: &[&str]| crate::error::install_hint(os, &tools(names));
    assert_eq!(
        hint(&["alpine"], &["ssh-agent", "ssh-add", "socat"]).unwrap(),
        "install with `apk add openssh-client socat` (as root, in the image)"
    );
    assert_eq!(
        hint(&["ubuntu", "debian"], &["socat"]).unwrap(),
        "install with `apt-get install -y socat` (as root, in the image)"
    );
    assert_eq!(
        hint(&["rocky", "rhel", "centos", "fedora"], &["ssh-add"]).unwrap(),
        "install with `dnf install -y openssh-clients` (as root, in the image)"
    );
    assert!(hint(&["gentoo"], &["socat"])
        .unwrap()
        .contains("package manager"));
    // Only users or homes missing: nothing to install.
    assert_eq!(
        crate::error::install_hint(&["debian"], &[Missing::User("node".into())]),
        None
    );
    assert_eq!(
        crate::protocol::provision_root("os \"rhel\" 'fedora' ubuntu$(x) UPPER\n")
            .unwrap()
            .trust
            .os,
        ["rhel", "fedora"]
    );
}

/// Each kind of untrusted finding ends with its own fix: a taken abstract
/// name is not a file to chown (the sidecar refusal said "make them
/// root-owned and not group/other-writable"), nor is a socket path bottle
/// did not make; paths keep the owners-and-modes fix.
#[test]
fn untrusted_findings_end_with_the_fix_for_their_kind() {
    let u = |path: &str, reason: &str| Untrusted {
        path: path.into(),
        reason: reason.into(),
    };
    let err = |untrusted: Vec<Untrusted>| {
        Error::UntrustedInContainer {
            container: "b".into(),
            untrusted,
        }
        .to_string()
    };
    let name = err(vec![u(
        "@claude-bottle-agent-0123456789ab",
        "is listened on by a process that is not the agent's forwarder",
    )]);
    assert!(
        name.contains("stop the process listening on that name"),
        "{name}"
    );
    assert!(!name.contains("root-owned"), "{name}");
    let socket = err(vec![u("/etc/important", "exists and is not a socket")]);
    assert!(
        socket.contains("set agent_socket/public_socket"),
        "{socket}"
    );
    assert!(!socket.contains("root-owned"), "{socket}");
    let path = err(vec![
        u(
            "/usr/local/bin",
            "writable by group or others (mode 777) (for socat)",
        ),
        u("/run", "not owned by root"),
    ]);
    assert!(
        path.ends_with(
            "the bottle's user could replace what is there (make them root-owned and not \
             group/other-writable)"
        ),
        "{path}"
    );
    // Mixed: each fix once, in order.
    let both = err(vec![
        u("/run", "not owned by root"),
        u(
            "@x",
            "is listened on by a process that is not the agent's forwarder",
        ),
        u("/tmp", "writable by group or others (mode 777)"),
    ]);
    assert_eq!(both.matches("root-owned").count(), 1, "{both}");
    assert!(both.contains("stop the process listening"), "{both}");
    assert!(Untrusted::is_permission(&u("/run", "not owned by root")));
    assert!(!u("@x", "taken").is_permission());
}
