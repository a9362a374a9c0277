//! The scheduler binary starts, runs with no schedule registered, and stops cleanly on a signal.

use std::time::Duration;

use crate::helpers::SchedulerProcess;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

fn runs_until_signalled_then_exits_cleanly(signal: &str, signal_name: &str) {
    // Arrange
    let mut scheduler = SchedulerProcess::spawn(&[]);
    scheduler.wait_for_message("scheduler running", START_TIMEOUT);

    // Act
    scheduler.signal(signal);
    let status = scheduler.wait_for_exit(STOP_TIMEOUT);

    // Assert
    assert!(
        status.success(),
        "exit status {status}; output: {:#?}",
        scheduler.output
    );
    let stopped = scheduler.logged_message("scheduler stopped");
    assert_eq!(
        stopped["signal"], signal_name,
        "output: {:#?}",
        scheduler.output
    );
}

#[test]
fn the_scheduler_keeps_running_until_sigterm_and_then_exits_with_status_0() {
    runs_until_signalled_then_exits_cleanly("TERM", "SIGTERM");
}

#[test]
fn the_scheduler_also_stops_cleanly_on_sigint() {
    runs_until_signalled_then_exits_cleanly("INT", "SIGINT");
}

#[test]
fn an_unparsable_variable_stops_the_scheduler_with_a_message_naming_it() {
    let mut scheduler = SchedulerProcess::spawn(&[("DATABASE_MAX_CONNECTIONS", "abc")]);

    let status = scheduler.wait_for_exit(START_TIMEOUT);

    assert!(!status.success(), "exit status {status}");
    assert!(
        scheduler.logged("DATABASE_MAX_CONNECTIONS"),
        "output: {:#?}",
        scheduler.output
    );
}

#[test]
fn a_prefix_that_would_break_queue_names_stops_the_scheduler() {
    let mut scheduler = SchedulerProcess::spawn(&[("REDIS_PREFIX", "mp:prod")]);

    let status = scheduler.wait_for_exit(START_TIMEOUT);

    assert!(!status.success(), "exit status {status}");
    assert!(
        scheduler.logged("REDIS_PREFIX"),
        "output: {:#?}",
        scheduler.output
    );
}
