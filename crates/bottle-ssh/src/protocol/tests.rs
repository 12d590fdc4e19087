//! The readers on output captured from real runs (Docker on the Debian-like
//! image, Podman on busybox: `fixtures/`), on Podman's dropped output, and
//! on hostile or garbled output.

use super::*;

const PROVISION_STARTED: &str = include_str!("fixtures/provision_root_started.debian.txt");
const PROVISION_STARTED_BUSYBOX: &str = include_str!("fixtures/provision_root_started.busybox.txt");
const PROVISION_REUSED: &str = include_str!("fixtures/provision_root_reused.debian.txt");
const USER_FILES: &str = include_str!("fixtures/user_files.debian.txt");
const VERIFY_ROOT: &str = include_str!("fixtures/verify_root.debian.txt");
const VERIFY_ROOT_BUSYBOX: &str = include_str!("fixtures/verify_root.busybox.txt");
const VERIFY_USER: &str = include_str!("fixtures/verify_user.debian.txt");
const PREFLIGHT: &str = include_str!("fixtures/preflight_root.debian.txt");
const PREFLIGHT_BUSYBOX: &str = include_str!("fixtures/preflight_root.busybox.txt");
const DEPROVISION: &str = include_str!("fixtures/deprovision_root.debian.txt");
const DEPROVISION_BUSYBOX: &str = include_str!("fixtures/deprovision_root.busybox.txt");
const DEPROVISION_USER: &str = include_str!("fixtures/deprovision_user.debian.txt");
const KEYS_ROOT: &str = include_str!("fixtures/keys_root.debian.txt");
const KEYS_USER: &str = include_str!("fixtures/keys_user.debian.txt");

#[test]
fn provision_root_reads_a_fresh_and_a_reused_agent() {
    let r = provision_root(PROVISION_STARTED).unwrap();
    assert!(r.done && !r.agent_unusable);
    assert_eq!(
        r.agent,
        Some(ProcessReport {
            pid: 58,
            started: true
        })
    );
    assert_eq!(
        r.forwarder,
        Some(ProcessReport {
            pid: 65,
            started: true
        })
    );
    assert_eq!(r.keys.len(), 2);
    assert!(r.trust.untrusted.is_empty() && r.trust.missing.is_empty());

    let r = provision_root(PROVISION_REUSED).unwrap();
    assert_eq!(
        r.agent,
        Some(ProcessReport {
            pid: 58,
            started: false
        })
    );
    assert_eq!(
        r.forwarder,
        Some(ProcessReport {
            pid: 65,
            started: false
        })
    );
    assert_eq!(r.keys, provision_root(PROVISION_STARTED).unwrap().keys);

    let r = provision_root(PROVISION_STARTED_BUSYBOX).unwrap();
    assert!(r.done && r.agent.unwrap().started);
}

#[test]
fn provision_root_reads_refusals() {
    let out = "untrusted /usr/local/bin writable by group or others (mode 777)\n\
               untrusted /usr/local/bin writable by group or others (mode 777)\n\
               missing tool socat\nos debian \"ubuntu\"\ndone\n";
    let r = provision_root(out).unwrap();
    assert_eq!(r.trust.untrusted.len(), 1, "duplicates folded");
    assert_eq!(r.trust.untrusted[0].path, "/usr/local/bin");
    assert_eq!(r.trust.missing, [Absent::Tool("socat".into())]);
    assert_eq!(r.trust.os, ["debian", "ubuntu"]);
    assert!(r.agent.is_none());
}

#[test]
fn user_files_reads_ids_and_escalation() {
    let r = user_files(USER_FILES).unwrap();
    assert_eq!(
        r.ids,
        Some(Ids {
            uid: 1000,
            gid: 1000
        })
    );
    assert_eq!(r.escalation, Some(Vec::new()));
    assert!(r.done);
    let r = user_files("missing home\n").unwrap();
    assert_eq!(r.missing, [Absent::Home]);
    assert!(r.ids.is_none() && !r.done && r.escalation.is_none());
    let r = user_files(
        "uid 1000\ngid 1000\nescalation sudo\nescalation setuid /bin/x\nescalation-checked\ndone\n",
    )
    .unwrap();
    let how = r.escalation.unwrap();
    assert_eq!(how.len(), 2);
    assert!(how[1].contains("/bin/x"));
}

#[test]
fn not_clean_is_read_and_never_with_done() {
    let (r, ns) = sidecar_exec("not-clean\n").unwrap();
    assert!(r.not_clean && !r.done && ns.is_none());
    let u = user_files("uid 1000\ngid 1000\nnot-clean\n").unwrap();
    assert!(u.not_clean && !u.done);
    assert!(!user_files(USER_FILES).unwrap().not_clean);
    // Changed nothing and finished: one of the two is a lie.
    assert!(provision_root("not-clean\ndone\n").is_err());
    assert!(sidecar_exec("netns net:[4026532]\nnot-clean\ndone\n").is_err());
    assert!(user_files("uid 1000\ngid 1000\nnot-clean\nescalation-checked\ndone\n").is_err());
    assert!(provision_root("not-clean extra\n").is_err());
}

