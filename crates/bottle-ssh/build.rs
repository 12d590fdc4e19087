//! Builds `bottle-guard` as a static executable for this machine's
//! architecture and hands its path to the crate, which embeds it: the
//! provisioner delivers it into containers whose userland may have no
//! glibc (busybox, musl), so it cannot link to theirs.
//!
//! A second cargo with its own target directory: a build script cannot ask
//! the outer one for another crate built with other flags.

use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.join("../..");
    let guard = workspace.join("crates/bottle-guard");
    for path in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", guard.join(path).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let host = std::env::var("HOST").unwrap_or_default();
    if host != TARGET {
        // No static guard for this host: the crate refuses to provision
        // with the guard on, naming the architecture.
        std::fs::write(out.join("bottle-guard"), b"").unwrap();
        println!("cargo:rustc-env=BOTTLE_GUARD_ARCH=");
        return;
    }
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("guard-static"),
        None => workspace.join("target/guard-static"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "bottle-guard",
            "--target",
            TARGET,
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Only our flags: the outer build's (a fuzzer's sanitizers, clippy's
        // wrapper) are not for this binary.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .status()
        .expect("run cargo to build bottle-guard");
    assert!(status.success(), "building the static bottle-guard failed");
    let built = target_dir.join(TARGET).join("release/bottle-guard");
    std::fs::copy(&built, out.join("bottle-guard")).expect("copy bottle-guard");
    println!("cargo:rustc-env=BOTTLE_GUARD_ARCH=x86_64");
}
