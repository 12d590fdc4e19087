//! `bottlectl provision|verify|deprovision|keys` on many containers: names
//! and `--filter`, `--jobs`, the summary table, one JSON line per container,
//! the exit code (the highest of the containers'), on both engines.

mod fixtures;

use bottle_integration_tests::{engine_tests, TestEnv};
use fixtures::{bottlectl, expect_code, output, verify_ok, Keys};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Output;

/// Start a bottle like the main one with `labels`; returns its name.
async fn labelled(env: &TestEnv, what: &str, labels: &[(&str, &str)]) -> String {
    let mut spec = env
        .variant()
        .run_spec(env.image().to_string(), ["/bin/sleep", "infinity"]);
    spec.name = Some(env.unique_name(what));
    spec.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.run_container(spec)
        .await
        .unwrap_or_else(|e| panic!("start {what}: {e}"))
        .name
}

/// stdout as JSON lines, each an object.
fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .inspect(|v| assert!(v.is_object(), "{v}"))
        .collect()
}

fn named(values: &[Value]) -> BTreeSet<String> {
    values
        .iter()
        .map(|v| {
            v["container"]
                .as_str()
                .expect("names its container")
                .to_string()
        })
        .collect()
}

async fn has_config(env: &TestEnv, container: &str) -> bool {
    env.rt()
        .exec_root(container, &["test", "-e", "/home/node/.ssh/config"])
        .await
        .expect("exec")
        .success()
}

async fn check_filter_selects_the_labelled(env: &TestEnv) {
    let keys = Keys::new();
    let manifest = keys.manifest();
    let m = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| output(bottlectl(env, home.path(), args, &[]));
    // A label key of this check only; the main bottle lacks it.
    let key = env.unique_name("label");
    let mut three = BTreeSet::new();
    for (what, value) in [("one", "a"), ("two", "a"), ("three", "b")] {
        three.insert(labelled(env, what, &[(&key, value)]).await);
    }
    let by_key = format!("label={key}");

    let out = run(&["--json", "provision", "--filter", &by_key, "-m", m]).await;
    expect_code(&out, 0, "provision --filter");
    let got = lines(&out);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(named(&got), three);
    assert!(got
        .iter()
        .all(|v| v["ok"] == true && v["keys"].as_array().unwrap().len() == 2));
    for c in &three {
        verify_ok(env.rt(), c, &keys.plan()).await;
    }
    assert!(
        !has_config(env, env.bottle()).await,
        "the unlabelled bottle"
    );

    // label=KEY=VALUE, human: the table names both, nothing else.
    let out = run(&["verify", "--filter", &format!("label={key}=a"), "-m", m]).await;
    expect_code(&out, 0, "verify --filter label=KEY=VALUE");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), 3, "header and two rows: {table}");
    assert!(table.starts_with("CONTAINER"), "{table}");
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert!(rows.iter().all(|r| r.contains(" ok ")), "{table}");

    let out = run(&["--json", "keys", "--filter", &by_key]).await;
    expect_code(&out, 0, "keys --filter");
    let got = lines(&out);
    assert_eq!(named(&got), three);
    assert!(
        got.iter().all(|v| v["keys"].as_array().unwrap().len() == 2),
        "{got:?}"
    );

    // name=…, one at a time.
    let one = three.iter().next().unwrap();
    let by_name = format!("name=^{one}$");
    let out = run(&["--json", "keys", "--filter", &by_name, "--jobs", "1"]).await;
    expect_code(&out, 0, "keys --filter name=");
    assert_eq!(named(&lines(&out)), BTreeSet::from([one.clone()]));

    let out = run(&["--json", "deprovision", "--filter", &by_key, "--jobs", "1"]).await;
    expect_code(&out, 0, "deprovision --filter --jobs 1");
    assert_eq!(named(&lines(&out)), three);
    for c in &three {
        assert!(!has_config(env, c).await, "{c} deprovisioned");
    }

    // Nothing matches: a note on stderr, nothing on stdout, exit 0.
    let none = format!("label={key}=nothing");
    let out = run(&["--json", "provision", "--filter", &none, "-m", m]).await;
    expect_code(&out, 0, "a filter that matches nothing");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no running container matches"), "{err}");
}

async fn check_one_failure_does_not_stop_the_other(env: &TestEnv) {
    let keys = Keys::new();
    let manifest = keys.manifest();
    let m = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| output(bottlectl(env, home.path(), args, &[]));
    let good = env.bottle();
    let missing = env.unique_name("missing");

    let out = run(&["provision", good, &missing, "-m", m]).await;
    expect_code(&out, 3, "one good, one missing");
    verify_ok(env.rt(), good, &keys.plan()).await;
    let table = String::from_utf8_lossy(&out.stdout);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"))
            .to_string()
    };
    assert!(row(good).contains(" ok "), "{table}");
    let bad = row(&missing);
    assert!(
        bad.contains("error (3)") && bad.contains("no container"),
        "{table}"
    );

    let out = run(&[
        "--json",
        "provision",
        &missing,
        good,
        "--jobs",
        "1",
        "-m",
        m,
    ])
    .await;
    expect_code(&out, 3, "--json, one good, one missing");
    let got = lines(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    for v in &got {
        if v["container"] == good {
            assert_eq!(v["ok"], true, "{v}");
        } else {
            assert_eq!(v["container"], missing.as_str(), "{v}");
            assert_eq!(v["ok"], false, "{v}");
            assert_eq!(v["error"]["exit_code"], 3, "{v}");
        }
    }
}

