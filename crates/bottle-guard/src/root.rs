//! Root's part of a guarded provision, natively: what the shell helpers of
//! the provisioner's root scripts do (`is_ours`, `record`, `take_lock`, the
//! user's ids), with system calls instead of forked tools. The files and
//! their formats are the scripts' own, so verify and deprovision (still
//! scripts) read what this writes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Field 22 of `/proc/PID/stat` (start time, clock ticks since boot) and
/// field 3 (the state), read after the command name, which may hold
/// spaces and parentheses.
pub fn stat_fields(stat: &str) -> Option<(char, u64)> {
    let tail = &stat[stat.rfind(") ")? + 2..];
    let fields: Vec<&str> = tail.split_whitespace().collect();
    if fields.len() < 20 {
        return None;
    }
    let state = fields[0].chars().next()?;
    Some((state, fields[19].parse().ok()?))
}

fn proc_stat(pid: u32) -> Option<(char, u64)> {
    stat_fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of `pid`, as `record` writes it.
pub fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// Real, effective, saved and filesystem uid all 0 (`Uid:` of
/// `/proc/PID/status`).
pub fn status_is_root(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() == 4 && ids.iter().all(|id| *id == "0")
        })
        .unwrap_or(false)
}

/// A live, non-zombie process that runs as root, started at `start`, whose
/// argv (NULs as spaces) contains every needle: the scripts' `is_ours`.
pub fn is_ours(pid: u32, start: u64, needles: &[&str]) -> bool {
    match proc_stat(pid) {
        Some((state, s)) if state != 'Z' && s == start => {}
        _ => return false,
    }
    let root = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| status_is_root(&s))
        .unwrap_or(false);
    if !root {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline: String = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    needles.iter().all(|n| cmdline.contains(n))
}

fn alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((state, _)) if state != 'Z')
}

/// `PID START` from a record file; `None` when absent or malformed.
pub fn read_record(path: &Path) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut words = text.split(' ');
    let pid = words.next()?.trim_end().parse().ok()?;
    let start = words.next()?.trim_end().parse().ok()?;
    Some((pid, start))
}

/// `text` into `path` through a new file renamed over it (mode 600 under
/// the umask), as the scripts' `record` and `lines_into`.
pub fn replace_file(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut new = path.as_os_str().to_owned();
    new.push(".new");
    let new = PathBuf::from(new);
    let _ = std::fs::remove_file(&new);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&new)?;
    f.write_all(text)?;
    drop(f);
    std::fs::rename(&new, path)
}

/// Record `pid` with its start time.
pub fn record(path: &Path, pid: u32) -> std::io::Result<u64> {
    let start = start_time(pid).unwrap_or(0);
    replace_file(path, format!("{pid} {start}\n").as_bytes())?;
    Ok(start)
}

/// Stop a process of ours (SIGTERM) and wait until it is gone (at most 5 s):
/// its exit handler unlinks its socket, which must not hit its successor's.
pub fn stop(pid: u32, start: u64, needles: &[&str]) -> bool {
    if !is_ours(pid, start, needles) {
        return true;
    }
    // SAFETY: kill(2) with a pid checked to be ours just above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    for _ in 0..100 {
        if !is_ours(pid, start, needles) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !is_ours(pid, start, needles)
}

/// `path` is a socket (not followed if it is a link).
fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// `cmd` started in the background (no stdin, output discarded), its pid
/// and start time recorded in `path`; the error names what failed.
fn start_recorded(cmd: &mut std::process::Command, path: &Path) -> Result<(u32, u64), String> {
    use std::process::Stdio;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", Path::new(cmd.get_program()).display()))?;
    let pid = child.id();
    let start = record(path, pid).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((pid, start))
}

