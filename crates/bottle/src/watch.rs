//! Keep matching bottles provisioned: the reconciler `bottlectl watch`
//! runs, for any [`ContainerRuntime`] and provision function.
//!
//! The core ([`watch`]) works over any [`ContainerRuntime`] and a provision
//! function, so its rules are tested without an engine:
//! - subscribe first, then list: a container that starts in between is
//!   seen by one or the other (or both, coalesced);
//! - start, restart and unpause schedule a provision `settle` later (4x
//!   for restart and unpause); more
//!   such events of the same container meanwhile are the same provision
//!   (Docker's restart is die, start, restart);
//! - never two provisions of one container at once: one that starts again
//!   while being provisioned is provisioned once more afterwards;
//! - at most `jobs` provisions at once;
//! - die and destroy forget the container, and retire it (the `sidecar`
//!   layout removes its agent sidecar) before the next event is read, so
//!   a start that follows provisions after the removal;
//! - when the stream ends or fails, reconnect with backoff, replaying the
//!   engine's events since the last one seen, and list again (provisioning
//!   what is running and not known);
//! - event times are the engine's: they are compared with each other, and
//!   with our clock through the offset the events themselves show
//!   (`Clock`), so an engine whose clock is behind ours loses no restart
//!   (but in the first seconds of a first connection, see `Entry::stale`);
//! - on shutdown, queued provisions are dropped and running ones may finish
//!   within `grace` (the in-container lock is released by its own exec),
//!   then are abandoned;
//! - a provision that says when to renew (the manifest has certificates:
//!   [`renewal_after`]) is done again then, through the same queue; a
//!   failed renewal is retried with backoff (the container stays known); an
//!   event meanwhile replaces the pending renewal.

use crate::runtime::{ContainerFilter, ContainerInfo, ContainerRuntime, EventAction};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
// Tokio's clock: the tests run the renewal timer on paused time.
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How the core behaves; [`Default`] is what the CLI uses.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub filters: Vec<ContainerFilter>,
    pub jobs: usize,
    /// How long after a start event its provision begins (coalescing);
    /// four times that after a restart or unpause.
    pub settle: Duration,
    /// Reconnect delay: first, and the cap it doubles up to.
    pub backoff: (Duration, Duration),
    /// How long running provisions may finish after a shutdown signal.
    pub grace: Duration,
    /// What to do when a known container stops or dies.
    pub retire: Option<Retire>,
    /// Stream each provisioned container's guard records (`--audit`).
    pub follow: Option<Follow>,
    /// Before any event has shown the engine's clock, how long after a
    /// listing its containers' events are judged by our clock (the
    /// replayed history arrives at once): see `Entry::stale`.
    pub replay_window: Duration,
}

/// A record streamed by [`Follow`]: its container and the record as JSON.
pub type Streamed = (ContainerInfo, serde_json::Value);

/// The function inside [`Follow`]: sends the container's records as they
/// come, until the container is gone (or the task is aborted).
pub type FollowFn = Arc<
    dyn Fn(ContainerInfo, tokio::sync::mpsc::UnboundedSender<Streamed>) -> BoxFuture<'static, ()>
        + Send
        + Sync,
>;

/// Started once per container after its first successful provision;
/// aborted when the container is forgotten.
#[derive(Clone)]
pub struct Follow(pub FollowFn);

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Follow")
    }
}

/// The function inside [`Retire`].
pub type RetireFn =
    Arc<dyn Fn(ContainerInfo) -> BoxFuture<'static, Result<Option<String>, String>> + Send + Sync>;

/// Called when a known container stops or dies: `Ok(Some(what))` names
/// what was removed (its agent sidecar), `Ok(None)` nothing to do.
#[derive(Clone)]
pub struct Retire(pub RetireFn);

impl std::fmt::Debug for Retire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Retire")
    }
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            filters: Vec::new(),
            jobs: 1,
            settle: Duration::from_millis(25),
            backoff: (Duration::from_millis(500), Duration::from_secs(30)),
            grace: Duration::from_secs(30),
            retire: None,
            follow: None,
            replay_window: Duration::from_secs(3),
        }
    }
}

/// A provision of one (running, matching) container: `Ok(provided)` or
/// `Err(failure)`.
pub type Provision<F> =
    Arc<dyn Fn(ContainerInfo) -> BoxFuture<'static, Result<Provided, F>> + Send + Sync>;

