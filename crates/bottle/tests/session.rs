//! The facade honours the settings' agent layout: a library user who sets
//! `agent = "sidecar"` gets a sidecar, as `bottlectl` does (issue 32: the
//! layout used to be chosen only in the CLI). Real engines.

use bottle::config::{AgentChoice, RuntimeChoice};
use bottle::ssh::sidecar::{sidecar_name, LABEL_FOR};
use bottle::{Session, Settings};
use bottle_integration_tests::ssh_fixtures::{keygen_with, live_processes, public};
use bottle_integration_tests::{engine_tests, TestEnv};

async fn check_a_sidecar_setting_gives_a_sidecar(env: &TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let host = keygen_with(dir.path(), "host", "ed25519", &[], "");
    let key = keygen_with(dir.path(), "user", "ed25519", &[], "");
    let plan = bottle::Plan {
        ssh: vec![bottle::ssh::SshEntry {
            host: "a".into(),
            hostname: "a.example".into(),
            user: "git".into(),
            identity_file: key,
            known_host_key: Some(public(&host)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let runtime = match env.engine().name() {
        "docker" => RuntimeChoice::Docker,
        "podman" => RuntimeChoice::Podman,
        _ => RuntimeChoice::Containerd,
    };
    let settings = Settings {
        runtime,
        host: Some(env.endpoint().to_string()),
        namespace: (runtime == RuntimeChoice::Containerd)
            .then(bottle_integration_tests::harness::containerd_namespace),
        agent: AgentChoice::Sidecar,
        ..Settings::default()
    };
    env.own(sidecar_name(env.bottle()));
    let session = Session::open(&settings, Some(env.bottle())).await.unwrap();
    session
        .provision(env.bottle(), &plan, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let sidecar = env
        .admin()
        .details(&sidecar_name(env.bottle()))
        .await
        .unwrap();
    let id = env.rt().inspect(env.bottle()).await.unwrap().id;
    assert_eq!(sidecar.labels.get(LABEL_FOR), Some(&id));
    assert_eq!(live_processes(env.rt(), env.bottle(), "ssh-agent").await, 0);
    assert!(session
        .verify(env.bottle(), &plan, &Default::default())
        .await
        .unwrap()
        .ok());
    session.deprovision(env.bottle()).await.unwrap();
    assert!(env
        .admin()
        .details(&sidecar_name(env.bottle()))
        .await
        .is_err());
}

engine_tests!(images = [debian], check_a_sidecar_setting_gives_a_sidecar);
