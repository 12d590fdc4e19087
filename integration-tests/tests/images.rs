//! The image matrix works on each engine: every variant's bottle starts with
//! its user, userland, privileges and run options as `image::IMAGES` and
//! `harness::Variant` describe them, and an sshd gate accepts a key login on
//! each.

use bottle_integration_tests::image::{image, Userland, BUSYBOX, SETID_PROGRAMS};
use bottle_integration_tests::ssh_fixtures::{keygen_with, start_sshd};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_runtime::ExecRequest;

/// The bottle runs the variant's image; its user has the described name,
/// uid, gid and home, and can write there (unless the root is read-only)
/// and in /tmp.
async fn check_user_and_home(env: &TestEnv) {
    assert!(env.bottle_info().is_running());
    let built = image(env.variant().image).unwrap();
    assert_eq!(env.image(), built.reference);

    let out = env
        .exec_as_user(&[
            "/bin/sh",
            "-c",
            "id -u; id -g; id -un; echo \"$HOME\"; cd && pwd",
        ])
        .await;
    assert_success(&out, "id as the user");
    assert_eq!(
        out.stdout_lossy(),
        format!(
            "{uid}\n{gid}\n{user}\n{home}\n{home}\n",
            uid = env.uid(),
            gid = env.gid(),
            user = env.user(),
            home = env.home()
        )
    );
    // The home is the user's own; the gate's login user exists beside it.
    let gate = env.image_spec().gate_user;
    let out = env
        .sh(
            "stat -c '%u %g %a' \"$1\"; id -u git; id -u node 2>/dev/null || echo none",
            &[env.home()],
        )
        .await;
    let node = if env.user() == "node" { "1000" } else { "none" };
    assert_eq!(
        out,
        format!("{} {} 755\n{}\n{node}\n", env.uid(), env.gid(), gate.uid)
    );
    let out = env
        .exec_as_user(&["/bin/sh", "-c", "touch /tmp/u && touch ~/u"])
        .await;
    assert_eq!(
        out.success(),
        !env.variant().read_only,
        "touch /tmp/u ~/u: {}",
        out.stderr_lossy()
    );
}

/// `/bin/sh` is busybox ash on busybox, bash on bash, dash elsewhere;
/// busybox has no GNU tool (GNU options fail) while the others do.
async fn check_userland(env: &TestEnv) {
    let out = env.sh("readlink -f /bin/sh", &[]).await;
    let busybox = env.image_spec().userland == Userland::Busybox;
    let shell = match env.image_spec().userland {
        Userland::Busybox => "/bin/busybox\n",
        Userland::Bash => "/usr/bin/bash\n",
        Userland::Debian => "/usr/bin/dash\n",
    };
    assert_eq!(out, shell);
    // GNU grep knows `-D skip`; busybox's grep refuses it.
    let out = env
        .exec_as_user(&["grep", "-D", "skip", "-r", "x", "/dev/null"])
        .await;
    let stderr = out.stderr_lossy();
    if busybox {
        assert_ne!(out.exit_code, 0, "busybox grep took -D");
        assert!(
            stderr.contains("invalid option") || stderr.contains("unrecognized"),
            "{stderr}"
        );
    } else {
        // No match, no error.
        assert_eq!((out.exit_code, stderr.as_ref()), (1, ""));
    }
}

/// Every program the image carries loads (its libraries are there) as the
/// user; every busybox applet link points at busybox and runs.
async fn check_every_program_loads(env: &TestEnv) {
    let built = image(env.variant().image).unwrap();
    for path in &built.programs {
        // busybox has no `--version` (exit 127, "applet not found").
        let arg = if *path == BUSYBOX.0 {
            "--help"
        } else {
            "--version"
        };
        let out = env
            .rt()
            .exec(
                env.bottle(),
                ExecRequest::new([path.as_str(), arg])
                    .user(env.uid().to_string())
                    .stdin(Vec::new()),
            )
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let stderr = out.stderr_lossy();
        assert!(
            !stderr.contains("error while loading") && out.exit_code != 127,
            "{path}: exit {} stderr {stderr}",
            out.exit_code
        );
    }
    if built.applets.is_empty() {
        return;
    }
    let mut args: Vec<&str> = built.applets.iter().map(String::as_str).collect();
    args.insert(0, "/bin/busybox");
    let out = env
        .sh(
            r#"bb=$1; shift
               for a in "$@"; do
                 [ "$(readlink "$a")" = "$bb" ] || echo "$a -> $(readlink "$a")"
               done
               # Through PATH, as scripts call them.
               printf 'b\na\n' | sort | tr -d '\n'; echo
               id -u | wc -l | tr -d ' '
               seq 3 | tail -n 1; timeout 5 true && echo timeout-ok"#,
            &args,
        )
        .await;
    assert_eq!(out, "ab\n1\n3\ntimeout-ok\n");
}

