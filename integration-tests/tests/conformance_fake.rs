//! The conformance library against the fake runtime (exec as host
//! processes, see `conformance::host_process_fake`): the contract's exec
//! semantics hold for it too, and checks gated by capabilities it does not
//! declare return without asserting. Proves nothing about an engine.

use bottle_integration_tests::conformance::{
    self, host_process_fake, RuntimeOnly, HOST_FAKE_CONTAINER,
};
use bottle_runtime::ContainerRuntime;

macro_rules! on_the_fake {
    ($($name:ident),* $(,)?) => {
        $(#[tokio::test]
        async fn $name() {
            let fake = host_process_fake();
            let started = fake.inspect(HOST_FAKE_CONTAINER).await.unwrap();
            let subject = RuntimeOnly { rt: &fake, container: HOST_FAKE_CONTAINER, started };
            conformance::$name(&subject).await
        })*
    };
}

on_the_fake!(
    check_exit_codes,
    check_missing_binary,
    check_stdout_stderr_apart,
    check_large_output,
    check_output_is_bounded,
    check_large_stdin,
    check_stdin_eof,
    check_unread_stdin,
    check_concurrent_execs,
    check_script_args_verbatim,
    check_missing_container,
    check_inspect,
    check_version,
    check_undeclared_copy_is_not_supported,
    // Gated off on the fake (no exec as a user, no copy, no admin):
    check_users,
    check_copy_modes_and_owners,
    check_stopped_container,
    check_list_by_filter,
    check_events_report_start_and_die,
);