#[test]
fn verify_root_reads_files_and_their_content() {
    for out in [VERIFY_ROOT, VERIFY_ROOT_BUSYBOX] {
        let r = verify_root(out).unwrap();
        assert!(r.done);
        assert_eq!(
            r.ids,
            Some(Ids {
                uid: 1000,
                gid: 1000
            })
        );
        assert!(r.agent.alive && r.forwarder.alive);
        let sock = r.file("/run/claude-bottle-agent.sock").unwrap();
        assert_eq!(
            (sock.kind, sock.mode.as_str(), sock.uid),
            ("socket", "600", 0)
        );
        assert!(sock.content.is_none());
        let config = r.file("/home/node/.ssh/config").unwrap();
        assert_eq!(config.kind, "regular_file");
        let text = config.content.as_deref().unwrap();
        assert!(text.starts_with("# Written by bottle"), "{text}");
        assert!(text.ends_with("CheckHostIP no\n\n"), "{text:?}");
        assert_eq!(r.keystate.len(), 2);
        assert!(r.keyfiles.is_empty() && r.keyscan_incomplete.is_none());
    }
    let r = verify_root(VERIFY_ROOT).unwrap();
    let restricted = r.keystate.iter().find(|k| !k.hosts.is_empty()).unwrap();
    assert_eq!(restricted.hosts, ["git@a.example"]);
    assert_eq!(restricted.deadline, None);
}

#[test]
fn verify_root_keeps_a_files_bytes_apart_from_the_report() {
    // A file whose lines look like report lines stays content.
    let out = "uid 1000\ngid 1000\nagent 5 alive\nforwarder 6 alive\n\
               stat 600 1000 1000 8180 /h/.ssh/config\ncontent /h/.ssh/config\n\
               |done\n|keyfile /x\n|\r\n\nend-content\ndone\n";
    let r = verify_root(out).unwrap();
    assert_eq!(
        r.file("/h/.ssh/config").unwrap().content.as_deref(),
        Some("done\nkeyfile /x\n\r\n")
    );
    assert!(r.keyfiles.is_empty());
    // A block that never ends, or an unprefixed line inside it, is refused.
    assert!(verify_root("stat 600 1 1 8180 /f\ncontent /f\n|x\n").is_err());
    assert!(verify_root("stat 600 1 1 8180 /f\ncontent /f\nagent 1 alive\nend-content\n").is_err());
    assert!(
        verify_root("content /f\n|x\nend-content\n").is_err(),
        "content without stat"
    );
}

#[test]
fn verify_root_reads_a_finding() {
    let out = "uid 1000\ngid 1000\nagent 5 dead\nforwarder none dead\n\
               keyfile /home/node/stolen\nkeyscan-incomplete 2\nkeyscan-incomplete grep\ndone\n";
    let r = verify_root(out).unwrap();
    assert!(!r.agent.alive && r.agent.pid == "5" && r.forwarder.pid == "none");
    assert_eq!(r.keyfiles, ["/home/node/stolen"]);
    assert_eq!(
        r.keyscan_incomplete.as_deref(),
        Some("2"),
        "the first reason kept"
    );
}

#[test]
fn verify_user_reads_the_users_view() {
    let r = verify_user(VERIFY_USER).unwrap();
    assert_eq!(r.public_keys.len(), 2);
    assert_eq!(r.private_rc.as_deref(), Some("2"));
    assert_eq!(r.denied.len(), 4);
    assert_eq!(r.escalation, Some(Vec::new()));
    assert!(r.done);
}

#[test]
fn preflight_reads_tools_user_and_ssh() {
    for out in [PREFLIGHT, PREFLIGHT_BUSYBOX] {
        let r = preflight_root(out).unwrap();
        assert!(r.done);
        assert_eq!(r.uid, Some(Some(1000)));
        assert_eq!(r.home, Some(true));
        assert!(r.tools.iter().any(|(t, _)| t == "ssh-agent"));
        assert!(r.ssh_version.unwrap().unwrap().starts_with("OpenSSH_"));
    }
    let r = preflight_root("user -\nhome no\nssh-version -\ndone\n").unwrap();
    assert_eq!(
        (r.uid, r.home, r.ssh_version),
        (Some(None), Some(false), Some(None))
    );
}

#[test]
fn deprovision_reads_what_was_stopped_and_removed() {
    for out in [DEPROVISION, DEPROVISION_BUSYBOX] {
        let r = deprovision(out).unwrap();
        assert!(r.done && r.stopped_agent.is_some() && r.stopped_forwarder.is_some());
        assert!(r.removed.iter().any(|p| p == "/run/claude-bottle"));
    }
    let r = deprovision(DEPROVISION_USER).unwrap();
    assert_eq!(r.removed.len(), 5);
    assert_eq!(deprovision("done\n").unwrap().removed.len(), 0);
}

