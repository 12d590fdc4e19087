//! What a runtime can do, declared by the backend (never guessed from the
//! engine's name), so callers and the conformance suite gate on it.

use serde::Serialize;

/// What a [`ContainerRuntime`](crate::ContainerRuntime) supports beyond
/// `exec` and `inspect`, which every runtime has.
///
/// ```
/// use bottle_runtime::Capabilities;
/// let caps = Capabilities::default().with_copy(true);
/// assert!(caps.exec_as_user && caps.copy && !caps.events);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// `exec` runs as the request's user (an engine without a user
    /// parameter, such as Kubernetes exec, cannot).
    pub exec_as_user: bool,
    /// `copy` puts files into a container.
    pub copy: bool,
    /// `list` answers with the engine's own filters.
    pub list: bool,
    /// `events` streams container lifecycle events.
    pub events: bool,
    /// `events` with a `since` in the past replays the engine's own log of
    /// what happened then, containers since removed included (Docker,
    /// Podman). Without it (containerd keeps no event log), `since` yields
    /// only what can still be seen: each running container whose task
    /// started since then, as a `start`.
    pub event_history: bool,
    /// The output of a process that exits leaving stdin unread is kept
    /// (Podman 4.3 may drop it; callers then read stdin to the end).
    pub output_with_unread_stdin: bool,
}

impl Default for Capabilities {
    /// What the trait's required methods promise: exec as a user; nothing
    /// optional.
    fn default() -> Self {
        Capabilities {
            exec_as_user: true,
            copy: false,
            list: false,
            events: false,
            event_history: false,
            output_with_unread_stdin: false,
        }
    }
}

impl Capabilities {
    pub fn with_exec_as_user(mut self, yes: bool) -> Self {
        self.exec_as_user = yes;
        self
    }
    pub fn with_copy(mut self, yes: bool) -> Self {
        self.copy = yes;
        self
    }
    pub fn with_list(mut self, yes: bool) -> Self {
        self.list = yes;
        self
    }
    pub fn with_events(mut self, yes: bool) -> Self {
        self.events = yes;
        self
    }
    pub fn with_event_history(mut self, yes: bool) -> Self {
        self.event_history = yes;
        self
    }
    pub fn with_output_with_unread_stdin(mut self, yes: bool) -> Self {
        self.output_with_unread_stdin = yes;
        self
    }
}
