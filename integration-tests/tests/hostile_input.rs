//! Hostile and bad input, through the library and through `bottlectl`, on
//! every engine.
//!
//! One table of plan values: each case is run by `bottle_ssh::provision` and
//! by `bottlectl provision` (the plan written as a TOML manifest). A bad case
//! must fail with an error naming the entry and the field (CLI: exit 2 and
//! the manifest position), and the bottle must be exactly as before: the
//! same files under /home /root /run /tmp (with modes, owners, sizes), the
//! same processes, the same sockets. Manifest-only cases (invalid TOML,
//! unknown fields, wrong types, duplicate keys), container references and
//! inputs that must succeed (odd key file names, same file name in two
//! folders, one key under two aliases) follow.

use bottle_integration_tests::{engine_tests, TestEnv};
use bottle_ssh::{Gate, Plan, SshEntry, Target};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bottle_integration_tests::ssh_fixtures::fingerprint;
use bottle_integration_tests::{bottlectl_path, hermetic};

/// Keys and odd files on the host, in a directory other uids can enter.
struct Files {
    dir: tempfile::TempDir,
    key: PathBuf,
}

fn keygen(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hostile", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen {path:?}: {out:?}");
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.path().join("good/id_ed25519");
        keygen(&key);
        let f = Files { dir, key };
        let key_text = std::fs::read(&f.key).unwrap();
        f.write("empty", b"");
        f.write(
            "random",
            &(0..2048u32)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<_>>(),
        );
        f.write("truncated", &key_text[..key_text.len() / 2]);
        std::fs::create_dir_all(f.path("a_directory")).unwrap();
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn public(&self) -> String {
        std::fs::read_to_string(self.key.with_extension("pub")).unwrap()
    }
}

/// Built through serde so that fields added to `SshEntry` later keep their
/// defaults.
fn entry(alias: &str, key: &Path) -> SshEntry {
    serde_json::from_value(serde_json::json!({
        "Host": alias,
        "Hostname": format!("{alias}.example"),
        "User": "git",
        "IdentityFile": key,
    }))
    .unwrap()
}

/// A TOML basic string: every control character escaped.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn manifest(plan: &Plan) -> String {
    let mut out = String::new();
    if let Some(g) = &plan.gate {
        out.push_str(&format!(
            "[gate]\nhost = {}\n[gate.ports]\n",
            toml_str(&g.host)
        ));
        for (alias, port) in &g.ports {
            out.push_str(&format!("{} = {port}\n", toml_str(alias)));
        }
    }
    for e in &plan.ssh {
        out.push_str(&format!(
            "\n[[ssh]]\nHost = {}\nHostname = {}\nUser = {}\nIdentityFile = {}\n",
            toml_str(&e.host),
            toml_str(&e.hostname),
            toml_str(&e.user),
            toml_str(&e.identity_file.to_string_lossy())
        ));
        if let Some(k) = &e.known_host_key {
            out.push_str(&format!("KnownHostKey = {}\n", toml_str(k)));
        }
        if let Some(p) = e.port {
            out.push_str(&format!("Port = {p}\n"));
        }
    }
    out
}

/// A plan error, by entry (substring) and field.
struct Bad {
    what: String,
    plan: Plan,
    entry: &'static str,
    field: String,
}

