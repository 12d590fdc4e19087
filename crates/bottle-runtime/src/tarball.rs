use crate::{CopyEntry, EntryKind};
use std::time::{SystemTime, UNIX_EPOCH};

/// Build the tar archive both backends upload to `/` for
/// [`ContainerRuntime::copy`](crate::ContainerRuntime::copy).
///
/// Entry names are the absolute paths without the leading `/`, so one archive
/// extracted at `/` can reach any directory and the engines create missing
/// parents. Entries are ordered parents first. Each header carries the numeric
/// mode, uid and gid (no user names, so the container's `/etc/passwd` is never
/// consulted).
///
/// Errors (as a reason string) on a relative path, `.`/`..` components, a
/// path listed twice, or a mode above `0o7777`.
pub fn build_tar(entries: &[CopyEntry]) -> Result<Vec<u8>, String> {
    let mut sorted: Vec<(Vec<String>, &CopyEntry)> = Vec::with_capacity(entries.len());
    for entry in entries {
        sorted.push((path_components(&entry.path)?, entry));
        if entry.mode > 0o7777 {
            return Err(format!(
                "mode {:o} of `{}` is not a permission mode",
                entry.mode, entry.path
            ));
        }
    }
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("`{}` is listed twice", w[0].1.path));
    }

    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    for (components, entry) in sorted {
        let name = components.join("/");
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid.into());
        header.set_gid(entry.gid.into());
        header.set_mtime(mtime);
        let result = match &entry.kind {
            EntryKind::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &name, bytes.as_slice())
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{name}/"), std::io::empty())
            }
        };
        result.map_err(|e| format!("cannot archive `{}`: {e}", entry.path))?;
    }
    builder
        .into_inner()
        .map_err(|e| format!("cannot finish archive: {e}"))
}

fn path_components(path: &str) -> Result<Vec<String>, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    if path.contains('\0') {
        return Err(format!("`{}` contains a NUL byte", path.escape_debug()));
    }
    let mut parts = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(format!("`{path}` contains `.` or `..`"));
        }
        parts.push(part.to_string());
    }
    if parts.is_empty() {
        return Err("`/` itself cannot be copied".to_string());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn archive_orders_parents_first_and_keeps_modes_and_owners() {
        let entries = vec![
            CopyEntry::file(
                "/home/node/.ssh/config",
                b"Host a\n".to_vec(),
                0o600,
                1000,
                1000,
            ),
            CopyEntry::dir("/home/node/.ssh", 0o700, 1000, 1000),
            CopyEntry::file("/etc/x", vec![0, 1, 2], 0o644, 0, 0),
        ];
        let bytes = build_tar(&entries).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            seen.push((
                entry.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                body,
            ));
        }
        assert_eq!(
            seen,
            vec![
                ("etc/x".into(), 0o644, 0, 0, vec![0, 1, 2]),
                ("home/node/.ssh/".into(), 0o700, 1000, 1000, vec![]),
                (
                    "home/node/.ssh/config".into(),
                    0o600,
                    1000,
                    1000,
                    b"Host a\n".to_vec()
                ),
            ]
        );
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in ["relative", "/a/../b", "/", "/a/./b", "/a\0b"] {
            let entries = vec![CopyEntry::dir(bad, 0o755, 0, 0)];
            assert!(build_tar(&entries).is_err(), "{bad:?} accepted");
        }
        let twice = vec![
            CopyEntry::dir("/a", 0o755, 0, 0),
            CopyEntry::dir("/a/", 0o755, 0, 0),
        ];
        assert!(build_tar(&twice).unwrap_err().contains("twice"));
        let mode = vec![CopyEntry::dir("/a", 0o17777, 0, 0)];
        assert!(build_tar(&mode).is_err());
    }
}
