//! `ContainerRuntime` for Docker.

use crate::client::status_of;
use crate::DockerRuntime;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, UploadToContainerOptionsBuilder,
};
use bottle_runtime::{
    build_tar, Capabilities, ContainerFilter, ContainerInfo, ContainerRuntime, ContainerState,
    CopyEntry, Engine, EngineInfo, Error, ExecOutput, ExecRequest, OutputStream, Result,
};
use futures_util::StreamExt;
use std::collections::HashMap;
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

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            .with_copy(true)
            .with_list(true)
            .with_events(true)
            .with_event_history(true)
            .with_output_with_unread_stdin(true)
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
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
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
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
        self.timed(container, "exec", self.exec_inner(container, request))
            .await
    }

    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        bottle_runtime::check_docker_style_ref(Engine::Docker, container)?;
        let tar = build_tar(entries).map_err(|reason| Error::InvalidRequest {
            engine: Engine::Docker,
            container: container.to_string(),
            operation: "copy",
            reason,
        })?;
        self.timed(container, "copy", async {
            let docker = self.client(container).await?;
            // Docker 20.10 accepts an upload into a stopped or paused
            // container (200, written to its filesystem), and the upload has
            // no option to refuse that: only an inspect first can keep the
            // contract. It costs one local round trip (~1-2 ms).
            let info = match docker
                .inspect_container(container, None::<InspectContainerOptions>)
                .await
            {
                Ok(info) => container_info(info),
                Err(e) => return Err(self.container_error(e, container, "copy").await),
            };
            if !info.is_running() {
                return Err(Error::ContainerNotRunning {
                    engine: Engine::Docker,
                    container: container.to_string(),
                    state: info.state.to_string(),
                });
            }
            // Upload by id: the container inspected above, even if the name
            // is reused meanwhile.
            let container_id = if info.id.is_empty() {
                container
            } else {
                info.id.as_str()
            };
            // Extract at `/` so every absolute path is reachable and missing
            // parents get created (root, 0755). No copyUIDGID: in a container
            // with a configured user Docker would then chown every entry to
            // that user instead of keeping the archive's numeric uid/gid.
            let options = UploadToContainerOptionsBuilder::default().path("/").build();
            match docker
                .upload_to_container(container_id, Some(options), bollard::body_full(tar.into()))
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => Err(self.container_error(e, container, "copy").await),
            }
        })
        .await
    }

    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        let mut query: HashMap<String, Vec<String>> = HashMap::new();
        for f in filters {
            query
                .entry(f.key().to_string())
                .or_default()
                .push(f.value());
        }
        self.timed("", "list", async {
            let docker = self.client("").await?;
            // `all: false` is Docker's running and paused; paused ones are
            // dropped below (an exec into them fails).
            let options = ListContainersOptions {
                all: false,
                filters: Some(query),
                ..Default::default()
            };
            let summaries = docker
                .list_containers(Some(options))
                .await
                .map_err(|e| self.classify(e, "", "list"))?;
            let mut out: Vec<ContainerInfo> = summaries
                .into_iter()
                .map(|c| ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    state: c
                        .state
                        .map(|s| ContainerState::parse(s.as_ref()))
                        .unwrap_or_else(|| ContainerState::Other(String::new())),
                })
                .filter(ContainerInfo::is_running)
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn events(
        &self,
        filters: &[ContainerFilter],
        since: Option<std::time::SystemTime>,
    ) -> Result<bottle_runtime::EventStream> {
        self.events_inner(filters, since).await
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
        let limit = request.max_output;
        let read = async {
            let mut out = ExecOutput::default();
            while let Some(frame) = output.next().await {
                let (stream, message) = match frame {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        (OutputStream::Stdout, message)
                    }
                    Ok(LogOutput::StdErr { message }) => (OutputStream::Stderr, message),
                    Ok(LogOutput::StdIn { .. }) => continue,
                    Err(e) => {
                        return Err(Error::Api {
                            engine: Engine::Docker,
                            container: container.to_string(),
                            operation: "exec output",
                            source: e.into(),
                        })
                    }
                };
                if !out.append_within(stream, &message, limit) {
                    // Returning drops the attach connection: Docker has no
                    // exec kill, and the process lives on (dockerd keeps
                    // draining its pipes, discarding the bytes) until it
                    // exits or the container stops.
                    return Err(Error::OutputTooLarge {
                        engine: Engine::Docker,
                        container: container.to_string(),
                        program: program.clone(),
                        stream,
                        limit,
                    });
                }
            }
            Ok(out)
        };
        let mut write = Box::pin(write);
        let (read_result, written) = {
            tokio::pin!(read);
            tokio::select! {
                // The output ended: the process is gone, so stop writing stdin
                // it will never read (Docker can keep such a write blocked for
                // many seconds). Returning drops the writer.
                out = &mut read => (out, false),
                () = &mut write => (read.await, true),
            }
        };
        let mut out = match read_result {
            Ok(out) => out,
            Err(e @ Error::OutputTooLarge { .. }) if !written && self.is_tunnelled() => {
                // Through ssh, a dropped attach whose stdin is still queued
                // never closes on the remote (OpenSSH reads a forwarded
                // socket's EOF only once the remote takes more input), and
                // dockerd then holds every later exec of this container
                // unfinished. Keep it flowing until the process ends.
                tokio::spawn(async move {
                    let drain = async { while output.next().await.is_some() {} };
                    tokio::join!(write, drain);
                });
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let (exit_code, pid) = self.exit_code(docker, container, &exec_id).await?;
        out.exit_code = exit_code;
        // Pid 0: the process was never started (Docker reports a real exit
        // 126 with a pid).
        if pid == Some(0) {
            if let Some(message) = unknown_user_message(&out) {
                // Podman refuses this at exec start; so do we.
                return Err(Error::ExecStart {
                    engine: Engine::Docker,
                    container: container.to_string(),
                    program,
                    source: message.into(),
                });
            }
            normalise_start_failure(&mut out);
        }
        Ok(out)
    }

    /// The exit code and pid, once the engine has recorded them. The output
    /// stream can end a moment before Docker marks the exec as finished, so
    /// poll briefly.
    async fn exit_code(
        &self,
        docker: &bollard::Docker,
        container: &str,
        exec_id: &str,
    ) -> Result<(i64, Option<i64>)> {
        let mut delay = Duration::from_millis(5);
        loop {
            let inspected = match docker.inspect_exec(exec_id).await {
                Ok(inspected) => inspected,
                Err(e) => return Err(self.exec_gone_error(docker, e, container).await),
            };
            if inspected.running != Some(true) {
                if let Some(code) = inspected.exit_code {
                    return Ok((code, inspected.pid));
                }
            }
            // The caller's timeout bounds this loop.
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// Docker forgets an exec when its container stops, so a 404 from exec
    /// inspect is a container that stopped (or went) meanwhile.
    async fn exec_gone_error(
        &self,
        docker: &bollard::Docker,
        err: bollard::errors::Error,
        container: &str,
    ) -> Error {
        if matches!(status_of(&err), Some((404, _))) {
            match docker
                .inspect_container(container, None::<InspectContainerOptions>)
                .await
            {
                Ok(info) => {
                    let info = container_info(info);
                    if !info.is_running() {
                        return Error::ContainerNotRunning {
                            engine: Engine::Docker,
                            container: container.to_string(),
                            state: info.state.to_string(),
                        };
                    }
                }
                Err(e) if matches!(status_of(&e), Some((404, _))) => {
                    return Error::ContainerNotFound {
                        engine: Engine::Docker,
                        container: container.to_string(),
                    }
                }
                Err(_) => {}
            }
        }
        self.classify(err, container, "exec inspect")
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

/// Prefix of the message Docker 20.10 writes to an exec's stdout (with exit
/// code 126) when runc could not start the program at all.
const START_FAILURE_PREFIX: &[u8] = b"OCI runtime exec failed: ";

/// Docker 20.10 starts an exec for a user or group the container does not
/// know and reports it as exit 126 with `unable to find user X: …` (or
/// `group`) on stdout. Returns that message, which names the user.
fn unknown_user_message(out: &ExecOutput) -> Option<String> {
    let unknown = out.exit_code == 126
        && out.stderr.is_empty()
        && (out.stdout.starts_with(b"unable to find user ")
            || out.stdout.starts_with(b"unable to find group "));
    unknown.then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// Make a program that the runtime could not start (its exec has pid 0) look
/// as it does on Podman: the runtime's message goes to stderr (it is not the
/// program's output) and "not found" (missing file, not in `$PATH`) is exit
/// code 127, the shell convention; anything else (e.g. not executable) stays
/// 126.
fn normalise_start_failure(out: &mut ExecOutput) {
    if out.exit_code != 126
        || !out.stderr.is_empty()
        || !out.stdout.starts_with(START_FAILURE_PREFIX)
    {
        return;
    }
    let mut message = std::mem::take(&mut out.stdout);
    if message.ends_with(b"\r\n") {
        message.truncate(message.len() - 2);
        message.push(b'\n');
    }
    let text = String::from_utf8_lossy(&message);
    // Only the part about the program itself: `exec: "PROG": …`.
    let not_found = text.split_once("exec: \"").is_some_and(|(_, about)| {
        about.contains("executable file not found") || about.contains("no such file or directory")
    });
    if not_found {
        out.exit_code = 127;
    }
    out.stderr = message;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stdout: &str) -> ExecOutput {
        ExecOutput {
            exit_code: 126,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        }
    }

    #[test]
    fn start_failures_are_normalised() {
        // Docker 20.10's exact messages for a missing path, a program not in
        // $PATH, and a file that is not executable.
        let missing = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"/no/prog\": stat /no/prog: no such file or directory: unknown\r\n";
        let not_in_path = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown\r\n";
        let not_exec = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied: unknown\r\n";
        for (stdout, code) in [(missing, 127), (not_in_path, 127), (not_exec, 126)] {
            let mut out = failed(stdout);
            normalise_start_failure(&mut out);
            assert_eq!(out.exit_code, code, "{stdout}");
            assert!(out.stdout.is_empty());
            assert_eq!(out.stderr, stdout.replace("\r\n", "\n").as_bytes());
        }
    }

    #[test]
    fn unknown_users_are_recognised() {
        let out = failed("unable to find user bottle-x: no matching entries in passwd file\r\n");
        assert_eq!(
            unknown_user_message(&out).as_deref(),
            Some("unable to find user bottle-x: no matching entries in passwd file")
        );
        let out = failed("unable to find group g: no matching entries in group file\r\n");
        assert!(unknown_user_message(&out).is_some());
        for other in [
            failed("OCI runtime exec failed: exec: \"x\": permission denied\r\n"),
            ExecOutput {
                exit_code: 1,
                ..failed("unable to find user x\n")
            },
        ] {
            assert_eq!(unknown_user_message(&other), None);
        }
    }

    #[test]
    fn program_output_is_left_alone() {
        // A program's own exit 126, output on stdout, or a message alongside
        // stderr output is not a start failure.
        for out in [
            failed("hello\n"),
            ExecOutput {
                exit_code: 1,
                ..failed("OCI runtime exec failed: x: no such file or directory\n")
            },
            ExecOutput {
                stderr: b"err".to_vec(),
                ..failed("OCI runtime exec failed: exec: \"x\": no such file or directory\n")
            },
        ] {
            let mut normalised = out.clone();
            normalise_start_failure(&mut normalised);
            assert_eq!(normalised, out);
        }
    }
}
