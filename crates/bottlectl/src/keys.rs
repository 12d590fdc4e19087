//! `bottlectl keys CONTAINER`, `--strict`, and where passphrases of
//! encrypted keys come from (like ssh-add: the terminal, else SSH_ASKPASS).

use crate::failure::Failure;
use crate::output::{engine_json, Out};
use crate::safe::field;
use bottle::ssh::{AgentKey, Options, Passphrase, ProvisionReport};
use bottle::Selection;
use serde_json::json;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Asks once per key file (manifest check, then provision, reuse the
/// answer); answers are zeroized when dropped.
#[derive(Default)]
pub struct Prompt {
    cache: Mutex<HashMap<PathBuf, Zeroizing<String>>>,
}

impl Prompt {
    pub fn options(&self, strict: bool) -> Options<'_> {
        Options {
            passphrase: Some(self),
            strict,
            unguarded: false,
        }
    }
}

impl Passphrase for Prompt {
    fn passphrase(&self, key_file: &Path) -> Result<Zeroizing<String>, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(key_file) {
            return Ok(p.clone());
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let p = ask(
            key_file,
            env("SSH_ASKPASS").map(PathBuf::from),
            env("SSH_ASKPASS_REQUIRE").and_then(|v| v.into_string().ok()),
            env("DISPLAY").is_some() || env("WAYLAND_DISPLAY").is_some(),
            std::io::stdin().is_terminal(),
        )?;
        cache.insert(key_file.to_path_buf(), p.clone());
        Ok(p)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Source {
    Terminal,
    Askpass,
    Nowhere,
}

/// ssh-add(1)'s choice: `SSH_ASKPASS_REQUIRE=force` always uses askpass;
/// `prefer` uses it when a display is set; otherwise the terminal when stdin
/// is one, else askpass when a display is set; `never` never uses askpass.
fn choose(askpass: bool, require: Option<&str>, display: bool, tty: bool) -> Source {
    match (require, askpass) {
        (Some("force"), true) => Source::Askpass,
        (Some("prefer"), true) if display => Source::Askpass,
        _ if tty => Source::Terminal,
        (Some("never"), _) => Source::Nowhere,
        (_, true) if display => Source::Askpass,
        _ => Source::Nowhere,
    }
}

fn ask(
    key_file: &Path,
    askpass: Option<PathBuf>,
    require: Option<String>,
    display: bool,
    tty: bool,
) -> Result<Zeroizing<String>, String> {
    let prompt = format!("Enter passphrase for {}: ", key_file.display());
    match choose(askpass.is_some(), require.as_deref(), display, tty) {
        Source::Terminal => rpassword::prompt_password(&prompt)
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read the passphrase from the terminal: {e}")),
        Source::Askpass => {
            let program = askpass.expect("askpass chosen only when set");
            let out = Command::new(&program)
                .arg(&prompt)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run SSH_ASKPASS `{}`: {e}", program.display()))?;
            let stdout = Zeroizing::new(out.stdout);
            if !out.status.success() {
                return Err(format!(
                    "SSH_ASKPASS `{}` gave no passphrase ({})",
                    program.display(),
                    out.status
                ));
            }
            let text = std::str::from_utf8(&stdout)
                .map_err(|_| "SSH_ASKPASS printed a passphrase that is not UTF-8".to_string())?;
            Ok(Zeroizing::new(
                text.strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(text)
                    .to_string(),
            ))
        }
        Source::Nowhere => Err(
            "is passphrase-protected and there is no way to ask: run bottlectl \
             with stdin on a terminal to be prompted, or set SSH_ASKPASS to a program that \
             prints the passphrase (with SSH_ASKPASS_REQUIRE=force when DISPLAY is not set)"
                .into(),
        ),
    }
}

/// Print provision's warnings (e.g. keys that cannot be destination-restricted).
pub fn warnings(out: &Out, report: &ProvisionReport) {
    for w in &report.warnings {
        out.step(&format!("warning: {w}"));
    }
}

/// Destination-restricted keys need the client in the image to bind
/// sessions to host keys: OpenSSH 8.9 or later. `version` is `ssh -V`'s line.
pub fn ssh_version_check(version: &str) -> (bool, String, Option<String>) {
    let fix = "restricted keys need OpenSSH 8.9+ in the image: upgrade openssh-client, \
               or set Restrict = false on its entries";
    if version == "-" {
        return (false, "`ssh -V` did not run".into(), Some(fix.into()));
    }
    let parsed = version.strip_prefix("OpenSSH_").and_then(|v| {
        let (major, rest) = v.split_once('.')?;
        let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
    });
    match parsed {
        Some(v) if v >= (8, 9) => (true, version.to_string(), None),
        Some(_) => (
            false,
            format!("{version}: older than 8.9, cannot use destination-restricted keys"),
            Some(fix.into()),
        ),
        None => (
            false,
            format!("{version}: not OpenSSH, destination-restricted keys may not work"),
            Some(fix.into()),
        ),
    }
}

fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m"),
    }
}