/// What a successful provision reports.
#[derive(Debug, Clone)]
pub struct Provided {
    pub detail: String,
    /// Provision again this long after it finished (certificates expire);
    /// `None`: nothing to renew.
    pub renew_in: Option<Duration>,
}

/// When to renew after a provision, for a manifest with certificates: the
/// shortest `Validity` of its `CertificateAuthority` entries less a margin
/// of a third of it, and at least a minute (half of it, below two
/// minutes). `1h` renews after 40 min, `90s` after 45 s, `6s` after 3 s.
/// `None` without certificate entries: no timer.
pub fn renewal_after(plan: &crate::ssh::Plan) -> Option<Duration> {
    let shortest = plan
        .ssh
        .iter()
        .filter(|e| e.certificate_authority.is_some())
        .map(|e| match &e.validity {
            Some(v) => v.seconds().unwrap_or(crate::ssh::DEFAULT_VALIDITY),
            None => crate::ssh::DEFAULT_VALIDITY,
        })
        .min()?;
    let validity = Duration::from_secs(u64::from(shortest));
    let margin = (validity / 3).max(Duration::from_secs(60).min(validity / 2));
    Some(validity - margin)
}

/// What the watch reports, one line each.
#[derive(Debug)]
pub enum Action<F> {
    Connected {
        running: usize,
    },
    Lost {
        error: String,
        retry_in: Duration,
    },
    /// Provisioned (a renewal's line says `renewed`).
    Provisioned {
        c: ContainerInfo,
        why: Why,
        secs: f64,
        detail: String,
        renew_in: Option<Duration>,
    },
    Failed {
        c: ContainerInfo,
        why: Why,
        failure: F,
        /// A failed renewal is tried again this much later.
        retry_in: Option<Duration>,
    },
    /// Scheduled, but no longer running (or matching) when its turn came.
    Skipped {
        c: ContainerInfo,
    },
    Forgot {
        c: ContainerInfo,
        action: EventAction,
    },
    /// One of a provisioned container's guard records (`--audit`).
    Audit {
        c: ContainerInfo,
        record: serde_json::Value,
    },
    /// A forgotten container's leftovers removed (its agent sidecar).
    Retired {
        c: ContainerInfo,
        removed: String,
    },
    Stopping {
        running: usize,
    },
    Abandoned {
        c: ContainerInfo,
    },
}

/// Why a container is provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Running when the watch (re)connected.
    Listed,
    /// Its event (start, restart, unpause).
    Event(EventAction),
    /// Its certificates are due for renewal.
    Renewal,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Listed => f.write_str("running"),
            Why::Event(a) => write!(f, "{a}"),
            Why::Renewal => f.write_str("certificate renewal"),
        }
    }
}

/// A provision task's end: container id, why, when it got its slot, and
/// its result (None: never started, shutting down).
type Done<F> = (String, Why, Instant, Option<Result<Provided, F>>);

enum State {
    /// Provision at `due` (unless it is in flight).
    Pending {
        due: Instant,
        why: Why,
    },
    /// Being provisioned; `again`: once more afterwards; `forget`: drop it
    /// afterwards (it died meanwhile).
    InFlight {
        again: Option<Why>,
        forget: bool,
    },
    Done,
}

struct Entry {
    info: ContainerInfo,
    state: State,
    /// The listing that found it running: when it was asked for (our
    /// clock), when it came (tokio's) and whether an event had shown the
    /// engine's clock by then. Its events from before it (replayed
    /// history) are already covered. Cleared by its first event that is
    /// not.
    listed_at: Option<Listed>,
    /// The engine time of the last start event acted on: the same event
    /// replayed by a new subscription (after the engine closed the last
    /// one) is not a restart.
    started_at: Option<SystemTime>,
    /// The last successful provision's renewal interval and the next
    /// failed renewal's retry delay (doubling).
    renew: Option<(Duration, Duration)>,
}

#[derive(Debug, Clone, Copy)]
struct Listed {
    at: SystemTime,
    came: Instant,
    clock_known: bool,
}

