//! The `bottlectl` binary for CLI tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Runs `cmd` apart from this machine's user: only PATH from this process,
/// HOME, config and working directory in `home`, so neither a real config
/// nor a `CLAUDE_BOTTLE_*`/`DOCKER_*` variable reaches it.
pub fn hermetic<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .current_dir(home)
}

/// The `bottlectl` binary, built once per test process with the test's own
/// profile (a test crate cannot depend on another package's binary). It lands
/// beside the test executable's `deps/` directory, where cargo puts binaries.
pub fn bottlectl_path() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "bottlectl"])
            .current_dir(root);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p bottlectl");
        assert!(status.success(), "cargo build -p bottlectl failed");
        let exe = std::env::current_exe().expect("test executable path");
        let mut dir = exe.parent().expect("test executable directory");
        if dir.ends_with("deps") {
            dir = dir.parent().expect("profile directory");
        }
        let bin = dir.join(format!("bottlectl{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}
