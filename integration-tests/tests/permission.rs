//! An engine that runs but whose socket this process may not use is
//! "permission denied", never "unreachable": run as an unprivileged uid
//! (64999, via `setpriv`) against each engine's real root-only socket.

use bottle_integration_tests::bottlectl_path;
use bottle_integration_tests::harness::requested_engines;
use std::process::Command;

#[test]
fn a_socket_without_permission_is_reported_as_denied() {
    for engine in requested_engines() {
        let out = Command::new("setpriv")
            .args(["--reuid=64999", "--regid=64999", "--clear-groups", "--"])
            .arg(bottlectl_path())
            .args(["--runtime", engine.name(), "--json", "version"])
            .env("HOME", "/tmp")
            .env_remove("DOCKER_HOST")
            .env_remove("CONTAINER_HOST")
            .output()
            .expect("setpriv (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{engine}: {e}: {text}"));
        let probe = v["engines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["engine"] == engine.name())
            .unwrap_or_else(|| panic!("{engine}: no probe in {v}"))
            .clone();
        let error = probe["error"].as_str().unwrap_or_default();
        assert!(error.contains("permission denied at"), "{engine}: {probe}");
        assert!(!error.contains("unreachable"), "{engine}: {probe}");
        assert_eq!(probe["permission_denied"], true, "{engine}: {probe}");

        // doctor says the engine runs and why it cannot be used, instead
        // of telling the user to start it.
        let out = Command::new("setpriv")
            .args(["--reuid=64999", "--regid=64999", "--clear-groups", "--"])
            .arg(bottlectl_path())
            .args(["--runtime", engine.name(), "doctor"])
            .env("HOME", "/tmp")
            .env_remove("DOCKER_HOST")
            .env_remove("CONTAINER_HOST")
            .output()
            .expect("setpriv");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{engine}: {text}");
        let line = text
            .lines()
            .find(|l| {
                l.contains(&format!(" {} ", engine.name())) && l.trim_start().starts_with("deny")
            })
            .unwrap_or_else(|| panic!("{engine}: no deny line in {text}"));
        assert!(line.contains("permission denied"), "{line}");
        assert!(text.contains("may not use its socket"), "{engine}: {text}");
        assert!(
            !text.contains("systemctl"),
            "{engine}: suggests starting it: {text}"
        );
    }
}