fn plan_cases(f: &Files) -> Vec<Bad> {
    let key = &f.key;
    let mut cases = Vec::new();
    let mut value = |field: &str, v: &str| {
        let mut e = entry("ok", key);
        match field {
            "Host" => e.host = v.into(),
            "Hostname" => e.hostname = v.into(),
            _ => e.user = v.into(),
        }
        cases.push(Bad {
            what: format!("{field} = {v:?}"),
            plan: Plan {
                signing: None,
                gate: None,
                ssh: vec![entry("first", key), e],
            },
            entry: "ssh[1]",
            field: field.into(),
        });
    };
    let long = "a".repeat(300);
    for v in [
        "a b",
        "a\tb",
        "a\nProxyCommand touch /tmp/pwned",
        "a\n LocalCommand touch /tmp/pwned",
        "a\nMatch exec \"touch /tmp/pwned\"",
        "a\rb",
        "a\0b",
        "a\"b",
        "a'b",
        "a#b",
        "a=b",
        "-oProxyCommand=touch /tmp/pwned",
        "*",
        "a?",
        "!a",
        &long,
        "bücher",
        "",
    ] {
        value("Host", v);
    }
    for v in [
        "h b",
        "h\tb",
        "h\nProxyCommand touch /tmp/pwned",
        "h\r",
        "h\0",
        "h\"",
        "h#c",
        "h=x",
        "-h",
        "%h.example",
        &long,
        "bücher.example",
    ] {
        value("Hostname", v);
    }
    for v in [
        "u b",
        "u\tb",
        "u\nLocalCommand touch /tmp/pwned",
        "u\r",
        "u\0",
        "u'",
        "u#",
        "u=",
        "-u",
        &long,
        "jürgen",
    ] {
        value("User", v);
    }

    let mut file = |what: &str, path: PathBuf| {
        cases.push(Bad {
            what: format!("IdentityFile {what}"),
            plan: Plan {
                signing: None,
                gate: None,
                ssh: vec![entry("first", key), entry("second", &path)],
            },
            entry: "ssh[1]",
            field: "IdentityFile".into(),
        });
    };
    file("missing", f.path("no/such/key"));
    file("a directory", f.path("a_directory"));
    file("empty", f.path("empty"));
    file("a public key", f.key.with_extension("pub"));
    file("random bytes", f.path("random"));
    file("truncated", f.path("truncated"));

    let mut host_key = |what: &str, k: String| {
        let mut e = entry("second", key);
        e.known_host_key = Some(k);
        cases.push(Bad {
            what: format!("KnownHostKey {what}"),
            plan: Plan {
                signing: None,
                gate: None,
                ssh: vec![entry("first", key), e],
            },
            entry: "ssh[1]",
            field: "KnownHostKey".into(),
        });
    };
    host_key("garbage", "not a key at all".into());
    host_key("a private key", std::fs::read_to_string(&f.key).unwrap());
    let public = f.public();
    let (algo, rest) = public.trim().split_once(' ').unwrap();
    host_key("embedded newline", format!("{algo}\n{rest}"));
    host_key("truncated base64", public[..public.len() / 2].to_string());

    let gated = |ports: &[(&str, i64)]| Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: ports.iter().map(|(a, p)| (a.to_string(), *p)).collect(),
        }),
        ssh: vec![entry("first", key), entry("second", key)],
    };
    let mut gate = |what: &str, plan: Plan, field: &str| {
        cases.push(Bad {
            what: format!("gate: {what}"),
            plan,
            entry: "gate",
            field: field.into(),
        })
    };
    gate("missing port", gated(&[("first", 2201)]), "ports.second");
    gate(
        "extra alias",
        gated(&[("first", 2201), ("second", 2202), ("third", 2203)]),
        "ports.third",
    );
    gate(
        "port 0",
        gated(&[("first", 2201), ("second", 0)]),
        "ports.second",
    );
    gate(
        "port 65536",
        gated(&[("first", 65536), ("second", 2202)]),
        "ports.first",
    );
    let mut bad_gate_host = gated(&[("first", 2201), ("second", 2202)]);
    bad_gate_host.gate.as_mut().unwrap().host = "gate\nProxyCommand touch /tmp/pwned".into();
    gate("host with a newline", bad_gate_host, "host");

    let mut port = entry("second", key);
    port.port = Some(-1);
    cases.push(Bad {
        what: "Port -1".into(),
        plan: Plan {
            signing: None,
            gate: None,
            ssh: vec![entry("first", key), port],
        },
        entry: "ssh[1]",
        field: "Port".into(),
    });
    cases.push(Bad {
        what: "duplicate alias (case-insensitive)".into(),
        plan: Plan {
            signing: None,
            gate: None,
            ssh: vec![entry("first", key), entry("FIRST", key)],
        },
        entry: "ssh[1]",
        field: "Host".into(),
    });
    cases
}