impl Entry {
    /// An event this entry's listing already saw the outcome of: one
    /// before the listing by the engine's clock. Once an event has shown
    /// how the clocks differ (`Clock`), that is exact or errs early (a
    /// replay taken for news: a second provision, never a lost restart).
    /// Before, on a first connection, the replayed history would be taken
    /// for news (every bottle started in the second before the watch
    /// provisioned twice): then our clock decides, for `window` after the
    /// listing only, so an engine whose clock is behind can cost a restart
    /// in those first seconds, not for the whole skew. The first event
    /// that is not stale ends the check: later events are later still.
    fn stale(&mut self, time: Option<SystemTime>, clock: &Clock, window: Duration) -> bool {
        let Some(listed) = self.listed_at else {
            return false;
        };
        let mark = if listed.clock_known {
            clock.engine_time(listed.at)
        } else if listed.came.elapsed() <= window {
            Some(listed.at)
        } else {
            None
        };
        match (time, mark) {
            (Some(t), Some(l)) if t <= l => true,
            _ => {
                self.listed_at = None;
                false
            }
        }
    }
}

/// The engine's clock as its events show it. An event is reported after it
/// happened, so its time less our clock when it arrives is at most the
/// engine's lead over us (negative when it is behind): the largest such
/// difference seen is a lower bound of the lead. Turning our time into the
/// engine's with it errs early, never late: a replayed event may be taken
/// for a new one (a second provision), a restart is never taken for
/// history.
#[derive(Debug, Default)]
struct Clock {
    /// The largest (event time - our time at arrival), in nanoseconds.
    lead: Option<i128>,
    /// The newest event time seen: where a new subscription replays from.
    last: Option<SystemTime>,
}

