//! `bottle-guard serve [--sha256 HEX] --listen PUBLIC|--listen-abstract NAME
//! --agent AGENT --policy FILE [--audit DIR]`, `bottle-guard load --agent
//! AGENT` (stdin: the keys, see the library's `load`), `bottle-guard check
//! --sha256 HEX`.
//!
//! Listens on PUBLIC (mode 666), or on the abstract socket `@NAME` (the
//! `sidecar` layout: reachable from the bottle's network namespace), and serves each client over its own
//! connection to the agent at AGENT, letting through only what the policy
//! allows (see the library). The policy is read for each new client, so a
//! provision that changes it needs no restart; a policy that does not read
//! closes the client (fail closed). With `--sha256`, the executable first
//! checks that it is the one the provisioner delivered. With `--audit`,
//! every request is recorded in `DIR/audit.jsonl` (see the library's
//! `audit`). Threads, not async: a handful of clients, and
//! a static executable as small as it can be.

use bottle_guard::audit::{self, Log, Record};
use bottle_guard::hold::{Answer, Holds};
use bottle_guard::policy::{Policy, MAX_POLICY};
use bottle_guard::wire::write_frame;
use bottle_guard::{Session, Verdict, FAILURE_FRAME, MAX_FRAME};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Clients served at once; more are closed at once (the user can only
/// deny itself).
const MAX_CLIENTS: usize = 64;
/// How long a frame may take to arrive once it has begun, and how long the
/// agent may take to answer.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

enum Listen {
    Path(PathBuf),
    Abstract(String),
}

struct Args {
    sha256: Option<String>,
    listen: Listen,
    agent: PathBuf,
    policy: PathBuf,
    audit: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bottle-guard serve [--sha256 HEX] --listen PUBLIC|--listen-abstract NAME \
         --agent AGENT --policy FILE [--audit DIR]\n       \
         bottle-guard load --agent AGENT\n       \
         bottle-guard provision USER HOME STATE AGENT PUBLIC reuse|fresh TOKEN SHA256 \
         RECORD-BYTES POLICY-BYTES USER-BYTES SCRIPT ARG…\n       \
         bottle-guard check --sha256 HEX"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut it = std::env::args_os().skip(1);
    match it.next() {
        Some(a) if a == "serve" => {}
        // `check --sha256 HEX`: exit 0 when this executable is that one.
        Some(a) if a == "check" => {
            let expected = match (it.next(), it.next(), it.next()) {
                (Some(flag), Some(hex), None) if flag == "--sha256" => hex,
                _ => usage(),
            };
            check_self(expected.to_str().unwrap_or_default());
            std::process::exit(0)
        }
        // `load --agent AGENT`: the keys on stdin into the agent.
        Some(a) if a == "load" => {
            let agent = match (it.next(), it.next(), it.next()) {
                (Some(flag), Some(path), None) if flag == "--agent" => PathBuf::from(path),
                _ => usage(),
            };
            std::process::exit(load_keys(&agent))
        }
        // `provision ARGS…`: root's part of a guarded provision (see the
        // library's `root`).
        Some(a) if a == "provision" => {
            let args: Option<Vec<String>> = it.map(|a| a.into_string().ok()).collect();
            let parsed = args
                .as_deref()
                .and_then(bottle_guard::root::Provision::parse);
            std::process::exit(bottle_guard::root::provision(
                &parsed.unwrap_or_else(|| usage()),
            ))
        }
        Some(a) if a == "--version" => {
            println!("bottle-guard {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0)
        }
        _ => usage(),
    }
    let (mut listen, mut agent, mut policy, mut sha256) = (None, None, None, None);
    let mut audit = None;
    while let Some(flag) = it.next() {
        let value = it.next().map(PathBuf::from).unwrap_or_else(|| usage());
        match flag.to_str() {
            Some("--sha256") => sha256 = value.to_str().map(str::to_string),
            Some("--listen") => listen = Some(Listen::Path(value)),
            Some("--listen-abstract") => {
                listen = value.to_str().map(|n| Listen::Abstract(n.to_string()))
            }
            Some("--agent") => agent = Some(value),
            Some("--policy") => policy = Some(value),
            Some("--audit") => audit = Some(value),
            _ => usage(),
        }
    }
    match (listen, agent, policy) {
        (Some(listen), Some(agent), Some(policy)) => Args {
            sha256,
            listen,
            agent,
            policy,
            audit,
        },
        _ => usage(),
    }
}

/// The policy file: a regular file, bounded.
fn read_policy(path: &std::path::Path) -> Result<Policy, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() > MAX_POLICY as u64 {
        return Err(format!(
            "{}: not a regular file of at most 1 MiB",
            path.display()
        ));
    }
    let mut text = String::new();
    file.take(MAX_POLICY as u64)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Policy::parse(&text).map_err(|e| e.to_string())
}

/// One frame's body, or `None` at a clean end between frames. A length of
/// 0 or over [`MAX_FRAME`], a short read or a stall mid-frame is an error.
fn read_frame(stream: &mut UnixStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    stream.set_read_timeout(None)?;
    if stream.read(&mut len[..1])? == 0 {
        return Ok(None);
    }
    stream.set_read_timeout(Some(FRAME_TIMEOUT))?;
    stream.read_exact(&mut len[1..])?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(std::io::Error::other("frame length out of bounds"));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

/// One client: its connection number (for the records) and where to.
struct Client<'a> {
    connection: u64,
    agent: &'a std::path::Path,
    policy: &'a Policy,
    log: Option<&'a Log>,
    holds: &'a Holds,
}

/// Apply a signature's hold (limit, approval) to an allowed request and
/// record the decision; returns whether it goes to the agent.
fn decide_held(to: &Client<'_>, body: &[u8], verdict: Verdict) -> Verdict {
    let record = |v: &Verdict, edit: &dyn Fn(&mut Record)| -> Option<Record> {
        let log = to.log?;
        let mut r = audit::describe(body, v, &to.policy.aliases);
        r.connection = to.connection;
        edit(&mut r);
        Some(log.write(r))
    };
    let Verdict::Forward(allowed) = &verdict else {
        record(&verdict, &|_| {});
        return verdict;
    };
    let Some((key, destination, hold)) = allowed.signature() else {
        record(&verdict, &|_| {});
        return verdict;
    };
    // A held or limited signature's refusal keeps what it was for.
    let refuse = |decision: &str, why: String, approval: Option<String>| {
        record(&verdict, &|r| {
            r.decision = decision.into();
            r.reason = Some(why.clone());
            r.approval = approval.clone();
        });
        Verdict::Refuse(why)
    };
    if let Some(why) = to.holds.over_limit(key, &hold) {
        return refuse("deny", why, None);
    }
    if to.holds.needs_approval(key, &destination, &hold) {
        let Some(pending) = record(&verdict, &|r| r.decision = "pending".into()) else {
            // Nowhere to ask: refused, never let through unasked.
            return Verdict::Refuse("approval needs the records (--audit)".into());
        };
        let shown = serde_json::to_vec(&pending).unwrap_or_default();
        let answer = to.holds.wait(&pending.id, &shown, key, &destination, &hold);
        let approval = Some(pending.id.clone());
        return match answer {
            Answer::Allow(_) => {
                record(&verdict, &|r| r.approval = approval.clone());
                to.holds.forwarded(key, &hold);
                verdict
            }
            Answer::Deny => refuse("deny", "denied by the operator".into(), approval),
            Answer::Timeout => {
                let why = format!("no answer within {} s", hold.timeout);
                refuse("timeout", why, approval)
            }
        };
    }
    record(&verdict, &|_| {});
    to.holds.forwarded(key, &hold);
    verdict
}

fn serve(mut client: UnixStream, to: &Client<'_>) -> std::io::Result<()> {
    let (agent, policy) = (to.agent, to.policy);
    let mut upstream: Option<UnixStream> = None;
    let mut session = Session::new();
    while let Some(body) = read_frame(&mut client)? {
        let verdict = decide_held(to, &body, session.decide(policy, &body));
        match verdict {
            Verdict::Refuse(_) => client.write_all(&FAILURE_FRAME)?,
            Verdict::Forward(_) => {
                // One upstream connection per client, opened on its first
                // allowed request: the agent's session binds are per
                // connection too.
                if upstream.is_none() {
                    let s = UnixStream::connect(agent)?;
                    s.set_read_timeout(Some(FRAME_TIMEOUT))?;
                    upstream = Some(s);
                }
                let up = upstream.as_mut().expect("connected above");
                write_frame(up, &body)?;
                match read_frame(up)? {
                    Some(reply) => write_frame(&mut client, &reply)?,
                    None => return Ok(()),
                }
            }
        }
    }
    Ok(())
}

/// `load`: prints `key SHA256:…` for what the agent holds afterwards; exit
/// 0, 3 when the agent refused a key (a reused agent the user locked), 1
/// otherwise.
fn load_keys(agent: &std::path::Path) -> i32 {
    let mut stream = match bottle_guard::load::connect(agent) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bottle-guard: the agent at {}: {e}", agent.display());
            return 1;
        }
    };
    match bottle_guard::load::load(&mut stream, &mut std::io::stdin().lock()) {
        Ok(keys) => {
            let mut out = std::io::stdout().lock();
            for key in keys {
                let _ = writeln!(out, "key {key}");
            }
            0
        }
        Err(e) => {
            eprintln!("bottle-guard: the agent at {}: {e}", agent.display());
            match e {
                bottle_guard::load::LoadError::Refused { .. } => 3,
                _ => 1,
            }
        }
    }
}

