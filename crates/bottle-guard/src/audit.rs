//! The record of every request the guard sees: one JSON object a line in
//! `audit.jsonl` beside the policy (root-only), at most [`MAX_LOG`] bytes
//! before it is renamed to `audit.jsonl.1` (the previous one is dropped),
//! so a flood keeps at most twice that on disk.

use crate::{msg, request_name, Allowed, Verdict};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The record file's name in the audit directory.
pub const LOG: &str = "audit.jsonl";
/// The previous one, after rotation.
pub const LOG_OLD: &str = "audit.jsonl.1";
/// Bytes one file may hold before it is rotated.
pub const MAX_LOG: u64 = 1 << 20;
/// The longest field taken from a request (a user name, a namespace, a
/// reason quoting one): longer ones are cut, so one record stays small.
const MAX_FIELD: usize = 256;

/// One request as recorded. `id` comes first: readers find a record by the
/// line's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub id: String,
    pub time: String,
    pub connection: u64,
    pub request: String,
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// On the decision of a held request: the id of its `pending` record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The record of one decision (without `id` and `time`): `body` is the
/// request frame's body, `aliases` the policy's host key → aliases.
pub fn describe(
    body: &[u8],
    verdict: &Verdict,
    aliases: &std::collections::BTreeMap<String, Vec<String>>,
) -> Record {
    let kind = body.first().copied().unwrap_or(0);
    let request = match kind {
        msg::EXTENSION if is_session_bind(&body[1..]) => "session-bind",
        _ => request_name(kind),
    };
    let mut r = Record {
        request: request.to_string(),
        ..Record::default()
    };
    match verdict {
        Verdict::Refuse(why) => {
            r.decision = "deny".into();
            r.reason = Some(cut(why));
        }
        Verdict::Forward(allowed) => {
            r.decision = "allow".into();
            match allowed {
                Allowed::List => {}
                Allowed::Bind { host_key } => r.host_key = Some(host_key.clone()),
                Allowed::Login {
                    key,
                    user,
                    host_key,
                    ..
                } => {
                    r.key = Some(key.clone());
                    r.purpose = Some("login".into());
                    r.user = Some(cut(user));
                    r.alias = host_key
                        .as_ref()
                        .and_then(|h| aliases.get(h))
                        .map(|a| a.join(","));
                    r.host_key = host_key.clone();
                }
                Allowed::Sshsig {
                    key,
                    namespace,
                    hash,
                    ..
                } => {
                    r.key = Some(key.clone());
                    r.purpose = Some("sshsig".into());
                    r.namespace = Some(cut(namespace));
                    r.hash = Some(hash.clone());
                }
            }
        }
    }
    r
}

fn is_session_bind(body: &[u8]) -> bool {
    crate::wire::Reader::new(body)
        .text()
        .is_ok_and(|n| n == "session-bind@openssh.com")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC).
// Hand-written: a date crate would double this static executable for one
// formatting function.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The record file of one guard: ids are `<start>-<n>` (the guard's start
/// in seconds, base 36, and a counter), unique across restarts.
pub struct Log {
    dir: PathBuf,
    start: String,
    next: AtomicU64,
    file: Mutex<Option<(File, u64)>>,
}

impl Log {
    pub fn new(dir: &Path) -> Log {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Log {
            dir: dir.to_path_buf(),
            start: base36(secs),
            next: AtomicU64::new(1),
            file: Mutex::new(None),
        }
    }

    /// Write `record` (given its id and time now); returns it as written.
    /// A record that cannot be written is lost, never a reason to stop
    /// serving.
    pub fn write(&self, mut record: Record) -> Record {
        record.id = format!(
            "{}-{}",
            self.start,
            self.next.fetch_add(1, Ordering::SeqCst)
        );
        record.time = rfc3339(SystemTime::now());
        let mut line = serde_json::to_vec(&record).unwrap_or_default();
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file
            .as_ref()
            .is_some_and(|(_, size)| size + line.len() as u64 > MAX_LOG)
        {
            *file = None;
            let _ = std::fs::rename(self.dir.join(LOG), self.dir.join(LOG_OLD));
        }
        if file.is_none() {
            *file = open(&self.dir.join(LOG)).ok();
        }
        if let Some((f, size)) = file.as_mut() {
            if f.write_all(&line).is_ok() {
                *size += line.len() as u64;
            }
        }
        record
    }
}

fn open(path: &Path) -> std::io::Result<(File, u64)> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(951_782_400_123);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_796_601_599);
        assert_eq!(rfc3339(t), "2026-12-06T23:59:59.000Z");
    }

    #[test]
    fn the_log_rotates_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::new(dir.path());
        let record = Record {
            request: "list".into(),
            decision: "allow".into(),
            ..Record::default()
        };
        let mut ids = std::collections::HashSet::new();
        for _ in 0..40_000 {
            assert!(ids.insert(log.write(record.clone()).id));
        }
        let size = |n| std::fs::metadata(dir.path().join(n)).unwrap().len();
        assert!(size(LOG) <= MAX_LOG && size(LOG_OLD) <= MAX_LOG);
        assert!(size(LOG_OLD) > MAX_LOG / 2, "rotated");
        let text = std::fs::read_to_string(dir.path().join(LOG)).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert!(last["id"].as_str().unwrap().ends_with("-40000"), "{last}");
        assert!(text.starts_with("{\"id\":\""));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(LOG))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn fields_from_the_bottle_are_cut_and_escaped_by_json() {
        let v = Verdict::Refuse(format!("{}\u{1b}[2J\"x", "u".repeat(1000)));
        let r = describe(&[13], &v, &Default::default());
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains('\u{1b}'), "{json}");
        assert!(r.reason.unwrap().chars().count() <= MAX_FIELD + 1);
        assert_eq!(r.request, "sign");
        assert_eq!(r.decision, "deny");
    }
}
