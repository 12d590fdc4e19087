//! The user-side scripts run on this host, under `dash` and `busybox sh`,
//! against a temporary home: their arguments and stdin built by the code
//! that builds them for the engine, their output read by the real reader.
//! As root (CI), each runs as `nobody`, as in a container it runs as the
//! user: root would pass checks a user fails.

use crate::plan::{Plan, Signing, SshEntry, Target};
use crate::protocol::{self, Absent};
use crate::provision::{files_written, user_files_request};
use crate::render::{render_config, render_known_hosts, render_public_keys, FILE_MARK};
use crate::scripts::{self, Write};
use crate::validate::validate;
use bottle_runtime::ExecRequest;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SHELLS: [&[&str]; 2] = [&["dash"], &["busybox", "sh"]];
const NOBODY: u32 = 65534;

/// The ids the scripts run as: `nobody` when these tests run as root.
fn runner() -> Option<(u32, u32)> {
    let me = std::fs::metadata("/proc/self").unwrap();
    (me.uid() == 0).then_some((NOBODY, NOBODY))
}

/// A home (and scratch space) the scripts' user owns.
struct Home {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        if runner().is_some() {
            for up in root.ancestors() {
                let mode = std::fs::metadata(up).unwrap().permissions().mode();
                assert!(mode & 0o001 != 0, "nobody cannot reach {up:?}: set TMPDIR");
            }
        }
        let home = Home { _dir: dir, root };
        home.mkdir("home");
        home.mkdir("run");
        home
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    fn home(&self) -> String {
        self.path("home").display().to_string()
    }
    fn own(&self, p: &Path) {
        if let Some((u, g)) = runner() {
            std::os::unix::fs::lchown(p, Some(u), Some(g)).unwrap();
        }
    }
    fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        self.own(&p);
        p
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap();
        self.own(&p);
        p
    }
    /// A `PATH` of the programs the user-side scripts run, less `find`,
    /// as in an image without findutils: the escalation check's walk of
    /// the program directories takes ~0.2 s on a full host (milliseconds in
    /// an image), so only the tests about it walk them. (busybox sh runs
    /// its own `find` whatever the `PATH`.)
    fn no_find(&self) -> String {
        let bin = self.path("bin-no-find");
        if !bin.exists() {
            std::fs::create_dir(&bin).unwrap();
            let tools = crate::root_tools(true)
                .into_iter()
                .chain(["head", "rmdir", "sudo"]);
            for tool in tools {
                let found = std::env::split_paths(PATH)
                    .map(|d| d.join(tool))
                    .find(|p| p.exists());
                // sudo may be absent: the check then has nothing to try.
                match found {
                    Some(real) => std::os::unix::fs::symlink(real, bin.join(tool)).unwrap(),
                    None => assert_eq!(tool, "sudo", "{tool} is not installed"),
                }
            }
        }
        bin.display().to_string()
    }
    fn target(&self) -> Target {
        Target {
            user: "nobody".into(),
            home: self.home(),
            agent_socket: self.path("run/agent.sock").display().to_string(),
            public_socket: self.path("run/agent.sock").display().to_string(),
        }
    }
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `req` (an [`ExecRequest::script`]) under `shell` with `path` as
/// `PATH`, failing the test if it runs 10 s (a script that blocks).
fn run(shell: &[&str], req: &ExecRequest, path: &str) -> Ran {
    use std::io::{Read, Write as _};
    let [sh, c, rest @ ..] = req.argv.as_slice() else {
        panic!("not a script: {:?}", req.argv)
    };
    assert_eq!((sh.as_str(), c.as_str()), ("/bin/sh", "-c"));
    let mut cmd = Command::new(installed(shell[0]));
    cmd.args(&shell[1..])
        .arg(c)
        .args(rest)
        .env_clear()
        .env("PATH", path)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((u, g)) = runner() {
        cmd.uid(u).gid(g);
    }
    let mut child = cmd.spawn().unwrap();
    let stdin = req.stdin.as_ref().map(|s| s.to_vec()).unwrap_or_default();
    let mut pipe = child.stdin.take().unwrap();
    // A script that exits early leaves stdin unread: a broken pipe is fine.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&stdin);
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{shell:?} ran 10 s: blocked");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    writer.join().unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.unwrap().read_to_string(&mut stderr).unwrap();
    Ran {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Where `name` is on this process's `PATH` (the script's `PATH` may lack
/// it): a shell missing here fails the test, it is never skipped.
fn installed(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (apt-get install -y {name})"))
}

const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// What provision gives the user's exec for `plan`, built as provision
/// builds it.
struct Files {
    config: String,
    known_hosts: Option<String>,
    public_keys: Vec<(String, String)>,
    signing: [String; 4],
}

impl Files {
    fn of(plan: &Plan, target: &Target) -> Files {
        let valid = validate(plan).unwrap();
        Files {
            config: render_config(&valid, target),
            known_hosts: render_known_hosts(&valid),
            public_keys: render_public_keys(&valid),
            signing: crate::signing::render_files(valid.signing.as_ref(), target),
        }
    }
    /// The request of a guarded bottle's provision.
    fn request(&self, write: Write, target: &Target) -> ExecRequest {
        self.request_with(write, target, false)
    }
    /// `relay`: a bottle with guard = "off" (its tools include socat).
    fn request_with(&self, write: Write, target: &Target, relay: bool) -> ExecRequest {
        user_files_request(
            write,
            target,
            &self.config,
            self.known_hosts.as_deref(),
            &self.public_keys,
            &self.signing,
            &crate::root_tools(relay),
        )
    }
}

/// A plan of `n` login keys (the first with a pinned host key), and a
/// signing key when `signing`. Keys are made in memory: milliseconds.
fn plan(h: &Home, n: usize, signing: bool) -> Plan {
    use ssh_key::{rand_core::OsRng, Algorithm, PrivateKey};
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n_dir = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let keys = h.mkdir(&format!("keys{n_dir}"));
    let host = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let entry = |i: usize| SshEntry {
        host: format!("h{i}"),
        hostname: format!("h{i}.example"),
        user: "git".into(),
        identity_file: crate::provision_tests::key_file(&keys, &format!("k{i}")),
        known_host_key: (i == 0).then(|| host.public_key().to_openssh().unwrap()),
        ..Default::default()
    };
    Plan {
        signing: signing.then(|| Signing {
            identity_file: crate::provision_tests::key_file(&keys, "s"),
            ..Default::default()
        }),
        gate: None,
        ssh: (0..n).map(entry).collect(),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn user_files(shell: &[&str], h: &Home, files: &Files, write: Write) -> protocol::UserFiles {
    user_files_in(shell, h, files, write, &h.no_find())
}

fn user_files_in(
    shell: &[&str],
    h: &Home,
    files: &Files,
    write: Write,
    path: &str,
) -> protocol::UserFiles {
    let ran = run(shell, &files.request(write, &h.target()), path);
    assert_eq!(ran.code, 0, "{shell:?}: {}{}", ran.stdout, ran.stderr);
    protocol::user_files(&ran.stdout)
        .unwrap_or_else(|e| panic!("{shell:?}: {}: {}", e.0, ran.stdout))
}

#[test]
fn user_files_writes_what_the_report_lists_and_a_second_plan_replaces_the_first() {
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        let first = Files::of(&plan(&h, 2, true), &t);
        let r = user_files_in(shell, &h, &first, Write::Always, PATH);
        assert!(
            r.done && !r.not_clean && !r.git_config_theirs,
            "{shell:?}: {r:?}"
        );
        assert!(
            r.removed.is_empty() && r.missing.is_empty(),
            "{shell:?}: {r:?}"
        );
        assert!(
            r.escalation.is_some(),
            "{shell:?}: the check ran to its end"
        );
        let ids = r.ids.expect("uid and gid");
        let (uid, gid) = runner().unwrap_or((ids.uid, ids.gid));
        assert_eq!((ids.uid, ids.gid), (uid, gid));
        // Every file the report names exists with its mode and owner.
        let listed = files_written(&t, ids, true, &first.public_keys, true, false);
        assert_eq!(listed.len(), 3 + first.public_keys.len() + 4, "{listed:?}");
        for f in &listed {
            let meta = std::fs::symlink_metadata(&f.path).unwrap();
            assert!(meta.is_file() || meta.is_dir(), "{}", f.path);
            assert_eq!(
                format!("{:o}", mode(Path::new(&f.path))),
                f.mode,
                "{}",
                f.path
            );
            assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", f.path);
        }
        let ssh = h.path("home/.ssh");
        assert_eq!(
            std::fs::read_to_string(ssh.join("config")).unwrap(),
            first.config
        );
        assert!(first.config.starts_with(FILE_MARK));
        for (name, text) in &first.public_keys {
            assert_eq!(&std::fs::read_to_string(ssh.join(name)).unwrap(), text);
        }
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(&ssh)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".bottle.")),
            "{names:?}"
        );
        assert_eq!(stages_in(&h.path("home")), Vec::<String>::new());

        // A plan of one key without signing: the rest is removed.
        let second = Files::of(&plan(&h, 1, false), &t);
        let r = user_files(shell, &h, &second, Write::Always);
        assert!(r.done, "{shell:?}: {r:?}");
        let mut removed = r.removed.clone();
        removed.sort();
        let ssh = ssh.display().to_string();
        let mut expected: Vec<String> = first
            .public_keys
            .iter()
            .map(|(n, _)| format!("{ssh}/{n}"))
            .chain([
                format!("{ssh}/bottle-signing.gitconfig"),
                format!("{ssh}/bottle-allowed-signers"),
                format!("{ssh}/bottle-ssh-keygen"),
                crate::signing::xdg_config(&t),
            ])
            .collect();
        expected.sort();
        assert_eq!(removed, expected, "{shell:?}");
    }
}

