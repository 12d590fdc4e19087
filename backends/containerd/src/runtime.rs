//! `ContainerRuntime` for containerd.

use crate::user::{read_in_root, resolve};
use crate::{ContainerdRuntime, ENGINE, NAME_LABEL};
use bottle_runtime::{
    Capabilities, ContainerFilter, ContainerInfo, ContainerRuntime, ContainerState, EngineInfo,
    Error, ExecOutput, ExecRequest, OutputStream, Result,
};
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    CloseIoRequest, Container, DeleteProcessRequest, ExecProcessRequest, GetContainerRequest,
    GetRequest, KillRequest, ListContainersRequest, ListTasksRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::v1::Status as TaskStatus;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The OCI process spec's type, as containerd's Go client names it.
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

#[async_trait::async_trait]
impl ContainerRuntime for ContainerdRuntime {
    fn engine(&self) -> bottle_runtime::Engine {
        ENGINE
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// No `event_history`: containerd keeps no log of past events, so a
    /// `since` subscription replays only the running tasks started since.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            .with_copy(true)
            .with_list(true)
            .with_events(true)
            .with_event_history(false)
            .with_output_with_unread_stdin(true)
    }

    async fn version(&self) -> Result<EngineInfo> {
        self.timed("", "version", async {
            let ch = self.channel().await?;
            let v = VersionClient::new(ch)
                .version(())
                .await
                .map_err(|e| self.status_error(e, "", "version"))?
                .into_inner();
            Ok(EngineInfo {
                engine: ENGINE,
                endpoint: self.endpoint.clone(),
                version: v.version,
                // The gRPC API's version: services are `….v1`.
                api_version: "1.0".to_string(),
            })
        })
        .await
    }

    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "inspect", async {
            let c = self.find(container).await?;
            let state = self.state_of(&c.id, container).await?.0;
            Ok(info_of(&c, state))
        })
        .await
    }

    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        self.timed(container, "exec", self.exec_inner(container, request))
            .await
    }

    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        let mut names = Vec::new();
        for f in filters {
            if let ContainerFilter::Name(pattern) = f {
                names.push(
                    regex::Regex::new(pattern).map_err(|e| Error::InvalidRequest {
                        engine: ENGINE,
                        container: String::new(),
                        operation: "list",
                        reason: format!("name filter: {e}"),
                    })?,
                );
            }
        }
        self.timed("", "list", async {
            let ch = self.channel().await?;
            // One containerd filter: its comma-separated conditions all hold.
            let labels: Vec<String> = filters
                .iter()
                .filter_map(|f| match f {
                    ContainerFilter::Label(k) => Some(format!("labels.{}", quote(k))),
                    ContainerFilter::LabelValue(k, v) => {
                        Some(format!("labels.{}=={}", quote(k), quote(v)))
                    }
                    ContainerFilter::Name(_) => None,
                })
                .collect();
            let request = ListContainersRequest {
                filters: if labels.is_empty() {
                    Vec::new()
                } else {
                    vec![labels.join(",")]
                },
            };
            let containers = ContainersClient::new(ch.clone())
                .list(self.request(request))
                .await
                .map_err(|e| self.status_error(e, "", "list"))?
                .into_inner()
                .containers;
            let tasks = TasksClient::new(ch)
                .list(self.request(ListTasksRequest::default()))
                .await
                .map_err(|e| self.status_error(e, "", "list"))?
                .into_inner()
                .tasks;
            // containerd 1.6 names a task's container in `id`, newer ones
            // in `container_id`.
            let running: HashMap<&str, i32> = tasks
                .iter()
                .map(|t| {
                    let id = if t.container_id.is_empty() {
                        &t.id
                    } else {
                        &t.container_id
                    };
                    (id.as_str(), t.status)
                })
                .collect();
            let mut out: Vec<ContainerInfo> = containers
                .iter()
                // containerd applied the labels; checked again here, so a
                // filter it read otherwise cannot widen the answer.
                .filter(|c| labels_match(filters, &c.labels))
                .filter(|c| running.get(c.id.as_str()) == Some(&(TaskStatus::Running as i32)))
                .map(|c| info_of(c, ContainerState::Running))
                .filter(|i| names.is_empty() || names.iter().any(|re| re.is_match(&i.name)))
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn copy(&self, container: &str, entries: &[bottle_runtime::CopyEntry]) -> Result<()> {
        bottle_runtime::check_docker_style_ref(ENGINE, container)?;
        let invalid = |reason: String| Error::InvalidRequest {
            engine: ENGINE,
            container: container.to_string(),
            operation: "copy",
            reason,
        };
        // The same checks as the other engines' archive: absolute paths, no
        // `.`/`..`, none twice, permission modes only.
        bottle_runtime::build_tar(entries).map_err(invalid)?;
        self.timed(container, "copy", async {
            let c = self.find(container).await?;
            let (state, pid) = self.state_of(&c.id, container).await?;
            if state != ContainerState::Running {
                return Err(Error::ContainerNotRunning {
                    engine: ENGINE,
                    container: container.to_string(),
                    state: state.to_string(),
                });
            }
            let entries = entries.to_vec();
            tokio::task::spawn_blocking(move || {
                let root: std::os::fd::OwnedFd = std::fs::File::open(format!("/proc/{pid}/root"))
                    .map_err(|e| format!("cannot open the container's root: {e}"))?
                    .into();
                crate::copy::copy_into(&root, &entries)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|reason| Error::Api {
                engine: ENGINE,
                container: container.to_string(),
                operation: "copy",
                source: reason.into(),
            })
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

/// A string as containerd's filter syntax quotes it.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub(crate) fn labels_match(filters: &[ContainerFilter], labels: &HashMap<String, String>) -> bool {
    filters.iter().all(|f| match f {
        ContainerFilter::Label(k) => labels.contains_key(k),
        ContainerFilter::LabelValue(k, v) => labels.get(k) == Some(v),
        ContainerFilter::Name(_) => true,
    })
}

/// A container's name: its `nerdctl/name` label if it is a valid name, else its id.
pub(crate) fn name_of(c: &Container) -> String {
    match c.labels.get(NAME_LABEL) {
        Some(n) if bottle_runtime::check_docker_style_ref(ENGINE, n).is_ok() => n.clone(),
        _ => c.id.clone(),
    }
}

pub(crate) fn info_of(c: &Container, state: ContainerState) -> ContainerInfo {
    ContainerInfo {
        id: c.id.clone(),
        name: name_of(c),
        state,
    }
}

/// How long an exec's output may stay open after its process exited (a
/// background child holding it): then the call returns what came.
const OUTPUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Unique exec ids within this process.
static EXEC_SEQ: AtomicU64 = AtomicU64::new(0);

/// Kills and forgets an exec that did not finish normally (timeout, too
/// much output, the caller gone): containerd can, unlike Docker and Podman.
struct ExecGuard {
    tasks: Option<TasksClient<containerd_client::tonic::transport::Channel>>,
    namespace: String,
    container_id: String,
    exec_id: String,
    kill: bool,
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        let Some(mut tasks) = self.tasks.take() else {
            return;
        };
        let (ns, container_id, exec_id, kill) = (
            self.namespace.clone(),
            self.container_id.clone(),
            self.exec_id.clone(),
            self.kill,
        );
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            if kill {
                let _ = tasks
                    .kill(crate::ns_request(
                        &ns,
                        KillRequest {
                            container_id: container_id.clone(),
                            exec_id: exec_id.clone(),
                            signal: 9,
                            all: false,
                        },
                    ))
                    .await;
                // The exit is reaped before the process can be deleted.
                let wait = WaitRequest {
                    container_id: container_id.clone(),
                    exec_id: exec_id.clone(),
                };
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    tasks.wait(crate::ns_request(&ns, wait)),
                )
                .await;
            }
            let r = crate::ns_request(
                &ns,
                DeleteProcessRequest {
                    container_id,
                    exec_id,
                },
            );
            let _ = tasks.delete_process(r).await;
        });
    }
}

impl ContainerdRuntime {
    /// The container by id, else by its `nerdctl/name` label.
    pub(crate) async fn find(&self, container: &str) -> Result<Container> {
        let ch = self.channel().await?;
        let mut client = ContainersClient::new(ch);
        match client
            .get(self.request(GetContainerRequest {
                id: container.to_string(),
            }))
            .await
        {
            Ok(r) => {
                if let Some(c) = r.into_inner().container {
                    return Ok(c);
                }
            }
            Err(e) if e.code() == Code::NotFound => {}
            Err(e) => return Err(self.status_error(e, container, "inspect")),
        }
        // The reference is a valid name (checked): no quoting can break out.
        let filter = format!("labels.{}=={}", quote(NAME_LABEL), quote(container));
        let found = client
            .list(self.request(ListContainersRequest {
                filters: vec![filter],
            }))
            .await
            .map_err(|e| self.status_error(e, container, "inspect"))?
            .into_inner()
            .containers;
        let mut matching = found.into_iter().filter(|c| name_of(c) == container);
        match (matching.next(), matching.next()) {
            (Some(c), None) => Ok(c),
            (None, _) => Err(Error::ContainerNotFound {
                engine: ENGINE,
                container: container.to_string(),
            }),
            (Some(_), Some(_)) => Err(Error::InvalidRequest {
                engine: ENGINE,
                container: container.to_string(),
                operation: "container lookup",
                reason: format!(
                    "several containers in namespace `{}` are named so: use an id",
                    self.namespace
                ),
            }),
        }
    }

    /// The state of the container's task and its pid: no task is `exited`
    /// (never started, or stopped and its task deleted).
    pub(crate) async fn state_of(
        &self,
        id: &str,
        container: &str,
    ) -> Result<(ContainerState, u32)> {
        let ch = self.channel().await?;
        match TasksClient::new(ch)
            .get(self.request(GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(r) => {
                let p = r.into_inner().process.unwrap_or_default();
                let state = match TaskStatus::try_from(p.status) {
                    Ok(TaskStatus::Running) => ContainerState::Running,
                    Ok(TaskStatus::Created) => ContainerState::Created,
                    Ok(TaskStatus::Stopped) => ContainerState::Exited,
                    Ok(TaskStatus::Paused) | Ok(TaskStatus::Pausing) => ContainerState::Paused,
                    _ => ContainerState::Other("unknown".into()),
                };
                Ok((state, p.pid))
            }
            Err(e) if e.code() == Code::NotFound => Ok((ContainerState::Exited, 0)),
            Err(e) => Err(self.status_error(e, container, "inspect")),
        }
    }

    async fn exec_inner(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        let program = request.program().to_string();
        let start_error = |reason: String| Error::ExecStart {
            engine: ENGINE,
            container: container.to_string(),
            program: program.clone(),
            source: reason.into(),
        };
        let c = self.find(container).await?;
        let (state, pid) = self.state_of(&c.id, container).await?;
        if state != ContainerState::Running {
            return Err(Error::ContainerNotRunning {
                engine: ENGINE,
                container: container.to_string(),
                state: state.to_string(),
            });
        }
        let spec = c
            .spec
            .as_ref()
            .ok_or_else(|| start_error("the container has no OCI spec".into()))?;
        let spec: serde_json::Value = serde_json::from_slice(&spec.value)
            .map_err(|e| start_error(format!("the container's OCI spec: {e}")))?;
        let mut process = spec
            .get("process")
            .cloned()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| start_error("the container's OCI spec has no process".into()))?;
        process["args"] = serde_json::json!(request.argv);
        process["terminal"] = serde_json::json!(false);
        process.as_object_mut().map(|p| p.remove("consoleSize"));
        if !request.user.is_empty() {
            let user = self
                .resolve_user(pid, &request.user)
                .await
                .map_err(start_error)?;
            process["user"] = serde_json::json!({
                "uid": user.uid,
                "gid": user.gid,
                "additionalGids": user.additional_gids,
            });
            let mut env: Vec<serde_json::Value> = process["env"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|v| !v.as_str().is_some_and(|s| s.starts_with("HOME=")))
                .collect();
            env.push(serde_json::json!(format!("HOME={}", user.home)));
            process["env"] = serde_json::Value::Array(env);
        }
        let process = serde_json::to_vec(&process)
            .map_err(|e| start_error(format!("cannot encode the process: {e}")))?;

        // The FIFOs, in a directory only this user can enter.
        let dir = tempfile::Builder::new()
            .prefix("bottle-containerd-")
            .tempdir()
            .map_err(|e| start_error(format!("cannot make a FIFO directory: {e}")))?;
        let fifo = |name: &str| -> Result<std::path::PathBuf> {
            let path = dir.path().join(name);
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &path,
                rustix::fs::Mode::from_raw_mode(0o600),
            )
            .map_err(|e| start_error(format!("mkfifo {}: {e}", path.display())))?;
            Ok(path)
        };
        let stdout_path = fifo("stdout")?;
        let stderr_path = fifo("stderr")?;
        let stdin_path = match request.stdin {
            Some(_) => Some(fifo("stdin")?),
            None => None,
        };
        // Opened before the exec starts: the shim's open for writing waits
        // for a reader.
        let open_rx = |p: &std::path::Path| {
            tokio::net::unix::pipe::OpenOptions::new()
                .open_receiver(p)
                .map_err(|e| start_error(format!("open {}: {e}", p.display())))
        };
        let mut stdout_rx = open_rx(&stdout_path)?;
        let mut stderr_rx = open_rx(&stderr_path)?;

        let n = EXEC_SEQ.fetch_add(1, Ordering::Relaxed);
        let exec_id = format!("bottle-exec-{}-{n}", std::process::id());
        let ch = self.channel().await?;
        let mut tasks = TasksClient::new(ch);
        let str_of = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        tasks
            .exec(self.request(ExecProcessRequest {
                container_id: c.id.clone(),
                stdin: str_of(&stdin_path),
                stdout: stdout_path.to_string_lossy().into_owned(),
                stderr: stderr_path.to_string_lossy().into_owned(),
                terminal: false,
                spec: Some(prost_types::Any {
                    type_url: PROCESS_TYPE.to_string(),
                    value: process,
                }),
                exec_id: exec_id.clone(),
            }))
            .await
            .map_err(|e| match e.code() {
                Code::NotFound | Code::FailedPrecondition => Error::ContainerNotRunning {
                    engine: ENGINE,
                    container: container.to_string(),
                    state: "exited".into(),
                },
                _ if crate::is_transport(&e) => self.status_error(e, container, "exec"),
                _ => start_error(format!(
                    "namespace `{}`: {}",
                    self.namespace,
                    e.message().escape_debug()
                )),
            })?;
        // From here on, an exec that does not end normally is killed and deleted.
        let mut guard = ExecGuard {
            tasks: Some(tasks.clone()),
            namespace: self.namespace.clone(),
            container_id: c.id.clone(),
            exec_id: exec_id.clone(),
            kill: true,
        };
        if let Err(e) = tasks
            .start(self.request(StartRequest {
                container_id: c.id.clone(),
                exec_id: exec_id.clone(),
            }))
            .await
        {
            guard.kill = false;
            if crate::is_transport(&e) {
                return Err(self.status_error(e, container, "exec"));
            }
            // The program could not be started: reported as Docker and
            // Podman do, exit 127 (not found) or 126, the message on stderr.
            return Ok(start_failure(e.message()));
        }

        let stdin_task = match (request.stdin, &stdin_path) {
            (Some(bytes), Some(path)) => {
                let path = path.clone();
                let mut tasks = tasks.clone();
                let close = self.request(CloseIoRequest {
                    container_id: c.id.clone(),
                    exec_id: exec_id.clone(),
                    stdin: true,
                });
                Some(tokio::spawn(async move {
                    if let Some(mut tx) = open_stdin(&path).await {
                        // A process that exits without reading it all
                        // closes the pipe: its business, not an error.
                        let _ = tx.write_all(&bytes).await;
                        drop(tx);
                    }
                    let _ = tasks.close_io(close).await;
                }))
            }
            _ => None,
        };
        let limit = request.max_output;
        let mut out = ExecOutput::default();
        let mut buf_out = vec![0u8; 64 * 1024];
        let mut buf_err = vec![0u8; 64 * 1024];
        let (mut out_open, mut err_open) = (true, true);
        // The exit is awaited beside the output: a process the exec left in
        // the background keeps the output open (the shim copies until every
        // writer is gone), so after the exit the output gets OUTPUT_DRAIN
        // more to end, as on Docker and Podman, instead of the call's
        // whole timeout.
        let mut waiter = tasks.clone();
        let wait = waiter.wait(self.request(WaitRequest {
            container_id: c.id.clone(),
            exec_id: exec_id.clone(),
        }));
        tokio::pin!(wait);
        let mut waited = None;
        let mut drain_until: Option<tokio::time::Instant> = None;
        while out_open || err_open {
            let drained = async {
                match drain_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let (stream, n) = tokio::select! {
                r = stdout_rx.read(&mut buf_out), if out_open => (OutputStream::Stdout, r),
                r = stderr_rx.read(&mut buf_err), if err_open => (OutputStream::Stderr, r),
                w = &mut wait, if waited.is_none() => {
                    waited = Some(w);
                    drain_until = Some(tokio::time::Instant::now() + OUTPUT_DRAIN);
                    continue;
                }
                () = drained => break,
            };
            let n = n.map_err(|e| Error::Api {
                engine: ENGINE,
                container: container.to_string(),
                operation: "exec output",
                source: Box::new(e),
            })?;
            let bytes = match stream {
                OutputStream::Stdout => &buf_out[..n],
                OutputStream::Stderr => &buf_err[..n],
            };
            if n == 0 {
                match stream {
                    OutputStream::Stdout => out_open = false,
                    OutputStream::Stderr => err_open = false,
                }
            } else if !out.append_within(stream, bytes, limit) {
                // The guard kills the process.
                return Err(Error::OutputTooLarge {
                    engine: ENGINE,
                    container: container.to_string(),
                    program,
                    stream,
                    limit,
                });
            }
        }
        let waited = match waited {
            Some(w) => w,
            None => wait.await,
        };
        if let Some(t) = stdin_task {
            t.abort();
        }
        match waited {
            Ok(w) => {
                guard.kill = false;
                out.exit_code = i64::from(w.into_inner().exit_status);
                Ok(out)
            }
            Err(e) if e.code() == Code::NotFound => {
                // The task went away mid-exec.
                guard.tasks = None;
                Err(Error::ContainerNotRunning {
                    engine: ENGINE,
                    container: container.to_string(),
                    state: self
                        .state_of(&c.id, container)
                        .await
                        .map(|s| s.0.to_string())
                        .unwrap_or_else(|_| "exited".into()),
                })
            }
            Err(e) => Err(self.status_error(e, container, "exec wait")),
        }
    }

    /// `user` inside the container whose task is `pid`.
    async fn resolve_user(
        &self,
        pid: u32,
        user: &str,
    ) -> std::result::Result<crate::user::ExecUser, String> {
        let user = user.to_string();
        tokio::task::spawn_blocking(move || {
            let root: std::os::fd::OwnedFd = std::fs::File::open(format!("/proc/{pid}/root"))
                .map_err(|e| format!("cannot open the container's root (/proc/{pid}/root): {e}"))?
                .into();
            let passwd = read_in_root(&root, "etc/passwd")?;
            let group = read_in_root(&root, "etc/group")?;
            resolve(&user, &passwd, &group)
        })
        .await
        .map_err(|e| format!("user lookup: {e}"))?
    }
}

/// The writing end of an exec's stdin FIFO, once the shim has its reading
/// end open. The shim opens that end on a goroutine of its own after the
/// start returns (containerd/fifo, `O_NONBLOCK`), and a non-blocking open
/// for writing fails with `ENXIO` until then: under load that lost the
/// whole stdin (the process read EOF at once). So `ENXIO` is waited out;
/// the exec's end aborts the wait. `None` on any other error.
async fn open_stdin(path: &std::path::Path) -> Option<tokio::net::unix::pipe::Sender> {
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match tokio::net::unix::pipe::OpenOptions::new().open_sender(path) {
            Ok(tx) => return Some(tx),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
}

/// What an exec whose program could not start returns: runc's message on
/// stderr, exit 127 when the program was not found, 126 otherwise.
fn start_failure(message: &str) -> ExecOutput {
    let not_found = message.split_once("exec: \"").is_some_and(|(_, about)| {
        about.contains("executable file not found") || about.contains("no such file or directory")
    });
    ExecOutput {
        exit_code: if not_found { 127 } else { 126 },
        stdout: Vec::new(),
        stderr: format!("{message}\n").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shim opens its end of the stdin FIFO late: the bytes wait for
    /// it instead of being dropped (the old single open lost them).
    #[tokio::test]
    async fn stdin_waits_for_a_late_reader() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                std::fs::read(&path).unwrap()
            })
        };
        let mut tx = open_stdin(&path)
            .await
            .expect("opened once the reader came");
        tx.write_all(b"in-10;").await.unwrap();
        drop(tx);
        assert_eq!(reader.join().unwrap(), b"in-10;");
    }

    #[test]
    fn filter_strings_are_quoted() {
        assert_eq!(quote("a"), "\"a\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn start_failures_read_as_on_the_other_engines() {
        let missing = "failed to create shim task: OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown";
        assert_eq!(start_failure(missing).exit_code, 127);
        let denied = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied: unknown";
        let out = start_failure(denied);
        assert_eq!(out.exit_code, 126);
        assert!(out.stdout.is_empty());
        assert!(out.stderr_lossy().contains("/etc/passwd"));
    }
}