/// Until `socket` exists (at most 10 s, while `pid` lives), then `pid` must
/// be ours: the scripts' `wait_socket`.
pub fn wait_socket(
    pid: u32,
    start: u64,
    socket: &Path,
    name: &str,
    needles: &[&str],
) -> Result<(), String> {
    let began = Instant::now();
    loop {
        if is_socket(socket) {
            break;
        }
        if began.elapsed() > Duration::from_secs(10) || !alive(pid) {
            return Err(format!("{name} did not start on {}", socket.display()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if !is_ours(pid, start, needles) {
        return Err(format!(
            "{name} on {} is not the process we started",
            socket.display()
        ));
    }
    Ok(())
}

fn uptime_s() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split('.').next()?.parse().ok())
        .unwrap_or(0)
}

/// The in-container lock the scripts share (`take_lock`): a directory
/// owned by a token, re-entrant for it; broken when older than 60 s or
/// taken before the container restarted; an ownerless one after 5 s.
pub struct Lock {
    dir: PathBuf,
    token: String,
}

impl Lock {
    pub fn take(state: &Path, token: &str) -> Result<Lock, String> {
        let dir = state.join("lock");
        let owner_file = dir.join("owner");
        let boot = start_time(1).map(|s| s.to_string()).unwrap_or_default();
        let mut tries = 0;
        loop {
            match std::fs::create_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("{}: {e}", dir.display())),
            }
            let owner = std::fs::read_to_string(&owner_file).unwrap_or_default();
            let owner = owner.trim_end_matches('\n');
            let mut words = owner.splitn(3, ' ');
            let (who, since, their_boot) = (words.next(), words.next(), words.next());
            if !owner.is_empty() && who == Some(token) {
                return Ok(Lock {
                    dir,
                    token: token.into(),
                });
            }
            let since: Option<u64> = since.and_then(|s| s.parse().ok());
            if let Some(since) = since {
                if their_boot != Some(boot.as_str()) || uptime_s().saturating_sub(since) >= 60 {
                    let _ = std::fs::remove_dir_all(&dir);
                    continue;
                }
            }
            tries += 1;
            if owner.is_empty() && tries >= 50 {
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            if tries >= 1200 {
                return Err(format!(
                    "lock {} is held by another provision",
                    dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::write(&owner_file, format!("{token} {} {boot}\n", uptime_s()))
            .map_err(|e| format!("{}: {e}", owner_file.display()))?;
        Ok(Lock {
            dir,
            token: token.into(),
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let owner = std::fs::read_to_string(self.dir.join("owner")).unwrap_or_default();
        if owner.split(' ').next() == Some(self.token.as_str()) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The user's ids as `docker exec -u NAME` resolves them: the passwd entry
/// by name (or by uid for an all-digit name), its primary group, and every
/// group whose member list names the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

pub fn resolve_user(name: &str, passwd: &str, group: &str) -> Option<Ids> {
    let numeric: Option<u32> = name.parse().ok();
    let (login, uid, gid) = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let (uid, gid): (u32, u32) = (f[2].parse().ok()?, f[3].parse().ok()?);
        (f[0] == name || numeric == Some(uid)).then(|| (f[0], uid, gid))
    })?;
    let mut groups = vec![gid];
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(g) = f[2].parse::<u32>() else { continue };
        if f[3].split(',').any(|m| m == login) && !groups.contains(&g) {
            groups.push(g);
        }
    }
    Some(Ids { uid, gid, groups })
}

/// A small text file (e.g. `/etc/passwd`), regular, at most 4 MiB.
pub fn read_small(path: &str) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO in its place must not stall root.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!("{path}: not a regular file")));
    }
    let mut text = String::new();
    file.take(4 << 20).read_to_string(&mut text)?;
    Ok(text)
}

/// Make the calling process the user, for good: groups, then gid, then
/// uid (real, effective, saved), checked; and not dumpable, so the user
/// cannot trace what root's process left in its memory. Only system calls:
/// it runs between fork and exec.
///
/// # Safety
/// Call only in a child between fork and exec (it changes the whole
/// process's credentials).
pub unsafe fn become_user(ids: &Ids) -> std::io::Result<()> {
    let err = std::io::Error::last_os_error;
    if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
        return Err(err());
    }
    if libc::setgroups(ids.groups.len(), ids.groups.as_ptr()) != 0 {
        return Err(err());
    }
    if libc::setresgid(ids.gid, ids.gid, ids.gid) != 0 {
        return Err(err());
    }
    if libc::setresuid(ids.uid, ids.uid, ids.uid) != 0 {
        return Err(err());
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    if libc::getresuid(&mut r, &mut e, &mut s) != 0 || [r, e, s] != [ids.uid; 3] {
        return Err(std::io::Error::other("uid did not change"));
    }
    if libc::getresgid(&mut r, &mut e, &mut s) != 0 || [r, e, s] != [ids.gid; 3] {
        return Err(std::io::Error::other("gid did not change"));
    }
    Ok(())
}

/// The line that ends root's report and begins the user's part's:
/// `user-part EXIT`, then the user's script's output, verbatim, to the end
/// (the user can write anything there; nothing of root's follows it).
pub const USER_PART: &str = "user-part";

/// `provision`'s arguments, as the provisioner's guarded script passes them.
pub struct Provision {
    pub user: String,
    pub home: PathBuf,
    pub state: PathBuf,
    pub agent: PathBuf,
    pub public: PathBuf,
    /// `reuse` a live agent, or start a `fresh` one.
    pub fresh: bool,
    pub token: String,
    /// This executable's SHA-256 (its name in the state directory).
    pub hash: String,
    /// Byte lengths of the key record, the policy and the user's part's
    /// stdin, which come first on stdin (read exactly: nothing of the keys
    /// that follow is read before the user's process is forked).
    pub lengths: [usize; 3],
    /// The user's part: a shell script and its arguments.
    pub user_script: Vec<String>,
}

impl Provision {
    pub fn parse(args: &[String]) -> Option<Provision> {
        if args.len() < 12 {
            return None;
        }
        let fresh = match args[5].as_str() {
            "reuse" => false,
            "fresh" => true,
            _ => return None,
        };
        let hash = &args[7];
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let len = |i: usize| args[i].parse::<usize>().ok().filter(|n| *n <= 4 << 20);
        Some(Provision {
            user: args[0].clone(),
            home: args[1].clone().into(),
            state: args[2].clone().into(),
            agent: args[3].clone().into(),
            public: args[4].clone().into(),
            fresh,
            token: args[6].clone(),
            hash: hash.clone(),
            lengths: [len(8)?, len(9)?, len(10)?],
            user_script: args[11..].to_vec(),
        })
    }
}

fn exactly(from: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    from.read_exact(&mut buf)?;
    Ok(buf)
}

/// The needles that make a recorded agent ours (`agent_is_ours`): started
/// with no provider allowed.
fn agent_needles(agent: &Path) -> [String; 2] {
    ["ssh-agent".into(), format!("-P !* -a {}", agent.display())]
}

/// Root's work, after the provisioner's script checked the environment
/// (root's PATH, the state directory, this executable) and found this
/// executable there. Prints what the provision script prints, then
/// [`USER_PART`]. Exit 0 when it ran to `done`.
pub fn provision(p: &Provision) -> i32 {
    use std::os::fd::FromRawFd;
    // Unbuffered (not std's stdin, which reads ahead): no byte of the keys
    // is in this process before the user's part is forked.
    // SAFETY: fd 0 is open for the process's life; never closed here.
    let mut stdin = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let code = run(p, &mut *stdin);
    // Podman may drop the output of a process that leaves its stdin unread.
    let _ = std::io::copy(&mut *stdin, &mut std::io::sink());
    code
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn fail(why: impl std::fmt::Display) -> i32 {
    eprintln!("{why}");
    1
}

fn run(p: &Provision, stdin: &mut impl Read) -> i32 {
    let passwd = read_small("/etc/passwd").unwrap_or_default();
    let group = read_small("/etc/group").unwrap_or_default();
    let ids = resolve_user(&p.user, &passwd, &group);
    if ids.is_none() {
        say(format_args!("missing user"));
    }
    if !p.home.is_dir() {
        say(format_args!("missing home"));
    }
    let Some(ids) = ids.filter(|_| p.home.is_dir()) else {
        return 0;
    };
    // SAFETY: umask(2) only.
    unsafe { libc::umask(0o077) };
    if let Err(e) = enter_state(&p.state) {
        return fail(e);
    }
    let lock = match Lock::take(&p.state, &p.token) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("{e}");
            return 75;
        }
    };
    // ssh-agent first: its start until it listens is the longest wait of
    // a provision, and it needs nothing that follows.
    let agent = match agent_up(p) {
        Ok(agent) => agent,
        Err(e) => return fail(e),
    };
    let [nrecord, npolicy, nuser] = p.lengths;
    let (record, policy, user_input) = match (|| {
        Ok::<_, std::io::Error>((
            exactly(stdin, nrecord)?,
            exactly(stdin, npolicy)?,
            exactly(stdin, nuser)?,
        ))
    })() {
        Ok(parts) => parts,
        Err(e) => {
            return fail(format!(
                "the key record, policy or user's files ended early: {e}"
            ))
        }
    };
    // The user's part starts now, beside root's (no key is in this
    // process's memory yet: they are read below).
    let user_part = spawn_user_part(p, &ids, user_input);
    for (name, text) in [("keys", &record), ("policy", &policy)] {
        if let Err(e) = replace_file(&p.state.join(name), text) {
            return fail(format!("{}: {e}", p.state.join(name).display()));
        }
    }
    let code = root_part(p, &agent, stdin);
    drop(lock);
    if code != 0 {
        return code;
    }
    say(format_args!("done"));
    finish_user_part(user_part);
    0
}

fn enter_state(state: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(state) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700))
}

