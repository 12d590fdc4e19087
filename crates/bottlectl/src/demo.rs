//! `bottlectl demo`: the main job end to end on a throwaway bottle.
//!
//! Starts a bottle (network `none`) and an sshd "gate" sharing its network
//! namespace (so it listens on the bottle's loopback), generates fresh keys
//! in the gate, provisions the bottle to reach the gate through the agent,
//! proves `ssh demo id -un` as the unprivileged user, verifies, deprovisions
//! and removes both containers, also on failure or Ctrl-C.

use crate::cli::DemoArgs;
use crate::failure::Failure;
use crate::output::{engine_json, Out};
use bottle::config::Config;
use bottle::runtime::{ExecRequest, NetworkMode, RunSpec};
use bottle::ssh::{Gate, SshEntry};
use bottle::{ContainerAdmin, Plan, Selection, Target};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

const GATE_PORT: i64 = 2201;
const ALIAS: &str = "demo";
const UPSTREAM: &str = "git.demo.invalid";

// Runs as root in the gate: fresh host and user keys, authorized_keys for
// `git`, sshd on the shared loopback only. sshd daemonises after binding, so
// it is listening when this returns.
const GATE_SETUP: &str = r#"
set -e
umask 077
mkdir -p /etc/ssh /run/sshd /home/git/.ssh /tmp/demo
ssh-keygen -q -t ed25519 -N '' -C bottle-demo-host -f /etc/ssh/demo_host_key
ssh-keygen -q -t ed25519 -N '' -C bottle-demo-user -f /tmp/demo/id
cp /tmp/demo/id.pub /home/git/.ssh/authorized_keys
chown -R 1001:1001 /home/git/.ssh
chmod 700 /home/git/.ssh
chmod 600 /home/git/.ssh/authorized_keys
printf '%s\n' \
  'ListenAddress 127.0.0.1' \
  "Port $1" \
  'HostKey /etc/ssh/demo_host_key' \
  'PubkeyAuthentication yes' \
  'PasswordAuthentication no' \
  'KbdInteractiveAuthentication no' \
  'AuthorizedKeysFile .ssh/authorized_keys' \
  'UsePAM no' \
  'PidFile /run/demo_sshd.pid' > /etc/ssh/demo_sshd_config
/usr/sbin/sshd -f /etc/ssh/demo_sshd_config -E /tmp/demo/sshd.log
"#;

struct Names {
    bottle: String,
    gate: String,
}

pub async fn run(out: &Out, config: &Config, args: &DemoArgs) -> Result<u8, Failure> {
    // Importing the image is one engine call that can take a while on a
    // slow disk: give the demo at least two minutes per call.
    let mut settings = config.settings.clone();
    settings.timeout = settings.timeout.max(std::time::Duration::from_secs(120));
    let sel = crate::select(&settings, None, out).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let suffix = format!("{}-{stamp:08x}", std::process::id());
    let names = Names {
        bottle: format!("bottle-demo-{suffix}"),
        gate: format!("bottle-demo-gate-{suffix}"),
    };

    let result = tokio::select! {
        r = body(out, &sel, &names) => r,
        _ = tokio::signal::ctrl_c() => Err(Failure::plain(130, "interrupted (Ctrl-C)")),
    };

    let keep = args.keep && result.is_ok();
    if keep {
        out.step(&format!(
            "kept: bottle `{b}` and gate `{g}` (remove with `{e} rm -f {g} {b}`)",
            b = names.bottle,
            g = names.gate,
            e = sel.engine().name()
        ));
    } else {
        cleanup(out, sel.admin.clone(), &names).await;
    }
    let mut summary = result?;
    if out.json {
        summary["removed"] = json!(!keep);
        out.json_value(&summary);
    } else {
        out.step("demo: ok");
    }
    Ok(0)
}