/// `bottlectl keys CONTAINER`.
pub async fn run(
    out: &Out,
    sel: &Selection,
    container: &str,
    target: &bottle::ssh::Target,
) -> Result<u8, Failure> {
    let keys: Vec<AgentKey> = bottle::ssh::list_keys(sel.runtime.as_ref(), container, target)
        .await
        .map_err(|e| crate::ssh_failure(e, None, "cannot list keys of", container))?;
    if out.json {
        out.json_value(&json!({
            "ok": true,
            "engine": engine_json(sel),
            "container": container,
            "keys": keys,
        }));
        return Ok(0);
    }
    if keys.is_empty() {
        out.human("the agent holds no keys\n");
    }
    for k in &keys {
        let lifetime = match k.lifetime_remaining {
            Some(0) => "expired".to_string(),
            Some(s) => format!("{} left", duration(s)),
            None => "no lifetime".to_string(),
        };
        let restricted = match &k.restricted_to {
            Some(h) if h.is_empty() => "unrestricted".to_string(),
            Some(h) => format!("restricted to {}", field(&h.join(", "))),
            None => "restriction unknown (not loaded by bottle)".to_string(),
        };
        // The certificate is from root's record (key id: engine, container
        // and alias, escaped all the same).
        let certificate = match &k.certificate {
            Some(c) => format!(
                "; certificate {}, principals {}, {}",
                field(&c.key_id),
                field(&c.principals.join(",")),
                expiry(c.valid_before)
            ),
            None => String::new(),
        };
        // All but the numbers come from the agent in the container; the
        // comment is whatever the user added a key with.
        out.human(&format!(
            "{} {} {} {} ({}; {}{})\n",
            field(&k.key_type),
            k.bits,
            field(&k.fingerprint),
            field(&k.comment),
            lifetime,
            restricted,
            certificate
        ));
    }
    Ok(0)
}

/// `expires in 59m 58s` / `expired 3s ago`, from unix seconds.
fn expiry(valid_before: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if valid_before > now {
        format!("expires in {}", duration(valid_before - now))
    } else {
        format!("expired {} ago", duration(now - valid_before))
    }
}

/// `bottlectl keys`: settings, engine, then the work.
pub async fn command(
    cli: &crate::cli::Cli,
    matches: &clap::ArgMatches,
    out: &crate::output::Out,
    args: &crate::cli::ContainerArg,
) -> Result<u8, crate::failure::Failure> {
    use crate::{keys, load_config, many, run_many, select, ssh_failure};
    let config = load_config(cli, matches)?;
    let target = config.settings.target();
    let Some(container) = args.targets.single() else {
        bottle::ssh::validate_target(&target)
            .map_err(|e| ssh_failure(e, None, "invalid settings", ""))?;
        let prompt = Default::default();
        return run_many(out, &config, &args.targets, many::Op::Keys, prompt).await;
    };
    let sel = select(&config.settings, Some(container), out).await?;
    keys::run(out, &sel, container, &target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_version_gate_is_8_9() {
        assert!(ssh_version_check("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19").0);
        assert!(ssh_version_check("OpenSSH_8.9p1 Ubuntu-3").0);
        assert!(ssh_version_check("OpenSSH_10.0p2").0);
        assert!(!ssh_version_check("OpenSSH_8.4p1 Debian-5").0);
        assert!(!ssh_version_check("OpenSSH_7.9p1").0);
        assert!(!ssh_version_check("dropbear 2022.83").0);
        assert!(!ssh_version_check("-").0);
    }

    #[test]
    fn source_follows_ssh_add() {
        use Source::*;
        // (askpass set, SSH_ASKPASS_REQUIRE, display, stdin tty)
        assert_eq!(choose(true, Some("force"), false, true), Askpass);
        assert_eq!(choose(true, Some("force"), false, false), Askpass);
        assert_eq!(choose(false, Some("force"), false, true), Terminal);
        assert_eq!(choose(true, Some("prefer"), true, true), Askpass);
        assert_eq!(choose(true, Some("prefer"), false, true), Terminal);
        assert_eq!(choose(true, None, true, true), Terminal);
        assert_eq!(choose(true, None, true, false), Askpass);
        assert_eq!(choose(true, None, false, false), Nowhere);
        assert_eq!(choose(true, Some("never"), true, false), Nowhere);
        assert_eq!(choose(false, None, true, false), Nowhere);
    }

    #[test]
    fn askpass_output_is_the_passphrase_and_failure_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("askpass");
        std::fs::write(&script, "#!/bin/sh\nprintf 'pass phrase\\n'\n").unwrap();
        let bad = dir.path().join("cancel");
        std::fs::write(&bad, "#!/bin/sh\nexit 1\n").unwrap();
        for p in [&script, &bad] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let key = Path::new("/k/id");
        let got = ask(key, Some(script), Some("force".into()), false, false).unwrap();
        assert_eq!(got.as_str(), "pass phrase");
        let e = ask(key, Some(bad), Some("force".into()), false, false).unwrap_err();
        assert!(e.contains("gave no passphrase"), "{e}");
        let e = ask(key, None, None, false, false).unwrap_err();
        assert!(e.contains("SSH_ASKPASS") && e.contains("terminal"), "{e}");
    }
}
