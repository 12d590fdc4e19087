//! `bottlectl doctor`: engines, the selection, and a container's readiness.

use crate::failure::Failure;
use crate::output::Out;
use bottle::config::Config;
use bottle::runtime::ContainerState;
use bottle::{Engine, Probe, RuntimeError, Selection};
use serde::Serialize;
use serde_json::json;

/// One container check and, when it fails, the command that fixes it.
#[derive(Debug, Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

/// How to make an engine that did not answer answer.
pub fn fix_for_probe(p: &Probe) -> Option<String> {
    if p.answered() {
        return None;
    }
    if p.error.as_deref() == Some("not built in") {
        return Some(format!(
            "rebuild bottlectl with the `{}` feature of the bottle crate",
            p.engine.name()
        ));
    }
    Some(match (p.engine, p.endpoint_from.as_str()) {
        (Engine::Docker, "DOCKER_HOST") => format!(
            "DOCKER_HOST={} does not answer: fix or unset it",
            p.endpoint
        ),
        (Engine::Podman, "CONTAINER_HOST") => format!(
            "CONTAINER_HOST={} does not answer: fix or unset it",
            p.endpoint
        ),
        (_, "host setting") => format!(
            "the host setting {} does not answer: check `bottlectl config` and the engine there",
            p.endpoint
        ),
        (Engine::Docker, _) => "sudo systemctl enable --now docker.socket (or set DOCKER_HOST)".into(),
        (Engine::Podman, "rootless socket") => "systemctl --user enable --now podman.socket".into(),
        (Engine::Podman, _) => {
            "systemctl --user enable --now podman.socket (rootless) or sudo systemctl enable --now podman.socket (or set CONTAINER_HOST)".into()
        }
    })
}

fn cli_name(engine: Engine) -> &'static str {
    engine.name()
}

const CHECK_SCRIPT: &str = r#"
for t in ssh-agent ssh-add socat ssh; do
  if p=$(command -v "$t" 2>/dev/null); then echo "tool $t $p"; else echo "tool $t -"; fi
done
if u=$(id -u "$1" 2>/dev/null); then echo "user $u"; else echo "user -"; fi
if [ -d "$2" ]; then echo "home yes"; else echo "home no"; fi
if v=$(ssh -V 2>&1); then echo "ssh-version $v" | head -n 1; else echo "ssh-version -"; fi
"#;

fn package_of(tool: &str) -> &'static str {
    match tool {
        "socat" => "socat",
        _ => "openssh-client",
    }
}

async fn container_checks(
    sel: &Selection,
    config: &Config,
    name: &str,
) -> Result<Vec<Check>, RuntimeError> {
    let engine = cli_name(sel.engine());
    let mut checks = Vec::new();
    let info = match sel.runtime.inspect(name).await {
        Ok(info) => info,
        Err(RuntimeError::ContainerNotFound { .. }) => {
            checks.push(Check {
                name: "exists".into(),
                ok: false,
                detail: format!("no container named `{name}` in {}", sel.engine()),
                fix: Some(format!("{engine} ps -a   # check the name")),
            });
            return Ok(checks);
        }
        Err(e) => return Err(e),
    };
    let running = info.state == ContainerState::Running;
    checks.push(Check {
        name: "running".into(),
        ok: running,
        detail: format!("state {}", info.state),
        fix: (!running).then(|| match info.state {
            ContainerState::Paused => format!("{engine} unpause {name}"),
            _ => format!("{engine} start {name}"),
        }),
    });
    if !running {
        return Ok(checks);
    }
    let s = &config.settings;
    let out = sel
        .runtime
        .exec_script(name, CHECK_SCRIPT, &[&s.user, &s.container_home], None)
        .await?;
    let text = out.stdout_lossy();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("ssh-version ") {
            let (ok, detail, fix) = crate::keys::ssh_version_check(v);
            checks.push(Check {
                name: "ssh version".into(),
                ok,
                detail,
                fix,
            });
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["tool", tool, path] => {
                let ok = *path != "-";
                checks.push(Check {
                    name: (*tool).to_string(),
                    ok,
                    detail: if ok {
                        (*path).to_string()
                    } else {
                        "not on PATH".into()
                    },
                    fix: (!ok).then(|| {
                        format!(
                            "install {} in the image (Debian: apt-get install {})",
                            tool,
                            package_of(tool)
                        )
                    }),
                });
            }
            ["user", uid] => {
                let ok = *uid != "-";
                checks.push(Check {
                    name: "user".into(),
                    ok,
                    detail: if ok {
                        format!("{} (uid {uid})", s.user)
                    } else {
                        format!("no user `{}`", s.user)
                    },
                    fix: (!ok).then(|| {
                        format!(
                            "create it in the image (useradd -m {}) or set CLAUDE_BOTTLE_USER",
                            s.user
                        )
                    }),
                });
            }
            ["home", yes] => {
                let ok = *yes == "yes";
                checks.push(Check {
                    name: "home".into(),
                    ok,
                    detail: if ok {
                        s.container_home.clone()
                    } else {
                        format!("{} does not exist", s.container_home)
                    },
                    fix: (!ok).then(|| {
                        format!(
                            "{engine} exec -u 0 {name} sh -c 'mkdir -p {h} && chown {u} {h}' (or set CLAUDE_BOTTLE_CONTAINER_HOME)",
                            h = s.container_home,
                            u = s.user
                        )
                    }),
                });
            }
            _ => {}
        }
    }
    if checks.len() < 7 {
        checks.push(Check {
            name: "shell".into(),
            ok: false,
            detail: format!(
                "the check script did not run (exit {}): {}",
                out.exit_code,
                out.stderr_lossy().trim()
            ),
            fix: Some("the image needs /bin/sh".into()),
        });
    }
    Ok(checks)
}

