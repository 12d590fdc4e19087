//! Holding signatures: the operator's approval and a limit per key.
//!
//! A signature whose rule says `approve` waits (in its client's thread;
//! ssh simply waits) for an answer file that root writes beside the
//! records: `approvals/<id>` holding `allow`, `allow SECONDS` (a grant for
//! later requests of the same key and destination) or `deny`. While it
//! waits, `pending/<id>` exists, so an answer to an id that is not waiting
//! is refused by the writer. A limit (`max=N/SECONDS`) counts the
//! signatures forwarded per key in a sliding window.

use crate::policy::{Approve, Hold};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The directory of pending requests, beside the records.
pub const PENDING: &str = "pending";
/// The directory of answers.
pub const APPROVALS: &str = "approvals";
/// How often a held request looks for its answer.
const POLL: Duration = Duration::from_millis(50);
/// The longest answer file read.
const MAX_ANSWER: u64 = 64;

/// An operator's answer to a held request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Allowed; with a grant of this many seconds for the same key and
    /// destination.
    Allow(Option<u32>),
    Deny,
    Timeout,
}

/// The state of every hold: counts, destinations approved once, grants.
pub struct Holds {
    dir: Option<PathBuf>,
    forwarded: Mutex<HashMap<String, VecDeque<Instant>>>,
    approved: Mutex<HashSet<(String, String)>>,
    grants: Mutex<HashMap<(String, String), Instant>>,
}

impl Holds {
    /// `dir`: where pending requests and answers live (the audit
    /// directory); `None`: nothing can be approved, so a rule that needs
    /// approval refuses.
    pub fn new(dir: Option<&Path>) -> Holds {
        Holds {
            dir: dir.map(Path::to_path_buf),
            forwarded: Mutex::new(HashMap::new()),
            approved: Mutex::new(HashSet::new()),
            grants: Mutex::new(HashMap::new()),
        }
    }

    /// Refuse a signature beyond the key's limit (counted when forwarded,
    /// see [`Holds::forwarded`]).
    pub fn over_limit(&self, key: &str, hold: &Hold) -> Option<String> {
        let (n, window) = hold.max?;
        let mut all = self.forwarded.lock().unwrap_or_else(|p| p.into_inner());
        let times = all.entry(key.to_string()).or_default();
        let since = Instant::now().checked_sub(Duration::from_secs(window.into()))?;
        while times.front().is_some_and(|t| *t < since) {
            times.pop_front();
        }
        (times.len() >= n as usize)
            .then(|| format!("{key} signed {n} times in the last {window} s (MaxSignatures)"))
    }

    /// Count a forwarded signature against its key's limit.
    pub fn forwarded(&self, key: &str, hold: &Hold) {
        if hold.max.is_some() {
            let mut all = self.forwarded.lock().unwrap_or_else(|p| p.into_inner());
            all.entry(key.to_string())
                .or_default()
                .push_back(Instant::now());
        }
    }