/// Files (path, mode, owner, size, type) under /home /root /run /tmp, the
/// processes and the bound sockets of the bottle. The snapshot's own
/// processes are left out.
async fn snapshot(env: &TestEnv) -> String {
    let out = env
        .sh(
            "# bottle-snapshot\n\
             find /home /root /run /tmp -xdev -printf '%p %m %u:%g %s %y\\n' 2>/dev/null | sort\n\
             echo '--- processes'\n\
             ps -eo user,args --no-headers\n\
             echo '--- sockets'\n\
             tail -n +2 /proc/net/unix | awk '{print $6, $7, $8}' | sort\n\
             tail -n +2 /proc/net/tcp | awk '$4 == \"0A\" {print $2}' | sort",
            &[],
        )
        .await;
    out.lines()
        .filter(|l| {
            !(l.contains("bottle-snapshot")
                || l.contains("ps -eo")
                || l.ends_with(" sort")
                || l.contains("find /home")
                || l.contains("awk ")
                || l.contains("tail -n"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn assert_same(before: &str, after: &str, what: &str) {
    if before != after {
        let gone: Vec<_> = before.lines().filter(|l| !after.contains(l)).collect();
        let new: Vec<_> = after.lines().filter(|l| !before.contains(l)).collect();
        panic!("{what}: the bottle changed; gone {gone:?}, new {new:?}");
    }
}

async fn ctl(env: &TestEnv, home: &Path, args: &[&str], uid: Option<u32>) -> Output {
    let mut cmd = match uid {
        // Root reads mode-000 files, so unreadable keys need another uid.
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
            ])
            .arg(bottlectl_path());
            c
        }
        None => Command::new(bottlectl_path()),
    };
    hermetic(&mut cmd, home)
        .args(["--runtime", env.engine().name(), "--host", env.endpoint()])
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn pwned_nowhere_on_host() {
    assert!(!Path::new("/tmp/pwned").exists(), "/tmp/pwned on the host");
}

async fn check_hostile_plans(env: &TestEnv) {
    let f = Files::new();
    let rt = env.rt();
    let target = Target::default();
    let before = snapshot(env).await;
    let cases = plan_cases(&f);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (i, case) in cases.iter().enumerate() {
        // Library.
        let err = bottle_ssh::provision(rt, env.bottle(), &case.plan, &target)
            .await
            .err()
            .unwrap_or_else(|| panic!("{}: accepted by the library", case.what));
        assert!(err.is_plan_error(), "{}: {err}", case.what);
        assert_eq!(
            err.field(),
            Some(case.field.as_str()),
            "{}: {err}",
            case.what
        );
        assert!(
            err.to_string().contains(case.entry),
            "{}: {err} does not name {}",
            case.what,
            case.entry
        );
        // CLI, the same plan as a manifest.
        let m = f.write(&format!("m/{i}.toml"), manifest(&case.plan).as_bytes());
        let out = ctl(
            env,
            f.dir.path(),
            &["provision", env.bottle(), "-m", m.to_str().unwrap()],
            None,
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: CLI {stderr}", case.what);
        let field = case.field.strip_prefix("ports.").unwrap_or(&case.field);
        assert!(
            stderr.contains(case.entry) && stderr.contains(field),
            "{}: CLI error does not name {} and {field}: {stderr}",
            case.what,
            case.entry
        );
        assert!(
            stderr.contains(&format!("{}:", m.display())),
            "{}: no manifest position: {stderr}",
            case.what
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", case.what);
        assert_same(&before, &snapshot(env).await, &case.what);
    }
    pwned_nowhere_on_host();
    println!(
        "{} plan cases, library and CLI, bottle untouched",
        cases.len()
    );
}

async fn check_unreadable_key_as_non_root(env: &TestEnv) {
    let f = Files::new();
    use std::os::unix::fs::PermissionsExt;
    let locked = f.write("locked/id_ed25519", &std::fs::read(&f.key).unwrap());
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(f.path("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![entry("locked", &locked)],
    };
    let m = f.write("m.toml", manifest(&plan).as_bytes());
    std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = snapshot(env).await;
    let out = ctl(
        env,
        f.dir.path(),
        &["provision", env.bottle(), "-m", m.to_str().unwrap()],
        Some(65534),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("IdentityFile")
            && stderr.contains("cannot be read")
            && stderr.contains("ssh[0]"),
        "{stderr}"
    );
    assert_same(&before, &snapshot(env).await, "unreadable key");
}

async fn check_bad_manifests(env: &TestEnv) {
    let f = Files::new();
    let key = f.key.to_str().unwrap().to_string();
    let ssh = |extra: &str| {
        format!("[[ssh]]\nHost = \"a\"\nHostname = \"h\"\nUser = \"u\"\nIdentityFile = \"{key}\"\n{extra}")
    };
    // (what, manifest, expected line:col prefix, message part)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("invalid TOML", "[[ssh]\nHost = \"a\"\n".into(), ":1:", ""),
        (
            "unterminated string",
            "[[ssh]]\nHost = \"a\n".into(),
            ":2:",
            "",
        ),
        (
            "unknown field in [[ssh]]",
            ssh("Hots = \"x\"\n"),
            ":6:1",
            "unknown field `Hots`",
        ),
        (
            "unknown top-level table",
            format!("{}\n[gates]\nhost = \"x\"\n", ssh("")),
            ":7:",
            "unknown field `gates`",
        ),
        (
            "Host is a number",
            "[[ssh]]\nHost = 1\n".into(),
            ":2:8",
            "string",
        ),
        (
            "Port is a string",
            ssh("Port = \"22\"\n"),
            ":6:8",
            "expected i64",
        ),
        (
            "ports is an array",
            format!("[gate]\nhost = \"g\"\nports = [1, 2]\n{}", ssh("")),
            ":3:",
            "map",
        ),
        ("ssh is a table", "[ssh]\nHost = \"a\"\n".into(), ":1:", ""),
        (
            "duplicate alias in gate.ports",
            format!(
                "[gate]\nhost = \"g\"\n[gate.ports]\na = 1\na = 2\n{}",
                ssh("")
            ),
            ":5:",
            "duplicate key",
        ),
        (
            "missing Hostname",
            "[[ssh]]\nHost = \"a\"\nUser = \"u\"\nIdentityFile = \"k\"\n".into(),
            ":1:",
            "Hostname",
        ),
    ];
    let before = snapshot(env).await;
    for (i, (what, text, at, message)) in cases.iter().enumerate() {
        let m = f.write(&format!("bad/{i}.toml"), text.as_bytes());
        let out = ctl(
            env,
            f.dir.path(),
            &["provision", env.bottle(), "-m", m.to_str().unwrap()],
            None,
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("{}{at}", m.display())),
            "{what}: no position {at}: {stderr}"
        );
        assert!(stderr.contains(message), "{what}: no {message:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    assert_same(&before, &snapshot(env).await, "bad manifests");
}

async fn check_bad_container_references(env: &TestEnv) {
    let f = Files::new();
    let plan = Plan {
        signing: None,
        gate: None,
        ssh: vec![entry("a", &f.key)],
    };
    let m = f.write("m.toml", manifest(&plan).as_bytes());
    let stopped = env.start_bottle().await.unwrap();
    env.admin().stop(&stopped.name).await.unwrap();
    let paused = env.start_bottle().await.unwrap();
    env.admin().pause(&paused.name).await.unwrap();
    let before = snapshot(env).await;
    let refs = [
        ("empty", String::new()),
        ("non-existent", "bottle-no-such-container-4711".to_string()),
        ("stopped", stopped.name.clone()),
        ("paused", paused.name.clone()),
        (
            "shell metacharacters",
            format!("{};touch /tmp/pwned", env.bottle()),
        ),
        ("command substitution", "$(touch /tmp/pwned)".to_string()),
        ("backticks", format!("`touch /tmp/pwned`{}", env.bottle())),
    ];
    for (what, name) in &refs {
        // Shown with a failure, also when the backend panics.
        println!("container reference case: {what} ({name:?})");
        let err = bottle_ssh::provision(env.rt(), name, &plan, &Target::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: provisioning {name:?} succeeded"));
        assert!(err.is_container_error(), "{what}: {err}");
        assert!(!format!("{err:?}").contains("PRIVATE"), "{what}");
        let out = ctl(
            env,
            f.dir.path(),
            &["provision", name, "-m", m.to_str().unwrap()],
            None,
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        // An empty reference may be refused as usage (2), the others are
        // engine/container errors (3).
        let want = if name.is_empty() { [2, 3] } else { [3, 3] };
        assert!(
            code == Some(want[0]) || code == Some(want[1]),
            "{what}: exit {code:?}: {stderr}"
        );
        assert!(
            stderr.contains("error:") && !stderr.contains("panicked"),
            "{what}: {stderr}"
        );
        if !name.is_empty() {
            assert!(
                stderr.contains(name.as_str()),
                "{what}: does not name {name:?}: {stderr}"
            );
        }
    }
    assert_same(&before, &snapshot(env).await, "bad container references");
    // Nothing ran in the stopped or paused bottle either.
    env.admin().unpause(&paused.name).await.unwrap();
    let out = env
        .rt()
        .exec_script(
            &paused.name,
            "ls -a /home/node; test ! -e /run/claude-bottle",
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.stderr_lossy());
    assert!(
        !out.stdout_lossy().contains(".ssh"),
        "{}",
        out.stdout_lossy()
    );
    pwned_nowhere_on_host();
    assert_eq!(
        env.sh("test -e /tmp/pwned && echo yes || echo no", &[])
            .await,
        "no\n"
    );
}

async fn check_odd_inputs_that_must_work(env: &TestEnv) {
    let f = Files::new();
    // Key file names that would break a shell.
    let names = [
        "semi;colon/id",
        "subst/$(touch \"/tmp/pwned\")",
        "with space/id ed25519",
        "new\nline/id",
        "-leading-dash/-id",
        "back`tick`/id",
    ];
    let mut ssh = Vec::new();
    let mut fingerprints = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let p = f.path(name);
        keygen(&p);
        fingerprints.push(fingerprint(&p));
        ssh.push(entry(&format!("odd{i}"), &p));
    }
    // Same file name in two folders: both load.
    let (a, b) = (f.path("x/id_ed25519"), f.path("y/id_ed25519"));
    keygen(&a);
    keygen(&b);
    fingerprints.push(fingerprint(&a));
    fingerprints.push(fingerprint(&b));
    ssh.push(entry("same-name-a", &a));
    ssh.push(entry("same-name-b", &b));
    // One key under two aliases: one identity.
    ssh.push(entry("twice-1", &f.key));
    ssh.push(entry("twice-2", &f.key));
    fingerprints.push(fingerprint(&f.key));
    // A host key with a trailing comment (and line break) is fine.
    ssh[0].known_host_key = Some(format!("{} trailing comment here\n", f.public().trim()));
    let plan = Plan {
        signing: None,
        gate: None,
        ssh,
    };
    fingerprints.sort();

    let report = bottle_ssh::provision(env.rt(), env.bottle(), &plan, &Target::default())
        .await
        .unwrap_or_else(|e| panic!("library: {e}"));
    let mut got: Vec<String> = report.keys.iter().map(|k| k.fingerprint.clone()).collect();
    got.sort();
    assert_eq!(got, fingerprints);
    let twice = report
        .keys
        .iter()
        .find(|k| k.aliases.contains(&"twice-1".to_string()))
        .unwrap();
    assert_eq!(twice.aliases, ["twice-1", "twice-2"]);
    let listed = env
        .exec_as(
            "1000",
            &[
                "env",
                "SSH_AUTH_SOCK=/run/claude-bottle-agent-public.sock",
                "ssh-add",
                "-l",
            ],
        )
        .await;
    let listed = listed.stdout_lossy();
    for fp in &fingerprints {
        assert!(listed.contains(fp.as_str()), "agent lacks {fp}: {listed}");
    }
    let known = env.sh("cat /home/node/.ssh/known_hosts", &[]).await;
    assert!(!known.contains("trailing comment"), "{known}");
    // The mark line, then one line for the one pinned key.
    assert_eq!(
        known.lines().filter(|l| !l.starts_with('#')).count(),
        1,
        "{known}"
    );
    bottle_ssh::deprovision(env.rt(), env.bottle(), &Target::default())
        .await
        .unwrap();

    // The CLI, with the same manifest.
    let m = f.write("m.toml", manifest(&plan).as_bytes());
    let out = ctl(
        env,
        f.dir.path(),
        &[
            "--json",
            "provision",
            env.bottle(),
            "-m",
            m.to_str().unwrap(),
        ],
        None,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut got: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["fingerprint"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, fingerprints);
    pwned_nowhere_on_host();
    assert_eq!(
        env.sh("test -e /tmp/pwned && echo yes || echo no", &[])
            .await,
        "no\n"
    );
}

engine_tests!(
    check_hostile_plans,
    check_unreadable_key_as_non_root,
    check_bad_manifests,
    check_bad_container_references,
    check_odd_inputs_that_must_work,
);
