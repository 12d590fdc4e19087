//! The one way bottle reads a file on the operator's machine (settings, the
//! manifest, Docker and Podman configuration, contexts, TLS and key files):
//! regular files only, bounded. Any of them may be a FIFO (which would hang
//! the reader) or a link to `/dev/zero` (which would fill memory).

use rustix::fs::{Mode, OFlags};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use zeroize::Zeroizing;

/// Largest configuration file read (settings, Docker's `config.json`,
/// context `meta.json`, TLS PEM files, Podman's connection files).
pub const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// `Err` unless `meta` is a regular file.
fn regular(meta: &Metadata) -> Result<(), String> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!("is {what}, not a regular file; refused unread"))
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// The reader: OS errors as they are (a missing file stays `NotFound`),
/// refusals as `InvalidInput` carrying the reason.
fn read_io(path: &Path, max: u64) -> io::Result<(Zeroizing<Vec<u8>>, Metadata)> {
    let before = std::fs::metadata(path)?;
    regular(&before).map_err(refused)?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(io::Error::from)?;
    let mut file = File::from(fd);
    let meta = file.metadata()?;
    regular(&meta).map_err(refused)?;
    if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
        return Err(refused("was replaced while being opened; refused".into()));
    }
    let too_large = || refused(format!("is larger than {max} bytes; refused"));
    if meta.len() > max {
        return Err(too_large());
    }
    // Fixed size: no reallocation leaves an unzeroed copy behind.
    let cap = usize::try_from(max).unwrap_or(usize::MAX - 1) + 1;
    let mut buf = Zeroizing::new(vec![0u8; cap]);
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if n as u64 > max {
        return Err(too_large());
    }
    buf.truncate(n);
    Ok((buf, meta))
}

/// Read at most `max` bytes of the regular file at `path` (symlinks
/// followed). The type is checked before opening (opening a device can
/// have effects); the open cannot block (a FIFO swapped in meanwhile) and
/// the opened file is checked again, so what is read is what was checked.
/// The error completes "FILE …" (`cannot be read: …`, `is a FIFO, …`).
pub fn read_regular(path: &Path, max: u64) -> Result<(Zeroizing<Vec<u8>>, Metadata), String> {
    read_io(path, max).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidInput if e.get_ref().is_some() => e.to_string(),
        _ => format!("cannot be read: {e}"),
    })
}

/// [`read_regular`] for a UTF-8 text file, with an [`io::Error`]: `NotFound`
/// when it is missing, `InvalidInput` when refused, `InvalidData` when not
/// UTF-8.
pub fn read_text(path: &Path, max: u64) -> io::Result<String> {
    let (bytes, _) = read_io(path, max)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "text").unwrap();
        assert_eq!(read_text(&ok, 4).unwrap(), "text");
        let err = read_text(&ok, 3).unwrap_err();
        assert!(err.to_string().contains("larger than 3 bytes"), "{err}");
        let missing = read_text(&dir.path().join("nope"), 4).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        let err = read_regular(&fifo, 4).unwrap_err();
        assert!(err.contains("is a FIFO"), "{err}");
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read_text(&zero, 4).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        std::fs::write(&ok, b"\xff").unwrap();
        assert_eq!(
            read_text(&ok, 4).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
