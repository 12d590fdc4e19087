//! [`verify`]: the end state checked from inside the container, by root
//! and as the user.

use crate::protocol::{self, Stat};
use crate::{
    missing_of, protocol as protocol_error, render_config, render_known_hosts, render_public_keys,
    root_tools, script_error, scripts, ssh_dir, unix_now, unreadable, validate, validate_target,
    Check, Error, LoadedKey, Options, Plan, Target, VerifyReport, STATE_DIR,
};
use bottle_runtime::{ContainerRuntime, ExecRequest};
use sha2::{Digest, Sha256};

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// A window of a key's public-key bytes as the agent stream carries them
/// (ed25519 point, RSA modulus, ECDSA point), without NUL or newline (argv
/// and line framing), 12 to 24 bytes, as `printf` octal escapes and a
/// newline; `None` when no such window exists. Public bytes: finding them
/// raw in a file means a captured key stream, not a key file's text.
fn scan_pattern(k: &LoadedKey) -> Option<String> {
    scan_pattern_of(k.private.public_key())
}

/// [`scan_pattern`] of a public key (a CA's: `CertificateAuthority`).
fn scan_pattern_of(public: &ssh_key::PublicKey) -> Option<String> {
    use ssh_key::public::KeyData;
    let bytes: &[u8] = match public.key_data() {
        KeyData::Ed25519(pk) => pk.as_ref(),
        KeyData::Rsa(rsa) => rsa.n.as_bytes(),
        KeyData::Ecdsa(ec) => ec.as_sec1_bytes(),
        _ => return None,
    };
    let window = bytes
        .split(|b| *b == 0 || *b == b'\n')
        .max_by_key(|run| run.len())
        .filter(|run| run.len() >= 12)?;
    let window = &window[..window.len().min(24)];
    let mut out: String = window.iter().map(|b| format!("\\{b:03o}")).collect();
    out.push('\n');
    Some(out)
}

/// Programs verify's root part runs besides provision's.
const VERIFY_TOOLS: [&str; 3] = ["find", "head", "stat"];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check the end state from inside the container: processes, sockets,
/// files (content, mode, owner), and — as the user — what the public socket
/// lists, that the private socket and the agent's `/proc` files are closed
/// to it, and that no private key file exists.
///
/// Two execs: one as root, one as the user.
pub async fn verify(
    rt: &dyn ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
) -> Result<VerifyReport, Error> {
    verify_with(rt, container, plan, target, &Options::default()).await
}

/// [`verify`] with a passphrase source: only needed for encrypted PEM keys
/// (an OpenSSH key's fingerprint is readable without its passphrase).
pub async fn verify_with(
    rt: &dyn ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
) -> Result<VerifyReport, Error> {
    let forwarder = if opts.unguarded { "relay" } else { "guard" };
    verify_checking(
        rt,
        container,
        plan,
        target,
        opts,
        &root_tools(false),
        forwarder,
    )
    .await
}

