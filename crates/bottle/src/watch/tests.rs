//! The watch's rules on a scripted runtime and a counting provision
//! (untimed: the assertions are about counts and order, not durations).

use super::*;
use crate::runtime::{
    ContainerEvent, ContainerState, CopyEntry, Engine, EngineInfo, Error, EventStream, ExecOutput,
    ExecRequest, Result,
};
use async_trait::async_trait;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// The tests' provision failures: their text.
type Provision = super::Provision<String>;
type Action = super::Action<String>;

type Sub = std::result::Result<UnboundedReceiver<Result<ContainerEvent>>, ()>;

/// A runtime whose running set and event subscriptions the test scripts.
#[derive(Debug, Default)]
struct Fake {
    running: Mutex<Vec<ContainerInfo>>,
    subs: Mutex<VecDeque<Sub>>,
    since: Mutex<Vec<Option<SystemTime>>>,
}

impl Fake {
    fn run(&self, id: &str) {
        self.running.lock().unwrap().push(info(id));
    }
    /// The next subscription succeeds; returns its sender.
    fn subscription(&self) -> UnboundedSender<Result<ContainerEvent>> {
        let (tx, rx) = unbounded_channel();
        self.subs.lock().unwrap().push_back(Ok(rx));
        tx
    }
    fn refusal(&self) {
        self.subs.lock().unwrap().push_back(Err(()));
    }
}

fn info(id: &str) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: format!("n-{id}"),
        state: ContainerState::Running,
    }
}

fn ev(id: &str, action: &str) -> Result<ContainerEvent> {
    Ok(ContainerEvent::new(
        id,
        &format!("n-{id}"),
        EventAction::parse(action),
    ))
}

fn gone() -> Error {
    Error::Unreachable {
        engine: Engine::Docker,
        endpoint: "fake".into(),
        source: "gone".into(),
    }
}

#[async_trait]
impl ContainerRuntime for Fake {
    fn engine(&self) -> Engine {
        Engine::Docker
    }
    fn endpoint(&self) -> &str {
        "fake"
    }
    async fn version(&self) -> Result<EngineInfo> {
        Err(gone())
    }
    async fn inspect(&self, _: &str) -> Result<ContainerInfo> {
        Err(gone())
    }
    async fn exec(&self, _: &str, _: ExecRequest) -> Result<ExecOutput> {
        Err(gone())
    }
    async fn copy(&self, _: &str, _: &[CopyEntry]) -> Result<()> {
        Err(gone())
    }
    async fn list(&self, _: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        Ok(self.running.lock().unwrap().clone())
    }
    async fn events(
        &self,
        _: &[ContainerFilter],
        since: Option<SystemTime>,
    ) -> Result<EventStream> {
        self.since.lock().unwrap().push(since);
        match self.subs.lock().unwrap().pop_front() {
            Some(Ok(rx)) => Ok(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .boxed()),
            Some(Err(())) => Err(gone()),
            // Nothing scripted: a quiet engine.
            None => Ok(futures_util::stream::pending().boxed()),
        }
    }
}

/// Counts provisions: in flight now, the most at once, per container.
#[derive(Default)]
struct Counter {
    now: AtomicUsize,
    most: AtomicUsize,
    busy: Mutex<HashSet<String>>,
    overlaps: AtomicUsize,
    started: Mutex<Vec<String>>,
}

