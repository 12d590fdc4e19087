//! The static `bottle-guard` executable this crate delivers into bottles
//! (built by `build.rs` from `crates/bottle-guard`), and what names it.

use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The executable's bytes; empty where none was built for this host.
pub const EXECUTABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bottle-guard"));

/// The kernel architecture (`uname -m`) the embedded guard runs on; empty
/// where none was built.
pub const ARCH: &str = env!("BOTTLE_GUARD_ARCH");

/// Hex SHA-256 of [`EXECUTABLE`]: the name it is delivered under, and what
/// it checks of itself before serving.
pub fn sha256() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hex::encode(Sha256::digest(EXECUTABLE)))
}

/// Deliver the guard into `container` ahead of its first provision (for
/// example when the bottle starts), with the checks and the lock of
/// provision's own delivery: provision then finds it and needs its two
/// execs instead of four. Reused when identical; other versions removed.
pub async fn deliver(
    rt: &dyn bottle_runtime::ContainerRuntime,
    container: &str,
) -> Result<(), crate::Error> {
    if EXECUTABLE.is_empty() {
        return Err(crate::Error::NoGuard {
            container: container.to_string(),
        });
    }
    let token = crate::provision::lock_token();
    let tools = crate::root_tools(false);
    crate::provision::deliver_guard(rt, container, container, &token, &tools).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A static executable: an ELF file with no program interpreter
    /// (`PT_INTERP`), so it runs on a userland without glibc.
    #[test]
    fn the_embedded_guard_is_a_static_executable() {
        assert_eq!(ARCH, "x86_64", "this machine builds one");
        let elf = EXECUTABLE;
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], 2, "64-bit");
        let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
        let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
        let types: Vec<u32> = (0..phnum)
            .map(|i| {
                let o = phoff + i * phentsize;
                u32::from_le_bytes(elf[o..o + 4].try_into().unwrap())
            })
            .collect();
        const PT_INTERP: u32 = 3;
        assert!(!types.contains(&PT_INTERP), "dynamically linked: {types:?}");
        assert_eq!(sha256().len(), 64);
    }
}
