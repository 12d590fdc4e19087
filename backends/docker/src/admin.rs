//! `ContainerAdmin` for Docker: image import and container lifecycle.

use crate::client::status_of;
use crate::runtime::container_info;
use crate::DockerRuntime;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions,
    RemoveContainerOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};
use bottle_runtime::{
    ContainerAdmin, ContainerDetails, ContainerInfo, Engine, Error, NetworkMode, Result, RunSpec,
};
use futures_util::TryStreamExt;

#[async_trait::async_trait]
impl ContainerAdmin for DockerRuntime {
    async fn details(&self, container: &str) -> Result<ContainerDetails> {
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
        self.timed(container, "inspect", async {
            let docker = self.client(container).await?;
            let info = match docker
                .inspect_container(container, None::<InspectContainerOptions>)
                .await
            {
                Ok(info) => info,
                Err(e) => return Err(self.container_error(e, container, "inspect").await),
            };
            let host = info.host_config.clone().unwrap_or_default();
            Ok(ContainerDetails {
                image: info.image.clone().unwrap_or_default(),
                network: host.network_mode.clone().unwrap_or_default(),
                labels: info
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                started_at: info
                    .state
                    .as_ref()
                    .and_then(|s| s.started_at.clone())
                    .unwrap_or_default(),
                privileged: host.privileged.unwrap_or(false),
                mounts: info
                    .mounts
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| m.destination)
                    .chain(host.tmpfs.unwrap_or_default().into_keys())
                    .collect(),
                info: container_info(info),
            })
        })
        .await
    }

    async fn image_exists(&self, reference: &str) -> Result<bool> {
        self.timed(reference, "image inspect", async {
            let docker = self.client(reference).await?;
            match docker.inspect_image(reference).await {
                Ok(_) => Ok(true),
                Err(e) if matches!(status_of(&e), Some((404, _))) => Ok(false),
                Err(e) => Err(self.classify(e, reference, "image inspect")),
            }
        })
        .await
    }

    async fn import_image(&self, rootfs_tar: Vec<u8>, reference: &str) -> Result<()> {
        let (repo, tag) = split_reference(reference);
        self.timed(reference, "image import", async {
            let docker = self.client(reference).await?;
            // POST /images/create?fromSrc=-&repo=..&tag=.. with the tarball as body.
            let mut options = CreateImageOptionsBuilder::default()
                .from_src("-")
                .repo(repo);
            if let Some(tag) = tag {
                options = options.tag(tag);
            }
            let mut progress = docker.create_image(
                Some(options.build()),
                Some(bollard::body_full(rootfs_tar.into())),
                None,
            );
            // Docker reports failures inside the progress stream, so drain it.
            while let Some(info) = progress
                .try_next()
                .await
                .map_err(|e| self.classify(e, reference, "image import"))?
            {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(Error::Api {
                        engine: Engine::Docker,
                        container: reference.to_string(),
                        operation: "image import",
                        source: detail.into(),
                    });
                }
            }
            Ok(())
        })
        .await
    }

    async fn run(&self, spec: &RunSpec) -> Result<ContainerInfo> {
        let label = spec.name.clone().unwrap_or_else(|| spec.image.clone());
        self.timed(&label, "run", async {
            let docker = self.client(&label).await?;
            let network_mode = match &spec.network {
                NetworkMode::None => "none".to_string(),
                NetworkMode::Container(id) => format!("container:{id}"),
            };
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
                user: (!spec.user.is_empty()).then(|| spec.user.clone()),
                labels: (!spec.labels.is_empty()).then(|| spec.labels.iter().cloned().collect()),
                host_config: Some(HostConfig {
                    network_mode: Some(network_mode),
                    readonly_rootfs: spec.read_only.then_some(true),
                    tmpfs: (!spec.tmpfs.is_empty()).then(|| {
                        let options = spec.tmpfs_options().join(",");
                        spec.tmpfs
                            .iter()
                            .map(|path| (path.clone(), options.clone()))
                            .collect()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut options = CreateContainerOptionsBuilder::default();
            if let Some(name) = &spec.name {
                options = options.name(name);
            }
            let created = docker
                .create_container(Some(options.build()), body)
                .await
                .map_err(|e| self.classify(e, &label, "create"))?;
            if let Err(e) = docker
                .start_container(&created.id, None::<StartContainerOptions>)
                .await
            {
                // Do not leave a created-but-dead container behind.
                let _ = docker
                    .remove_container(
                        &created.id,
                        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                    )
                    .await;
                return Err(self.classify(e, &label, "start"));
            }
            match docker
                .inspect_container(&created.id, None::<InspectContainerOptions>)
                .await
            {
                Ok(info) => Ok(container_info(info)),
                Err(e) => Err(self.container_error(e, &created.id, "inspect").await),
            }
        })
        .await
    }

    async fn start(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
        self.timed(container, "start", async {
            let docker = self.client(container).await?;
            match docker
                .start_container(container, None::<StartContainerOptions>)
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => Err(self.container_error(e, container, "start").await),
            }
        })
        .await
    }

    async fn stop(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
        self.timed(container, "stop", async {
            let docker = self.client(container).await?;
            let options = StopContainerOptionsBuilder::default().t(0).build();
            match docker.stop_container(container, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.container_error(e, container, "stop").await),
            }
        })
        .await
    }

    async fn pause(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
        self.timed(container, "pause", async {
            let docker = self.client(container).await?;
            match docker.pause_container(container).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.container_error(e, container, "pause").await),
            }
        })
        .await
    }

    async fn unpause(&self, container: &str) -> Result<()> {
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
        self.timed(container, "unpause", async {
            let docker = self.client(container).await?;
            match docker.unpause_container(container).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.container_error(e, container, "unpause").await),
            }
        })
        .await
    }

    async fn remove(&self, container: &str) -> Result<()> {
        // A name no container can have: nothing to remove.
        match bottle_runtime::check_docker_style_ref(Engine::Docker, container) {
            Err(bottle_runtime::Error::ContainerNotFound { .. }) => return Ok(()),
            other => other?,
        }
        self.timed(container, "remove", async {
            let docker = self.client(container).await?;
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match docker.remove_container(container, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) if matches!(status_of(&e), Some((404, _))) => Ok(()),
                Err(e) => Err(self.classify(e, container, "remove")),
            }
        })
        .await
    }
}

/// `repo[:tag]`, where a `:` before the last `/` belongs to a registry port.
fn split_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (reference, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(
            split_reference("bottle-test:abc"),
            ("bottle-test", Some("abc"))
        );
        assert_eq!(split_reference("bottle-test"), ("bottle-test", None));
        assert_eq!(
            split_reference("localhost:5000/x/y:1"),
            ("localhost:5000/x/y", Some("1"))
        );
        assert_eq!(
            split_reference("localhost:5000/x"),
            ("localhost:5000/x", None)
        );
    }
}