/// [`verify_with`], with root's trust check over `tools` (the layout's).
pub(crate) async fn verify_checking(
    rt: &dyn ContainerRuntime,
    container: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
    tools: &[&str],
    forwarder: &str,
) -> Result<VerifyReport, Error> {
    const STEP: &str = "verify";
    validate_target(target)?;
    let mut valid = validate::validate_inner(plan, opts, false)?;
    let mut args = vec![
        STATE_DIR,
        &target.agent_socket,
        &target.public_socket,
        &target.user,
        &target.home,
        forwarder,
    ];
    args.extend(tools.iter().copied());
    args.extend(VERIFY_TOOLS);
    let mut patterns: String = valid.keys.iter().filter_map(scan_pattern).collect();
    // The CA keys never enter the container: look for their bytes too.
    for ca in crate::certificate::authorities(&valid) {
        patterns.extend(scan_pattern_of(ca.public_key()));
    }
    let out = rt
        .exec_script(
            container,
            &scripts::verify_root(),
            &args,
            Some(patterns.as_bytes()),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, container, &out));
    }
    let root =
        protocol::verify_root(&out.stdout_lossy()).map_err(|e| unreadable(STEP, container, e))?;
    if !root.done {
        return Err(protocol_error(
            STEP,
            container,
            "the root check did not finish",
        ));
    }
    // A certificate entry's key is the one provision recorded.
    let recorded: Vec<ssh_key::Certificate> = root
        .keystate
        .iter()
        .flat_map(|s| s.extra.iter())
        .filter_map(|w| crate::certificate::parse_recorded(w))
        .collect();
    crate::certificate::adopt_recorded(&mut valid, &recorded);
    let mut checks = Vec::new();
    // Nothing else is looked at when root's environment is not trusted:
    // the script stops before running any program of the container's.
    let missing = missing_of(&root.trust.missing, target);
    let mut problems: Vec<String> = root
        .trust
        .untrusted
        .iter()
        .map(ToString::to_string)
        .collect();
    problems.extend(missing.iter().map(|m| format!("missing {m}")));
    checks.push(check(
        "root's programs and directories are trusted",
        problems.is_empty(),
        if problems.is_empty() {
            "PATH, tools, state and socket directories root-owned, not group/other-writable"
                .to_string()
        } else {
            problems.join("; ")
        },
    ));
    if !problems.is_empty() {
        return Ok(VerifyReport { checks });
    }
    let Some(ids) = root.ids else {
        checks.push(check("user", false, format!("no user `{}`", target.user)));
        return Ok(VerifyReport { checks });
    };

    let mut pids = [String::new(), String::new()];
    for (i, (what, live)) in [("agent", &root.agent), ("forwarder", &root.forwarder)]
        .into_iter()
        .enumerate()
    {
        checks.push(check(
            format!("{what} running"),
            live.alive,
            format!("pid {}", live.pid),
        ));
        if live.alive {
            pids[i] = live.pid.clone();
        }
    }
    // Reported whenever it is off, so an unguarded bottle never passes
    // unnoticed; the sidecar layout reports its own guard.
    if opts.unguarded {
        checks.push(check(
            "guard",
            true,
            "off (guard = \"off\"): UNGUARDED, every request reaches the agent",
        ));
    } else if forwarder == "guard" {
        checks.push(check(
            "guard",
            true,
            "bottle-guard serves the public socket",
        ));
    }

    let content_of = |path: &str| -> String {
        root.file(path)
            .and_then(|f| f.content.clone())
            .unwrap_or_default()
    };
    let stat_of = |path: &str| -> Option<(String, u32, u32, String, String)> {
        root.file(path).map(|f: &Stat| {
            (
                f.mode.clone(),
                f.uid,
                f.gid,
                f.kind.to_string(),
                sha256_hex(f.content.as_deref().unwrap_or("").as_bytes()),
            )
        })
    };
    let dir = ssh_dir(target);
    let config = render_config(&valid, target);
    let known_hosts = render_known_hosts(&valid);
    // path, file type, mode, uid, gid, sha256 of the content
    type Want<'a> = (String, &'a str, &'a str, u32, u32, Option<String>);
    let expect: Vec<Want> = vec![
        (target.agent_socket.clone(), "socket", "600", 0, 0, None),
        (target.public_socket.clone(), "socket", "666", 0, 0, None),
        (STATE_DIR.to_string(), "directory", "700", 0, 0, None),
        (dir.clone(), "directory", "700", ids.uid, ids.gid, None),
        (
            format!("{dir}/config"),
            "regular_file",
            "600",
            ids.uid,
            ids.gid,
            Some(sha256_hex(config.as_bytes())),
        ),
    ];
    let mut expect_pub: Vec<(String, String)> = Vec::new();
    for (path, kind, mode, uid, gid, sum) in expect {
        let (ok, detail) = match stat_of(&path) {
            None => (false, "absent".to_string()),
            Some((m, u, g, k, s)) => {
                let ok = m == mode
                    && u == uid
                    && g == gid
                    && k == kind
                    && sum.as_deref().is_none_or(|want| want == s);
                let content = match &sum {
                    Some(want) if *want != s => ", content differs from the plan",
                    _ => "",
                };
                (ok, format!("{k} {m} {u}:{g}{content}"))
            }
        };
        checks.push(check(format!("file {path}"), ok, detail));
    }
    for (name, text) in render_public_keys(&valid) {
        expect_pub.push((format!("{dir}/{name}"), sha256_hex(text.as_bytes())));
    }
    let signing = crate::signing::render_files(valid.signing.as_ref(), target);
    if valid.signing.is_some() {
        for (name, text) in [
            (crate::signing::GITCONFIG_FILE, &signing[0]),
            (crate::signing::ALLOWED_SIGNERS_FILE, &signing[1]),
        ] {
            expect_pub.push((format!("{dir}/{name}"), sha256_hex(text.as_bytes())));
        }
    }
    let wrapper = format!("{dir}/{}", crate::signing::KEYGEN_WRAPPER);
    if valid.signing.is_some() {
        expect_pub.push((wrapper.clone(), sha256_hex(signing[3].as_bytes())));
    }
    for (path, sum) in expect_pub {
        let mode = if path == wrapper { "700" } else { "600" };
        let (ok, detail) = match stat_of(&path) {
            None => (false, "absent".to_string()),
            Some((m, u, g, k, s)) => (
                m == mode && u == ids.uid && g == ids.gid && k == "regular_file" && s == sum,
                format!(
                    "{k} {m} {u}:{g}{}",
                    if s == sum {
                        ""
                    } else {
                        ", content differs from the plan"
                    }
                ),
            ),
        };
        checks.push(check(format!("file {path}"), ok, detail));
    }
    let kh_path = format!("{dir}/known_hosts");
    let kh = stat_of(&kh_path);
    checks.push(match (&known_hosts, kh) {
        (None, None) => check(format!("file {kh_path}"), true, "absent (no KnownHostKey)"),
        (None, Some(_)) => check(
            format!("file {kh_path}"),
            false,
            "exists but no entry has a KnownHostKey",
        ),
        (Some(_), None) => check(format!("file {kh_path}"), false, "absent"),
        // ssh's UpdateHostKeys appends the server's other host keys (which
        // the server proves with the pinned one): extra lines are fine, a
        // missing pinned line is not.
        (Some(want), Some((m, u, g, k, _))) => {
            let have = content_of(&kh_path);
            let missing = want
                .lines()
                .filter(|l| !have.lines().any(|h| h == *l))
                .count();
            let extra = have
                .lines()
                .filter(|h| !want.lines().any(|l| l == *h))
                .count();
            check(
                format!("file {kh_path}"),
                m == "600" && u == ids.uid && g == ids.gid && k == "regular_file" && missing == 0,
                format!("{k} {m} {u}:{g}, {missing} pinned line(s) missing, {extra} other line(s)"),
            )
        }
    });
    let keyfiles = &root.keyfiles;
    let incomplete = root.keyscan_incomplete.as_deref();
    checks.push(check(
        "no private key file",
        keyfiles.is_empty() && incomplete.is_none(),
        match (keyfiles.is_empty(), incomplete) {
            (false, _) => keyfiles.join(", "),
            (true, Some(rc)) => format!("the search did not finish (grep exit {rc})"),
            (true, None) => format!(
                "none under /root /home /tmp /run /var/tmp and {}",
                target.home
            ),
        },
    ));

    let out = rt
        .exec(
            container,
            ExecRequest::script(
                &scripts::verify_user(),
                [
                    target.agent_socket.as_str(),
                    target.public_socket.as_str(),
                    pids[0].as_str(),
                    pids[1].as_str(),
                ],
            )
            .user(format!("{}:{}", ids.uid, ids.gid)),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, container, &out));
    }
    let user =
        protocol::verify_user(&out.stdout_lossy()).map_err(|e| unreadable(STEP, container, e))?;
    if !user.done {
        return Err(script_error(STEP, container, &out));
    }
    let mut listed = user.public_keys.clone();
    listed.sort();
    // A key whose recorded lifetime has (about) passed may be gone: the
    // agent's clock started a moment after the recorded one, so within a
    // second of the deadline either way is right.
    let state = &root.keystate;
    let now = unix_now();
    let expired = |fp: &str| {
        state
            .iter()
            .any(|s| s.fingerprint == fp && s.deadline.is_some_and(|d| d <= now + 1))
    };
    listed.retain(|fp| !expired(fp));
    let expected: Vec<String> = valid
        .fingerprints()
        .into_iter()
        .filter(|fp| !expired(fp))
        .collect();
    for k in &valid.keys {
        let want: Vec<String> = k.restricted_to();
        let have = state.iter().find(|s| s.fingerprint == k.fingerprint);
        let (ok, detail) = match have {
            None => (false, "no provision record for this key".to_string()),
            Some(s) if s.hosts != want => (
                false,
                format!("recorded {:?}, the plan wants {want:?}", s.hosts),
            ),
            Some(_) if want.is_empty() => (
                true,
                format!("not destination-restricted: {}", k.unrestricted.join("; ")),
            ),
            Some(_) => (true, format!("restricted to {}", want.join(", "))),
        };
        checks.push(check(
            format!("key {} destination restriction", k.fingerprint),
            ok,
            detail,
        ));
    }
    for (name, ok, detail) in crate::certificate::checks(&valid, now) {
        checks.push(check(name, ok, detail));
    }
    checks.push(check(
        "public socket lists exactly the plan's keys",
        listed == expected,
        format!("listed {listed:?}, expected {expected:?}"),
    ));
    checks.push(match user.escalation.clone() {
        None => check("the user cannot become root", false, "could not check"),
        Some(how) if how.is_empty() => check(
            "the user cannot become root",
            true,
            "no passwordless sudo, no setuid/setgid-root program outside the allow-list",
        ),
        Some(how) => check("the user cannot become root", false, how.join("; ")),
    });
    let private_rc = user.private_rc.as_deref().unwrap_or("?");
    // ssh-add exits 2 when it cannot talk to the agent at all.
    checks.push(check(
        "private socket refuses the user",
        private_rc == "2",
        format!("ssh-add -l as uid {} exited {private_rc}", ids.uid),
    ));
    for (i, what) in ["agent", "forwarder"].into_iter().enumerate() {
        if pids[i].is_empty() {
            continue;
        }
        for file in ["mem", "environ"] {
            let path = format!("/proc/{}/{file}", pids[i]);
            let denied = user.denied.contains(&path);
            checks.push(check(
                format!("{what} {file} unreadable by the user"),
                denied,
                path,
            ));
        }
    }
    Ok(VerifyReport { checks })
}
