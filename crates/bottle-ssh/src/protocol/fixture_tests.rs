//! Every captured output in `fixtures/` (`*.debian.txt`: Docker on the
//! Debian-like test image, `*.busybox.txt`: Podman on busybox) read by its
//! reader, then damaged four ways that a dropped or forged stream produces:
//! cut at each line end and inside each line (reported as unfinished or
//! refused, never as done), a foreign line inserted at each position and
//! every line ended with `\r` (refused). One test per fixture and damage.
//!
//! The user-side scripts' `*.busybox.txt`, and the `escalation` and
//! `user_files_{replaced,not_clean}` ones, were captured once by running
//! each script through `DockerRuntime`/`PodmanRuntime::exec` in a container
//! of the test image (network `none`) with the arguments provision builds;
//! a change to what a script prints needs them captured again.

use super::*;

/// Did the script report that it finished (`done`, or the word that ends
/// it), as its reader reads `stdout`?
type Finished = fn(&str) -> Parsed<bool>;

fn user_files_finished(s: &str) -> Parsed<bool> {
    let r = user_files(s)?;
    Ok(r.done || r.not_clean)
}
fn verify_user_finished(s: &str) -> Parsed<bool> {
    Ok(verify_user(s)?.done)
}
fn deprovision_finished(s: &str) -> Parsed<bool> {
    Ok(deprovision(s)?.done)
}
fn escalation_finished(s: &str) -> Parsed<bool> {
    Ok(escalation(s)?.is_some())
}
fn provision_root_finished(s: &str) -> Parsed<bool> {
    Ok(provision_root(s)?.done)
}
fn verify_root_finished(s: &str) -> Parsed<bool> {
    Ok(verify_root(s)?.done)
}
fn preflight_root_finished(s: &str) -> Parsed<bool> {
    Ok(preflight_root(s)?.done)
}
/// `ssh-add -l` has no last word: any whole listing is finished.
fn listing_finished(s: &str) -> Parsed<bool> {
    listing(s).map(|_| true)
}

fn reads(fixture: &str, finished: Finished) {
    assert_eq!(finished(fixture), Ok(true), "{fixture}");
}

/// `has_end`: the script prints a last word, so a cut is seen; `ssh-add
/// -l`'s listing has none, and cut at a line end it is a shorter listing.
fn cut_at_each_line_end(fixture: &str, finished: Finished, has_end: bool) {
    let ends: Vec<usize> = fixture.match_indices('\n').map(|(i, _)| i + 1).collect();
    assert!(!ends.is_empty());
    for &end in &ends[..ends.len() - 1] {
        let cut = &fixture[..end];
        if has_end {
            assert_ne!(finished(cut), Ok(true), "read as finished: {cut:?}");
        } else {
            assert!(listing(cut).unwrap().len() < listing(fixture).unwrap().len());
        }
    }
}

fn cut_inside_each_line(fixture: &str, finished: Finished) {
    let mut start = 0;
    for line in fixture.split_inclusive('\n') {
        let line = line.trim_end_matches('\n');
        // Every cut inside the line: what a stream that stopped there holds.
        for (i, _) in line.char_indices().skip(1) {
            let cut = &fixture[..start + i];
            assert_ne!(finished(cut), Ok(true), "read as finished: {cut:?}");
        }
        start += line.len() + 1;
    }
}

fn a_foreign_line_anywhere(fixture: &str, finished: Finished) {
    let lines: Vec<&str> = fixture.lines().collect();
    for at in 0..=lines.len() {
        for foreign in ["bogus", "done extra", "removed", "SHA256:x", "\u{fffd}"] {
            let mut l = lines.clone();
            l.insert(at, foreign);
            let text = l.join("\n") + "\n";
            assert!(
                finished(&text).is_err(),
                "{foreign:?} at line {at} was read: {text:?}"
            );
        }
    }
}

fn carriage_returns(fixture: &str, finished: Finished) {
    let text = fixture.replace('\n', "\r\n");
    assert!(finished(&text).is_err(), "{text:?}");
}

macro_rules! fixture_tests {
    ($($name:ident: $file:literal, $finished:expr, $has_end:expr;)*) => {$(
        mod $name {
            use super::*;
            const FIXTURE: &str = include_str!(concat!("fixtures/", $file));
            #[test]
            fn reads() {
                super::reads(FIXTURE, $finished);
            }
            #[test]
            fn cut_at_each_line_end() {
                super::cut_at_each_line_end(FIXTURE, $finished, $has_end);
            }
            #[test]
            fn cut_inside_each_line() {
                super::cut_inside_each_line(FIXTURE, $finished);
            }
            #[test]
            fn a_foreign_line_anywhere() {
                super::a_foreign_line_anywhere(FIXTURE, $finished);
            }
            #[test]
            fn carriage_returns() {
                super::carriage_returns(FIXTURE, $finished);
            }
        }
    )*};
}

