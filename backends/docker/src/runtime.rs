//! `ContainerRuntime` for Docker.

use crate::client::status_of;
use crate::DockerRuntime;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{InspectContainerOptions, UploadToContainerOptionsBuilder};
use bottle_runtime::{
    build_tar, ContainerInfo, ContainerRuntime, ContainerState, CopyEntry, Engine, EngineInfo,
    Error, ExecOutput, ExecRequest, Result,
};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    fn engine(&self) -> Engine {
        Engine::Docker
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn version(&self) -> Result<EngineInfo> {
        self.timed("", "version", async {
            let docker = self.client("").await?;
            let v = docker
                .version()
                .await
                .map_err(|e| self.classify(e, "", "version"))?;
            Ok(EngineInfo {
                engine: Engine::Docker,
                endpoint: self.endpoint.clone(),
                version: v.version.unwrap_or_default(),
                api_version: docker.client_version().to_string(),
            })
        })
        .await
    }

    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        self.timed(container, "inspect", async {
            let docker = self.client(container).await?;
            match docker
                .inspect_container(container, None::<InspectContainerOptions>)
                .await
            {
                Ok(info) => Ok(container_info(info)),
                Err(e) => Err(self.container_error(e, container, "inspect").await),
            }
        })
        .await
    }

    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        self.timed(container, "exec", self.exec_inner(container, request))
            .await
    }

    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        let tar = build_tar(entries).map_err(|reason| Error::InvalidRequest {
            engine: Engine::Docker,
            container: container.to_string(),
            operation: "copy",
            reason,
        })?;
        self.timed(container, "copy", async {
            let docker = self.client(container).await?;
            // Extract at `/` so every absolute path is reachable and missing
            // parents get created (root, 0755). No copyUIDGID: in a container
            // with a configured user Docker would then chown every entry to
            // that user instead of keeping the archive's numeric uid/gid.
            let options = UploadToContainerOptionsBuilder::default().path("/").build();
            match docker
                .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => Err(self.container_error(e, container, "copy").await),
            }
        })
        .await
    }
}

impl DockerRuntime {
    async fn exec_inner(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        let docker = self.client(container).await?;
        let program = request.program().to_string();

        let options = CreateExecOptions {
            cmd: Some(request.argv.clone()),
            user: (!request.user.is_empty()).then(|| request.user.clone()),
            attach_stdin: Some(request.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec_id = match docker.create_exec(container, options).await {
            Ok(created) => created.id,
            Err(e) => return Err(self.exec_error(e, container, &program).await),
        };

        let started = docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    // Frames are split by length, not lines: this only sizes
                    // the read buffer.
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await;
        let (mut output, mut input) = match started {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => {
                return Err(Error::ExecStart {
                    engine: Engine::Docker,
                    container: container.to_string(),
                    program,
                    source: "exec started detached".into(),
                })
            }
            Err(e) => return Err(self.exec_error(e, container, &program).await),
        };

        // Write stdin while reading output: a process that echoes its input
        // would otherwise fill its stdout pipe and stall.
        let stdin = request.stdin;
        let write = async move {
            if let Some(bytes) = stdin {
                // A process that exits without reading all of stdin closes the
                // pipe: that is its business, not an error.
                if let Err(e) = input.write_all(&bytes).await {
                    tracing::debug!("exec stdin write stopped early: {e}");
                }
                // Half-close so the process sees EOF.
                if let Err(e) = input.shutdown().await {
                    tracing::debug!("exec stdin shutdown: {e}");
                }
            }
            // Without stdin the writer is simply dropped.
        };
        let read = async {
            let mut out = ExecOutput::default();
            while let Some(frame) = output.next().await {
                match frame {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        out.stdout.extend_from_slice(&message)
                    }
                    Ok(LogOutput::StdErr { message }) => out.stderr.extend_from_slice(&message),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => {
                        return Err(Error::Api {
                            engine: Engine::Docker,
                            container: container.to_string(),
                            operation: "exec output",
                            source: e.into(),
                        })
                    }
                }
            }
            Ok(out)
        };
        let ((), read) = tokio::join!(write, read);
        let mut out = read?;
        out.exit_code = self.exit_code(docker, container, &exec_id).await?;
        Ok(out)
    }

    /// The exit code, once the engine has recorded it. The output stream can
    /// end a moment before Docker marks the exec as finished, so poll briefly.
    async fn exit_code(
        &self,
        docker: &bollard::Docker,
        container: &str,
        exec_id: &str,
    ) -> Result<i64> {
        let mut delay = Duration::from_millis(5);
        loop {
            let inspected = docker
                .inspect_exec(exec_id)
                .await
                .map_err(|e| self.classify(e, container, "exec inspect"))?;
            if inspected.running != Some(true) {
                if let Some(code) = inspected.exit_code {
                    return Ok(code);
                }
            }
            // The caller's timeout bounds this loop.
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// 404/409 are about the container; any other failure to create or
    /// start the exec is `ExecStart`, unless the engine is unreachable.
    async fn exec_error(
        &self,
        err: bollard::errors::Error,
        container: &str,
        program: &str,
    ) -> Error {
        match status_of(&err) {
            Some((404, _)) | Some((409, _)) => self.container_error(err, container, "exec").await,
            _ => match self.classify(err, container, "exec") {
                Error::Api { source, .. } => Error::ExecStart {
                    engine: Engine::Docker,
                    container: container.to_string(),
                    program: program.to_string(),
                    source,
                },
                other => other,
            },
        }
    }
}

pub(crate) fn container_info(info: ContainerInspectResponse) -> ContainerInfo {
    let state = info
        .state
        .and_then(|s| s.status)
        .map(|s| ContainerState::parse(s.as_ref()))
        .unwrap_or_else(|| ContainerState::Other(String::new()));
    ContainerInfo {
        id: info.id.unwrap_or_default(),
        name: info
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        state,
    }
}