/// The names of `dir` that are stages (`.bottle.*`).
fn stages_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".bottle."))
        .collect()
}

/// A new ~/.ssh is staged in the home and renamed into place; when
/// something makes ~/.ssh meanwhile (here the `mktemp` the script runs, so
/// dash only: busybox sh runs its own), the files still land in it whole
/// and no stage is left anywhere.
#[test]
fn user_files_lands_in_an_ssh_dir_made_meanwhile() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    let t = h.target();
    let ssh = h.path("home/.ssh");
    let bin = h.mkdir("bin-racing");
    let racing = bin.join("mktemp");
    std::fs::write(
        &racing,
        format!(
            "#!/bin/sh\nd=$({} \"$@\") || exit 1\nmkdir -p {}\necho \"$d\"\n",
            installed("mktemp").display(),
            ssh.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&racing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), h.no_find());
    let files = Files::of(&plan(&h, 2, false), &t);
    let r = user_files_in(&["dash"], &h, &files, Write::Always, &path);
    assert!(r.done, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(ssh.join("config")).unwrap(),
        files.config
    );
    for (name, text) in &files.public_keys {
        assert_eq!(&std::fs::read_to_string(ssh.join(name)).unwrap(), text);
    }
    assert_eq!(mode(&ssh), 0o700);
    assert_eq!(stages_in(&ssh), Vec::<String>::new());
    assert_eq!(stages_in(&h.path("home")), Vec::<String>::new());
}

