//! `ContainerRuntime::events` for Docker: bollard's `/events` stream,
//! container lifecycle events only, label filters applied by dockerd.

use crate::DockerRuntime;
use bollard::query_parameters::EventsOptions;
use bottle_runtime::{
    ContainerEvent, ContainerFilter, Engine, Error, EventAction, EventStream, Result,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The actions asked for: what makes a bottle need (or stop needing)
/// provisioning. Exec events, one per exec, are left at the engine.
pub(crate) const ACTIONS: &[&str] = &["start", "restart", "unpause", "pause", "die", "destroy"];

/// Events read ahead of the consumer; beyond that the reader waits.
const QUEUE: usize = 64;

/// Stops the reader task when the stream is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `since` as the engines take it: seconds and nanoseconds since the epoch.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Whether an event's attributes (both engines put the container's labels
/// there) hold every label filter. Names are not checked (see the trait).
pub(crate) fn labels_match(filters: &[ContainerFilter], attrs: &HashMap<String, String>) -> bool {
    filters.iter().all(|f| match f {
        ContainerFilter::Label(k) => attrs.contains_key(k),
        ContainerFilter::LabelValue(k, v) => attrs.get(k) == Some(v),
        ContainerFilter::Name(_) => true,
    })
}

impl DockerRuntime {
    pub(crate) async fn events_inner(
        &self,
        filters: &[ContainerFilter],
        since: Option<SystemTime>,
    ) -> Result<EventStream> {
        let docker = self
            .timed("", "events", async {
                let docker = self.client("").await?;
                // The subscription itself only fails when polled; a ping
                // makes an engine that is gone an error now.
                docker
                    .ping()
                    .await
                    .map_err(|e| self.classify(e, "", "events"))?;
                Ok(docker.clone())
            })
            .await?;
        let mut query: HashMap<String, Vec<String>> = HashMap::new();
        query.insert("type".into(), vec!["container".into()]);
        query.insert(
            "event".into(),
            ACTIONS.iter().map(|a| a.to_string()).collect(),
        );
        for f in filters {
            if f.key() == "label" {
                query.entry("label".into()).or_default().push(f.value());
            }
        }
        let options = EventsOptions {
            // The subscription reaches dockerd a moment after this returns:
            // a second of history covers what happens meanwhile.
            since: Some(timestamp(
                since.unwrap_or_else(|| SystemTime::now() - Duration::from_secs(1)),
            )),
            until: None,
            filters: Some(query),
        };
        let endpoint = self.endpoint.clone();
        let filters = filters.to_vec();
        // Read on a task so the request goes out now, not at the first poll.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<ContainerEvent>>(QUEUE);
        let task = tokio::spawn(async move {
            let mut events = docker.events(Some(options));
            while let Some(item) = events.next().await {
                let out = match item {
                    Ok(msg) => {
                        let actor = msg.actor.unwrap_or_default();
                        let attrs = actor.attributes.unwrap_or_default();
                        if !labels_match(&filters, &attrs) {
                            continue;
                        }
                        let name = attrs.get("name").map(String::as_str).unwrap_or("");
                        let action = EventAction::parse(msg.action.as_deref().unwrap_or(""));
                        let id = actor.id.as_deref().unwrap_or("");
                        Ok(ContainerEvent::new(id, name, action)
                            .at_nanos(msg.time_nano.unwrap_or(0).max(0) as u64))
                    }
                    // Whatever breaks the stream, the subscription is over.
                    Err(e) => Err(Error::Unreachable {
                        engine: Engine::Docker,
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