pub async fn run(out: &Out, config: &Config, container: Option<&str>) -> Result<u8, Failure> {
    let probes = bottle::probe_all(&config.settings, None).await;
    let selection = bottle::select(&config.settings, container).await;

    let mut text = String::from("engines:\n");
    for p in &probes {
        match (&p.version, &p.error) {
            (Some(v), _) => text.push_str(&format!(
                "  ok    {:<7} {} (API {}) at {} [{}]\n",
                p.engine.name(),
                v,
                p.api_version.as_deref().unwrap_or("?"),
                p.endpoint,
                p.endpoint_from
            )),
            (None, e) => {
                text.push_str(&format!(
                    "  down  {:<7} at {} [{}]: {}\n",
                    p.engine.name(),
                    p.endpoint,
                    p.endpoint_from,
                    e.as_deref().unwrap_or("no answer")
                ));
                if let Some(fix) = fix_for_probe(p) {
                    text.push_str(&format!("        fix: {fix}\n"));
                }
            }
        }
    }
    text.push_str(&format!("runtime setting: {}\n", config.settings.runtime));

    let mut ok = true;
    let mut checks = Vec::new();
    let mut selected = serde_json::Value::Null;
    let mut selection_error = serde_json::Value::Null;
    match &selection {
        Ok(sel) => {
            text.push_str(&format!(
                "selected: {} at {} ({})\n",
                sel.engine().name(),
                sel.endpoint(),
                sel.why
            ));
            selected = crate::output::engine_json(sel);
            if let Some(name) = container {
                checks = container_checks(sel, config, name)
                    .await
                    .map_err(|e| Failure::new(3, "cannot check the container", &e))?;
                text.push_str(&format!("container `{name}` ({}):\n", sel.engine().name()));
                for c in &checks {
                    // Details are the container's: tool paths, `ssh -V`, stderr.
                    text.push_str(&format!(
                        "  {}  {:<9} {}\n",
                        if c.ok { "ok  " } else { "FAIL" },
                        crate::safe::field(&c.name),
                        crate::safe::field(&c.detail)
                    ));
                    if let Some(fix) = &c.fix {
                        text.push_str(&format!("        fix: {fix}\n"));
                    }
                }
                ok = checks.iter().all(|c| c.ok);
            }
        }
        Err(e) => {
            ok = false;
            text.push_str(&format!("selected: none: {}\n", bottle::error_chain(e)));
            selection_error = json!({ "message": e.to_string(), "exit_code": e.exit_code() });
        }
    }
    let code = match &selection {
        Err(e) => e.exit_code() as u8,
        Ok(_) if !ok => 3,
        Ok(_) => 0,
    };
    if out.json {
        out.json_value(&json!({
            "ok": ok,
            "runtime": config.settings.runtime,
            "engines": probes,
            "selected": selected,
            "selection_error": selection_error,
            "container": container.map(|name| json!({ "name": name, "checks": checks })),
        }));
    } else {
        out.human(&text);
    }
    Ok(code)
}
