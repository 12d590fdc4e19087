//! `bottlectl doctor`: engines, the selection, and a container's readiness.

use crate::failure::Failure;
use crate::output::Out;
use bottle::config::Config;
use bottle::runtime::ContainerState;
use bottle::ssh::Missing;
use bottle::{Engine, RuntimeError, Selection};
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

fn cli_name(engine: Engine) -> &'static str {
    engine.name()
}

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
    let sidecar = matches!(s.agent, bottle::config::AgentChoice::Sidecar);
    let preflight = if sidecar {
        bottle::ssh::sidecar::preflight(sel.runtime.as_ref(), name, &s.target()).await
    } else {
        let opts = bottle::ssh::Options {
            unguarded: s.guard == bottle::config::GuardChoice::Off,
            ..Default::default()
        };
        bottle::ssh::preflight_with(sel.runtime.as_ref(), name, &s.target(), &opts).await
    };
    let report = match preflight {
        Ok(report) => report,
        Err(bottle::ssh::Error::Runtime { source, .. }) => return Err(source),
        Err(e) => {
            checks.push(Check {
                name: "shell".into(),
                ok: false,
                detail: format!("the check script did not run: {e}"),
                fix: Some("the image needs /bin/sh".into()),
            });
            return Ok(checks);
        }
    };
    for u in &report.untrusted {
        checks.push(Check {
            name: "trusted path".into(),
            ok: false,
            detail: if u.is_permission() {
                format!("{}: {}: the user could replace what root runs or writes", u.path, u.reason)
            } else {
                u.to_string()
            },
            fix: Some(if u.is_permission() {
                format!(
                    "make it root-owned and not group/other-writable in the image (chown root:root, chmod go-w {}), or keep the user out of it",
                    u.path
                )
            } else {
                u.fix().to_string()
            }),
        });
    }
    if report.untrusted.is_empty() {
        checks.push(Check {
            name: "trusted path".into(),
            ok: true,
            detail: "root's PATH, programs, /run and the state directory".into(),
            fix: None,
        });
    }
    // socat only where a relay runs: guard off, or the sidecar layout's bottle.
    let relay = sidecar || s.guard == bottle::config::GuardChoice::Off;
    for tool in ["ssh-agent", "ssh-add", "socat", "ssh"] {
        if tool == "socat" && !relay {
            continue;
        }
        let found = report.tools.iter().find(|(t, _)| t == tool);
        if found.is_none() && sidecar && tool == "ssh-agent" {
            checks.push(Check {
                name: tool.to_string(),
                ok: true,
                detail:
                    "not needed in the bottle with agent = sidecar (the sidecar's image has it)"
                        .into(),
                fix: None,
            });
            continue;
        }
        checks.push(Check {
            name: tool.to_string(),
            ok: found.is_some(),
            detail: found.map_or_else(|| "not on root's trusted PATH".into(), |(_, p)| p.clone()),
            fix: found.is_none().then(|| {
                report.install_hint.clone().unwrap_or_else(|| {
                    format!(
                        "install {tool} in the image (Debian: apt-get install {})",
                        package_of(tool)
                    )
                })
            }),
        });
    }
    if report.untrusted.is_empty() {
        let no_user = report.missing.iter().any(|m| matches!(m, Missing::User(_)));
        checks.push(Check {
            name: "user".into(),
            ok: !no_user,
            detail: match report.uid {
                Some(uid) => format!("{} (uid {uid})", s.user),
                None => format!("no user `{}`", s.user),
            },
            fix: no_user.then(|| {
                format!(
                    "create it in the image (useradd -m {}) or set CLAUDE_BOTTLE_USER",
                    s.user
                )
            }),
        });
        let no_home = report.missing.iter().any(|m| matches!(m, Missing::Home(_)));
        checks.push(Check {
            name: "home".into(),
            ok: !no_home,
            detail: if no_home {
                format!("{} does not exist", s.container_home)
            } else {
                s.container_home.clone()
            },
            fix: no_home.then(|| {
                format!(
                    "{engine} exec -u 0 {name} sh -c 'mkdir -p {h} && chown {u} {h}' (or set CLAUDE_BOTTLE_CONTAINER_HOME)",
                    h = s.container_home,
                    u = s.user
                )
            }),
        });
        let (ok, detail, fix) =
            crate::keys::ssh_version_check(report.ssh_version.as_deref().unwrap_or("-"));
        checks.push(Check {
            name: "ssh version".into(),
            ok,
            detail,
            fix,
        });
    }
    if report.uid.is_some() {
        let (ok, detail) = match &report.escalation {
            None => (false, "could not check".to_string()),
            Some(how) if how.is_empty() => (
                true,
                "no passwordless sudo, no setuid/setgid-root program outside the allow-list"
                    .to_string(),
            ),
            Some(how) => (false, how.join("; ")),
        };
        checks.push(Check {
            name: "no root for the user".into(),
            ok,
            detail,
            fix: (!ok).then(|| {
                "the user can read the agent's keys as root: remove passwordless sudo and setuid-root programs from the image (chmod u-s PATH)"
                    .to_string()
            }),
        });
    }
    Ok(checks)
}

pub async fn run(out: &Out, config: &Config, container: Option<&str>) -> Result<u8, Failure> {
    let (probes, selection) = bottle::probe_all_then_select(&config.settings, container).await;

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
                    "  {}  {:<7} at {} [{}]: {}\n",
                    if p.permission_denied { "deny" } else { "down" },
                    p.engine.name(),
                    p.endpoint,
                    p.endpoint_from,
                    e.as_deref().unwrap_or("no answer")
                ));
                if let Some(fix) = p.fix() {
                    text.push_str(&format!("        fix: {fix}\n"));
                }
            }
        }
    }
    // The user's own files name these: escaped all the same.
    let named = bottle::named_endpoints(&config.settings);
    if !named.is_empty() {
        text.push_str("contexts and connections:\n");
    }
    for n in &named {
        text.push_str(&format!(
            "  {}  {:<7} {} {} at {}: {}\n",
            if n.used { "used" } else { "-   " },
            n.engine.name(),
            n.kind,
            crate::safe::field(&n.name),
            crate::safe::field(n.endpoint.as_deref().unwrap_or("-")),
            crate::safe::field(&n.why)
        ));
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
                        text.push_str(&format!("        fix: {}\n", crate::safe::field(fix)));
                    }
                }
                ok = checks.iter().all(|c| c.ok);
            }
        }
        Err(e) => {
            ok = false;
            text.push_str(&format!("selected: none: {}\n", bottle::error_chain(e)));
            selection_error =
                json!({ "message": e.to_string(), "exit_code": crate::exit::for_select(e) });
        }
    }
    let code = match &selection {
        Err(e) => crate::exit::for_select(e),
        Ok(_) if !ok => 3,
        Ok(_) => 0,
    };
    if out.json {
        out.json_value(&json!({
            "ok": ok,
            "runtime": config.settings.runtime,
            "engines": probes,
            "contexts_and_connections": named,
            "selected": selected,
            "selection_error": selection_error,
            "container": container.map(|name| json!({ "name": name, "checks": checks })),
        }));
    } else {
        out.human(&text);
    }
    Ok(code)
}
