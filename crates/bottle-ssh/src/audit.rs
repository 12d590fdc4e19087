//! The guard's records, read out of the container that holds them: the
//! bottle (layout `bottle`) or its sidecar ([`crate::sidecar::record_holder`]).
//! One root exec of shell builtins only (no program of the image runs), the
//! script, its reader and its tests here.

use crate::{protocol, script_error, Error, STATE_DIR};
use bottle_runtime::{ContainerRuntime, ExecRequest};

pub use bottle_guard::audit::{rfc3339, Record};

/// The longest record line read back (the guard writes well under 2 KiB).
pub const MAX_LINE: usize = 8 * 1024;
/// At most this many records per read: two files of 1 MiB hold fewer.
pub const MAX_RECORDS: usize = 50_000;
/// The read's output bound: two files of 1 MiB and a `r ` per record fit
/// well within it.
const MAX_OUTPUT: usize = 8 << 20;

/// `$1` state directory, `$2` the id of the last record already read
/// (empty: all). Prints `r JSON` for each record after that one (all of
/// them when it is no longer there), then `done`.
const READ: &str = concat!("\n", include_str!("scripts/audit/read.sh"));

/// `$1` state directory, `$2` a held request's id, `$3` the answer
/// (`allow`, `allow SECONDS`, `deny`). Prints `unknown` when no request of
/// that id waits, else writes the answer (one line, one write: the guard
/// takes only a whole line) and prints `done`. Builtins only.
const ANSWER: &str = concat!("\n", include_str!("scripts/audit/answer.sh"));

/// An operator's answer to a held signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it through; with a grant, later requests of the same key and
    /// destination too, for this many seconds.
    Allow {
        grant: Option<u32>,
    },
    Deny,
}

/// Answer the held request `id` in `holder` (see [`locate`]). `Ok(false)`:
/// no request of that id is waiting (unknown, answered or timed out).
pub async fn answer(
    rt: &dyn ContainerRuntime,
    holder: &str,
    id: &str,
    decision: Decision,
) -> Result<bool, Error> {
    const STEP: &str = "answer a held request";
    if !is_id(id) {
        return Err(crate::protocol(
            STEP,
            holder,
            format!("{id:?} is not a record id"),
        ));
    }
    let text = match decision {
        Decision::Allow { grant: None } => "allow".to_string(),
        Decision::Allow { grant: Some(s) } => format!("allow {s}"),
        Decision::Deny => "deny".to_string(),
    };
    let out = rt
        .exec(
            holder,
            ExecRequest::script(ANSWER, [STATE_DIR, id, &text]).user("0"),
        )
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, holder, &out));
    }
    match out.stdout_lossy().trim() {
        "done" => Ok(true),
        "unknown" => Ok(false),
        other => Err(crate::protocol(
            STEP,
            holder,
            format!("unexpected output {other:?}"),
        )),
    }
}

/// This module's scripts, for the lint test (shellcheck, `dash -n`,
/// `busybox sh -n`); their words are read here, not by `protocol`.
#[cfg(test)]
pub(crate) fn scripts() -> Vec<(&'static str, String)> {
    vec![
        ("audit_read", READ.to_string()),
        ("audit_answer", ANSWER.to_string()),
    ]
}

/// An id as the guard writes it (`<base36>-<n>`): anything else is never
/// put into the script's pattern.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `container`'s id, and where its records are in `layout`: the bottle
/// itself, or its sidecar.
pub async fn locate(
    admin: &dyn bottle_runtime::ContainerAdmin,
    layout: &crate::sidecar::AgentLayout,
    container: &str,
) -> Result<(String, String), Error> {
    let info = admin
        .inspect(container)
        .await
        .map_err(Error::runtime("inspect the bottle"))?;
    let holder = match layout {
        crate::sidecar::AgentLayout::Sidecar { .. } => {
            crate::sidecar::record_holder(admin, &info.id).await?
        }
        _ => info.id.clone(),
    };
    Ok((info.id, holder))
}

/// The records in `holder` after the one with id `after` (all: `None`).
/// `holder` is the bottle, or in the `sidecar` layout the sidecar.
pub async fn read(
    rt: &dyn ContainerRuntime,
    holder: &str,
    after: Option<&str>,
) -> Result<Vec<Record>, Error> {
    const STEP: &str = "read the audit records";
    let after = after.unwrap_or("");
    if !after.is_empty() && !is_id(after) {
        return Err(protocol(
            STEP,
            holder,
            format!("{after:?} is not a record id"),
        ));
    }
    let request = ExecRequest::script(READ, [STATE_DIR, after])
        .user("0")
        .max_output(MAX_OUTPUT);
    let out = rt
        .exec(holder, request)
        .await
        .map_err(Error::runtime(STEP))?;
    if !out.success() {
        return Err(script_error(STEP, holder, &out));
    }
    parse(&out.stdout_lossy()).map_err(|e| crate::unreadable(STEP, holder, e))
}

/// A reader of one holder's records that remembers the last one read, so
/// each record comes once (`audit --follow`, `watch --audit`). Moved to a
/// new holder (a restarted bottle, a replaced sidecar) it keeps its place:
/// what follows that id there, or everything when the id is gone.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    /// Where the records are (see [`locate`]); empty: not located yet.
    pub holder: String,
    last: Option<String>,
}

