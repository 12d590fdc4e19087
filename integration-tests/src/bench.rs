//! Support for the `bench` binary (`src/bin/bench.rs`): request counts from
//! a recording runtime (and, for the `sidecar` layout, its lifecycle
//! calls), a wrapper that times scripts inside the container, and small
//! statistics helpers. Public so tests can count requests the same way.

use async_trait::async_trait;
use bottle_runtime::testing::Recording;
use bottle_runtime::{
    ContainerAdmin, ContainerDetails, ContainerFilter, ContainerInfo, ContainerRuntime, CopyEntry,
    Engine, EngineInfo, ExecOutput, ExecRequest, Result, RunSpec,
};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Requests made through a recording runtime, by kind ([`take_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub execs: usize,
    pub copies: usize,
    /// `version` and `inspect` (including `require_running`).
    pub other: usize,
    /// Lifecycle calls ([`CountingAdmin`]: details, image lookup, create,
    /// remove); 0 for the `bottle` layout, which makes none.
    pub admin: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.execs + self.copies + self.other + self.admin
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} exec, {} copy, {} other)",
            self.total(),
            self.execs,
            self.copies,
            self.other
        )?;
        if self.admin > 0 {
            write!(f, " + {} admin", self.admin)?;
        }
        Ok(())
    }
}

/// The requests `recording` saw since the last take, by kind (and clears
/// them): counted from [`Recording`]'s
/// calls, the one call-recording wrapper.
pub fn take_counts(recording: &bottle_runtime::testing::Recording) -> Counts {
    let (execs, copies, other) = recording.take_counts();
    Counts {
        execs,
        copies,
        other,
        admin: 0,
    }
}

/// A [`ContainerAdmin`] for `bottle_ssh::sidecar`: the runtime calls go
/// through a [`Recording`] (counted by [`take_counts`] like every other
/// row), the lifecycle calls are counted here by name. Containers it
/// creates also get `labels` (the bench's own label on the sidecar).
#[derive(Debug)]
pub struct CountingAdmin {
    recording: Recording,
    admin: Arc<dyn ContainerAdmin>,
    labels: Vec<(String, String)>,
    calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl CountingAdmin {
    /// `runtime` and `admin`: the same connection as both traits.
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        admin: Arc<dyn ContainerAdmin>,
        labels: Vec<(String, String)>,
    ) -> Self {
        CountingAdmin {
            recording: Recording::new(runtime),
            admin,
            labels,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every call since the last take, and the lifecycle calls by name
    /// (clearing both).
    pub fn take(&self) -> (Counts, BTreeMap<&'static str, usize>) {
        let by_name = std::mem::take(&mut *self.calls.lock().unwrap());
        let mut counts = take_counts(&self.recording);
        counts.admin = by_name.values().sum();
        (counts, by_name)
    }

    fn count(&self, name: &'static str) {
        *self.calls.lock().unwrap().entry(name).or_default() += 1;
    }
}

#[async_trait]
impl ContainerRuntime for CountingAdmin {
    fn engine(&self) -> Engine {
        self.recording.engine()
    }
    fn endpoint(&self) -> &str {
        self.recording.endpoint()
    }
    fn capabilities(&self) -> bottle_runtime::Capabilities {
        self.recording.capabilities()
    }
    async fn version(&self) -> Result<EngineInfo> {
        self.recording.version().await
    }
    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        self.recording.inspect(container).await
    }
    async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecOutput> {
        self.recording.exec(container, request).await
    }
    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        self.recording.copy(container, entries).await
    }
    async fn list(&self, filters: &[ContainerFilter]) -> Result<Vec<ContainerInfo>> {
        self.recording.list(filters).await
    }
}

#[async_trait]
impl ContainerAdmin for CountingAdmin {
    async fn details(&self, container: &str) -> Result<ContainerDetails> {
        self.count("details");
        self.admin.details(container).await
    }
    async fn image_exists(&self, reference: &str) -> Result<bool> {
        self.count("image_exists");
        self.admin.image_exists(reference).await
    }
    async fn import_image(&self, rootfs_tar: Vec<u8>, reference: &str) -> Result<()> {
        self.count("import_image");
        self.admin.import_image(rootfs_tar, reference).await
    }
    async fn run(&self, spec: &RunSpec) -> Result<ContainerInfo> {
        self.count("run");
        let mut spec = spec.clone();
        spec.labels.extend(self.labels.iter().cloned());
        self.admin.run(&spec).await
    }
    async fn start(&self, container: &str) -> Result<()> {
        self.count("start");
        self.admin.start(container).await
    }
    async fn stop(&self, container: &str) -> Result<()> {
        self.count("stop");
        self.admin.stop(container).await
    }
    async fn pause(&self, container: &str) -> Result<()> {
        self.count("pause");
        self.admin.pause(container).await
    }
    async fn unpause(&self, container: &str) -> Result<()> {
        self.count("unpause");
        self.admin.unpause(container).await
    }
    async fn remove(&self, container: &str) -> Result<()> {
        self.count("remove");
        self.admin.remove(container).await
    }
}

/// One call made through a [`TimingRuntime`].
#[derive(Debug, Clone, PartialEq)]
pub struct CallTiming {
    /// `exec`, `copy`, `inspect` or `version`.
    pub kind: &'static str,
    /// For an exec: the user it ran as (`0` is root).
    pub user: Option<String>,
    /// Round trip as the caller sees it.
    pub total_ms: f64,
    /// For a shell script exec: how long the script itself ran in the
    /// container, from `/proc/uptime` read by the wrapping shell (one clock
    /// for every CPU, 10 ms steps; images need not have `date`, and a
    /// task's scheduler clock differs from CPU to CPU). `None` when it
    /// cannot be read.
    pub script_ms: Option<f64>,
}

/// Start and end of the wrapped script, in seconds of uptime, on stderr's
/// last line.
const SCRIPT_MARK: &str = "bottle-bench-uptime ";

/// Runs the wrapped script as `$1` with its own `$0`, `$1`, … and reports
/// how long it took on stderr (stdin, stdout and the exit code pass through).
/// `read` is a builtin: no process is started around the script.
const SCRIPT_WRAPPER: &str = r#"read -r s _ </proc/uptime; script=$1; shift; /bin/sh -c "$script" "$@"; rc=$?
read -r e _ </proc/uptime; printf 'bottle-bench-uptime %s %s\n' "$s" "$e" >&2; exit $rc"#;

/// Forwards every call, timing it; `/bin/sh -c SCRIPT …` execs are wrapped
/// so the script's own run time inside the container is measured too, which
/// splits a step into engine overhead and in-container work. Nothing sent is
/// kept or printed.
#[derive(Debug)]
pub struct TimingRuntime {
    inner: Arc<dyn ContainerRuntime>,
    calls: Mutex<Vec<CallTiming>>,
}

impl TimingRuntime {
    pub fn new(inner: Arc<dyn ContainerRuntime>) -> Self {
        TimingRuntime {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls so far, in the order they finished, clearing the list.
    pub fn take(&self) -> Vec<CallTiming> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn record(
        &self,
        kind: &'static str,
        user: Option<String>,
        since: Instant,
        script_ms: Option<f64>,
    ) {
        self.calls.lock().unwrap().push(CallTiming {
            kind,
            user,
            total_ms: since.elapsed().as_secs_f64() * 1000.0,
            script_ms,
        });
    }
}

/// Remove the wrapper's line from stderr; returns the script's run time.
fn strip_mark(out: &mut ExecOutput) -> Option<f64> {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let at = text.rfind(SCRIPT_MARK)?;
    let mut words = text[at + SCRIPT_MARK.len()..].split_whitespace();
    let start: Option<f64> = words.next().and_then(|w| w.parse().ok());
    let end: Option<f64> = words.next().and_then(|w| w.parse().ok());
    out.stderr.truncate(at);
    Some((end? - start?) * 1000.0)
}

#[async_trait]
impl ContainerRuntime for TimingRuntime {
    fn engine(&self) -> Engine {
        self.inner.engine()
    }
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }
    fn capabilities(&self) -> bottle_runtime::Capabilities {
        self.inner.capabilities()
    }
    async fn version(&self) -> Result<EngineInfo> {
        let t = Instant::now();
        let r = self.inner.version().await;
        self.record("version", None, t, None);
        r
    }
    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        let t = Instant::now();
        let r = self.inner.inspect(container).await;
        self.record("inspect", None, t, None);
        r
    }
    async fn exec(&self, container: &str, mut request: ExecRequest) -> Result<ExecOutput> {
        let wrapped =
            request.argv.len() >= 3 && request.argv[0] == "/bin/sh" && request.argv[1] == "-c";
        if wrapped {
            let rest = request.argv.split_off(2);
            request.argv.push(SCRIPT_WRAPPER.to_string());
            request.argv.push("bottle-bench".to_string());
            request.argv.extend(rest);
        }
        let user = Some(request.user.clone());
        let t = Instant::now();
        let r = self.inner.exec(container, request).await;
        match r {
            Ok(mut out) => {
                let script = if wrapped { strip_mark(&mut out) } else { None };
                self.record("exec", user, t, script);
                Ok(out)
            }
            Err(e) => {
                self.record("exec", user, t, None);
                Err(e)
            }
        }
    }
    async fn copy(&self, container: &str, entries: &[CopyEntry]) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.copy(container, entries).await;
        self.record("copy", None, t, None);
        r
    }
}

/// Median of `samples` (mean of the two middle values for an even count);
/// 0 for none.
pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn strips_the_wrapper_line_only() {
        let mut out = ExecOutput {
            exit_code: 0,
            stdout: b"ok\n".to_vec(),
            stderr: b"warning\nbottle-bench-uptime 1000.25 1002.75\n".to_vec(),
        };
        assert_eq!(strip_mark(&mut out), Some(2500.0));
        assert_eq!(out.stderr, b"warning\n");
        let mut plain = ExecOutput::default();
        assert_eq!(strip_mark(&mut plain), None);
        // No uptime read: the line goes, no time is made up.
        let mut empty = ExecOutput {
            stderr: b"bottle-bench-uptime  \n".to_vec(),
            ..ExecOutput::default()
        };
        assert_eq!(strip_mark(&mut empty), None);
        assert!(empty.stderr.is_empty());
    }

    #[test]
    fn counts_display_and_total() {
        let mut c = Counts {
            execs: 2,
            copies: 1,
            other: 0,
            admin: 0,
        };
        assert_eq!(c.total(), 3);
        assert_eq!(c.to_string(), "3 (2 exec, 1 copy, 0 other)");
        c.admin = 2;
        assert_eq!(c.total(), 5);
        assert_eq!(c.to_string(), "5 (2 exec, 1 copy, 0 other) + 2 admin");
    }
}