#[test]
fn user_files_replaces_a_symlinked_ssh_dir_and_never_opens_a_fifo() {
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        let elsewhere = h.mkdir("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, h.path("home/.ssh")).unwrap();
        h.own(&h.path("home/.ssh"));
        let files = Files::of(&plan(&h, 1, false), &t);
        let r = user_files(shell, &h, &files, Write::Always);
        let ssh = h.path("home/.ssh");
        assert_eq!(r.removed, [ssh.display().to_string()], "{shell:?}");
        assert!(std::fs::symlink_metadata(&ssh).unwrap().is_dir());
        assert_eq!(mode(&ssh), 0o700);
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "{shell:?}"
        );

        // FIFOs where bottle's files go: replaced, never opened (a reader
        // would block on them); one where the user keeps a file: left.
        for name in ["config", "known_hosts"] {
            let p = ssh.join(name);
            std::fs::remove_file(&p).ok();
            nix_mkfifo(&p);
            h.own(&p);
        }
        let no_known = Files {
            known_hosts: None,
            ..files
        };
        let r = user_files(shell, &h, &no_known, Write::Always);
        assert!(r.done && r.removed.is_empty(), "{shell:?}: {r:?}");
        assert!(std::fs::symlink_metadata(ssh.join("config"))
            .unwrap()
            .is_file());
        let kh = std::fs::symlink_metadata(ssh.join("known_hosts")).unwrap();
        assert!(kh.file_type().is_fifo(), "{shell:?}: the user's FIFO stays");
    }
}