impl Tail {
    pub fn new(holder: String) -> Tail {
        Tail { holder, last: None }
    }

    /// The records written since the last call.
    pub async fn next(&mut self, rt: &dyn ContainerRuntime) -> Result<Vec<Record>, Error> {
        let records = read(rt, &self.holder, self.last.as_deref()).await?;
        if let Some(r) = records.last() {
            self.last = Some(r.id.clone());
        }
        Ok(records)
    }
}

/// The script's output: `r JSON` lines, each a whole record, then `done`.
fn parse(text: &str) -> Result<Vec<Record>, protocol::Unreadable> {
    use protocol::Unreadable;
    let mut records = Vec::new();
    let mut done = false;
    for line in text.lines() {
        if done {
            return Err(Unreadable::line("a line after done", line));
        }
        if line == "done" {
            done = true;
            continue;
        }
        let Some(json) = line.strip_prefix("r ") else {
            return Err(Unreadable::line("unexpected line", line));
        };
        if json.len() > MAX_LINE {
            return Err(Unreadable::line("a record longer than 8 KiB", line));
        }
        if records.len() >= MAX_RECORDS {
            return Err(Unreadable::line("more records than two files hold", line));
        }
        let record: Record = serde_json::from_str(json)
            .map_err(|_| Unreadable::line("a record that is not the guard's JSON", line))?;
        records.push(record);
    }
    if !done {
        return Err(Unreadable("the script did not finish".into()));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"id":"abc-1","time":"2026-12-07T01:00:00.000Z","connection":1,"request":"list","decision":"allow"}"#;
    const B: &str = r#"{"id":"abc-2","time":"2026-12-07T01:00:01.000Z","connection":2,"request":"sign","decision":"deny","reason":"x"}"#;

    #[test]
    fn records_read_back_and_anything_else_is_refused() {
        let r = parse(&format!("r {A}\nr {B}\ndone\n")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].reason.as_deref(), Some("x"));
        for bad in [
            format!("r {A}\n"),
            format!("r {A}\ndone\nr {B}\n"),
            format!("{A}\ndone\n"),
            "r {\"id\":\"x\"}\ndone\n".to_string(),
            format!(
                "r {}\ndone\n",
                A.replace("\"list\"", "\"list\",\"extra\":1")
            ),
            format!("r {}\ndone\n", A.replace("abc-1", &"a".repeat(MAX_LINE))),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    /// The answer script under dash and busybox sh: only a waiting id is
    /// answered, once; a bad id never reaches a path.
    #[test]
    fn an_answer_goes_only_to_a_waiting_request() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        std::fs::create_dir(state.join("pending")).unwrap();
        std::fs::create_dir(state.join("approvals")).unwrap();
        std::fs::write(state.join("pending/abc-7"), "{}").unwrap();
        for shell in ["dash", "busybox"] {
            let run = |id: &str| {
                let mut cmd = std::process::Command::new(shell);
                if shell == "busybox" {
                    cmd.arg("sh");
                }
                cmd.args(["-c", ANSWER, "sh"])
                    .arg(state)
                    .args([id, "allow 60"])
                    .output()
                    .unwrap()
            };
            let _ = std::fs::remove_file(state.join("approvals/abc-7"));
            assert_eq!(
                String::from_utf8_lossy(&run("abc-7").stdout),
                "done\n",
                "{shell}"
            );
            assert_eq!(
                std::fs::read_to_string(state.join("approvals/abc-7")).unwrap(),
                "allow 60\n"
            );
            assert_eq!(
                String::from_utf8_lossy(&run("abc-7").stdout),
                "unknown\n",
                "answered"
            );
            assert_eq!(String::from_utf8_lossy(&run("abc-8").stdout), "unknown\n");
            assert!(!run("../pending/abc-7").status.success(), "{shell}");
        }
    }

    /// The script itself, under dash and busybox sh, on a state directory
    /// with a rotated file: everything, then what follows an id, then all
    /// again when that id is gone.
    #[test]
    fn the_script_prints_what_follows_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        std::fs::write(state.join("audit.jsonl.1"), format!("{A}\n")).unwrap();
        std::fs::write(state.join("audit.jsonl"), format!("{B}\n")).unwrap();
        for shell in ["dash", "busybox"] {
            let run = |after: &str| {
                let mut cmd = std::process::Command::new(shell);
                if shell == "busybox" {
                    cmd.arg("sh");
                }
                let out = cmd
                    .args(["-c", READ, "sh"])
                    .arg(state)
                    .arg(after)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
                parse(&String::from_utf8(out.stdout).unwrap()).unwrap()
            };
            let ids = |r: Vec<Record>| r.into_iter().map(|r| r.id).collect::<Vec<_>>();
            assert_eq!(ids(run("")), ["abc-1", "abc-2"], "{shell}");
            assert_eq!(ids(run("abc-1")), ["abc-2"], "{shell}");
            assert!(ids(run("abc-2")).is_empty(), "{shell}");
            assert_eq!(ids(run("gone-9")), ["abc-1", "abc-2"], "{shell}");
        }
    }
}