impl Clock {
    fn saw(&mut self, time: Option<SystemTime>, now: SystemTime) {
        let Some(t) = time else { return };
        let d = signed_nanos(t) - signed_nanos(now);
        self.lead = Some(self.lead.map_or(d, |l| l.max(d)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }

    /// `ours` by the engine's clock (an underestimate); `None` before an
    /// event has shown how the clocks differ.
    fn engine_time(&self, ours: SystemTime) -> Option<SystemTime> {
        let t = signed_nanos(ours) + self.lead?;
        let t = u64::try_from(t).ok()?;
        Some(std::time::UNIX_EPOCH + Duration::from_nanos(t))
    }

    /// Where a new subscription replays from: the last event seen (the
    /// trait's rule), else a second before now by the engine's clock as
    /// far as known.
    fn since(&self, now: SystemTime) -> SystemTime {
        self.last
            .unwrap_or_else(|| self.engine_time(now).unwrap_or(now) - Duration::from_secs(1))
    }
}

fn signed_nanos(t: SystemTime) -> i128 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Run until `shutdown` resolves; returns the exit code (0: stopped on
/// request).
pub async fn watch<F: Send + 'static>(
    rt: Arc<dyn ContainerRuntime>,
    opts: WatchOptions,
    provision: Provision<F>,
    report: &(dyn Fn(Action<F>) + Sync),
    shutdown: impl Future<Output = ()>,
) -> u8 {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let mut known: HashMap<String, Entry> = HashMap::new();
    // Ids a listing (with the filters) has shown: only these are reported
    // as skipped. Name filters apply to listings, not to events, so the
    // events of every other container on the engine come here too.
    let mut matched: HashSet<String> = HashSet::new();
    let names_filtered = opts
        .filters
        .iter()
        .any(|f| matches!(f, ContainerFilter::Name(_)));
    let mut tasks: JoinSet<Done<F>> = JoinSet::new();
    let mut events: Option<crate::runtime::EventStream> = None;
    let mut since: Option<SystemTime> = None;
    let mut clock = Clock::default();
    let mut backoff = opts.backoff.0;
    let mut reconnect_at = Instant::now();
    // --audit: one follower per provisioned container, sending here.
    let (records_tx, mut records) = tokio::sync::mpsc::unbounded_channel::<Streamed>();
    let mut following: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();

    loop {
        if events.is_none() && Instant::now() >= reconnect_at {
            let connect = async {
                let stream = rt.events(&opts.filters, since).await?;
                let listed_at = SystemTime::now();
                let running = rt.list(&opts.filters).await?;
                let listed_at = Listed {
                    at: listed_at,
                    came: Instant::now(),
                    clock_known: clock.lead.is_some(),
                };
                Ok::<_, crate::runtime::Error>((stream, running, listed_at))
            };
            let connected = tokio::select! {
                biased;
                () = &mut shutdown => break,
                r = connect => r,
            };
            match connected {
                Ok((stream, running, listed_at)) => {
                    events = Some(stream);
                    backoff = opts.backoff.0;
                    report(Action::Connected {
                        running: running.len(),
                    });
                    let now = Instant::now();
                    matched.extend(running.iter().map(|c| c.id.clone()));
                    for c in running {
                        // Known ones were provisioned (or are scheduled);
                        // a restart meanwhile comes as a replayed event.
                        known.entry(c.id.clone()).or_insert(Entry {
                            info: c,
                            state: State::Pending {
                                due: now,
                                why: Why::Listed,
                            },
                            listed_at: Some(listed_at),
                            started_at: None,
                            renew: None,
                        });
                    }
                }
                Err(e) => {
                    report(Action::Lost {
                        error: crate::error_chain(&e),
                        retry_in: backoff,
                    });
                    reconnect_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(opts.backoff.1);
                }
            }
        }
        let next_due = known
            .values()
            .filter_map(|e| match e.state {
                State::Pending { due, .. } => Some(due),
                _ => None,
            })
            .min();
        let waiting = events.is_none();
        let next_event = async {
            match events.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((id, why, started, result)) = joined else {
                    // A panic in a provision is ours; its container is
                    // retried on its next event.
                    tracing::error!("a provision task failed");
                    continue;
                };
                let provided = matches!(result, Some(Ok(_)));
                if let Some(gone) = finish(&mut known, &id, why, started, result, &opts, report) {
                    if let Some(f) = following.remove(&gone.id) {
                        f.abort();
                    }
                    retire(&opts, gone, report).await;
                } else if let (true, Some(Follow(follow)), Some(e)) = (provided, &opts.follow, known.get(&id)) {
                    if !following.contains_key(&id) {
                        let task = tokio::spawn(follow(e.info.clone(), records_tx.clone()));
                        following.insert(id.clone(), task);
                    }
                }
            }
            item = next_event => match item {
                Some(Ok(ev)) => {
                    let now = Instant::now();
                    clock.saw(ev.time, SystemTime::now());
                    if ev.action.is_start() {
                        // The engine filters events by label, not by name:
                        // without a name filter, an event is a match.
                        if !names_filtered {
                            matched.insert(ev.id.clone());
                        }
                        let why = Why::Event(ev.action.clone());
                        let entry = known.entry(ev.id.clone()).or_insert(Entry {
                            info: ContainerInfo {
                                id: ev.id.clone(),
                                name: ev.name.clone(),
                                state: crate::runtime::ContainerState::Running,
                            },
                            state: State::Done,
                            listed_at: None,
                            started_at: None,
                            renew: None,
                        });
                        if entry.stale(ev.time, &clock, opts.replay_window) {
                            continue;
                        }
                        if matches!((entry.started_at, ev.time), (Some(s), Some(t)) if t <= s) {
                            continue;
                        }
                        if ev.time.is_some() {
                            entry.started_at = ev.time;
                        }
                        entry.info.name = ev.name.clone();
                        match &mut entry.state {
                            State::InFlight { again, forget } => {
                                *again = Some(why);
                                *forget = false;
                            }
                            // Coalesced: the first event's time stands.
                            State::Pending { why: Why::Event(_) | Why::Listed, .. } => {}
                            // A renewal waits; the event provisions now.
                            State::Pending { why: Why::Renewal, .. } | State::Done => {
                                // Podman reports `restart` before the stop
                                // (then died, then start): waiting longer
                                // lets its die cancel it.
                                let settle = if ev.action == EventAction::Start {
                                    opts.settle
                                } else {
                                    opts.settle * 4
                                };
                                entry.state = State::Pending { due: now + settle, why };
                            }
                        }
                    } else if ev.action.is_end() {
                        let entry = known.get_mut(&ev.id);
                        if let Some(entry) = entry.and_then(|e| (!e.stale(ev.time, &clock, opts.replay_window)).then_some(e)) {
                            if let State::InFlight { again, forget } = &mut entry.state {
                                *again = None;
                                *forget = true;
                            } else {
                                let entry = known.remove(&ev.id).expect("present");
                                if let Some(f) = following.remove(&ev.id) {
                                    f.abort();
                                }
                                report(Action::Forgot { c: entry.info.clone(), action: ev.action });
                                retire(&opts, entry.info, report).await;
                            }
                        }
                    }
                }
                Some(Err(e)) => lost(&mut events, &mut since, &clock, &mut reconnect_at, &mut backoff, &opts, report, crate::error_chain(&e)),
                None => lost(&mut events, &mut since, &clock, &mut reconnect_at, &mut backoff, &opts, report, "the engine closed the event stream".into()),
            },
            () = sleep_until(next_due), if next_due.is_some() => {
                dispatch(&rt, &opts, &mut known, &mut matched, &mut tasks, &slots, &provision, report).await;
            }
            () = sleep_until(Some(reconnect_at)), if waiting => {}
            Some((c, record)) = records.recv() => report(Action::Audit { c, record }),
        }
    }
    for (_, f) in following.drain() {
        f.abort();
    }

    // Shutdown: nothing new starts; what runs may finish within the grace.
    slots.close();
    let running = known
        .values()
        .filter(|e| matches!(e.state, State::InFlight { .. }))
        .count();
    report(Action::Stopping { running });
    let deadline = tokio::time::sleep(opts.grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((id, why, started, result))) => {
                    finish(&mut known, &id, why, started, result, &opts, report);
                }
                Some(Err(_)) => {}
            },
            () = &mut deadline => {
                tasks.abort_all();
                for e in known.into_values() {
                    if matches!(e.state, State::InFlight { .. }) {
                        report(Action::Abandoned { c: e.info });
                    }
                }
                break;
            }
        }
    }
    0
}

