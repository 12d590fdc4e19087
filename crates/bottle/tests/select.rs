//! Runtime selection against the real engines: both must be up (the test
//! skips, printing why, when one is not requested or unreachable, unless
//! `CI=true` / `BOTTLE_TEST_REQUIRE_ENGINES=1`).

use bottle::{Engine, RuntimeChoice, SelectError, Settings};
use bottle_integration_tests::ensure_test_image;
use bottle_integration_tests::harness::{connect, engines_required, requested_engines, Connection};
use bottle_runtime::RunSpec;
use std::time::Duration;

async fn both_engines() -> Option<(Connection, Connection)> {
    let mut conns = Vec::new();
    for engine in [Engine::Docker, Engine::Podman] {
        let why = if !requested_engines().contains(&engine) {
            Some("not requested".to_string())
        } else {
            match connect(engine, None) {
                Ok(c) => match c.runtime.version().await {
                    Ok(_) => {
                        conns.push(c);
                        None
                    }
                    Err(e) => Some(e.to_string()),
                },
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(why) = why {
            if engines_required() {
                panic!("selection tests need both engines: {engine}: {why}");
            }
            println!("SKIP selection tests need both engines: {engine}: {why}");
            return None;
        }
    }
    let podman = conns.pop()?;
    let docker = conns.pop()?;
    Some((docker, podman))
}

fn settings(runtime: RuntimeChoice, host: Option<&str>) -> Settings {
    Settings {
        runtime,
        host: host.map(str::to_string),
        timeout: Duration::from_secs(60),
        ..Settings::default()
    }
}

async fn start(conn: &Connection, name: &str) {
    let image = ensure_test_image(conn.admin.as_ref())
        .await
        .expect("test image");
    let mut spec = RunSpec::new(image, ["/bin/sleep", "infinity"]);
    spec.name = Some(name.to_string());
    spec.labels = vec![("bottle-test".into(), "select".into())];
    conn.admin.run(&spec).await.expect("start container");
}

async fn checks(docker: &Connection, podman: &Connection, names: [String; 3]) {
    let [only_docker, only_podman, both] = names;
    let auto = settings(RuntimeChoice::Auto, None);

    // A named container steers auto to the engine that has it.
    let sel = bottle::select(&auto, Some(&only_docker)).await.unwrap();
    assert_eq!(sel.engine(), Engine::Docker);
    assert!(sel.why.contains("exists in Docker"), "{}", sel.why);
    assert_eq!(sel.tried.len(), 2);
    assert_eq!(sel.tried[0].has_container, Some(true));
    assert_eq!(sel.tried[1].has_container, Some(false));
    let sel = bottle::select(&auto, Some(&only_podman)).await.unwrap();
    assert_eq!(sel.engine(), Engine::Podman);
    assert_eq!(sel.endpoint(), podman.runtime.endpoint());

    // In both: ask for --runtime (a usage error).
    let err = bottle::select(&auto, Some(&both)).await.unwrap_err();
    assert!(matches!(err, SelectError::Ambiguous { .. }), "{err}");
    assert!(err.is_usage_error());
    assert!(err.to_string().contains("--runtime"), "{err}");

    // Nowhere: an engine/container error naming what was tried.
    let err = bottle::select(&auto, Some("bottle-select-no-such-container"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SelectError::ContainerNotFound { .. }),
        "{err}"
    );
    assert!(!err.is_usage_error());
    assert_eq!(err.tried().len(), 2);
    assert!(err.to_string().contains(docker.runtime.endpoint()), "{err}");

    // An explicit runtime wins over where the container is.
    let sel = bottle::select(&settings(RuntimeChoice::Podman, None), Some(&only_docker))
        .await
        .unwrap();
    assert_eq!(sel.engine(), Engine::Podman);
    assert!(sel.why.starts_with("runtime = podman"), "{}", sel.why);
    let rt = bottle::connect(&settings(RuntimeChoice::Docker, None))
        .await
        .unwrap();
    assert_eq!(rt.engine(), Engine::Docker);
    assert!(rt.inspect(&only_docker).await.unwrap().is_running());

    // A host: the engine that answers there, Podman's API tried first.
    let sel = bottle::select(
        &settings(RuntimeChoice::Auto, Some(podman.runtime.endpoint())),
        None,
    )
    .await
    .unwrap();
    assert_eq!(sel.engine(), Engine::Podman);
    let sel = bottle::select(
        &settings(RuntimeChoice::Auto, Some(docker.runtime.endpoint())),
        None,
    )
    .await
    .unwrap();
    assert_eq!(sel.engine(), Engine::Docker);
    assert_eq!(sel.tried[0].engine, Engine::Podman);
    assert!(!sel.tried[0].answered());

    // Nothing answers: every endpoint tried is named.
    let bogus = "unix:///nonexistent/bottle-select.sock";
    let err = bottle::select(&settings(RuntimeChoice::Auto, Some(bogus)), None)
        .await
        .unwrap_err();
    assert!(matches!(err, SelectError::NoEngine { .. }), "{err}");
    assert!(!err.is_usage_error());
    assert_eq!(err.tried().len(), 2);
    assert!(err
        .tried()
        .iter()
        .all(|p| p.endpoint == bogus && p.error.is_some()));
    let err = bottle::connect(&settings(RuntimeChoice::Docker, Some(bogus)))
        .await
        .unwrap_err();
    assert!(!err.is_usage_error());
    assert!(
        bottle::error_chain(&err).contains(bogus),
        "{}",
        bottle::error_chain(&err)
    );

    // No container, no host: whichever answers, Docker first.
    let sel = bottle::select(&auto, None).await.unwrap();
    let expect = match bottle::default_endpoint(Engine::Podman) {
        Some((_, "CONTAINER_HOST"))
            if bottle::default_endpoint(Engine::Docker).map(|d| d.1) != Some("DOCKER_HOST") =>
        {
            Engine::Podman
        }
        _ => Engine::Docker,
    };
    assert_eq!(sel.engine(), expect, "{}", sel.why);

    // doctor's view: both engines, with versions, and containerd only
    // where it answers (CI starts one for its containerd suites).
    let probes = bottle::probe_all(&auto, None).await;
    let engines: Vec<&str> = probes.iter().map(|p| p.engine.name()).collect();
    assert!(
        engines == ["docker", "podman"] || engines == ["docker", "podman", "containerd"],
        "{probes:?}"
    );
    assert!(probes.iter().all(|p| p.answered()), "{probes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_selection_follows_the_rules() {
    let Some((docker, podman)) = both_engines().await else {
        return;
    };
    let tag = std::process::id();
    let names = [
        format!("bottle-select-docker-{tag}"),
        format!("bottle-select-podman-{tag}"),
        format!("bottle-select-both-{tag}"),
    ];
    start(&docker, &names[0]).await;
    start(&podman, &names[1]).await;
    start(&docker, &names[2]).await;
    start(&podman, &names[2]).await;

    let (d, p) = (docker.clone(), podman.clone());
    let n = names.clone();
    let outcome = tokio::spawn(async move { checks(&d, &p, n).await }).await;
    for (conn, name) in [
        (&docker, &names[0]),
        (&docker, &names[2]),
        (&podman, &names[1]),
        (&podman, &names[2]),
    ] {
        let _ = conn.admin.remove(name).await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
