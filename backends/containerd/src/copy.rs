//! `copy` on containerd: the files are written from this side into the
//! container's root (`/proc/PID/root` of its task), never by a program in
//! the container. Every path is opened with `openat2(RESOLVE_IN_ROOT)`, so a
//! link in the container resolves inside it; the last component is never
//! followed (`O_NOFOLLOW`; a parent directory may be a link, followed
//! inside the root as Docker does), only a regular file is written, and mode and
//! owner are set on the open descriptor.

use bottle_runtime::{CopyEntry, EntryKind};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Write;
use std::os::fd::OwnedFd;

fn open_in(root: &OwnedFd, path: &str, flags: OFlags, mode: u32) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        path,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// The directory `dir` (relative, no `.`/`..`: checked by `build_tar`),
/// made root-owned 0755 with its missing parents, as Docker does.
fn ensure_dir(root: &OwnedFd, dir: &[&str]) -> Result<OwnedFd, String> {
    let mut at = open_in(root, ".", OFlags::PATH | OFlags::DIRECTORY, 0)
        .map_err(|e| format!("cannot open the container's root: {e}"))?;
    for (i, part) in dir.iter().enumerate() {
        let sofar = dir[..=i].join("/");
        match rustix::fs::mkdirat(&at, *part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(format!("cannot make /{sofar}: {e}")),
        }
        // A parent may be a link: followed, inside the root.
        at = open_in(root, &sofar, OFlags::PATH | OFlags::DIRECTORY, 0)
            .map_err(|e| format!("/{sofar} is not a directory one can enter: {e}"))?;
    }
    Ok(at)
}

/// Write `entries` (already validated) under `root`, parents first.
pub(crate) fn copy_into(root: &OwnedFd, entries: &[CopyEntry]) -> Result<(), String> {
    let mut sorted: Vec<(Vec<&str>, &CopyEntry)> = entries
        .iter()
        .map(|e| (e.path.split('/').filter(|p| !p.is_empty()).collect(), e))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (parts, entry) in sorted {
        let Some((name, parent)) = parts.split_last() else {
            return Err("`/` itself cannot be copied".into());
        };
        let parent_fd = ensure_dir(root, parent)?;
        let rel = parts.join("/");
        let fd = match &entry.kind {
            EntryKind::Dir => {
                match rustix::fs::mkdirat(&parent_fd, *name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(format!("cannot make {}: {e}", entry.path)),
                }
                open_in(
                    root,
                    &rel,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                    0,
                )
                .map_err(|e| format!("{} is not a directory: {e}", entry.path))?
            }
            EntryKind::File(bytes) => {
                let fd = open_in(
                    root,
                    &rel,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::NONBLOCK
                        | OFlags::NOCTTY
                        | OFlags::NOFOLLOW,
                    0o600,
                )
                .map_err(|e| format!("cannot open {}: {e}", entry.path))?;
                let stat = rustix::fs::fstat(&fd).map_err(|e| format!("{}: {e}", entry.path))?;
                if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                    != rustix::fs::FileType::RegularFile
                {
                    return Err(format!("{} is not a regular file", entry.path));
                }
                rustix::fs::ftruncate(&fd, 0).map_err(|e| format!("{}: {e}", entry.path))?;
                let mut file = std::fs::File::from(fd);
                file.write_all(bytes)
                    .map_err(|e| format!("cannot write {}: {e}", entry.path))?;
                OwnedFd::from(file)
            }
        };
        // Owner first: a chown clears set-id bits a chmod just set.
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(entry.uid)),
            Some(rustix::fs::Gid::from_raw(entry.gid)),
        )
        .map_err(|e| format!("cannot chown {}: {e}", entry.path))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(entry.mode))
            .map_err(|e| format!("cannot chmod {}: {e}", entry.path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("home")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // A link to a host directory and one to a host file.
        std::os::unix::fs::symlink(&outside, root.join("home/node")).unwrap();
        std::fs::write(dir.path().join("hostfile"), b"host").unwrap();
        std::os::unix::fs::symlink(dir.path().join("hostfile"), root.join("f")).unwrap();
        // The same path inside the root: where the link leads there.
        std::fs::create_dir_all(root.join(outside.strip_prefix("/").unwrap())).unwrap();
        let fd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        copy_into(
            &fd,
            &[CopyEntry::file(
                "/home/node/.ssh/config",
                b"x".to_vec(),
                0o600,
                1000,
                1000,
            )],
        )
        .unwrap();
        // Written under the root's own /<outside path>, not the host's.
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let inside = root
            .join(outside.strip_prefix("/").unwrap())
            .join(".ssh/config");
        let meta = std::fs::metadata(&inside).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (0o600, 1000, 1000)
        );
        // The last component is never followed.
        let e = copy_into(&fd, &[CopyEntry::file("/f", b"y".to_vec(), 0o644, 0, 0)]).unwrap_err();
        assert!(e.contains("/f"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("hostfile")).unwrap(), b"host");
    }
}