fixture_tests! {
    user_files_docker: "user_files.debian.txt", user_files_finished, true;
    user_files_podman: "user_files.busybox.txt", user_files_finished, true;
    user_files_replaced_docker: "user_files_replaced.debian.txt", user_files_finished, true;
    user_files_replaced_podman: "user_files_replaced.busybox.txt", user_files_finished, true;
    user_files_not_clean_docker: "user_files_not_clean.debian.txt", user_files_finished, true;
    user_files_not_clean_podman: "user_files_not_clean.busybox.txt", user_files_finished, true;
    verify_user_docker: "verify_user.debian.txt", verify_user_finished, true;
    verify_user_podman: "verify_user.busybox.txt", verify_user_finished, true;
    deprovision_user_docker: "deprovision_user.debian.txt", deprovision_finished, true;
    deprovision_user_podman: "deprovision_user.busybox.txt", deprovision_finished, true;
    keys_user_docker: "keys_user.debian.txt", listing_finished, false;
    keys_user_podman: "keys_user.busybox.txt", listing_finished, false;
    escalation_docker: "escalation.debian.txt", escalation_finished, true;
    escalation_podman: "escalation.busybox.txt", escalation_finished, true;
    provision_root_docker: "provision_root_started.debian.txt", provision_root_finished, true;
    provision_root_podman: "provision_root_started.busybox.txt", provision_root_finished, true;
    provision_root_reused_docker: "provision_root_reused.debian.txt", provision_root_finished, true;
    verify_root_docker: "verify_root.debian.txt", verify_root_finished, true;
    verify_root_podman: "verify_root.busybox.txt", verify_root_finished, true;
    preflight_root_docker: "preflight_root.debian.txt", preflight_root_finished, true;
    preflight_root_podman: "preflight_root.busybox.txt", preflight_root_finished, true;
    deprovision_root_docker: "deprovision_root.debian.txt", deprovision_finished, true;
    deprovision_root_podman: "deprovision_root.busybox.txt", deprovision_finished, true;
}

/// What the user's exec of provision reports on each engine: the ids, the
/// files of the earlier plan it removed, the if-clean refusal.
#[test]
fn user_files_fixtures_say_what_was_done() {
    for (docker, podman) in [
        (
            include_str!("fixtures/user_files_replaced.debian.txt"),
            include_str!("fixtures/user_files_replaced.busybox.txt"),
        ),
        (
            include_str!("fixtures/user_files_not_clean.debian.txt"),
            include_str!("fixtures/user_files_not_clean.busybox.txt"),
        ),
    ] {
        let (d, p) = (user_files(docker).unwrap(), user_files(podman).unwrap());
        for r in [&d, &p] {
            assert_eq!(
                r.ids,
                Some(Ids {
                    uid: 1000,
                    gid: 1000
                })
            );
            assert_eq!(r.done, !r.not_clean);
        }
        assert_eq!(d.removed.len(), p.removed.len());
    }
    let r = user_files(include_str!("fixtures/user_files_replaced.busybox.txt")).unwrap();
    // Three public keys of the earlier plan, its three signing files and
    // git's include.
    assert_eq!(r.removed.len(), 7, "{:?}", r.removed);
    assert!(r.removed.iter().all(|p| p.starts_with("/home/node/.")));
    assert_eq!(r.escalation, Some(Vec::new()));
    let r = user_files(include_str!("fixtures/user_files_not_clean.busybox.txt")).unwrap();
    assert!(r.not_clean && r.removed.is_empty() && r.escalation.is_none());
}

/// verify's user part on Podman/busybox: the key the agent holds, the
/// agent's memory and environment denied to the user.
#[test]
fn verify_user_on_podman_reads_the_key_and_the_denials() {
    let r = verify_user(include_str!("fixtures/verify_user.busybox.txt")).unwrap();
    let listed = listing(include_str!("fixtures/keys_user.busybox.txt")).unwrap();
    assert_eq!(r.public_keys, [listed[0].1]);
    assert_eq!(r.private_rc.as_deref(), Some("0"));
    assert_eq!(r.denied.len(), 2);
    assert!(r.denied.iter().all(|d| d.starts_with("/proc/")));
    assert_eq!(listed[0].3, "ED25519");
}
