//! Container references as Docker and Podman spell them. The trait does not
//! restrict references: each backend parses its own (a Kubernetes backend
//! would take `namespace/pod[/container]`); the two shipped backends call
//! [`check_docker_style_ref`].

use crate::{Engine, Error, Result};

/// Refuse a reference Docker or Podman could not resolve, before it reaches
/// a request URI (where `;`, spaces or `/` would change the request, or make
/// an HTTP client fail on it): both engines' names and ids share the
/// alphabet `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub fn check_docker_style_ref(engine: Engine, container: &str) -> Result<()> {
    if container.is_empty() {
        return Err(Error::InvalidRequest {
            engine,
            container: String::new(),
            operation: "container lookup",
            reason: "the container name is empty".into(),
        });
    }
    let mut chars = container.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        // No container can have such a name: say so, as the engine would.
        Err(Error::ContainerNotFound {
            engine,
            container: container.to_string(),
        })
    }
}

#[cfg(test)]
mod container_ref_tests {
    use super::*;

    #[test]
    fn only_engine_names_and_ids_pass() {
        for ok in ["bottle-1", "a", "0123abcdef", "my_bottle.v2"] {
            assert!(check_docker_style_ref(Engine::Docker, ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            check_docker_style_ref(Engine::Podman, ""),
            Err(Error::InvalidRequest { .. })
        ));
        for bad in [
            "a;touch /tmp/x",
            "a b",
            "-a",
            ".a",
            "a/b",
            "a$(id)",
            "ä",
            "a\n",
        ] {
            assert!(
                matches!(
                    check_docker_style_ref(Engine::Podman, bad),
                    Err(Error::ContainerNotFound { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
