//! Container lifecycle events, as
//! [`ContainerRuntime::events`](crate::ContainerRuntime::events) streams them.

use crate::Result;
use futures_util::stream::BoxStream;
use serde::Serialize;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest name or id an event keeps (in bytes, cut at a character
/// boundary). Engines allow long names; a name is shown on a terminal and
/// kept per container, so a bound keeps one odd event from costing much.
pub const MAX_EVENT_FIELD: usize = 256;

/// What happened to a container. Both engines' names map to one set
/// (Podman's `died` is [`Die`](EventAction::Die), its `remove` is
/// [`Destroy`](EventAction::Destroy)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    Create,
    Start,
    Restart,
    Pause,
    Unpause,
    Stop,
    Kill,
    Die,
    Destroy,
    /// Anything else the engine reports, by its name (bounded).
    Other(String),
}

impl EventAction {
    /// Docker's or Podman's action name (`start`, `died`, `remove`, …).
    pub fn parse(action: &str) -> EventAction {
        match action {
            "create" => EventAction::Create,
            "start" => EventAction::Start,
            "restart" => EventAction::Restart,
            "pause" => EventAction::Pause,
            "unpause" => EventAction::Unpause,
            "stop" => EventAction::Stop,
            "kill" => EventAction::Kill,
            "die" | "died" => EventAction::Die,
            "destroy" | "remove" => EventAction::Destroy,
            other => EventAction::Other(bounded(other)),
        }
    }

    /// After this the container runs (again): it may need provisioning.
    pub fn is_start(&self) -> bool {
        matches!(
            self,
            EventAction::Start | EventAction::Restart | EventAction::Unpause
        )
    }

    /// After this the container's agent is gone (or the container is).
    pub fn is_end(&self) -> bool {
        matches!(self, EventAction::Die | EventAction::Destroy)
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            EventAction::Create => "create",
            EventAction::Start => "start",
            EventAction::Restart => "restart",
            EventAction::Pause => "pause",
            EventAction::Unpause => "unpause",
            EventAction::Stop => "stop",
            EventAction::Kill => "kill",
            EventAction::Die => "die",
            EventAction::Destroy => "destroy",
            EventAction::Other(o) => o,
        };
        f.write_str(s)
    }
}

/// One event of one container. `name` is whatever the container was named
/// (by its creator): escape it before showing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerEvent {
    /// The full container id.
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    pub action: EventAction,
    /// When it happened, by the engine's clock (both report nanoseconds).
    #[serde(skip)]
    pub time: Option<SystemTime>,
}

impl ContainerEvent {
    /// An event with `id` and `name` cut to [`MAX_EVENT_FIELD`].
    pub fn new(id: &str, name: &str, action: EventAction) -> ContainerEvent {
        ContainerEvent {
            id: bounded(id),
            name: bounded(name.trim_start_matches('/')),
            action,
            time: None,
        }
    }

    /// The same, happened `nanos` after the epoch (0: unknown).
    pub fn at_nanos(mut self, nanos: u64) -> ContainerEvent {
        self.time = (nanos > 0).then(|| UNIX_EPOCH + Duration::from_nanos(nanos));
        self
    }
}

/// The events of containers, as they happen. It ends (or yields an error)
/// when the engine's connection does; subscribe again to go on.
pub type EventStream = BoxStream<'static, Result<ContainerEvent>>;

fn bounded(s: &str) -> String {
    if s.len() <= MAX_EVENT_FIELD {
        return s.to_string();
    }
    let mut end = MAX_EVENT_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_names_map_to_one_set() {
        for (text, want) in [
            ("start", EventAction::Start),
            ("restart", EventAction::Restart),
            ("unpause", EventAction::Unpause),
            ("die", EventAction::Die),
            ("died", EventAction::Die),
            ("destroy", EventAction::Destroy),
            ("remove", EventAction::Destroy),
            (
                "exec_create: sh",
                EventAction::Other("exec_create: sh".into()),
            ),
        ] {
            assert_eq!(EventAction::parse(text), want, "{text}");
        }
        assert!(EventAction::Unpause.is_start() && !EventAction::Pause.is_start());
        assert!(EventAction::Destroy.is_end() && !EventAction::Stop.is_end());
    }

    #[test]
    fn long_fields_are_cut_at_a_character() {
        let name = "é".repeat(MAX_EVENT_FIELD);
        let e = ContainerEvent::new("abc", &format!("/{name}"), EventAction::parse(&name));
        assert_eq!(e.name.len(), MAX_EVENT_FIELD);
        assert!(e.name.chars().all(|c| c == 'é'));
        assert_eq!(e.id, "abc");
        assert!(matches!(e.action, EventAction::Other(o) if o.len() == MAX_EVENT_FIELD));
    }
}