/// The hex SHA-256 of the running executable.
fn own_sha256() -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open("/proc/self/exe")?;
    let mut hash = Sha256::new();
    std::io::copy(&mut file, &mut hash)?;
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Exit 2 unless the running executable's SHA-256 is `expected`.
fn check_self(expected: &str) {
    match own_sha256() {
        Ok(actual) if actual == expected => {}
        Ok(actual) => {
            eprintln!("bottle-guard: this executable's SHA-256 is {actual}, not {expected}");
            std::process::exit(2)
        }
        Err(e) => {
            eprintln!("bottle-guard: cannot hash /proc/self/exe: {e}");
            std::process::exit(2)
        }
    }
}

fn main() {
    let args = args();
    if let Some(expected) = &args.sha256 {
        check_self(expected);
    }
    // Refuse to start on a policy that does not read.
    if let Err(e) = read_policy(&args.policy) {
        eprintln!("bottle-guard: {e}");
        std::process::exit(2)
    }
    let listener = match &args.listen {
        Listen::Path(path) => {
            let listener = UnixListener::bind(path).unwrap_or_else(|e| {
                eprintln!("bottle-guard: {}: {e}", path.display());
                std::process::exit(1)
            });
            // The user connects; it can only ask what the policy allows.
            let open = std::fs::Permissions::from_mode(0o666);
            if let Err(e) = std::fs::set_permissions(path, open) {
                eprintln!("bottle-guard: {}: {e}", path.display());
                std::process::exit(1)
            }
            listener
        }
        Listen::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| UnixListener::bind_addr(&a));
            addr.unwrap_or_else(|e| {
                eprintln!("bottle-guard: @{name}: {e}");
                std::process::exit(1)
            })
        }
    };
    let clients = Arc::new(AtomicUsize::new(0));
    let connections = AtomicU64::new(0);
    let agent = Arc::new(args.agent);
    let policy_path = Arc::new(args.policy);
    let log = Arc::new(args.audit.as_deref().map(Log::new));
    let holds = Arc::new(Holds::new(args.audit.as_deref()));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let connection = connections.fetch_add(1, Ordering::SeqCst) + 1;
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (count, agent, policy_path) = (clients.clone(), agent.clone(), policy_path.clone());
        let (log, holds) = (log.clone(), holds.clone());
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                if let Ok(policy) = read_policy(&policy_path) {
                    let client = Client {
                        connection,
                        agent: &agent,
                        policy: &policy,
                        log: (*log).as_ref(),
                        holds: &holds,
                    };
                    let _ = serve(stream, &client);
                }
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // The thread never ran, so its count is released here.
            clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