fn nix_mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

use std::os::unix::fs::FileTypeExt;

/// A file starting with bottle's mark line.
const MARKED: &str = concat!(
    "# Written by bottle: replaced by each provision, removed by deprovision.",
    "\nmarked\n"
);

#[test]
fn user_files_leaves_the_users_own_files_alone() {
    assert!(MARKED.starts_with(FILE_MARK));
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        h.mkdir("home/.ssh");
        h.mkdir("home/.config/git");
        let theirs = [
            ("home/.ssh/known_hosts", "github.com ssh-ed25519 AAAA\n"),
            (
                "home/.ssh/bottle-0123abcd.pub",
                "their own, same name shape\n",
            ),
            // Marked as bottle's, but not a name bottle writes.
            ("home/.ssh/bottle-x\nremoved .pub", MARKED),
            ("home/.config/git/config", "[user]\n\tname = them\n"),
        ];
        for (rel, text) in theirs {
            h.write(rel, text);
        }
        let files = Files {
            known_hosts: None,
            ..Files::of(&plan(&h, 1, true), &t)
        };
        let r = user_files(shell, &h, &files, Write::Always);
        assert!(
            r.done && r.git_config_theirs && r.removed.is_empty(),
            "{shell:?}: {r:?}"
        );
        for (rel, text) in theirs {
            assert_eq!(
                std::fs::read_to_string(h.path(rel)).unwrap(),
                text,
                "{rel:?}"
            );
        }
        // Provision's report leaves the user's git config out.
        let listed = files_written(&t, r.ids.unwrap(), false, &files.public_keys, true, true);
        assert!(listed
            .iter()
            .all(|f| !f.path.ends_with(".config/git/config")));
        assert!(
            listed.iter().all(|f| Path::new(&f.path).exists()),
            "{listed:?}"
        );
    }
}

#[test]
fn user_files_if_clean_changes_nothing_where_something_is() {
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        h.write("home/.ssh", "a file where ~/.ssh goes\n");
        let files = Files::of(&plan(&h, 1, false), &t);
        let r = user_files(shell, &h, &files, Write::IfClean);
        assert!(
            r.not_clean && !r.done && r.removed.is_empty(),
            "{shell:?}: {r:?}"
        );
        assert_eq!(
            std::fs::read_to_string(h.path("home/.ssh")).unwrap(),
            "a file where ~/.ssh goes\n"
        );
        // Where nothing is, it writes.
        std::fs::remove_file(h.path("home/.ssh")).unwrap();
        let r = user_files(shell, &h, &files, Write::IfClean);
        assert!(r.done && !r.not_clean, "{shell:?}: {r:?}");
    }
}