/// Run the retire hook for a forgotten container. Awaited in the loop: a
/// start of the same container is read only after its sidecar is gone.
async fn retire<F>(opts: &WatchOptions, c: ContainerInfo, report: &(dyn Fn(Action<F>) + Sync)) {
    let Some(Retire(hook)) = &opts.retire else {
        return;
    };
    match hook(c.clone()).await {
        Ok(Some(removed)) => report(Action::Retired { c, removed }),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(container = %c.name.escape_debug(), %error, "cannot retire a stopped container")
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// The watch loop's state, passed apart, as for `dispatch`.
#[allow(clippy::too_many_arguments)]
fn lost<F>(
    events: &mut Option<crate::runtime::EventStream>,
    since: &mut Option<SystemTime>,
    clock: &Clock,
    reconnect_at: &mut Instant,
    backoff: &mut Duration,
    opts: &WatchOptions,
    report: &(dyn Fn(Action<F>) + Sync),
    error: String,
) {
    *events = None;
    // Replay by the engine's clock: ours may be ahead of it (then the
    // engine, Podman at least, would hold back every event until its clock
    // caught up). A start seen again is not acted on twice (`started_at`).
    *since = Some(clock.since(SystemTime::now()));
    report(Action::Lost {
        error,
        retry_in: *backoff,
    });
    *reconnect_at = Instant::now() + *backoff;
    *backoff = (*backoff * 2).min(opts.backoff.1);
}

/// Start the provisions that are due, each confirmed running and matching
/// by one listing (the engine applies name filters only there).
// The watch loop's state, passed apart: a struct for one call would add more than it saves.
#[allow(clippy::too_many_arguments)]
async fn dispatch<F: Send + 'static>(
    rt: &Arc<dyn ContainerRuntime>,
    opts: &WatchOptions,
    known: &mut HashMap<String, Entry>,
    matched: &mut HashSet<String>,
    tasks: &mut JoinSet<Done<F>>,
    slots: &Arc<Semaphore>,
    provision: &Provision<F>,
    report: &(dyn Fn(Action<F>) + Sync),
) {
    let now = Instant::now();
    let due: Vec<String> = known
        .iter()
        .filter(|(_, e)| matches!(e.state, State::Pending { due, .. } if due <= now))
        .map(|(id, _)| id.clone())
        .collect();
    let running = match rt.list(&opts.filters).await {
        Ok(r) => r,
        Err(e) => {
            // Try again shortly; a lost engine also ends the event stream.
            for id in &due {
                if let Some(Entry {
                    state: State::Pending { due, .. },
                    ..
                }) = known.get_mut(id)
                {
                    *due = now + opts.backoff.0;
                }
            }
            tracing::warn!("cannot list containers: {}", crate::error_chain(&e));
            return;
        }
    };
    matched.extend(running.iter().map(|c| c.id.clone()));
    for id in due {
        let entry = known.get_mut(&id).expect("present");
        let State::Pending { why, .. } = &entry.state else {
            continue;
        };
        let why = why.clone();
        let Some(info) = running.iter().find(|c| c.id == id).cloned() else {
            let entry = known.remove(&id).expect("present");
            if matched.contains(&id) {
                report(Action::Skipped { c: entry.info });
            }
            continue;
        };
        entry.info = info.clone();
        entry.state = State::InFlight {
            again: None,
            forget: false,
        };
        let (slots, provision) = (slots.clone(), provision.clone());
        tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                // Shutting down: never started.
                return (id, why, Instant::now(), None);
            };
            let started = Instant::now();
            let result = provision(info).await;
            (id, why, started, Some(result))
        });
    }
}

