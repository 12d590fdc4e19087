//! `docker exec -u` semantics on containerd: a user (`name`, `uid`,
//! `name:group`, `uid:gid`) resolved to uid, gid, supplementary groups and
//! home from the container's own `/etc/passwd` and `/etc/group`, read from
//! its root without following a link out of it, bounded and parsed strictly.

use std::io::Read;
use std::os::fd::OwnedFd;

/// The most of `/etc/passwd` or `/etc/group` read (an image's are a few KiB).
pub(crate) const MAX_DB: u64 = 1 << 20;

/// What a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines of `name:x:uid:gid:gecos:home:shell`; a line that is not exactly
/// that (comments, NIS `+` lines, bad numbers) matches nobody.
fn passwd_entries(db: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    db.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 7 || f[0].is_empty() {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// Lines of `name:x:gid:member,member`.
fn group_entries(db: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    db.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 4 || f[0].is_empty() {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

/// Resolve `user` as Docker (runc's `GetExecUser`) does: a name must exist
/// in `passwd`; a number need not (gid 0, home `/`); the primary group is
/// the entry's unless `:group` names one; supplementary groups are those
/// listing the user by name. The error names the user or group.
pub(crate) fn resolve(user: &str, passwd: &str, group: &str) -> Result<ExecUser, String> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if user_part.is_empty() || group_part == Some("") {
        return Err(format!("invalid user `{}`", user.escape_debug()));
    }
    let numeric = user_part.parse::<u32>().ok();
    let entry =
        passwd_entries(passwd).find(|e| e.name == user_part || numeric.is_some_and(|n| n == e.uid));
    let mut out = match (&entry, numeric) {
        (Some(e), _) => ExecUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: Vec::new(),
            home: e.home.to_string(),
        },
        (None, Some(uid)) => ExecUser {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/".to_string(),
        },
        (None, None) => {
            return Err(format!(
                "unable to find user {}: no matching entries in passwd file",
                user_part.escape_debug()
            ))
        }
    };
    if let Some(g) = group_part {
        let gnum = g.parse::<u32>().ok();
        match group_entries(group).find(|e| e.name == g || gnum.is_some_and(|n| n == e.gid)) {
            Some(e) => out.gid = e.gid,
            None => match gnum {
                Some(n) => out.gid = n,
                None => {
                    return Err(format!(
                        "unable to find group {}: no matching entries in group file",
                        g.escape_debug()
                    ))
                }
            },
        }
    }
    if let Some(e) = entry {
        let mut gids: Vec<u32> = group_entries(group)
            .filter(|g| g.members.contains(&e.name))
            .map(|g| g.gid)
            .collect();
        gids.sort_unstable();
        gids.dedup();
        out.additional_gids = gids;
    }
    Ok(out)
}

/// Read `path` (e.g. `etc/passwd`) inside the root directory `root` (a
/// container's `/proc/PID/root`): links resolve inside that root
/// (`RESOLVE_IN_ROOT`), only a regular file is read, at most [`MAX_DB`]
/// bytes. A missing file is empty, as for runc.
pub(crate) fn read_in_root(root: &OwnedFd, path: &str) -> Result<String, String> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let fd = match openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(format!("cannot open /{path} in the container: {e}")),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| format!("/{path}: {e}"))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(format!("/{path} in the container is not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_DB + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read /{path} in the container: {e}"))?;
    if bytes.len() as u64 > MAX_DB {
        return Err(format!(
            "/{path} in the container is larger than {MAX_DB} bytes"
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("/{path} in the container is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        node:x:1000:1000::/home/node:/bin/sh\n\
        broken:x:notanumber:1::/x:/bin/sh\n\
        short:x:5:5\n\
        git:x:1001:1001::/home/git:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nnode:x:1000:\nwheel:x:10:node,git\ndocker:x:999:node\nbad:x:zz:node\n";

    #[test]
    fn names_and_numbers_resolve_as_docker_does() {
        let node = resolve("node", PASSWD, GROUP).unwrap();
        assert_eq!(
            node,
            ExecUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 999],
                home: "/home/node".into()
            }
        );
        // By number: the same entry.
        assert_eq!(resolve("1000", PASSWD, GROUP).unwrap(), node);
        // A number nobody has: gid 0, home /, no groups.
        let anon = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((anon.uid, anon.gid, anon.home.as_str()), (4242, 0, "/"));
        assert!(anon.additional_gids.is_empty());
        // An explicit group, by name or number.
        assert_eq!(resolve("node:wheel", PASSWD, GROUP).unwrap().gid, 10);
        assert_eq!(resolve("git:7", PASSWD, GROUP).unwrap().gid, 7);
        assert_eq!(resolve("0", PASSWD, GROUP).unwrap().home, "/root");
    }

    #[test]
    fn unknown_and_malformed_are_refused() {
        let e = resolve("bottle-no-such-user", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("unable to find user bottle-no-such-user"), "{e}");
        // Malformed lines match nobody.
        assert!(resolve("broken", PASSWD, GROUP).is_err());
        assert!(resolve("short", PASSWD, GROUP).is_err());
        let e = resolve("node:nogroup", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("unable to find group nogroup"), "{e}");
        for bad in ["", ":", "node:", ":0"] {
            assert!(resolve(bad, PASSWD, GROUP).is_err(), "{bad:?}");
        }
        // Hostile names are escaped in the message.
        let e = resolve("a\x1b[2J", PASSWD, GROUP).unwrap_err();
        assert!(!e.contains('\x1b'), "{e:?}");
    }

    #[test]
    fn reads_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "secret:x:0:0::/:/bin/sh\n").unwrap();
        // An absolute link resolves inside the root, not to the host's file.
        std::os::unix::fs::symlink(&outside, root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/hostname", root.join("etc/group"))
            .unwrap();
        let fd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        assert_eq!(read_in_root(&fd, "etc/passwd").unwrap(), "");
        assert_eq!(read_in_root(&fd, "etc/group").unwrap(), "");
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        assert_eq!(read_in_root(&fd, "etc/passwd").unwrap(), PASSWD);
        // Not a regular file; too large.
        std::fs::remove_file(root.join("etc/group")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            root.join("etc/group"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(read_in_root(&fd, "etc/group")
            .unwrap_err()
            .contains("not a regular file"));
        std::fs::write(root.join("etc/big"), vec![b'a'; MAX_DB as usize + 1]).unwrap();
        assert!(read_in_root(&fd, "etc/big").unwrap_err().contains("larger"));
    }
}