async fn cleanup(out: &Out, admin: Arc<dyn ContainerAdmin>, names: &Names) {
    // Gate first: it lives in the bottle's network namespace.
    for name in [&names.gate, &names.bottle] {
        let removed = {
            let _spin = out.spinner(&format!("removing `{name}`"));
            admin.remove(name).await
        };
        match removed {
            Ok(()) => out.step(&format!("removed `{name}`")),
            Err(e) => crate::output::eprint_line(&format!(
                "warning: could not remove `{name}`: {}",
                bottle::error_chain(&e)
            )),
        }
    }
}

fn engine_err(what: &str) -> impl FnOnce(bottle::RuntimeError) -> Failure + '_ {
    move |e| Failure::new(3, what, &e)
}

async fn body(out: &Out, sel: &Selection, names: &Names) -> Result<serde_json::Value, Failure> {
    let admin = sel.admin.clone();
    let rt = sel.runtime.clone();

    out.step("image: importing the test image if missing");
    let image = {
        let _spin = out.spinner("image: building and importing the test image");
        bottle_integration_tests::ensure_test_image(admin.as_ref()).await
    }
    .map_err(|e| Failure::new(3, "cannot build or import the test image", &e))?;
    out.step(&format!("image: {image}"));

    let mut spec = RunSpec::new(image.clone(), ["/bin/sleep", "infinity"]);
    spec.name = Some(names.bottle.clone());
    spec.network = NetworkMode::None;
    spec.labels = vec![("bottle-demo".into(), "1".into())];
    {
        let _spin = out.spinner("bottle: starting");
        admin.run(&spec).await
    }
    .map_err(engine_err("cannot start the demo bottle"))?;
    out.step(&format!(
        "bottle: started `{}` (network none)",
        names.bottle
    ));

    let mut gate = RunSpec::new(image.clone(), ["/bin/sleep", "infinity"]);
    gate.name = Some(names.gate.clone());
    gate.network = NetworkMode::Container(names.bottle.clone());
    gate.labels = vec![("bottle-demo".into(), "1".into())];
    {
        let _spin = out.spinner("gate: starting");
        admin.run(&gate).await
    }
    .map_err(engine_err("cannot start the demo gate"))?;
    let port = GATE_PORT.to_string();
    let setup = {
        let _spin = out.spinner("gate: generating keys and starting sshd");
        rt.exec_script(&names.gate, GATE_SETUP, &[&port], None)
            .await
    }
    .map_err(engine_err("cannot set up sshd in the gate"))?;
    if !setup.success() {
        return Err(Failure::plain(
            3,
            format!(
                "sshd setup in the gate failed (exit {}): {}",
                setup.exit_code,
                setup.stderr_lossy().trim()
            ),
        ));
    }
    out.step(&format!(
        "gate: sshd on 127.0.0.1:{GATE_PORT} in `{}` (shares the bottle's network namespace), fresh host and user keys",
        names.gate
    ));

    // The user key leaves the gate once, into a 0700 temp dir on this
    // machine: the manifest's IdentityFile. Never printed.
    let key = rt
        .exec_root(&names.gate, &["cat", "/tmp/demo/id"])
        .await
        .map_err(engine_err("cannot read the demo key"))?;
    let host_key = rt
        .exec_root(&names.gate, &["cat", "/etc/ssh/demo_host_key.pub"])
        .await
        .map_err(engine_err("cannot read the gate's host key"))?;
    let _ = rt
        .exec_root(
            &names.gate,
            &["rm", "-f", "/tmp/demo/id", "/tmp/demo/id.pub"],
        )
        .await;
    if !key.success() || !host_key.success() {
        return Err(Failure::plain(3, "the gate did not produce its keys"));
    }
    let dir = tempfile::Builder::new()
        .prefix("bottle-demo-")
        .tempdir()
        .map_err(|e| Failure::new(3, "cannot create a temporary directory", &e))?;
    let key_path = dir.path().join("id_ed25519");
    write_private(&key_path, &key.stdout)
        .map_err(|e| Failure::new(3, "cannot write the demo key", &e))?;
    let known = host_key
        .stdout_lossy()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");

    let plan = Plan {
        signing: None,
        gate: Some(Gate {
            host: "127.0.0.1".into(),
            ports: BTreeMap::from([(ALIAS.to_string(), GATE_PORT)]),
        }),
        ssh: vec![demo_entry(&key_path, &known)?],
    };
    // The demo image has `node` with /home/node: the default target.
    let target = Target::default();
    let report = {
        let _spin = out.spinner("provision: copying files, starting the agent and forwarder");
        bottle::provision(rt.as_ref(), &names.bottle, &plan, &target).await
    }
    .map_err(|e| crate::ssh_failure(e, None, "cannot provision", &names.bottle))?;
    for k in &report.keys {
        out.step(&format!(
            "provision: loaded {} {} into the agent",
            k.algorithm, k.fingerprint
        ));
    }
    out.step(&format!(
        "provision: wrote {}",
        report
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let proof = rt
        .exec(
            &names.bottle,
            ExecRequest::new(["ssh", "-o", "BatchMode=yes", ALIAS, "id", "-un"])
                .user(target.user.clone()),
        )
        .await
        .map_err(engine_err("cannot run ssh in the bottle"))?;
    let who = proof.stdout_lossy().trim().to_string();
    if !proof.success() || who != "git" {
        return Err(Failure::plain(
            3,
            format!(
                "`ssh {ALIAS} id -un` as {} did not log in as git (exit {}, stdout {who:?}): {}",
                target.user,
                proof.exit_code,
                proof.stderr_lossy().trim()
            ),
        ));
    }
    out.step(&format!(
        "proof: `ssh {ALIAS} id -un` as {} in the bottle printed `{who}` (through the agent; no key file in the bottle)",
        target.user
    ));

    let verify = bottle::verify(rt.as_ref(), &names.bottle, &plan, &target)
        .await
        .map_err(|e| crate::ssh_failure(e, None, "cannot verify", &names.bottle))?;
    if !verify.ok() {
        let failed: Vec<String> = verify
            .failures()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        return Err(Failure::plain(
            1,
            format!("verify found violations: {}", failed.join("; ")),
        ));
    }
    out.step(&format!("verify: all {} checks hold", verify.checks.len()));

    let dep = bottle::deprovision(rt.as_ref(), &names.bottle, &target)
        .await
        .map_err(|e| crate::ssh_failure(e, None, "cannot deprovision", &names.bottle))?;
    out.step(&format!(
        "deprovision: removed {} path(s)",
        dep.removed.len()
    ));

    Ok(json!({
        "ok": true,
        "engine": engine_json(sel),
        "image": image,
        "bottle": names.bottle,
        "gate": names.gate,
        "alias": ALIAS,
        "keys": report.keys,
        "files": report.files,
        "proof": { "command": format!("ssh {ALIAS} id -un"), "user": target.user, "stdout": who },
        "verify": { "ok": true, "checks": verify.checks.len() },
        "deprovision": dep,
    }))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The demo's `[[ssh]]` entry, built the way a manifest's is (serde, with
/// every optional field at its default) so that fields the provisioner
/// adds later keep their manifest defaults here too.
fn demo_entry(key_path: &std::path::Path, known_host_key: &str) -> Result<SshEntry, Failure> {
    serde_json::from_value(json!({
        "Host": ALIAS,
        "Hostname": UPSTREAM,
        "User": "git",
        "IdentityFile": key_path,
        "KnownHostKey": known_host_key,
    }))
    .map_err(|e| Failure::new(3, "cannot build the demo's ssh entry", &e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_entry_is_a_plain_gate_entry() {
        let e = super::demo_entry("/tmp/k".as_ref(), "ssh-ed25519 AAAA").unwrap();
        assert_eq!(e.host, super::ALIAS);
        assert_eq!(e.hostname, super::UPSTREAM);
        assert_eq!(e.user, "git");
        assert_eq!(e.identity_file, std::path::Path::new("/tmp/k"));
        assert_eq!(e.known_host_key.as_deref(), Some("ssh-ed25519 AAAA"));
        assert_eq!(e.port, None);
    }
}
