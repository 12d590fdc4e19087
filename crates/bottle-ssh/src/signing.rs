//! Git commit and tag signing with an SSH key (`gpg.format = ssh`): the
//! `[signing]` key is loaded into the agent *without* destination
//! restriction, because OpenSSH's agent refuses `SSHSIG` signatures
//! (`ssh-keygen -Y sign`, which git runs) for restricted keys.
//!
//! The user's exec writes git's settings into `~/.ssh/bottle-signing.gitconfig`
//! and references it from `~/.config/git/config` (git's XDG user file)
//! only when that file is absent or bottle's own: the user's `~/.gitconfig`
//! is never touched, and its settings win over ours (git reads the XDG
//! file first). `deprovision` removes only files bottle wrote, so the
//! user's own git configuration stays byte for byte as it was.

use crate::error::Error;
use crate::keys::Options;
use crate::plan::Signing;
use crate::render::FILE_MARK;
use crate::valid::{LoadedKey, SigningPlan};
use ssh_key::HashAlg;

/// In `~/.ssh`: git's settings for signing.
pub const GITCONFIG_FILE: &str = "bottle-signing.gitconfig";
/// In `~/.ssh`: the allowed-signers file `git verify-commit` reads.
pub const ALLOWED_SIGNERS_FILE: &str = "bottle-allowed-signers";
/// In `~/.ssh`: git's `gpg.ssh.program`, `ssh-keygen` with `SSH_AUTH_SOCK`
/// set to the public socket (`ssh-keygen -Y sign` finds the agent only
/// through that variable; ssh's `IdentityAgent` does not reach it).
pub const KEYGEN_WRAPPER: &str = "bottle-ssh-keygen";
/// The alias the signing key is listed under.
pub const SIGNING_ALIAS: &str = "[signing]";

