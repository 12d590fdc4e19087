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
//! # The image matrix
//!
//! `engine_tests!(images = [debian, busybox], check_x)` runs each check on
//! each listed variant and engine: `docker::debian::check_x`,
//! `docker::busybox::check_x`, `podman::debian::check_x`, …
//! (`images = all`: every variant). The variants ([`harness::Variant`],
//! described in [`image::IMAGES`]):
//!
//! | name | image | user (uid, home) |
//! |---|---|---|
//! | `debian` | dash + GNU tools, merged /usr (the plain `engine_tests!` form) | `node` (1000, `/home/node`) |
//! | `busybox` | Debian's `busybox-static` (`/bin/sh` is ash) + OpenSSH + socat, Alpine-like layout | `node` (1000, `/home/node`) |
//! | `user1001` | debian | `dev` (1001, `/srv/dev`); `git` is 1002 |
//! | `sudo` | debian + `sudo` (`node ALL=(ALL) NOPASSWD: ALL`), setuid `rootenv`, setgid `rootgroupenv` | `node` |
//! | `readonly` | debian, root filesystem read-only, tmpfs `/run` and `/tmp` | `node` |
//!
//! A check reads the variant's user from the environment instead of
//! assuming `node`: [`TestEnv::user`], [`TestEnv::uid`], [`TestEnv::gid`],
//! [`TestEnv::home`], [`TestEnv::exec_as_user`]; [`TestEnv::variant`] and
//! [`TestEnv::image_spec`] tell the rest. Every image has `git` as the sshd
//! gates' login user, so [`ssh_fixtures::start_sshd`] works on each. Each
//! image is built once per test process and imported once per engine.
//!
//! ```no_run
//! use bottle_integration_tests::{engine_tests, TestEnv};
//!
//! async fn check_user(env: &TestEnv) {
//!     let out = env.exec_as_user(&["id", "-un"]).await;
//!     assert_eq!(out.stdout_lossy(), format!("{}\n", env.user()));
//! }
//!
//! engine_tests!(images = [debian, busybox, user1001], check_user);
//! # fn main() {}
//! ```
//!
//! Lower level: [`harness::connect`] gives a runtime for any endpoint,
//! [`image::ensure_test_image`] ([`image::ensure_image`] for a variant)
//! imports the test image into any
//! [`ContainerAdmin`](bottle_runtime::ContainerAdmin), and
//! [`image::build_test_image`] ([`image::build_image`]) returns the archive
//! and reference without an engine.

pub mod agent_attacks;
pub mod bench;
pub mod cli;
pub mod conformance;
pub mod harness;
pub mod image;
pub mod ssh_fixtures;
pub mod transports;

pub use cli::{bottlectl_path, hermetic};
pub use harness::{assert_success, connect, Connection, TestEnv, Variant};
pub use image::{ensure_test_image, TestImage};