    /// Whether this signature waits for an answer: its rule approves each
    /// one, or the first per destination and this one is new; a grant in
    /// force lets it through.
    pub fn needs_approval(&self, key: &str, destination: &str, hold: &Hold) -> bool {
        let id = (key.to_string(), destination.to_string());
        let granted = {
            let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
            grants.retain(|_, until| *until > Instant::now());
            grants.contains_key(&id)
        };
        match hold.approve {
            None => false,
            _ if granted => false,
            Some(Approve::Each) => true,
            Some(Approve::PerDestination) => !self
                .approved
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&id),
        }
    }

    /// Hold request `id` until an answer or `hold.timeout`; `shown` is
    /// what `pending/<id>` holds (the pending record). Remembers the
    /// destination as approved, and a grant.
    pub fn wait(
        &self,
        id: &str,
        shown: &[u8],
        key: &str,
        destination: &str,
        hold: &Hold,
    ) -> Answer {
        let Some(dir) = &self.dir else {
            return Answer::Deny;
        };
        let (pending, answers) = (dir.join(PENDING), dir.join(APPROVALS));
        for d in [&pending, &answers] {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().mode(0o700).create(d);
        }
        let (pending, answer_file) = (pending.join(id), answers.join(id));
        if write_new(&pending, shown).is_err() {
            return Answer::Deny;
        }
        let until = Instant::now() + Duration::from_secs(hold.timeout.into());
        let answer = loop {
            if let Some(a) = read_answer(&answer_file) {
                break a;
            }
            if Instant::now() >= until {
                break Answer::Timeout;
            }
            std::thread::sleep(POLL);
        };
        let _ = std::fs::remove_file(&pending);
        let _ = std::fs::remove_file(&answer_file);
        if let Answer::Allow(grant) = answer {
            let id = (key.to_string(), destination.to_string());
            if let Some(secs) = grant {
                let until = Instant::now() + Duration::from_secs(secs.into());
                self.grants
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), until);
            }
            self.approved
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
        }
        answer
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// An answer file: `allow`, `allow SECONDS` or `deny`, one line with its
/// newline; anything
/// else (or a file that is not regular) is no answer yet.
fn read_answer(path: &Path) -> Option<Answer> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_ANSWER {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_ANSWER)
        .read_to_string(&mut text)
        .ok()?;
    // One line, whole: a file read while it is being written is no answer.
    let text = text.strip_suffix('\n')?;
    let mut words = text.split_ascii_whitespace();
    let answer = match (words.next(), words.next(), words.next()) {
        (Some("deny"), None, _) => Answer::Deny,
        (Some("allow"), None, _) => Answer::Allow(None),
        (Some("allow"), Some(secs), None) => {
            Answer::Allow(Some(secs.parse().ok().filter(|s| *s >= 1)?))
        }
        _ => return None,
    };
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(approve: Option<Approve>, max: Option<(u32, u32)>) -> Hold {
        Hold {
            approve,
            timeout: 1,
            max,
        }
    }

    #[test]
    fn a_limit_counts_forwarded_signatures_per_key() {
        let h = Holds::new(None);
        let rule = hold(None, Some((2, 60)));
        for _ in 0..2 {
            assert_eq!(h.over_limit("k", &rule), None);
            h.forwarded("k", &rule);
        }
        assert!(h.over_limit("k", &rule).unwrap().contains("MaxSignatures"));
        assert_eq!(h.over_limit("other", &rule), None);
    }

    #[test]
    fn answers_grants_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let h = std::sync::Arc::new(Holds::new(Some(dir.path())));
        let each = hold(Some(Approve::Each), None);
        let per = hold(Some(Approve::PerDestination), None);
        assert!(h.needs_approval("k", "d", &each));
        assert!(!h.needs_approval("k", "d", &hold(None, None)));
        // No answer: a timeout, and nothing left behind.
        assert_eq!(h.wait("a-1", b"{}", "k", "d", &each), Answer::Timeout);
        assert!(std::fs::read_dir(dir.path().join(PENDING))
            .unwrap()
            .next()
            .is_none());
        // An answer written while it waits.
        let answer = |id: &'static str, text: &'static str| {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                while !dir.join(PENDING).join(id).exists() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                std::fs::write(dir.join(APPROVALS).join(id), text).unwrap();
            })
        };
        let t = answer("a-2", "deny\n");
        assert_eq!(h.wait("a-2", b"{}", "k", "d", &per), Answer::Deny);
        t.join().unwrap();
        assert!(
            h.needs_approval("k", "d", &per),
            "a denial approves nothing"
        );
        let t = answer("a-3", "allow\n");
        assert_eq!(h.wait("a-3", b"{}", "k", "d", &per), Answer::Allow(None));
        t.join().unwrap();
        assert!(
            !h.needs_approval("k", "d", &per),
            "approved once per destination"
        );
        assert!(h.needs_approval("k", "e", &per), "another destination");
        assert!(h.needs_approval("k", "d", &each), "each still asks");
        let t = answer("a-4", "allow 1\n");
        assert_eq!(
            h.wait("a-4", b"{}", "k", "d", &each),
            Answer::Allow(Some(1))
        );
        t.join().unwrap();
        assert!(!h.needs_approval("k", "d", &each), "granted");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(h.needs_approval("k", "d", &each), "the grant expired");
        // Garbage is no answer.
        for (id, garbage) in [("a-5", "allow forever\n"), ("a-6", "allow")] {
            let t = answer(id, garbage);
            assert_eq!(h.wait(id, b"{}", "k", "d", &each), Answer::Timeout);
            t.join().unwrap();
        }
    }
}
