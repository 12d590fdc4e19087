//! The test image works on each engine: every tool loads its libraries, the
//! users and directories are as documented, and sshd accepts a key login.

use bottle_integration_tests::image::{ensure_test_image, test_image, BINARIES};
use bottle_integration_tests::{assert_success, engine_tests, TestEnv};
use bottle_runtime::ExecRequest;

async fn check_image_is_cached_by_content(env: &TestEnv) {
    let image = test_image().unwrap();
    assert_eq!(env.image(), image.reference);
    let admin = env.admin();
    assert!(admin.image_exists(env.image()).await.unwrap());
    // Already there: nothing to import, same reference.
    assert_eq!(
        ensure_test_image(admin.as_ref()).await.unwrap(),
        image.reference
    );
    assert!(!admin
        .image_exists("bottle-test:000000000000")
        .await
        .unwrap());
}

async fn check_every_tool_loads(env: &TestEnv) {
    for (path, _) in BINARIES {
        // Any option will do: what matters is that the loader finds every
        // library (it exits 127 with "error while loading shared libraries").
        let out = env
            .rt()
            .exec(
                env.bottle(),
                ExecRequest::new([*path, "--version"])
                    .user("1000")
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
    // The merged-/usr links resolve.
    let out = env
        .sh(
            "readlink /bin /sbin /lib /lib64 && /bin/sh -c 'echo via-bin'",
            &[],
        )
        .await;
    assert_eq!(out, "usr/bin\nusr/sbin\nusr/lib\nusr/lib64\nvia-bin\n");
}

async fn check_users_and_directories(env: &TestEnv) {
    let out = env
        .sh(
            "for u in root node git sshd; do id \"$u\"; done; \
             stat -c '%n %a %u %g' /root /tmp /home/node /home/git /run/sshd /etc/shadow",
            &[],
        )
        .await;
    assert_eq!(
        out,
        "uid=0(root) gid=0(root) groups=0(root)\n\
         uid=1000(node) gid=1000(node) groups=1000(node)\n\
         uid=1001(git) gid=1001(git) groups=1001(git)\n\
         uid=100(sshd) gid=65534(nogroup) groups=65534(nogroup)\n\
         /root 700 0 0\n\
         /tmp 1777 0 0\n\
         /home/node 755 1000 1000\n\
         /home/git 755 1001 1001\n\
         /run/sshd 755 0 0\n\
         /etc/shadow 600 0 0\n"
    );
    // Users can write where they should.
    let out = env
        .exec_as(
            "1000",
            &["/bin/sh", "-c", "touch /tmp/n ~/n && echo \"$HOME\""],
        )
        .await;
    assert_success(&out, "node writes /tmp and its home");
    let out = env
        .exec_as("1001", &["/bin/sh", "-c", "cd && pwd && whoami"])
        .await;
    assert_eq!(out.stdout_lossy(), "/home/git\ngit\n");
}

/// sshd runs in the image and `git` can log in with a key, over the bottle's
/// loopback: the building block of the SSH end-to-end tests.
async fn check_sshd_key_login(env: &TestEnv) {
    let script = r#"
set -e
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/host_ed25519
ssh-keygen -q -t ed25519 -N '' -f /root/id_test
mkdir -p /home/git/.ssh
cp /root/id_test.pub /home/git/.ssh/authorized_keys
chown -R 1001:1001 /home/git/.ssh
chmod 700 /home/git/.ssh
chmod 600 /home/git/.ssh/authorized_keys
cat > /etc/ssh/sshd_test_config <<EOF
ListenAddress 127.0.0.1:2222
HostKey /etc/ssh/host_ed25519
PidFile /run/sshd-test.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
EOF
/usr/sbin/sshd -f /etc/ssh/sshd_test_config -E /tmp/sshd.log
for i in $(seq 1 50); do
  if ssh -i /root/id_test -o BatchMode=yes -o StrictHostKeyChecking=no \
       -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p 2222 git@127.0.0.1 \
       'id -un; pwd' 2>/tmp/ssh.err; then
    exit 0
  fi
  sleep 0.1
done
cat /tmp/ssh.err /tmp/sshd.log >&2
exit 1
"#;
    let out = env.sh(script, &[]).await;
    assert_eq!(out, "git\n/home/git\n");
}

engine_tests!(
    check_image_is_cached_by_content,
    check_every_tool_loads,
    check_users_and_directories,
    check_sshd_key_login,
);