/// The user's part: `sh -c SCRIPT` as the user (groups, gid, uid dropped
/// before exec, no descriptor of root's but its stdin, stdout and stderr).
fn spawn_user_part(
    p: &Provision,
    ids: &Ids,
    input: Vec<u8>,
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let (script, args) = p
        .user_script
        .split_first()
        .ok_or_else(|| std::io::Error::other("no user script"))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("bottle-script")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &p.home)
        .env("USER", &p.user)
        .env("LOGNAME", &p.user)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let ids = ids.clone();
    // SAFETY: become_user makes system calls only, between fork and exec.
    unsafe { cmd.pre_exec(move || become_user(&ids)) };
    let mut child = cmd.spawn()?;
    let mut to = child.stdin.take().expect("piped");
    std::thread::spawn(move || {
        let _ = to.write_all(&input);
    });
    Ok(child)
}

fn finish_user_part(child: std::io::Result<std::process::Child>) {
    let (code, out) = match child.and_then(|c| c.wait_with_output()) {
        Ok(out) => (out.status.code().unwrap_or(1), out.stdout),
        Err(e) => {
            eprintln!("the user's part did not run: {e}");
            (1, Vec::new())
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{USER_PART} {code}");
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
}

/// The agent this provision loads: reused or just started (then not yet
/// listening).
struct Agent {
    pid: u32,
    start: u64,
    started: bool,
}

/// Reuse a live agent of ours (unless `fresh`), or stop whatever the record
/// names and start a new one.
fn agent_up(p: &Provision) -> Result<Agent, String> {
    let agent_pid = p.state.join("agent.pid");
    let needles = agent_needles(&p.agent);
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let (pid, start) = read_record(&agent_pid).unwrap_or((0, 0));
    if !p.fresh && is_ours(pid, start, &needles) && is_socket(&p.agent) {
        say(format_args!("agent-reused {pid}"));
        return Ok(Agent {
            pid,
            start,
            started: false,
        });
    }
    stop(pid, start, &needles);
    let _ = std::fs::remove_file(&p.agent);
    let mut agent = std::process::Command::new("ssh-agent");
    agent.args(["-D", "-P", "!*", "-a"]).arg(&p.agent);
    let (pid, start) = start_recorded(&mut agent, &agent_pid)?;
    Ok(Agent {
        pid,
        start,
        started: true,
    })
}

fn root_part(p: &Provision, agent: &Agent, stdin: &mut impl Read) -> i32 {
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    let needles = agent_needles(&p.agent);
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let (apid, astart, agent_started) = (agent.pid, agent.start, agent.started);

    // The forwarder: this guard, serving the public socket; a live one is
    // reused (it reads the policy for each client).
    let forwarder_pid = p.state.join("forwarder.pid");
    let me = p.state.join(format!("guard-{}", p.hash));
    let guard_prefix = format!("{}/guard-", p.state.display());
    let listen = format!("--listen {}", p.public.display());
    let relay = format!("UNIX-LISTEN:{}", p.public.display());
    let me_shown = me.display().to_string();
    let ours: [&str; 2] = [&me_shown, &listen];
    let any_guard: [&str; 2] = [&guard_prefix, &listen];
    let (mut fpid, mut fstart) = read_record(&forwarder_pid).unwrap_or((0, 0));
    let mut forwarder_started = false;
    if is_ours(fpid, fstart, &ours) && is_socket(&p.public) {
        say(format_args!("forwarder-reused {fpid}"));
    } else {
        // A guard of any version, or the socat of a bottle from before it.
        if is_ours(fpid, fstart, &any_guard) {
            stop(fpid, fstart, &any_guard);
        } else {
            stop(fpid, fstart, &["socat", &relay]);
        }
        let _ = std::fs::remove_file(&p.public);
        // This very executable (its delivery checked the hash, and this
        // provision runs from it), named by its path for `is_ours`: no
        // second hash of it to wait for.
        let mut serve = Command::new("/proc/self/exe");
        serve
            .arg0(&me)
            .arg("serve")
            .arg("--listen")
            .arg(&p.public)
            .arg("--agent")
            .arg(&p.agent)
            .arg("--policy")
            .arg(p.state.join("policy"))
            .arg("--audit")
            .arg(&p.state);
        (fpid, fstart) = match start_recorded(&mut serve, &forwarder_pid) {
            Ok(started) => started,
            Err(e) => return fail(e),
        };
        forwarder_started = true;
    }
    if agent_started {
        if let Err(e) = wait_socket(apid, astart, &p.agent, "ssh-agent", &needles) {
            return fail(e);
        }
        say(format_args!("agent-started {apid}"));
    }
    let loaded = load_into(&p.agent, stdin);
    match loaded {
        Ok(keys) => {
            for key in keys {
                say(format_args!("key {key}"));
            }
        }
        Err(e) if agent_started => {
            return fail(format!(
                "could not load the keys into ssh-agent on {}: {e}",
                p.agent.display()
            ))
        }
        // A reused agent that does not take the keys (the user can lock it
        // through a relay of old) is replaced by the caller's next call.
        Err(_) => say(format_args!("agent-unusable")),
    }
    if forwarder_started {
        if let Err(e) = wait_socket(fpid, fstart, &p.public, "bottle-guard", &ours) {
            return fail(e);
        }
        say(format_args!("forwarder-started {fpid}"));
    }
    0
}

/// The key stream into the agent (see [`crate::load`]), waiting for a new
/// agent to listen.
fn load_into(agent: &Path, keys: &mut impl Read) -> Result<Vec<String>, String> {
    let mut stream = crate::load::connect(agent).map_err(|e| e.to_string())?;
    crate::load::load(&mut stream, keys).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_hostile_command_name() {
        let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 20";
        let stat = format!("77 (a) b) S 9 9 9) {tail}");
        assert_eq!(stat_fields(&stat), Some(('S', 4242)));
        assert_eq!(stat_fields("77 (x) S 1 2"), None);
        assert_eq!(stat_fields("garbage"), None);
    }

    #[test]
    fn root_means_all_four_uids() {
        assert!(status_is_root(
            "Name:\tx\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
        ));
        assert!(!status_is_root("Uid:\t0\t1000\t0\t0\n"));
        assert!(!status_is_root("Uid:\t0\t0\t0\n"));
        assert!(!status_is_root("Name:\tx\n"));
    }

    #[test]
    fn users_resolve_like_docker_exec() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nbad:x:y:1::/:/bin/sh\n";
        let group =
            "root:x:0:\nnode:x:1000:\ndocker:x:999:node,other\nwheel:x:10:nodes\nodd:x:z:node\n";
        let ids = resolve_user("node", passwd, group).unwrap();
        assert_eq!(
            ids,
            Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 999]
            }
        );
        assert_eq!(resolve_user("1000", passwd, group).unwrap().uid, 1000);
        assert_eq!(resolve_user("nobody", passwd, group), None);
        assert_eq!(resolve_user("bad", passwd, group), None);
        assert_eq!(resolve_user("1001", passwd, group), None);
    }

    #[test]
    fn the_lock_is_reentrant_and_released_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock::take(dir.path(), "a").unwrap();
        // Re-entrant for the same token (a provision's second exec).
        std::mem::forget(Lock::take(dir.path(), "a").unwrap());
        // Another provision's release leaves it held.
        drop(Lock {
            dir: dir.path().join("lock"),
            token: "b".into(),
        });
        assert!(dir.path().join("lock/owner").exists());
        drop(lock);
        assert!(!dir.path().join("lock").exists());
    }

    #[test]
    fn records_read_back_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.pid");
        replace_file(&path, b"12 345\n").unwrap();
        assert_eq!(read_record(&path), Some((12, 345)));
        replace_file(&path, b"12x 345\n").unwrap();
        assert_eq!(read_record(&path), None);
        assert_eq!(read_record(&dir.path().join("absent")), None);
    }
}