/// Record a provision's end; returns the container when it died meanwhile
/// and is forgotten now (to retire).
fn finish<F>(
    known: &mut HashMap<String, Entry>,
    id: &str,
    why: Why,
    started: Instant,
    result: Option<Result<Provided, F>>,
    opts: &WatchOptions,
    report: &(dyn Fn(Action<F>) + Sync),
) -> Option<ContainerInfo> {
    let entry = known.get_mut(id)?;
    let c = entry.info.clone();
    // The renewal to schedule (if nothing else comes first).
    let mut next = None;
    match result {
        Some(Ok(p)) => {
            entry.renew = p.renew_in.map(|every| (every, opts.backoff.0));
            next = p.renew_in;
            report(Action::Provisioned {
                c,
                why,
                secs: started.elapsed().as_secs_f64(),
                detail: p.detail,
                renew_in: p.renew_in,
            })
        }
        Some(Err(failure)) => {
            // A failed renewal: again with backoff, capped by the cap and
            // the interval (a short validity retries often enough).
            let retry_in = match (&why, &mut entry.renew) {
                (Why::Renewal, Some((every, delay))) => {
                    let now = *delay;
                    *delay = (*delay * 2).min(opts.backoff.1).min(*every);
                    Some(now)
                }
                _ => None,
            };
            next = retry_in;
            report(Action::Failed {
                c,
                why,
                failure,
                retry_in,
            })
        }
        None => {}
    }
    match std::mem::replace(&mut entry.state, State::Done) {
        State::InFlight {
            again: Some(why), ..
        } => {
            entry.state = State::Pending {
                due: Instant::now(),
                why,
            }
        }
        State::InFlight { forget: true, .. } => {
            let entry = known.remove(id).expect("present");
            report(Action::Forgot {
                c: entry.info.clone(),
                action: EventAction::Die,
            });
            return Some(entry.info);
        }
        _ => {
            if let Some(after) = next {
                entry.state = State::Pending {
                    due: Instant::now() + after,
                    why: Why::Renewal,
                };
            }
        }
    }
    None
}

/// The retire hook of the agent layout: in `sidecar`, a bottle that stops
/// or dies loses its sidecar (and the keys in it) at once, instead of at
/// its next start or `deprovision`.
pub fn retirer(sel: &crate::Selection, agent: &crate::ssh::sidecar::AgentLayout) -> Option<Retire> {
    if !matches!(agent, crate::ssh::sidecar::AgentLayout::Sidecar { .. }) {
        return None;
    }
    let sel = Arc::new(sel.clone());
    Some(Retire(Arc::new(move |c: ContainerInfo| {
        let sel = sel.clone();
        Box::pin(async move {
            crate::ssh::sidecar::retire(sel.admin.as_ref(), &c.id)
                .await
                .map(|removed| removed.map(|name| format!("its agent sidecar {name}")))
                .map_err(|e| crate::error_chain(&e).to_string())
        })
    })))
}

/// `--audit`: poll a provisioned container's records every second (where
/// the agent layout keeps them) and send each once, until the container
/// is gone; read errors (a restart, a replaced sidecar) look again.
pub fn follower(sel: &crate::Selection, agent: &crate::ssh::sidecar::AgentLayout) -> Follow {
    let sel = Arc::new(sel.clone());
    let agent = Arc::new(agent.clone());
    Follow(Arc::new(move |c: ContainerInfo, tx| {
        let (sel, agent) = (sel.clone(), agent.clone());
        Box::pin(async move {
            let mut tail = crate::ssh::audit::Tail::default();
            loop {
                if tail.holder.is_empty() {
                    match crate::ssh::audit::locate(sel.admin.as_ref(), &agent, &c.id).await {
                        Ok((_, h)) => tail.holder = h,
                        Err(crate::ssh::Error::Runtime {
                            source: crate::runtime::Error::ContainerNotFound { .. },
                            ..
                        }) => return,
                        Err(_) => {}
                    }
                }
                if !tail.holder.is_empty() {
                    match tail.next(sel.runtime.as_ref()).await {
                        Ok(records) => {
                            for r in records {
                                let value = serde_json::to_value(&r).unwrap_or_default();
                                if tx.send((c.clone(), value)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(_) => tail.holder.clear(),
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }))
}

#[cfg(test)]
mod tests;