#[test]
fn user_files_reports_missing_tools_and_home_and_writes_nothing() {
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        // A PATH with every tool but socat (links to the real ones), for a
        // bottle with guard = "off" (a guarded one needs no socat).
        let bin = h.mkdir("bin");
        for tool in crate::root_tools(true)
            .into_iter()
            .filter(|t| *t != "socat")
        {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{tool} is not installed"));
            std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
        }
        let files = Files::of(&plan(&h, 1, false), &t);
        let ran = run(
            shell,
            &files.request_with(Write::Always, &t, true),
            &bin.display().to_string(),
        );
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let r = protocol::user_files(&ran.stdout).unwrap();
        assert_eq!(r.missing, [Absent::Tool("socat".into())], "{shell:?}");
        assert!(!r.done && r.ids.is_none());
        assert!(!h.path("home/.ssh").exists());
        // A guarded bottle's user exec does not ask for socat.
        let ran = run(
            shell,
            &files.request(Write::Always, &t),
            &bin.display().to_string(),
        );
        let r = protocol::user_files(&ran.stdout).unwrap();
        assert!(r.missing.is_empty() && r.done, "{shell:?}: {r:?}");

        let gone = Target {
            home: h.path("no-such-home").display().to_string(),
            ..t.clone()
        };
        let ran = run(shell, &files.request(Write::Always, &gone), &h.no_find());
        let r = protocol::user_files(&ran.stdout).unwrap();
        assert_eq!(r.missing, [Absent::Home], "{shell:?}");
        assert!(!r.done && !h.path("no-such-home").exists());
    }
}

#[test]
fn deprovision_user_removes_only_bottles_files() {
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        let files = Files::of(&plan(&h, 2, true), &t);
        let written = user_files(shell, &h, &files, Write::Always);
        let listed = files_written(
            &t,
            written.ids.unwrap(),
            true,
            &files.public_keys,
            true,
            false,
        );
        let theirs = h.write("home/.ssh/id_ed25519.pub", "their own\n");
        let marked = h.write("home/.ssh/bottle-x\nremoved .pub", MARKED);
        let req = ExecRequest::script(&scripts::deprovision_user(), [t.home.as_str()]);
        let ran = run(shell, &req, &h.no_find());
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let r = protocol::deprovision(&ran.stdout).unwrap();
        assert!(r.done, "{shell:?}: {}", ran.stdout);
        let mut removed = r.removed.clone();
        removed.sort();
        // Every file provision listed but ~/.ssh (the user's file keeps it).
        let mut expected: Vec<String> = listed.iter().skip(1).map(|f| f.path.clone()).collect();
        expected.sort();
        assert_eq!(removed, expected, "{shell:?}");
        assert!(theirs.exists() && marked.exists());

        // Then with nothing of the user's left: ~/.ssh goes too.
        std::fs::remove_file(&theirs).unwrap();
        std::fs::remove_file(&marked).unwrap();
        let r = protocol::deprovision(&run(shell, &req, &h.no_find()).stdout).unwrap();
        assert_eq!(r.removed, [h.path("home/.ssh").display().to_string()]);
        assert!(!h.path("home/.ssh").exists());
    }
}

/// An `ssh-agent -D` the scripts' user owns, holding one key; killed on drop.
struct Agent {
    child: std::process::Child,
    fingerprint: String,
}