/// A provision that counts and waits for `release` (a permit per call).
fn counting(counter: Arc<Counter>, release: Arc<Semaphore>) -> Provision {
    Arc::new(move |c: ContainerInfo| {
        let (counter, release) = (counter.clone(), release.clone());
        Box::pin(async move {
            let n = counter.now.fetch_add(1, Ordering::SeqCst) + 1;
            counter.most.fetch_max(n, Ordering::SeqCst);
            if !counter.busy.lock().unwrap().insert(c.id.clone()) {
                counter.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            counter.started.lock().unwrap().push(c.id.clone());
            release.acquire().await.expect("open").forget();
            counter.busy.lock().unwrap().remove(&c.id);
            counter.now.fetch_sub(1, Ordering::SeqCst);
            Ok(Provided {
                detail: "done".to_string(),
                renew_in: None,
            })
        })
    })
}

/// What was reported, as (kind, container id).
#[derive(Default)]
struct Log(Mutex<Vec<(String, String)>>);

impl Log {
    fn push(&self, a: Action) {
        let (kind, id) = match a {
            Action::Connected { .. } => ("connected", String::new()),
            Action::Lost { .. } => ("lost", String::new()),
            Action::Provisioned {
                c,
                why: Why::Renewal,
                ..
            } => ("renewed", c.id),
            Action::Provisioned { c, .. } => ("provisioned", c.id),
            Action::Failed { c, .. } => ("failed", c.id),
            Action::Skipped { c } => ("skipped", c.id),
            Action::Forgot { c, .. } => ("forgot", c.id),
            Action::Retired { c, .. } => ("retired", c.id),
            Action::Audit { c, .. } => ("audit", c.id),
            Action::Stopping { .. } => ("stopping", String::new()),
            Action::Abandoned { c } => ("abandoned", c.id),
        };
        self.0.lock().unwrap().push((kind.to_string(), id));
    }
    fn count(&self, kind: &str, id: Option<&str>) -> usize {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|(k, i)| k == kind && id.is_none_or(|id| id == i))
            .count()
    }
}

