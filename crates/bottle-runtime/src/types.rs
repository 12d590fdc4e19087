use serde::Serialize;
use std::fmt;
use zeroize::Zeroizing;

/// The engine a runtime talks to, as its backend names it. The two this
/// repository ships are variants; a backend outside it names itself with
/// [`Engine::Other`] (e.g. `Engine::Other("kubernetes")`) and can build every
/// [`Error`](crate::Error) with it.
///
/// ```
/// use bottle_runtime::Engine;
/// assert_eq!(Engine::Podman.name(), "podman");
/// assert_eq!(Engine::Other("kubernetes").to_string(), "kubernetes");
/// assert_eq!(serde_json::to_string(&Engine::Docker).unwrap(), "\"docker\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Docker,
    Podman,
    /// Another backend's engine, by its lower-case name.
    Other(&'static str),
}

impl Engine {
    /// Lower-case name, as used in configuration (`docker`, `podman`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
            Engine::Other(name) => name,
        }
    }
}

impl Serialize for Engine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Docker => "Docker",
            Engine::Podman => "Podman",
            Engine::Other(name) => name,
        })
    }
}

/// What `version()` reports about an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineInfo {
    pub engine: Engine,
    pub endpoint: String,
    /// Engine version, e.g. `20.10.24` or `4.3.1`.
    pub version: String,
    /// API version in use, e.g. `1.41`.
    pub api_version: String,
}

/// The lifecycle state of a container, normalised across engines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A state string this crate does not know.
    Other(String),
}

impl ContainerState {
    /// Parse an engine's state string (`running`, `exited`, `stopped`, …).
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" | "stopped" | "stopping" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            other => ContainerState::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Other(s) => s,
        })
    }
}

/// What `inspect()` reports about a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name without a leading `/`.
    pub name: String,
    pub state: ContainerState,
}

impl ContainerInfo {
    pub fn is_running(&self) -> bool {
        self.state == ContainerState::Running
    }
}

/// A process to run in a container.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments, run directly (no shell).
    pub argv: Vec<String>,
    /// `uid`, `uid:gid` or a user name; empty means the container's default.
    pub user: String,
    /// Bytes for the process's stdin, followed by EOF. `None`: no stdin.
    /// Zeroized when dropped: stdin is how key material reaches a container.
    pub stdin: Option<Zeroizing<Vec<u8>>>,
    /// Most bytes kept of each output stream (stdout and stderr apart). A
    /// process that writes more makes the exec fail with
    /// [`Error::OutputTooLarge`](crate::Error::OutputTooLarge) as soon as the
    /// limit is passed; output of exactly this size is returned whole.
    /// Default [`ExecRequest::DEFAULT_MAX_OUTPUT`].
    pub max_output: usize,
}

impl ExecRequest {
    /// The default [`max_output`](Self::max_output): 1 MiB per stream. What
    /// this crate's callers read back (scripts' reports, `~/.ssh` files) is a
    /// few KiB; whatever runs in the container may write without end.
    pub const DEFAULT_MAX_OUTPUT: usize = 1 << 20;

    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            user: String::new(),
            stdin: None,
            max_output: Self::DEFAULT_MAX_OUTPUT,
        }
    }

    /// `/bin/sh -c SCRIPT bottle-script ARGS…`: `args` arrive as `$1`, `$2`, …
    pub fn script<I, S>(script: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            script.to_string(),
            "bottle-script".to_string(),
        ];
        argv.extend(args.into_iter().map(Into::into));
        ExecRequest {
            argv,
            user: String::new(),
            stdin: None,
            max_output: Self::DEFAULT_MAX_OUTPUT,
        }
    }

    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(Zeroizing::new(bytes));
        self
    }

    /// Keep at most `bytes` of each output stream (see
    /// [`max_output`](Self::max_output)).
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// The program name, for error messages.
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }
}

// stdin may carry key material: never print it, only its length.
impl fmt::Debug for ExecRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecRequest")
            .field("argv", &self.argv)
            .field("user", &self.user)
            .field("stdin_len", &self.stdin.as_ref().map(|s| s.len()))
            .field("max_output", &self.max_output)
            .finish()
    }
}

/// One of an exec's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        })
    }
}

/// The result of a finished exec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Append `bytes` to `stream` unless that makes it longer than `limit`;
    /// then nothing is appended and the answer is `false`. Backends collect
    /// output through this, so [`ExecRequest::max_output`] means the same on
    /// every engine.
    pub fn append_within(&mut self, stream: OutputStream, bytes: &[u8], limit: usize) -> bool {
        let buf = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        if bytes.len() > limit.saturating_sub(buf.len()) {
            return false;
        }
        buf.extend_from_slice(bytes);
        true
    }
}

/// What a [`CopyEntry`] is.
#[derive(Clone, PartialEq, Eq)]
pub enum EntryKind {
    File(Vec<u8>),
    Dir,
}

/// One file or directory to put into a container.
#[derive(Clone, PartialEq, Eq)]
pub struct CopyEntry {
    /// Absolute path inside the container.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl CopyEntry {
    pub fn file(path: impl Into<String>, bytes: Vec<u8>, mode: u32, uid: u32, gid: u32) -> Self {
        CopyEntry {
            path: path.into(),
            kind: EntryKind::File(bytes),
            mode,
            uid,
            gid,
        }
    }

    pub fn dir(path: impl Into<String>, mode: u32, uid: u32, gid: u32) -> Self {
        CopyEntry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode,
            uid,
            gid,
        }
    }
}

// File contents are not printed: only their length.
impl fmt::Debug for CopyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            EntryKind::File(b) => format!("file({} bytes)", b.len()),
            EntryKind::Dir => "dir".to_string(),
        };
        f.debug_struct("CopyEntry")
            .field("path", &self.path)
            .field("kind", &kind)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_kept_up_to_the_limit_per_stream() {
        let mut out = ExecOutput::default();
        assert!(out.append_within(OutputStream::Stdout, b"abc", 4));
        assert!(out.append_within(OutputStream::Stdout, b"d", 4));
        // Exactly the limit is whole; one byte more is refused and not kept.
        assert!(!out.append_within(OutputStream::Stdout, b"e", 4));
        assert_eq!(out.stdout, b"abcd");
        // The other stream has its own limit.
        assert!(out.append_within(OutputStream::Stderr, b"1234", 4));
        assert!(!out.append_within(OutputStream::Stderr, b"12345", 8));
        assert_eq!(out.stderr, b"1234");
        assert!(out.append_within(OutputStream::Stderr, b"", 0));
    }

    #[test]
    fn requests_default_to_one_mib_per_stream() {
        assert_eq!(ExecRequest::new(["true"]).max_output, 1 << 20);
        assert_eq!(ExecRequest::script("true", [""; 0]).max_output, 1 << 20);
        assert_eq!(ExecRequest::new(["true"]).max_output(7).max_output, 7);
    }
}
