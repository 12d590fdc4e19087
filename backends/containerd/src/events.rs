//! `ContainerRuntime::events` for containerd: the Events service's
//! subscription in this namespace, task start/exit/pause/resume and
//! container delete.
//!
//! containerd's events carry no labels and no names: both come from a
//! cache of the namespace's containers, filled by one list at subscription
//! and by a lookup when an unknown container starts (a deleted container
//! keeps what was cached). containerd keeps no event history, so `since`
//! cannot replay what happened before the subscription; what can still be
//! seen is reported: each running container whose task started at or after
//! `since` (its init process's start) as a `start`.

use crate::runtime::{labels_match, name_of};
use crate::{ContainerdRuntime, ENGINE};
use bottle_runtime::{
    ContainerEvent, ContainerFilter, ContainerState, Error, EventAction, EventStream, Result,
};
use containerd_client::events::{ContainerDelete, TaskExit, TaskPaused, TaskResumed, TaskStart};
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::{
    GetContainerRequest, ListContainersRequest, SubscribeRequest,
};
use containerd_client::tonic::transport::Channel;
use futures_util::StreamExt;
use prost::Message;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The topics asked for, as containerd names them.
const TOPICS: &[&str] = &[
    "/tasks/start",
    "/tasks/exit",
    "/tasks/paused",
    "/tasks/resumed",
    "/containers/delete",
];

/// Events read ahead of the consumer.
const QUEUE: usize = 64;
/// Containers whose name and labels are kept (a namespace's worth).
const MAX_CACHED: usize = 10_000;

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Cache = HashMap<String, (String, HashMap<String, String>)>;

/// What one envelope says: the container and the action, if it is one of ours.
pub(crate) fn decode(topic: &str, value: &[u8]) -> Option<(String, EventAction)> {
    match topic {
        "/tasks/start" => TaskStart::decode(value)
            .ok()
            .map(|e| (e.container_id, EventAction::Start)),
        // An exec's exit names the exec in `id`; only the init process's
        // exit is the container's.
        "/tasks/exit" => TaskExit::decode(value)
            .ok()
            .filter(|e| e.id == e.container_id)
            .map(|e| (e.container_id, EventAction::Die)),
        "/tasks/paused" => TaskPaused::decode(value)
            .ok()
            .map(|e| (e.container_id, EventAction::Pause)),
        "/tasks/resumed" => TaskResumed::decode(value)
            .ok()
            .map(|e| (e.container_id, EventAction::Unpause)),
        "/containers/delete" => ContainerDelete::decode(value)
            .ok()
            .map(|e| (e.id, EventAction::Destroy)),
        _ => None,
    }
}

impl ContainerdRuntime {
    async fn lookup(&self, ch: &Channel, id: &str) -> Option<(String, HashMap<String, String>)> {
        let c = ContainersClient::new(ch.clone())
            .get(self.request(GetContainerRequest { id: id.to_string() }))
            .await
            .ok()?
            .into_inner()
            .container?;
        Some((name_of(&c), c.labels))
    }

