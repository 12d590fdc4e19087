//! What each key may sign, as the provisioner writes it for the guard: one
//! rule a line, read strictly (an unknown word, a malformed fingerprint or
//! an empty list fails the whole file, so a damaged policy never widens).
//!
//! ```text
//! # one line per [[ssh]] entry: its key, its User, its pinned host keys
//! login SHA256:<key> user=git host=SHA256:<host key> host=SHA256:<other>
//! # an entry without KnownHostKey: its User, any host
//! login SHA256:<key> user=git
//! # the [signing] key: SSHSIG in these namespaces, never a login
//! sshsig SHA256:<key> namespace=git
//! # for the records: the aliases a host key identifies
//! host SHA256:<host key> alias=a alias=b
//! # holds (on a login or sshsig line): an operator approves each signature
//! # or the first per destination, within timeout seconds; at most max per window
//! login SHA256:<key> user=git approve=each timeout=60 max=30/60
//! ```

use std::collections::BTreeMap;

/// The longest policy file read (a plan holds at most a few hundred keys).
pub const MAX_POLICY: usize = 1 << 20;

/// One `[[ssh]]` entry's login: its user, and the host keys it pins (empty:
/// any host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub users: Vec<String>,
    pub hosts: Vec<String>,
    pub hold: Hold,
}

/// Which signatures wait for an operator's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approve {
    Each,
    /// The first for each (host key, user) or namespace.
    PerDestination,
}

/// What holds a rule's signatures: approval and a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub approve: Option<Approve>,
    /// Seconds an approval is waited for.
    pub timeout: u32,
    /// At most this many signatures in this many seconds.
    pub max: Option<(u32, u32)>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            approve: None,
            timeout: 60,
            max: None,
        }
    }
}

impl Hold {
    /// Parse one `approve=`, `timeout=` or `max=` setting into `self`.
    fn set(&mut self, name: &str, value: &str) -> bool {
        let secs = |v: &str| v.parse::<u32>().ok().filter(|n| (1..=86_400).contains(n));
        match name {
            "approve" => {
                self.approve = match value {
                    "each" => Some(Approve::Each),
                    "per-destination" => Some(Approve::PerDestination),
                    _ => return false,
                }
            }
            "timeout" => match secs(value) {
                Some(n) => self.timeout = n,
                None => return false,
            },
            "max" => match value.split_once('/') {
                Some((n, w)) => match (n.parse::<u32>().ok().filter(|n| *n >= 1), secs(w)) {
                    (Some(n), Some(w)) => self.max = Some((n, w)),
                    _ => return false,
                },
                None => return false,
            },
            _ => return false,
        }
        true
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(a) = self.approve {
            let a = match a {
                Approve::Each => "each",
                Approve::PerDestination => "per-destination",
            };
            out.push_str(&format!(" approve={a} timeout={}", self.timeout));
        }
        if let Some((n, w)) = self.max {
            out.push_str(&format!(" max={n}/{w}"));
        }
        out
    }
}

/// Everything one key may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRules {
    pub logins: Vec<Login>,
    pub namespaces: Vec<String>,
    /// The hold of its SSHSIG signatures.
    pub sshsig_hold: Hold,
}

/// Every key's rules, by `SHA256:` fingerprint, and the entries' aliases
/// by host key fingerprint (what the records name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub keys: BTreeMap<String, KeyRules>,
    pub aliases: BTreeMap<String, Vec<String>>,
}

/// Why a policy file was refused, with its line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: usize,
    pub why: &'static str,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "policy line {}: {}", self.line, self.why)
    }
}

impl std::error::Error for PolicyError {}

/// `SHA256:` and 43 characters of unpadded base64 (a 32-byte digest).
pub fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

