//! Layered settings for bottle, and the `bottle.toml` manifest.
//!
//! Settings say *how* to reach the engine and where things go in the
//! container; the manifest says *what* to provision. Settings come from these
//! layers, later wins:
//!
//! 1. built-in defaults
//! 2. the system file `/etc/claude-bottle/config.toml`
//! 3. the user file `$XDG_CONFIG_HOME/claude-bottle/config.toml` (default `~/.config/…`)
//! 4. a file named by `--config` or `CLAUDE_BOTTLE_CONFIG`
//! 5. environment variables `CLAUDE_BOTTLE_*`
//! 6. command-line flags
//!
//! An unknown key in a file or an unknown `CLAUDE_BOTTLE_*` variable is an
//! error naming the key and where it came from, so a typo never silently
//! falls back to a default. [`Config::origins`] tells which layer set each
//! value.
//!
//! ```
//! use bottle_config::{load, Overrides, RuntimeChoice, Sources};
//!
//! // Sources are injectable: here no files and a fixed environment.
//! let sources = Sources {
//!     env: vec![("CLAUDE_BOTTLE_CONTAINER_HOME".into(), "/home/dev".into())],
//!     ..Sources::default()
//! };
//! let overrides = Overrides { runtime: Some(RuntimeChoice::Podman), ..Overrides::default() };
//! let config = load(&sources, &overrides).unwrap();
//! assert_eq!(config.settings.container_home, "/home/dev");
//! assert_eq!(config.settings.runtime, RuntimeChoice::Podman);
//! assert_eq!(config.settings.user, "node");
//!
//! let origin = config.origin("container_home");
//! assert_eq!(origin.to_string(), "environment variable CLAUDE_BOTTLE_CONTAINER_HOME");
//! ```

// Errors carry the manifest source for miette and figment's Jail fixes its
// error type; both are cold paths, so size does not matter.
#![allow(clippy::result_large_err)]

mod manifest;
mod settings;

pub use manifest::{
    load_manifest, parse_manifest, Location, Manifest, ManifestError, MAX_MANIFEST,
};
pub use settings::{
    load, parse_duration, AgentChoice, Config, ConfigError, ConfigFileVia, GuardChoice, Origin,
    Overrides, RuntimeChoice, SettingValue, Settings, Sources, ENV_PREFIX, KEYS,
};
