//! Tests for bottle against the real engines: the test image builder, the
//! per-engine harness and the `ContainerRuntime` conformance suite.
//!
//! # Running
//!
//! ```text
//! scripts/engines.sh                                  # start Docker and Podman (idempotent)
//! cargo test -p bottle-integration-tests              # both engines
//! BOTTLE_TEST_RUNTIMES=docker cargo test -p bottle-integration-tests
//! BOTTLE_TEST_RUNTIMES=podman cargo test -p bottle-integration-tests conformance
//! ```
//!
//! - `BOTTLE_TEST_RUNTIMES` (comma list, default `docker,podman`): engines to
//!   test. A test for an engine not listed passes after printing `SKIP …`.
//! - An engine that is listed but unreachable is skipped with its endpoint and
//!   error printed, unless `CI=true` or `BOTTLE_TEST_REQUIRE_ENGINES=1`: then
//!   the test fails.
//! - `DOCKER_HOST` / `CONTAINER_HOST` choose the endpoints (the backends'
//!   defaults otherwise).
//! - `BOTTLE_TEST_CHECK_TIMEOUT` (seconds, default 300) bounds each check.
//!
//! # Writing engine tests
//!
//! A check is a plain `async fn check_x(env: &TestEnv)` that panics on
//! failure. [`engine_tests!`] turns a list of checks into one `#[tokio::test]`
//! per engine, so `cargo test` shows `docker::check_x ... ok` and
//! `podman::check_x ... ok`. Each test gets its own bottle container from the
//! test image (`/bin/sleep infinity` as PID 1, network `none`, label
//! `bottle-test=1`), removed at the end even when the check panics or times
//! out. Checks run on a spawned task, so their futures must be `Send`.
//!
//! ```no_run
//! use bottle_integration_tests::{engine_tests, TestEnv};
//! use bottle_runtime::{ContainerRuntime, NetworkMode, RunSpec};
//!
//! async fn check_whoami(env: &TestEnv) {
//!     let out = env.exec_as("1000", &["id", "-un"]).await;
//!     assert_eq!(out.stdout_lossy(), "node\n");
//!     // The same through the trait directly:
//!     let out = env.rt().exec_root(env.bottle(), &["id", "-u"]).await.unwrap();
//!     assert_eq!(out.stdout, b"0\n");
//! }
//!
//! async fn check_sidecar(env: &TestEnv) {
//!     // Extra containers (e.g. an sshd in the bottle's network namespace)
//!     // are removed with the bottle.
//!     let mut spec = RunSpec::new(env.image(), ["/bin/sleep", "infinity"]);
//!     spec.network = NetworkMode::Container(env.bottle().to_string());
//!     let sidecar = env.run_container(spec).await.unwrap();
//!     assert!(sidecar.is_running());
//! }
//!
//! engine_tests!(check_whoami, check_sidecar);
//! # fn main() {}
//! ```
//!
//! Lower level: [`harness::connect`] gives a runtime for any endpoint,
//! [`image::ensure_test_image`] imports the test image into any
//! [`ContainerAdmin`](bottle_runtime::ContainerAdmin), and
//! [`image::build_test_image`] returns the archive and reference without an
//! engine.

pub mod bench;
pub mod cli;
pub mod harness;
pub mod image;
pub mod ssh_fixtures;

pub use cli::bottlectl_path;
pub use harness::{assert_success, connect, Connection, TestEnv};
pub use image::{ensure_test_image, TestImage};