/// Resolves once `done` holds (checked as the test's steps go on).
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn opts(jobs: usize) -> WatchOptions {
    WatchOptions {
        jobs,
        settle: Duration::from_millis(5),
        backoff: (Duration::from_millis(1), Duration::from_millis(4)),
        grace: Duration::from_secs(30),
        replay_window: Duration::from_millis(300),
        ..WatchOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_starts_runs_at_most_jobs_at_once_each_once() {
    let fake = Arc::new(Fake::default());
    let tx = fake.subscription();
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(0));
    let log = Log::default();
    let ids: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    for id in &ids {
        fake.run(id);
        // A restart's events: one provision.
        for action in ["start", "restart", "unpause"] {
            tx.send(ev(id, action)).unwrap();
        }
    }
    let done = async {
        // Three at once, never a fourth while they hold.
        until(|| counter.started.lock().unwrap().len() >= 3).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(counter.started.lock().unwrap().len(), 3);
        release.add_permits(1000);
        until(|| log.count("provisioned", None) >= 30).await;
    };
    let code = watch(
        fake.clone(),
        opts(3),
        counting(counter.clone(), release.clone()),
        &|a| log.push(a),
        done,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(counter.most.load(Ordering::SeqCst), 3);
    assert_eq!(counter.overlaps.load(Ordering::SeqCst), 0);
    for id in &ids {
        assert_eq!(log.count("provisioned", Some(id)), 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_during_a_provision_is_one_more_afterwards_never_two_at_once() {
    let fake = Arc::new(Fake::default());
    let tx = fake.subscription();
    fake.run("a");
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(0));
    let log = Log::default();
    let steps = async {
        // Listed at connect, being provisioned:
        until(|| !counter.started.lock().unwrap().is_empty()).await;
        for _ in 0..3 {
            tx.send(ev("a", "restart")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(counter.started.lock().unwrap().len(), 1, "not while busy");
        release.add_permits(1);
        until(|| counter.started.lock().unwrap().len() == 2).await;
        release.add_permits(1);
        until(|| log.count("provisioned", Some("a")) == 2).await;
        // Die forgets; a start of one no longer running is skipped.
        tx.send(ev("a", "die")).unwrap();
        until(|| log.count("forgot", Some("a")) == 1).await;
        fake.running.lock().unwrap().clear();
        tx.send(ev("a", "start")).unwrap();
        until(|| log.count("skipped", Some("a")) == 1).await;
    };
    watch(
        fake.clone(),
        opts(4),
        counting(counter.clone(), release.clone()),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(counter.overlaps.load(Ordering::SeqCst), 0);
    assert_eq!(counter.started.lock().unwrap().len(), 2);
}

/// A die retires the container (the sidecar layout removes its sidecar),
/// also when it died during its provision; a start read after the die is
/// provisioned only once the retirement is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_container_is_retired_before_its_next_start() {
    let fake = Arc::new(Fake::default());
    let tx = fake.subscription();
    fake.run("a");
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(0));
    // Each retirement: the container, and how many provisions had started
    // when it ended.
    let retired = Arc::new(Mutex::new(Vec::<(String, usize)>::new()));
    let log = Log::default();
    let hook = {
        let (counter, retired) = (counter.clone(), retired.clone());
        Retire(Arc::new(move |c: ContainerInfo| {
            let (counter, retired) = (counter.clone(), retired.clone());
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                let started = counter.started.lock().unwrap().len();
                retired.lock().unwrap().push((c.id.clone(), started));
                Ok(Some(format!("sidecar of {}", c.id)))
            })
        }))
    };
    let steps = async {
        // Dies while being provisioned: retired once the provision ends.
        until(|| counter.started.lock().unwrap().len() == 1).await;
        tx.send(ev("a", "die")).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(log.count("retired", Some("a")), 0, "not while provisioning");
        release.add_permits(1);
        until(|| log.count("retired", Some("a")) == 1).await;
        assert_eq!(log.count("forgot", Some("a")), 1);
        // Provisioned again, then a die and a start at once: the start is
        // provisioned after the retirement.
        tx.send(ev("a", "start")).unwrap();
        release.add_permits(1);
        until(|| log.count("provisioned", Some("a")) == 2).await;
        tx.send(ev("a", "die")).unwrap();
        tx.send(ev("a", "start")).unwrap();
        release.add_permits(1);
        until(|| log.count("provisioned", Some("a")) == 3).await;
        assert_eq!(log.count("retired", Some("a")), 2);
    };
    let with_retire = WatchOptions {
        retire: Some(hook),
        ..opts(4)
    };
    watch(
        fake.clone(),
        with_retire,
        counting(counter.clone(), release.clone()),
        &|a| log.push(a),
        steps,
    )
    .await;
    let retired = retired.lock().unwrap().clone();
    assert_eq!(retired, [("a".to_string(), 1), ("a".to_string(), 2)]);
}

/// A name filter applies to listings only: the engine's start events of
/// every other container reach the watch. One that never matched is not
/// the operator's business and is not reported (`skipped`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_of_a_container_that_never_matched_is_not_reported() {
    let fake = Arc::new(Fake::default());
    let tx = fake.subscription();
    fake.run("a");
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(100));
    let log = Log::default();
    let steps = async {
        until(|| log.count("provisioned", Some("a")) == 1).await;
        for other in ["x", "y", "z"] {
            tx.send(ev(other, "start")).unwrap();
        }
        // The last event is a start of the matching one: once it is
        // provisioned again, the others' turn has come and gone.
        tx.send(ev("a", "restart")).unwrap();
        until(|| log.count("provisioned", Some("a")) == 2).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    let by_name = WatchOptions {
        filters: vec![ContainerFilter::Name("^n-a$".into())],
        ..opts(4)
    };
    watch(
        fake.clone(),
        by_name,
        counting(counter.clone(), release.clone()),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(log.count("skipped", None), 0, "{:?}", log.0.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_engine_is_retried_and_what_started_meanwhile_is_provisioned() {
    let fake = Arc::new(Fake::default());
    fake.refusal();
    let first = fake.subscription();
    fake.refusal();
    let _second = fake.subscription();
    fake.run("a");
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(1000));
    let log = Log::default();
    let steps = async {
        until(|| log.count("provisioned", Some("a")) == 1).await;
        // The engine goes away; b starts meanwhile.
        fake.run("b");
        drop(first);
        until(|| log.count("provisioned", Some("b")) == 1).await;
    };
    watch(
        fake.clone(),
        opts(2),
        counting(counter.clone(), release),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(log.count("lost", None), 3, "refused, closed, refused");
    assert_eq!(log.count("connected", None), 2);
    assert_eq!(log.count("provisioned", Some("a")), 1, "known: not again");
    let since = fake.since.lock().unwrap().clone();
    assert_eq!(since.len(), 4);
    assert!(since[0].is_none() && since[1].is_none());
    assert!(
        since[2].is_some() && since[3].is_some(),
        "replay after a loss"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_queued_provisions_and_abandons_running_ones_after_the_grace() {
    let fake = Arc::new(Fake::default());
    fake.run("a");
    fake.run("b");
    let counter = Arc::new(Counter::default());
    // Never released: the running one outlives the grace.
    let release = Arc::new(Semaphore::new(0));
    let log = Log::default();
    let steps = async {
        until(|| !counter.started.lock().unwrap().is_empty()).await;
    };
    let mut o = opts(1);
    o.grace = Duration::from_millis(20);
    let code = watch(
        fake.clone(),
        o,
        counting(counter.clone(), release),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        counter.started.lock().unwrap().len(),
        1,
        "the queued one never ran"
    );
    assert_eq!(log.count("abandoned", None), 1);
    assert_eq!(log.count("provisioned", None), 0);
}

/// On a first connection no event has shown the engine's clock yet: the
/// second of history the subscription asks for arrives at once and is
/// judged by our clock (within `replay_window` of the listing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_history_of_a_listed_container_is_not_a_second_provision() {
    let fake = Arc::new(Fake::default());
    let tx = fake.subscription();
    fake.run("a");
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(1000));
    let log = Log::default();
    let before = SystemTime::now() - Duration::from_millis(500);
    let steps = async {
        until(|| log.count("provisioned", Some("a")) == 1).await;
        // The second of history the subscription asks for: its start (and
        // a die before it) happened before the listing saw it running.
        let old = |action: &str| ev("a", action).map(|e| e.at_nanos(nanos(before)));
        tx.send(old("die")).unwrap();
        tx.send(old("start")).unwrap();
        // A real restart afterwards is one.
        tx.send(ev("a", "restart").map(|e| e.at_nanos(nanos(SystemTime::now()))))
            .unwrap();
        until(|| log.count("provisioned", Some("a")) == 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    watch(
        fake.clone(),
        opts(2),
        counting(counter.clone(), release),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(log.count("provisioned", Some("a")), 2);
    assert_eq!(log.count("forgot", Some("a")), 0);
}

/// A reconnect lists what started meanwhile and replays the events since
/// the last one seen: the history of a container that listing found
/// running (its die and start before the listing) is not a second
/// provision, nor a `forgot`. The engine's clock is known by then (the
/// first stream's events showed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_history_after_a_reconnect_is_not_a_second_provision() {
    let fake = Arc::new(Fake::default());
    let first = fake.subscription();
    let tx = fake.subscription();
    fake.run("b");
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(1000));
    let log = Log::default();
    let steps = async {
        // Listed, provisioned, then restarted: a current event.
        until(|| log.count("provisioned", Some("b")) == 1).await;
        let restarted = SystemTime::now();
        first
            .send(ev("b", "restart").map(|e| e.at_nanos(nanos(restarted))))
            .unwrap();
        until(|| log.count("provisioned", Some("b")) == 2).await;
        // a starts after that, before the stream is lost.
        let before = restarted + Duration::from_micros(1);
        fake.run("a");
        drop(first);
        until(|| log.count("provisioned", Some("a")) == 1).await;
        // The replay: a's start (and a die before it) happened before the
        // listing saw it running.
        let old = |action: &str| ev("a", action).map(|e| e.at_nanos(nanos(before)));
        tx.send(old("die")).unwrap();
        tx.send(old("start")).unwrap();
        // A real restart afterwards is one.
        tx.send(ev("a", "restart").map(|e| e.at_nanos(nanos(SystemTime::now()))))
            .unwrap();
        until(|| log.count("provisioned", Some("a")) == 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    watch(
        fake.clone(),
        opts(2),
        counting(counter.clone(), release),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(log.count("provisioned", Some("a")), 2);
    assert_eq!(log.count("forgot", Some("a")), 0);
}

/// Podman closes an event stream now and then; the new subscription
/// replays what came since, so a start already acted on arrives again
/// with the same engine time: not a second provision. A later start is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_start_event_is_not_a_second_provision() {
    let fake = Arc::new(Fake::default());
    let tx = fake.subscription();
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(1000));
    let log = Log::default();
    let steps = async {
        // Started after the listing: only its events provision it.
        until(|| log.count("connected", None) == 1).await;
        let first = SystemTime::now();
        let at = |t: SystemTime| ev("a", "start").map(|e| e.at_nanos(nanos(t)));
        fake.run("a");
        tx.send(at(first)).unwrap();
        until(|| log.count("provisioned", Some("a")) == 1).await;
        tx.send(at(first)).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            log.count("provisioned", Some("a")),
            1,
            "the replay provisioned"
        );
        tx.send(at(first + Duration::from_millis(1))).unwrap();
        until(|| log.count("provisioned", Some("a")) == 2).await;
    };
    watch(
        fake.clone(),
        opts(2),
        counting(counter.clone(), release),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(log.count("provisioned", Some("a")), 2);
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Issues a "certificate" of `validity` at each provision and records, per
/// container, what happened in order: `issued`, or `expired` when the
/// previous one had run out before this provision began (checked on the
/// watch's clock). `fail` lists the calls that fail: (container, its
/// n-th provision, 1-based).
struct Issuer {
    validity: Duration,
    renew_in: Option<Duration>,
    fail: Vec<(&'static str, usize)>,
    expires: Mutex<HashMap<String, Instant>>,
    calls: Mutex<HashMap<String, usize>>,
    events: Mutex<Vec<(String, &'static str)>>,
    counter: Counter,
}

impl Issuer {
    fn new(
        validity: Duration,
        renew_in: Option<Duration>,
        fail: Vec<(&'static str, usize)>,
    ) -> Arc<Issuer> {
        Arc::new(Issuer {
            validity,
            renew_in,
            fail,
            expires: Mutex::default(),
            calls: Mutex::default(),
            events: Mutex::default(),
            counter: Counter::default(),
        })
    }
    fn provision(self: &Arc<Self>) -> Provision {
        let me = self.clone();
        Arc::new(move |c: ContainerInfo| {
            let me = me.clone();
            Box::pin(async move {
                let n = me.counter.now.fetch_add(1, Ordering::SeqCst) + 1;
                me.counter.most.fetch_max(n, Ordering::SeqCst);
                if !me.counter.busy.lock().unwrap().insert(c.id.clone()) {
                    me.counter.overlaps.fetch_add(1, Ordering::SeqCst);
                }
                let call = {
                    let mut calls = me.calls.lock().unwrap();
                    let n = calls.entry(c.id.clone()).or_default();
                    *n += 1;
                    *n
                };
                let now = Instant::now();
                if me
                    .expires
                    .lock()
                    .unwrap()
                    .get(&c.id)
                    .is_some_and(|e| *e <= now)
                {
                    me.events.lock().unwrap().push((c.id.clone(), "expired"));
                }
                // A provision takes a while (of the paused clock).
                tokio::time::sleep(Duration::from_millis(400)).await;
                me.counter.busy.lock().unwrap().remove(&c.id);
                me.counter.now.fetch_sub(1, Ordering::SeqCst);
                if me.fail.iter().any(|(id, n)| *id == c.id && *n == call) {
                    me.events.lock().unwrap().push((c.id.clone(), "failed"));
                    return Err("cannot provision: refused".to_string());
                }
                me.expires
                    .lock()
                    .unwrap()
                    .insert(c.id.clone(), now + me.validity);
                me.events.lock().unwrap().push((c.id.clone(), "issued"));
                Ok(Provided {
                    detail: "1 key(s)".into(),
                    renew_in: me.renew_in,
                })
            })
        })
    }
    fn of(&self, id: &str) -> Vec<&'static str> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, e)| *e)
            .collect()
    }
}

fn with_certificate(validity: &str) -> crate::ssh::Plan {
    crate::ssh::Plan {
        ssh: vec![
            crate::ssh::SshEntry {
                host: "plain".into(),
                ..Default::default()
            },
            crate::ssh::SshEntry {
                host: "a".into(),
                certificate_authority: Some("/ca".into()),
                validity: Some(crate::ssh::Lifetime::Text(validity.into())),
                ..Default::default()
            },
            crate::ssh::SshEntry {
                host: "b".into(),
                certificate_authority: Some("/ca".into()),
                // The default validity (1h): longer, not the shortest.
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

#[test]
fn the_renewal_comes_from_the_shortest_certificate_validity_and_none_without_one() {
    let after = |v: &str| renewal_after(&with_certificate(v)).map(|d| d.as_secs_f64());
    assert_eq!(after("6s"), Some(3.0));
    assert_eq!(after("90s"), Some(45.0));
    assert_eq!(after("3m"), Some(120.0));
    assert_eq!(after("30m"), Some(1200.0));
    // Beyond the default, the 1h entry is the shortest.
    assert_eq!(after("2h"), Some(2400.0));
    let mut plain = with_certificate("6s");
    plain.ssh.retain(|e| e.certificate_authority.is_none());
    assert_eq!(renewal_after(&plain), None);
}

/// Paused time: the watch's timers run on tokio's clock, which jumps when
/// everything waits, so seconds of validity take no real time.
#[tokio::test(start_paused = true)]
async fn certificates_are_renewed_before_expiry_repeatedly_and_a_failed_renewal_is_retried() {
    let fake = Arc::new(Fake::default());
    let tx = fake.subscription();
    for id in ["a", "b", "c"] {
        fake.run(id);
    }
    let validity = Duration::from_secs(6);
    let renew_in = renewal_after(&with_certificate("6s"));
    // b's second and third provisions (its first two renewals) fail.
    let issuer = Issuer::new(validity, renew_in, vec![("b", 2), ("b", 3)]);
    let log = Log::default();
    let steps = async {
        // Bounded on the paused clock: without renewals this fails, not hangs.
        let virtual_minutes = Duration::from_secs(120);
        tokio::time::timeout(virtual_minutes, until(|| issuer.of("a").len() >= 6))
            .await
            .expect("a renewed five times");
        // A restart while a renewal waits: provisioned after its settle,
        // not at the renewal's time (the next renewal counts from it).
        let before = issuer.of("c").len();
        tx.send(ev("c", "restart")).unwrap();
        until(|| issuer.of("c").len() > before).await;
        let b_issued = || issuer.of("b").iter().filter(|e| **e == "issued").count() >= 3;
        tokio::time::timeout(virtual_minutes, until(b_issued))
            .await
            .expect("b renewed after its failures");
        // A container that dies is forgotten: no renewal afterwards.
        tx.send(ev("c", "die")).unwrap();
        until(|| log.count("forgot", Some("c")) == 1).await;
        fake.running.lock().unwrap().retain(|c| c.id != "c");
        let c_done = issuer.of("c").len();
        tokio::time::sleep(validity * 4).await;
        assert_eq!(issuer.of("c").len(), c_done, "renewed after it died");
    };
    let code = watch(
        fake.clone(),
        opts(2),
        issuer.provision(),
        &|a| log.push(a),
        steps,
    )
    .await;
    assert_eq!(code, 0);
    // a: issued again and again, never after the previous one expired.
    let a = issuer.of("a");
    assert!(a.len() >= 6 && a.iter().all(|e| *e == "issued"), "{a:?}");
    assert_eq!(log.count("provisioned", Some("a")), 1, "the listing's");
    assert!(log.count("renewed", Some("a")) >= 5);
    // b: two failures, each retried, then renewed on; the 3 s schedule
    // leaves room for the retries before the first certificate expires.
    let b = issuer.of("b");
    assert_eq!(&b[..4], ["issued", "failed", "failed", "issued"], "{b:?}");
    assert!(!b.contains(&"expired"), "{b:?}");
    assert_eq!(log.count("failed", Some("b")), 2);
    assert!(!issuer.of("c").contains(&"expired"));
    assert_eq!(log.count("provisioned", Some("c")), 2, "listed, restart");
    assert_eq!(issuer.counter.overlaps.load(Ordering::SeqCst), 0);
    assert!(issuer.counter.most.load(Ordering::SeqCst) <= 2, "--jobs");
}

#[tokio::test(start_paused = true)]
async fn without_certificate_entries_nothing_is_renewed() {
    let fake = Arc::new(Fake::default());
    fake.run("a");
    assert_eq!(renewal_after(&crate::ssh::Plan::default()), None);
    let issuer = Issuer::new(Duration::from_secs(6), None, vec![]);
    let log = Log::default();
    let steps = async {
        until(|| issuer.of("a").len() == 1).await;
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    };
    watch(fake, opts(2), issuer.provision(), &|a| log.push(a), steps).await;
    assert_eq!(issuer.of("a"), ["issued"]);
    assert_eq!(log.count("renewed", None), 0);
}

/// A remote engine whose clock is five minutes behind ours: its events
/// look five minutes old. A restart of a container listed at connect is
/// still a provision (it was taken for history from before the listing
/// for as long as the skew), so is the restart of one listed at a
/// reconnect right after the listing, and a new subscription replays from
/// the last event by the engine's clock, not ours (Podman drops every
/// event before `since`, live ones too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_clock_behind_ours_loses_no_restart() {
    let fake = Arc::new(Fake::default());
    let first = fake.subscription();
    let second = fake.subscription();
    fake.run("a");
    let counter = Arc::new(Counter::default());
    let release = Arc::new(Semaphore::new(1000));
    let log = Log::default();
    let skew = Duration::from_secs(300);
    let engine_now = || SystemTime::now() - skew;
    let at = |action: &str, t: SystemTime| ev("a", action).map(|e| e.at_nanos(nanos(t)));
    let last = Mutex::new(None);
    let steps = async {
        until(|| log.count("provisioned", Some("a")) == 1).await;
        // Past the first connection's replay window (no event had shown
        // the engine's clock when a was listed).
        tokio::time::sleep(Duration::from_millis(400)).await;
        let t = engine_now();
        first.send(at("die", t)).unwrap();
        first
            .send(at("start", t + Duration::from_millis(1)))
            .unwrap();
        until(|| log.count("provisioned", Some("a")) == 2).await;
        let t = engine_now();
        first.send(at("restart", t)).unwrap();
        *last.lock().unwrap() = Some(t);
        until(|| log.count("provisioned", Some("a")) == 3).await;
        // The engine closes the stream; c starts meanwhile, so the next
        // listing finds it, the clock known by then: c's restart right
        // after is one, and so is a's.
        fake.run("c");
        drop(first);
        until(|| log.count("provisioned", Some("c")) == 1).await;
        let c_at = |action: &str| ev("c", action).map(|e| e.at_nanos(nanos(engine_now())));
        second.send(c_at("die")).unwrap();
        second.send(c_at("start")).unwrap();
        second.send(at("restart", engine_now())).unwrap();
        until(|| log.count("provisioned", Some("a")) == 4).await;
        until(|| log.count("provisioned", Some("c")) == 2).await;
    };
    // Before: the restarts were taken for history and the steps waited
    // forever.
    let report = |a| log.push(a);
    let run = watch(
        fake.clone(),
        opts(2),
        counting(counter.clone(), release),
        &report,
        steps,
    );
    let waited = tokio::time::timeout(Duration::from_secs(10), run).await;
    assert!(
        waited.is_ok(),
        "restarts not provisioned: {:?}",
        log.0.lock().unwrap()
    );
    assert_eq!(log.count("provisioned", Some("a")), 4);
    assert_eq!(log.count("provisioned", Some("c")), 2);
    let since = fake.since.lock().unwrap().clone();
    let last = last.lock().unwrap().expect("sent");
    assert_eq!(since.len(), 2);
    assert_eq!(since[1], Some(last), "replays from the engine's last event");
}