impl Agent {
    fn start(h: &Home) -> Agent {
        let sock = h.path("run/agent.sock");
        let mut cmd = Command::new("ssh-agent");
        cmd.args(["-D", "-a"]).arg(&sock).stdout(Stdio::null());
        if let Some((u, g)) = runner() {
            cmd.uid(u).gid(g);
        }
        let child = cmd.spawn().unwrap();
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "ssh-agent did not start"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let key = crate::provision_tests::key_file(&h.mkdir("agent-keys"), "k");
        h.own(&key);
        let mut add = Command::new("ssh-add");
        add.arg("-q").arg(&key).env("SSH_AUTH_SOCK", &sock);
        if let Some((u, g)) = runner() {
            add.uid(u).gid(g);
        }
        assert!(add.output().unwrap().status.success());
        let text = std::fs::read_to_string(&key).unwrap();
        let fingerprint = ssh_key::PrivateKey::from_openssh(text)
            .unwrap()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string();
        Agent { child, fingerprint }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn verify_user_reads_the_agent_and_is_denied_its_memory() {
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        let agent = Agent::start(&h);
        let pid = agent.child.id().to_string();
        let req = ExecRequest::script(
            &scripts::verify_user(),
            [
                t.agent_socket.as_str(),
                t.public_socket.as_str(),
                &pid,
                "none",
            ],
        );
        let ran = run(shell, &req, &h.no_find());
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let r = protocol::verify_user(&ran.stdout).unwrap();
        // Without find (dash here; busybox has its own) the escalation
        // check did not run, and says so.
        let walked = shell[0] == "busybox";
        assert!(
            r.done && r.escalation.is_some() == walked,
            "{shell:?}: {r:?}"
        );
        assert_eq!(r.public_keys, std::slice::from_ref(&agent.fingerprint));
        assert_eq!(r.private_rc.as_deref(), Some("0"));
        // ssh-agent makes itself undumpable: even its own user cannot
        // open its memory; a non-numeric pid is skipped.
        assert_eq!(
            r.denied,
            [format!("/proc/{pid}/mem"), format!("/proc/{pid}/environ")],
            "{shell:?}"
        );

        // No agent: ssh-add's "cannot connect" exit code, no keys.
        let req = ExecRequest::script(
            &scripts::verify_user(),
            [
                h.path("none.sock").to_str().unwrap(),
                h.path("none.sock").to_str().unwrap(),
                "",
                "",
            ],
        );
        let r = protocol::verify_user(&run(shell, &req, &h.no_find()).stdout).unwrap();
        assert!(r.done && r.public_keys.is_empty() && r.denied.is_empty());
        assert_eq!(r.private_rc.as_deref(), Some("2"));
    }
}

#[test]
fn keys_user_lists_what_the_agent_holds() {
    for shell in SHELLS {
        let h = Home::new();
        let t = h.target();
        let agent = Agent::start(&h);
        let req = ExecRequest::script(scripts::KEYS_USER, [t.public_socket.as_str()]);
        let ran = run(shell, &req, &h.no_find());
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let listing = protocol::listing(&ran.stdout).unwrap();
        assert_eq!(listing.len(), 1, "{shell:?}");
        assert_eq!(
            (listing[0].0, listing[0].1, listing[0].3),
            (256, agent.fingerprint.as_str(), "ED25519")
        );
        // No agent: exit 2, which list_keys reports as a script error.
        let req = ExecRequest::script(scripts::KEYS_USER, [h.path("none").to_str().unwrap()]);
        assert_eq!(run(shell, &req, &h.no_find()).code, 2);
    }
}

/// An image without `find`: the escalation check says it did not run
/// (no `escalation-checked`), never that there is no way to root.
#[test]
fn escalation_without_find_is_unchecked_not_clean() {
    let h = Home::new();
    let req = ExecRequest::script(scripts::ESCALATION, Vec::<&str>::new());
    let ran = run(&["dash"], &req, &h.no_find());
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        protocol::escalation(&ran.stdout).unwrap(),
        None,
        "{}",
        ran.stdout
    );
}

#[test]
fn escalation_runs_to_its_end_and_reads() {
    for shell in SHELLS {
        let req = ExecRequest::script(scripts::ESCALATION, Vec::<&str>::new());
        let ran = run(shell, &req, PATH);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let found = protocol::escalation(&ran.stdout).unwrap();
        let found = found.unwrap_or_else(|| panic!("{shell:?}: {}", ran.stdout));
        // As nobody, sudo asks for a password: no `escalation sudo`.
        if runner().is_some() {
            assert!(!found.iter().any(|f| f == "sudo"), "{found:?}");
        }
    }
}