    pub(crate) async fn events_inner(
        &self,
        filters: &[ContainerFilter],
        since: Option<SystemTime>,
    ) -> Result<EventStream> {
        let ch = self.channel().await?;
        let ns = self.namespace().to_string();
        let quoted_ns = crate::runtime::quote(&ns);
        let subscribe = SubscribeRequest {
            filters: TOPICS
                .iter()
                .map(|t| format!("namespace=={quoted_ns},topic==\"{t}\""))
                .collect(),
        };
        // containerd answers a subscription only with its first event: it
        // is made on the reader task, and what starts meanwhile is covered
        // as `since` is (a second back by default, as on Docker).
        let since = since.unwrap_or_else(|| SystemTime::now() - std::time::Duration::from_secs(1));
        let mut events = EventsClient::new(ch.clone());
        let subscribe = self.request(subscribe);
        // Subscribed before the list below, so a start in between is seen.
        let subscribed = tokio::spawn(async move { events.subscribe(subscribe).await });
        let sub_guard = AbortOnDrop(subscribed.abort_handle());
        let (cache, replay) = self
            .timed("", "events", async {
                let containers = ContainersClient::new(ch.clone())
                    .list(self.request(ListContainersRequest::default()))
                    .await
                    .map_err(|e| self.status_error(e, "", "events"))?
                    .into_inner()
                    .containers;
                let mut cache = Cache::new();
                let mut replay = Vec::new();
                for c in containers.into_iter().take(MAX_CACHED) {
                    {
                        let (state, pid) = self.state_of(&c.id, &c.id).await?;
                        let started = task_started(pid);
                        if state == ContainerState::Running
                            && started.is_some_and(|t| t >= since)
                            && labels_match(filters, &c.labels)
                        {
                            replay.push(
                                ContainerEvent::new(&c.id, &name_of(&c), EventAction::Start)
                                    .at_nanos(nanos(started)),
                            );
                        }
                    }
                    cache.insert(c.id.clone(), (name_of(&c), c.labels));
                }
                replay.sort_by_key(|e| e.time);
                Ok((cache, replay))
            })
            .await?;
        let endpoint = self.endpoint.clone();
        let filters = filters.to_vec();
        let me = ContainerdRuntime {
            endpoint: self.endpoint.clone(),
            socket: self.socket.clone(),
            namespace: ns,
            timeout: self.timeout,
            channel: tokio::sync::OnceCell::new_with(Some(ch.clone())),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<ContainerEvent>>(QUEUE);
        let task = tokio::spawn(async move {
            let _sub_guard = sub_guard;
            // containerd ends a subscription only when it goes away: a
            // clean end is reported like a broken one, naming the namespace.
            let gone = |why: String| Error::Unreachable {
                engine: ENGINE,
                endpoint: endpoint.clone(),
                source: format!(
                    "the event stream of containerd namespace `{}` {why}",
                    me.namespace
                )
                .into(),
            };
            let broke = |e: containerd_client::tonic::Status| {
                gone(format!("broke: {}", e.message().escape_debug()))
            };
            let mut cache = cache;
            for e in replay {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            let mut stream = match subscribed.await {
                Ok(Ok(s)) => s.into_inner(),
                Ok(Err(e)) => {
                    let _ = tx.send(Err(broke(e))).await;
                    return;
                }
                Err(_) => return,
            };
            loop {
                let envelope = match stream.message().await {
                    Ok(Some(e)) => e,
                    Ok(None) => {
                        let _ = tx.send(Err(gone("ended".into()))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(broke(e))).await;
                        return;
                    }
                };
                let Some(any) = envelope.event.as_ref() else {
                    continue;
                };
                let Some((id, action)) = decode(&envelope.topic, &any.value) else {
                    continue;
                };
                if action == EventAction::Start || !cache.contains_key(&id) {
                    if let Some(entry) = me.lookup(&ch, &id).await {
                        if cache.len() < MAX_CACHED || cache.contains_key(&id) {
                            cache.insert(id.clone(), entry);
                        }
                    }
                }
                let entry = if action == EventAction::Destroy {
                    cache.remove(&id)
                } else {
                    cache.get(&id).cloned()
                };
                // A container never seen cannot be matched by label.
                let (name, labels) = match entry {
                    Some(entry) => entry,
                    None if filters.iter().any(|f| f.key() == "label") => continue,
                    None => (id.clone(), HashMap::new()),
                };
                if !labels_match(&filters, &labels) {
                    continue;
                }
                let at = envelope
                    .timestamp
                    .map(|t| (t.seconds.max(0) as u64) * 1_000_000_000 + t.nanos.max(0) as u64)
                    .unwrap_or(0);
                let event = ContainerEvent::new(&id, &name, action).at_nanos(at);
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        let guard = AbortOnDrop(task.abort_handle());
        let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            rx.recv().await.map(|item| (item, (rx, guard)))
        });
        Ok(stream.boxed())
    }
}

/// When the process `pid` started: its start in clock ticks since boot
/// (`/proc/PID/stat`, field 22) against the time since boot now
/// (`/proc/uptime`), to 10 ms. Not the `/proc/PID` entry's mtime: that is
/// when the kernel first made the entry, on its first lookup, which can be
/// long after the start.
pub(crate) fn task_started(pid: u32) -> Option<SystemTime> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let now = SystemTime::now();
    started_at(&stat, &uptime, rustix::param::clock_ticks_per_second(), now)
}

/// [`task_started`] from the two files' text, parsed strictly.
fn started_at(stat: &str, uptime: &str, hz: u64, now: SystemTime) -> Option<SystemTime> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after its last `)`, with field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    if hz == 0 || !up.is_finite() || up < 0.0 {
        return None;
    }
    let since_start = up - ticks as f64 / hz as f64;
    now.checked_sub(std::time::Duration::try_from_secs_f64(since_start.max(0.0)).ok()?)
}

fn nanos(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process's start, not the time its /proc entry was first looked
    /// up (the old reading: about when it was first asked).
    #[test]
    fn a_task_started_when_its_process_did() {
        let before = SystemTime::now();
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let started = task_started(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let started = started.expect("a start time");
        let off = match started.duration_since(before) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        assert!(
            (-0.1..0.5).contains(&off),
            "started {off:.3} s after the spawn"
        );
    }

    #[test]
    fn stat_is_parsed_strictly() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        // A command name with spaces and a `)`; starttime 1000 ticks.
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 1000 1000 100";
        let t = started_at(stat, "110.00 200.00\n", 100, now).unwrap();
        assert_eq!(now.duration_since(t).unwrap().as_secs(), 100);
        assert_eq!(started_at("42 (x", "1.0 1.0", 100, now), None);
        assert_eq!(started_at(stat, "nan 1", 100, now), None);
        assert_eq!(started_at(stat, "110 1", 0, now), None);
        assert_eq!(started_at("42 (x) S 1 2 3", "110 1", 100, now), None);
    }

    #[test]
    fn only_the_init_process_exit_is_a_die() {
        let init = TaskExit {
            container_id: "c".into(),
            id: "c".into(),
            ..Default::default()
        };
        let exec = TaskExit {
            container_id: "c".into(),
            id: "bottle-exec-1-2".into(),
            ..Default::default()
        };
        assert_eq!(
            decode("/tasks/exit", &init.encode_to_vec()),
            Some(("c".into(), EventAction::Die))
        );
        assert_eq!(decode("/tasks/exit", &exec.encode_to_vec()), None);
        let del = ContainerDelete { id: "c".into() };
        assert_eq!(
            decode("/containers/delete", &del.encode_to_vec()),
            Some(("c".into(), EventAction::Destroy))
        );
        assert_eq!(decode("/images/create", &[]), None);
        // Garbage is dropped, not a panic.
        assert_eq!(decode("/tasks/start", &[0xff, 0xff, 0xff]), None);
    }
}