/// As the user: a key whose comment holds terminal controls and a line
/// break makes the listing fail; the error quoting it in the summary table
/// is escaped (nothing the terminal acts on), `--json` keeps the bytes.
async fn check_container_text_is_escaped_in_the_table(env: &TestEnv) {
    let keys = Keys::new();
    let manifest = keys.manifest();
    let m = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| output(bottlectl(env, home.path(), args, &[]));
    let b = env.bottle();
    expect_code(&run(&["provision", b, "-m", m]).await, 0, "provision");
    let comment = "\x1b[2J\x1b]52;c;eA==\x07two\nlines";
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
                comment,
            ],
        )
        .await;
    assert!(add.success(), "ssh-add as root: {}", add.stderr_lossy());

    // A filter makes it the many-container command, even for one.
    let by_name = format!("name=^{b}$");
    let out = run(&["keys", "--filter", &by_name]).await;
    expect_code(&out, 3, "keys after a hostile comment");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "raw controls: {text:?}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), 2, "header and one row: {table}");
    assert!(table.contains("\\x1b[2J\\x1b]52;c;eA==\\x07two"), "{table}");

    let out = run(&["--json", "keys", "--filter", &by_name]).await;
    expect_code(&out, 3, "keys --json after a hostile comment");
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]["error"].to_string().contains("\\u001b[2J"),
        "{}",
        got[0]
    );
}

/// A filter's matches are worked on by the id it listed, never by name: a
/// labelled container *named* after an unlabelled one's full id (the engine
/// resolves a full id before a name) must not send the key to the other.
async fn check_filter_works_by_id_not_name(env: &TestEnv) {
    let keys = Keys::new();
    let manifest = keys.manifest();
    let m = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| output(bottlectl(env, home.path(), args, &[]));
    let key = env.unique_name("label");
    let mut spec = env
        .variant()
        .run_spec(env.image().to_string(), ["/bin/sleep", "infinity"]);
    spec.name = Some(env.unique_name("victim"));
    let victim = env.run_container(spec).await.expect("start the victim");
    let mut spec = env
        .variant()
        .run_spec(env.image().to_string(), ["/bin/sleep", "infinity"]);
    spec.name = Some(victim.id.clone());
    spec.labels.push((key.clone(), "x".into()));
    let decoy = env.run_container(spec).await.expect("start the decoy");
    env.own(decoy.id.clone()); // its name is the victim's id
    assert_eq!(decoy.name, victim.id);

    let out = run(&[
        "--json",
        "provision",
        "--filter",
        &format!("label={key}"),
        "-m",
        m,
    ])
    .await;
    expect_code(&out, 0, "provision --filter");
    let got = lines(&out);
    assert_eq!(
        named(&got),
        BTreeSet::from([victim.id.clone()]),
        "shown by name"
    );
    assert!(
        !has_config(env, &victim.name).await,
        "the unlabelled container got the key"
    );
    assert!(has_config(env, &decoy.id).await, "the labelled one did not");
}

/// A socket setting naming a file that is not bottle's socket (here root's
/// `/etc/...`, or a link to it) is refused: provision and deprovision leave
/// it as it was, never unlinked or replaced by a mode-666 socket.
async fn check_socket_settings_never_replace_a_file(env: &TestEnv) {
    let keys = Keys::new();
    let manifest = keys.manifest();
    let m = manifest.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let b = env.bottle();
    env.sh(
        "printf keep > /etc/bottle-important && chmod 600 /etc/bottle-important \
         && ln -s /etc/bottle-important /tmp/bottle-link",
        &[],
    )
    .await;
    let state = "stat -c '%F %a' /etc/bottle-important && cat /etc/bottle-important";
    let before = env.sh(state, &[]).await;
    assert_eq!(before, "regular file 600\nkeep");
    for (var, path) in [
        ("CLAUDE_BOTTLE_PUBLIC_SOCKET", "/etc/bottle-important"),
        ("CLAUDE_BOTTLE_AGENT_SOCKET", "/tmp/bottle-link"),
    ] {
        for args in [vec!["provision", b, "-m", m], vec!["deprovision", b]] {
            let out = output(bottlectl(env, home.path(), &args, &[(var, path)])).await;
            let err = String::from_utf8_lossy(&out.stderr);
            assert_ne!(out.status.code(), Some(0), "{var}={path} {args:?}: {err}");
            assert!(err.contains(path), "{var}={path} {args:?}: {err}");
            assert_eq!(env.sh(state, &[]).await, before, "{var}={path} {args:?}");
        }
    }
    assert!(!has_config(env, b).await, "nothing provisioned");
}

engine_tests!(
    check_socket_settings_never_replace_a_file,
    check_filter_works_by_id_not_name,
    check_filter_selects_the_labelled,
    check_one_failure_does_not_stop_the_other,
    check_container_text_is_escaped_in_the_table
);
