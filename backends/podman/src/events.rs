//! `ContainerRuntime::events` for Podman: libpod's `/libpod/events` stream,
//! container lifecycle events only.
//!
//! Label filters are checked here on each event's attributes (which hold
//! the container's labels), not by Podman: Podman 4.3's event label filter
//! never matches a bare `label=KEY`, and it ORs several labels where
//! `list` ANDs them.

use crate::PodmanRuntime;
use bottle_runtime::{
    ContainerEvent, ContainerFilter, ContainerRuntime, Engine, Error, EventAction, EventStream,
    Result,
};
use futures_util::StreamExt;
use podman_api::opts::EventsOpts;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Podman's names for the actions asked for (its `died`, `remove` are
/// Docker's `die`, `destroy`); exec events stay at the engine.
const ACTIONS: &[&str] = &["start", "restart", "unpause", "pause", "died", "remove"];

/// Events read ahead of the consumer; beyond that the reader waits.
const QUEUE: usize = 64;

fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn labels_match(filters: &[ContainerFilter], attrs: &HashMap<String, String>) -> bool {
    filters.iter().all(|f| match f {
        ContainerFilter::Label(k) => attrs.contains_key(k),
        ContainerFilter::LabelValue(k, v) => attrs.get(k) == Some(v),
        ContainerFilter::Name(_) => true,
    })
}

/// Stops the reader task when the stream is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PodmanRuntime {
    pub(crate) async fn events_inner(
        &self,
        filters: &[ContainerFilter],
        since: Option<SystemTime>,
    ) -> Result<EventStream> {
        // The subscription only fails once read; `_ping` makes an engine
        // that is gone an error now.
        self.version().await?;
        let builder = EventsOpts::builder().stream(true).filters([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                ACTIONS.iter().map(|a| a.to_string()).collect(),
            ),
        ]);
        // The subscription reaches Podman a moment after this returns: a
        // second of history covers what happens meanwhile.
        let since = since.unwrap_or_else(|| SystemTime::now() - Duration::from_secs(1));
        let opts = builder.since(timestamp(since)).build();
        // podman-api's stream borrows its client: a task owns a clone.
        let podman = self.podman.clone();
        let endpoint = self.endpoint.clone();
        let filters = filters.to_vec();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<ContainerEvent>>(QUEUE);
        let task = tokio::spawn(async move {
            let mut events = podman.events(&opts);
            while let Some(item) = events.next().await {
                let out = match item {
                    Ok(e) if labels_match(&filters, &e.actor.attributes) => {
                        let name = e.actor.attributes.get("name").map_or("", String::as_str);
                        let action = EventAction::parse(e.status.as_deref().unwrap_or(&e.action));
                        Ok(ContainerEvent::new(&e.actor.id, name, action)
                            .at_nanos(e.time_nano.timestamp_nanos_opt().unwrap_or(0).max(0) as u64))
                    }
                    Ok(_) => continue,
                    Err(e) => Err(Error::Unreachable {
                        engine: Engine::Podman,
                        endpoint: endpoint.clone(),
                        source: Box::new(e),
                    }),
                };
                let last = out.is_err();
                if tx.send(out).await.is_err() || last {
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