/// A login name, alias or SSHSIG namespace: what the manifest's allow-lists
/// admit (bottle-ssh's `MAX_VALUE_LEN`, 255 bytes).
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-@".contains(&c))
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        for (i, line) in text.lines().enumerate() {
            let err = |why| PolicyError { line: i + 1, why };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_ascii_whitespace();
            let kind = words.next().unwrap_or_default();
            let key = words.next().ok_or_else(|| err("no key"))?;
            if !is_fingerprint(key) {
                return Err(err("the key is not a SHA256: fingerprint"));
            }
            let (mut users, mut hosts, mut namespaces) = (Vec::new(), Vec::new(), Vec::new());
            let mut aliases = Vec::new();
            let mut hold = Hold::default();
            for word in words {
                let (name, value) = word
                    .split_once('=')
                    .ok_or_else(|| err("expected name=value"))?;
                match (kind, name) {
                    ("login", "user") if is_name(value) => users.push(value.to_string()),
                    ("login", "host") if is_fingerprint(value) => hosts.push(value.to_string()),
                    ("sshsig", "namespace") if is_name(value) => namespaces.push(value.to_string()),
                    ("host", "alias") if is_name(value) => aliases.push(value.to_string()),
                    ("login" | "sshsig", "approve" | "timeout" | "max")
                        if hold.set(name, value) => {}
                    _ => return Err(err("unknown or malformed setting")),
                }
            }
            if kind == "host" {
                if aliases.is_empty() {
                    return Err(err("a host names no alias"));
                }
                policy
                    .aliases
                    .entry(key.to_string())
                    .or_default()
                    .extend(aliases);
                continue;
            }
            let rules = policy.keys.entry(key.to_string()).or_default();
            match kind {
                "login" if !users.is_empty() => rules.logins.push(Login { users, hosts, hold }),
                "sshsig" if !namespaces.is_empty() => {
                    rules.namespaces.extend(namespaces);
                    rules.sshsig_hold = hold;
                }
                "login" => return Err(err("a login names no user")),
                "sshsig" => return Err(err("an sshsig rule names no namespace")),
                _ => return Err(err("unknown rule")),
            }
        }
        Ok(policy)
    }

    /// The policy as text [`Policy::parse`] reads back.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (key, rules) in &self.keys {
            for login in &rules.logins {
                out.push_str(&format!("login {key}"));
                for u in &login.users {
                    out.push_str(&format!(" user={u}"));
                }
                for h in &login.hosts {
                    out.push_str(&format!(" host={h}"));
                }
                out.push_str(&login.hold.render());
                out.push('\n');
            }
            if !rules.namespaces.is_empty() {
                out.push_str(&format!("sshsig {key}"));
                for n in &rules.namespaces {
                    out.push_str(&format!(" namespace={n}"));
                }
                out.push_str(&rules.sshsig_hold.render());
                out.push('\n');
            }
        }
        for (host, aliases) in &self.aliases {
            out.push_str(&format!("host {host}"));
            for a in aliases {
                out.push_str(&format!(" alias={a}"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const H: &str = "SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn rules_read_back_as_written() {
        let text = format!(
            "# c\nlogin {K} user=git host={H} approve=each timeout=5 max=3/60\nlogin {K} user=deploy\nsshsig {K} namespace=git approve=per-destination\nhost {H} alias=a alias=b.c\n"
        );
        let p = Policy::parse(&text).unwrap();
        let r = &p.keys[K];
        assert_eq!(r.logins.len(), 2);
        assert_eq!(r.logins[0].hosts, [H]);
        assert!(r.logins[1].hosts.is_empty());
        assert_eq!(r.namespaces, ["git"]);
        assert_eq!(
            r.logins[0].hold,
            Hold {
                approve: Some(Approve::Each),
                timeout: 5,
                max: Some((3, 60))
            }
        );
        assert_eq!(r.logins[1].hold, Hold::default());
        assert_eq!(r.sshsig_hold.approve, Some(Approve::PerDestination));
        assert_eq!(p.aliases[H], ["a", "b.c"]);
        assert_eq!(Policy::parse(&p.render()).unwrap(), p);
    }

    #[test]
    fn anything_unexpected_fails_the_whole_file() {
        for bad in [
            format!("login {K}"),
            format!("sshsig {K}"),
            format!("login {K} user=git host=*"),
            format!("login {K} user=$(id)"),
            format!("login {K} namespace=git"),
            format!("sshsig {K} namespace=a;b"),
            format!("sign {K} user=git"),
            "login SHA256:short user=git".to_string(),
            format!("login {K} user"),
            format!("host {K}"),
            format!("host {K} alias=a*"),
            format!("host {K} user=git"),
            format!("login {K} user=git approve=sometimes"),
            format!("login {K} user=git max=0/60"),
            format!("login {K} user=git max=3"),
            format!("login {K} user=git timeout=0"),
            format!("host {K} alias=a approve=each"),
        ] {
            let e = Policy::parse(&format!("login {K} user=ok\n{bad}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{bad}: {e}");
        }
    }
}