/// Only the sudo variant lets the user become root: `sudo -n` and the
/// set-id-root programs work there, and nothing is set-id elsewhere.
async fn check_root_only_through_sudo(env: &TestEnv) {
    let sudo = env.image_spec().sudo;
    let out = env.exec_as_user(&["sudo", "-n", "id", "-u"]).await;
    if sudo {
        assert_success(&out, "sudo -n id -u");
        assert_eq!(out.stdout_lossy(), "0\n");
        assert_eq!(out.stderr_lossy(), "");
        let out = env.exec_as_user(&["rootenv", "id", "-u"]).await;
        assert_eq!(out.stdout_lossy(), "0\n", "{}", out.stderr_lossy());
        let out = env.exec_as_user(&["rootgroupenv", "id", "-g"]).await;
        assert_eq!(out.stdout_lossy(), "0\n", "{}", out.stderr_lossy());
    } else {
        assert_eq!(out.exit_code, 127, "sudo exists: {out:?}");
    }
    // The engines keep the set-id bits the archive has, and add none.
    let out = env
        .sh(
            "find / -xdev \\( -perm -4000 -o -perm -2000 \\) -type f | sort",
            &[],
        )
        .await;
    let expected = if sudo {
        let mut paths: Vec<&str> = SETID_PROGRAMS.iter().map(|(p, _)| *p).collect();
        paths.push("/usr/bin/sudo");
        paths.sort();
        paths.iter().map(|p| format!("{p}\n")).collect()
    } else {
        String::new()
    };
    assert_eq!(out, expected);
}

/// The read-only variant refuses writes to the root filesystem, even root's,
/// and has tmpfs `/run` (root's) and `/tmp` (everyone's); the others write.
async fn check_read_only_root(env: &TestEnv) {
    let read_only = env.variant().read_only;
    let out = env.exec_as("0", &["touch", "/x"]).await;
    assert_eq!(out.success(), !read_only, "touch /x as root: {out:?}");
    if read_only {
        assert!(
            out.stderr_lossy().contains("Read-only file system"),
            "{out:?}"
        );
        let out = env.exec_as_user(&["touch", "/x"]).await;
        assert!(!out.success());
        // No tmpfs the variant did not ask for.
        let out = env.exec_as("0", &["touch", "/var/tmp/x"]).await;
        assert!(!out.success(), "/var/tmp is writable");
        // Root writes /run; it starts empty (the image's /run/sshd is hidden).
        let out = env.sh("ls -A /run; touch /run/x", &[]).await;
        assert_eq!(out, "");
        let out = env
            .sh(
                "for p in /run /tmp; do \
                   grep \" $p tmpfs \" /proc/mounts | cut -d' ' -f1-3; stat -c '%a %u' $p; \
                 done",
                &[],
            )
            .await;
        assert_eq!(out, "tmpfs /run tmpfs\n755 0\ntmpfs /tmp tmpfs\n1777 0\n");
    }
    let out = env.exec_as_user(&["touch", "/tmp/x"]).await;
    assert_success(&out, "touch /tmp/x as the user");
    // A second bottle gets the same run options.
    let other = env.start_bottle().await.unwrap();
    let out = env
        .rt()
        .exec(&other.id, ExecRequest::new(["touch", "/y"]))
        .await
        .unwrap();
    assert_eq!(out.success(), !read_only, "{out:?}");
}

/// `ssh_fixtures::start_sshd` runs on every image: the user logs in to the
/// gate as `git` with a key it made itself.
async fn check_sshd_gate(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let host_key = keygen_with(dir.path(), "host", "ed25519", &[], "");
    // /tmp: writable on every variant, read-only root included.
    let out = env
        .exec_as_user(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "user",
            "-f",
            "/tmp/id",
        ])
        .await;
    assert_success(&out, "ssh-keygen as the user");
    let public = env.exec_as_user(&["cat", "/tmp/id.pub"]).await;
    let public = public.stdout_lossy().trim().to_string();
    start_sshd(env, &[2222], &[host_key.as_path()], &[public]).await;
    let out = env
        .exec_as_user(&[
            "ssh",
            "-i",
            "/tmp/id",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            "2222",
            "git@127.0.0.1",
            "id -u; readlink -f /bin/sh",
        ])
        .await;
    assert_success(&out, "ssh to the gate");
    let shell = match env.image_spec().userland {
        Userland::Busybox => "/bin/busybox",
        Userland::Debian => "/usr/bin/dash",
        Userland::Bash => "/usr/bin/bash",
    };
    assert_eq!(
        out.stdout_lossy(),
        format!("{}\n{shell}\n", env.image_spec().gate_user.uid)
    );
}

engine_tests!(
    images = all,
    check_user_and_home,
    check_userland,
    check_every_program_loads,
    check_root_only_through_sudo,
    check_read_only_root,
    check_sshd_gate,
);