#[test]
fn key_listing_and_record() {
    let keys = listing(KEYS_USER).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].0, 256);
    assert_eq!(keys[1].3, "RSA");
    let record = key_record(KEYS_ROOT);
    assert_eq!(record.len(), 2);
    assert!(listing("The agent has no identities.\n").is_err());
    assert_eq!(
        listing_line("256 SHA256:abc/+x a comment (with) spaces (ED25519)"),
        Some((256, "SHA256:abc/+x", "a comment (with) spaces", "ED25519"))
    );
    assert!(listing_line("3072 MD5:aa:bb c (RSA)").is_none());
    // Lines provision did not write are left out of the record.
    let record = key_record("SHA256:a 12 -\ngarbage\nSHA256:b x -\nSHA256:c - - cert:AAAA\n");
    assert_eq!(record.len(), 2);
    assert_eq!(record[1].extra, ["cert:AAAA"]);
}

#[test]
fn podmans_dropped_output_reads_as_not_done() {
    // Podman 4.3 may return no output at all, with exit 0.
    assert!(!provision_root("").unwrap().done);
    assert!(!user_files("").unwrap().done);
    assert!(!verify_root("").unwrap().done);
    assert!(!verify_user("").unwrap().done);
    assert!(!deprovision("").unwrap().done);
    assert!(!preflight_root("").unwrap().done);
    assert_eq!(escalation("").unwrap(), None);
}

#[test]
fn hostile_and_garbled_lines_are_refused_and_named() {
    let cases = [
        "agent-started 12abc\ndone\n",
        "agent-started -1\n",
        "key not-a-fingerprint\n",
        "key SHA256:a SHA256:b\n",
        "missing tool\n",
        "missing nothing\n",
        "done please\n",
        "\x1b[2J\x1b]0;owned\x07\n",
        "forwarder-reused 99999999999999999999\n",
        "Done\n",
    ];
    for out in cases {
        let e = provision_root(out).unwrap_err();
        let first = out.lines().next().unwrap();
        assert!(e.0.contains(&format!("`{first}`")), "{e}");
    }
    // A line of the other exec is not accepted in this one's report.
    assert!(user_files("agent-started 5\n").is_err());
    assert!(verify_user("keyfile /x\n").is_err());
    assert!(escalation("escalation maybe\n").is_err());
    assert!(deprovision("stopped everything\n").is_err());
    assert!(verify_root("stat 600 x 0 8180 /f\n").is_err());
    assert!(verify_root("stat 600 0 0\n").is_err());
    assert!(verify_root("agent 5 zombie\n").is_err());
    assert!(verify_root("agent ../5 alive\n").is_err());
    assert!(preflight_root("user root\n").is_err());
}

#[test]
fn long_lines_are_cut_and_lists_bounded() {
    let e = provision_root(&format!("{}\n", "x".repeat(10_000))).unwrap_err();
    assert!(e.0.len() < 300, "{}", e.0.len());
    let many: String = (0..1000)
        .map(|i| format!("untrusted /p{i} writable\n"))
        .collect();
    assert_eq!(
        provision_root(&many).unwrap().trust.untrusted.len(),
        MAX_UNTRUSTED
    );
    let keys: String = (0..1000).map(|i| format!("key SHA256:{i}\n")).collect();
    assert_eq!(provision_root(&keys).unwrap().keys.len(), MAX_ITEMS);
}

#[test]
fn a_carriage_return_is_part_of_the_line() {
    assert!(provision_root("done\r\n").is_err());
}

/// Every `echo "WORD…"` / `printf '…WORD…'` report line in the scripts
/// starts with a word of [`word`], and every word is printed by a script.
#[test]
fn every_word_the_scripts_print_is_known() {
    let scripts: String = crate::scripts::all()
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join("\n");
    let mut printed = std::collections::BTreeSet::new();
    for line in scripts.lines() {
        for part in line.split("echo \"").skip(1) {
            let w: String = part
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            // Messages to stderr start with a variable or a capital, or
            // are redirected: only stdout report lines count.
            let rest = &part[w.len()..];
            let to_stderr = rest
                .split(['"'])
                .nth(1)
                .is_some_and(|after| after.trim_start().starts_with(">&2"));
            if !w.is_empty()
                && !to_stderr
                && (rest.starts_with(' ') || rest.starts_with('"') || rest.starts_with('$'))
            {
                printed.insert(w);
            }
        }
    }
    // Printed into a variable and filtered out before the report.
    const INTERNAL: &[&str] = &["keyscan-end"];
    for w in printed.iter().filter(|w| !INTERNAL.contains(&w.as_str())) {
        assert!(
            word::ALL.contains(&w.as_str()),
            "the scripts print `{w}`, protocol.rs does not know it"
        );
    }
    for w in word::ALL {
        assert!(
            printed.contains(*w)
                || scripts.contains(&format!("\"{w} "))
                || scripts.contains(&format!(" {w} "))
                || scripts.contains(&format!("/{w} /")),
            "`{w}` is in protocol.rs but no script prints it"
        );
    }
}