fn signing_err(field: &str, reason: impl Into<String>) -> Error {
    Error::Plan {
        entry: "signing".into(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// Load the `[signing]` key into `keys` (unrestricted, alias
/// [`SIGNING_ALIAS`]). A key that is also a login entry's is refused: it
/// would lose its destination restriction (the agent holds a key once).
pub(crate) fn load(
    s: &Signing,
    keys: &mut Vec<LoadedKey>,
    opts: &Options<'_>,
    need_private: bool,
    warnings: &mut Vec<String>,
) -> Result<SigningPlan, Error> {
    let lifetime = match &s.lifetime {
        Some(l) => Some(l.seconds().map_err(|r| signing_err("Lifetime", r))?),
        None => None,
    };
    if s.identity_file.as_os_str().is_empty() {
        return Err(signing_err("IdentityFile", "is empty"));
    }
    let (key, meta) =
        crate::keys::load_key_file(&s.identity_file, opts, need_private).map_err(|reason| {
            Error::KeyFile {
                entry: "signing".into(),
                path: s.identity_file.clone(),
                reason,
            }
        })?;
    if let Some(why) = crate::keys::exposure(&s.identity_file, &meta) {
        warnings.push(format!(
            "IdentityFile {:?} (signing) can be changed by others: {why}; whoever can \
             change it chooses the key loaded into the bottle",
            s.identity_file
        ));
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let hold = crate::plan::hold_words(
        s.approve.as_deref(),
        s.approval_timeout.as_ref(),
        s.max_signatures.as_deref(),
    )
    .map_err(|(field, r)| signing_err(field, r))?;
    if let Some(k) = keys.iter().find(|k| k.fingerprint == fingerprint) {
        return Err(signing_err(
            "IdentityFile",
            format!(
                "is also the key of {:?}: a signing key is loaded without destination \
                 restriction, so it must be a dedicated key (not a login key)",
                k.aliases.join(", ")
            ),
        ));
    }
    let mut public = key.public_key().clone();
    public.set_comment("");
    let public = public
        .to_openssh()
        .map_err(|e| signing_err("IdentityFile", format!("cannot encode its public key: {e}")))?
        .trim_end()
        .to_string();
    keys.push(LoadedKey {
        aliases: vec![SIGNING_ALIAS.to_string()],
        files: vec![s.identity_file.clone()],
        algorithm: key.algorithm().as_str().to_string(),
        fingerprint: fingerprint.clone(),
        comment: key.comment().to_string(),
        lifetime,
        destinations: Vec::new(),
        unrestricted: vec![
            "signing key: OpenSSH's agent refuses SSHSIG signatures for restricted keys".into(),
        ],
        certificate: None,
        private: key,
    });
    Ok(SigningPlan {
        fingerprint,
        hold,
        public,
        commits: s.commits.unwrap_or(true),
        tags: s.tags.unwrap_or(false),
    })
}

/// `~/.ssh/bottle-signing.gitconfig` ([`FILE_MARK`] is a git comment).
pub fn render_gitconfig(plan: &SigningPlan, ssh_dir: &str) -> String {
    format!(
        "{FILE_MARK}\n[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = key::{}\n[commit]\n\tgpgsign = {}\n[tag]\n\tgpgsign = {}\n[gpg \"ssh\"]\n\tallowedSignersFile = {ssh_dir}/{ALLOWED_SIGNERS_FILE}\n\tprogram = {ssh_dir}/{KEYGEN_WRAPPER}\n",
        plan.public, plan.commits, plan.tags
    )
}

/// `~/.ssh/bottle-allowed-signers`: the signing key, for any principal,
/// in git's namespace only.
pub fn render_allowed_signers(plan: &SigningPlan) -> String {
    format!("{FILE_MARK}\n* namespaces=\"git\" {}\n", plan.public)
}

/// `~/.config/git/config` when bottle writes it: an include of
/// [`GITCONFIG_FILE`].
pub fn render_include(ssh_dir: &str) -> String {
    format!("{FILE_MARK}\n[include]\n\tpath = {ssh_dir}/{GITCONFIG_FILE}\n")
}

/// `~/.ssh/bottle-ssh-keygen`: a `#!/bin/sh` line, [`FILE_MARK`], then
/// `ssh-keygen` with the public socket. The socket path is allow-listed
/// (letters, digits, `/._-`), so it needs no quoting beyond this.
pub fn render_wrapper(public_socket: &str) -> String {
    format!("#!/bin/sh\n{FILE_MARK}\nSSH_AUTH_SOCK='{public_socket}' exec ssh-keygen \"$@\"\n")
}

/// The four files' texts for the user's exec, in its argument order (git
/// settings, allowed signers, the include, the `ssh-keygen` wrapper);
/// empty without `[signing]`.
pub(crate) fn render_files(
    plan: Option<&SigningPlan>,
    target: &crate::plan::Target,
) -> [String; 4] {
    let ssh_dir = format!("{}/.ssh", target.home.trim_end_matches('/'));
    let ssh_dir = ssh_dir.as_str();
    match plan {
        Some(p) => [
            render_gitconfig(p, ssh_dir),
            render_allowed_signers(p),
            render_include(ssh_dir),
            render_wrapper(&target.public_socket),
        ],
        None => Default::default(),
    }
}

/// git's XDG user file in the target's home.
pub(crate) fn xdg_config(target: &crate::plan::Target) -> String {
    format!("{}/.config/git/config", target.home.trim_end_matches('/'))
}

/// The warning when the user has their own `~/.config/git/config`.
pub(crate) fn theirs_warning(target: &crate::plan::Target) -> String {
    let ssh = format!("{}/.ssh", target.home.trim_end_matches('/'));
    format!(
        "{} is the user's own and was not changed, so git does not sign yet: add          `[include] path = {ssh}/{GITCONFIG_FILE}` to it (or to ~/.gitconfig)",
        xdg_config(target)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_files_are_exactly_as_documented() {
        let p = SigningPlan {
            fingerprint: "SHA256:x".into(),
            hold: String::new(),
            public: "ssh-ed25519 AAAAC3Nz".into(),
            commits: true,
            tags: false,
        };
        assert_eq!(
            render_gitconfig(&p, "/home/node/.ssh"),
            format!(
                "{FILE_MARK}\n[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = key::ssh-ed25519 AAAAC3Nz\n\
                 [commit]\n\tgpgsign = true\n[tag]\n\tgpgsign = false\n[gpg \"ssh\"]\n\
                 \tallowedSignersFile = /home/node/.ssh/bottle-allowed-signers\n\
                 \tprogram = /home/node/.ssh/bottle-ssh-keygen\n"
            )
        );
        assert_eq!(
            render_allowed_signers(&p),
            format!("{FILE_MARK}\n* namespaces=\"git\" ssh-ed25519 AAAAC3Nz\n")
        );
        assert_eq!(
            render_include("/h/.ssh"),
            format!("{FILE_MARK}\n[include]\n\tpath = /h/.ssh/bottle-signing.gitconfig\n")
        );
    }
}
