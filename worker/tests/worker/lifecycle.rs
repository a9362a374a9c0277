//! The worker binary starts, runs with no job registered, and stops cleanly on a signal.

use std::time::Duration;

use crate::helpers::WorkerProcess;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

fn runs_until_signalled_then_exits_cleanly(signal: &str, signal_name: &str) {
    // Arrange
    let mut worker = WorkerProcess::spawn(&[]);
    worker.wait_for_message("worker running", START_TIMEOUT);

    // Act
    worker.signal(signal);
    let status = worker.wait_for_exit(STOP_TIMEOUT);

    // Assert
    assert!(
        status.success(),
        "exit status {status}; output: {:#?}",
        worker.output
    );
    let stopped = worker.logged_message("worker stopped");
    assert_eq!(
        stopped["signal"], signal_name,
        "output: {:#?}",
        worker.output
    );
}

#[test]
fn the_worker_keeps_running_until_sigterm_and_then_exits_with_status_0() {
    runs_until_signalled_then_exits_cleanly("TERM", "SIGTERM");
}

#[test]
fn the_worker_also_stops_cleanly_on_sigint() {
    runs_until_signalled_then_exits_cleanly("INT", "SIGINT");
}

#[test]
fn an_unparsable_variable_stops_the_worker_with_a_message_naming_it() {
    let mut worker = WorkerProcess::spawn(&[("WORKER_CONCURRENCY", "abc")]);

    let status = worker.wait_for_exit(START_TIMEOUT);

    assert!(!status.success(), "exit status {status}");
    assert!(
        worker.logged("WORKER_CONCURRENCY"),
        "output: {:#?}",
        worker.output
    );
}

#[test]
fn an_unknown_queue_name_stops_the_worker_with_a_message_naming_the_variable() {
    let mut worker = WorkerProcess::spawn(&[("WORKER_QUEUES", "checkout,chekout")]);

    let status = worker.wait_for_exit(START_TIMEOUT);

    assert!(!status.success(), "exit status {status}");
    assert!(
        worker.logged("WORKER_QUEUES"),
        "output: {:#?}",
        worker.output
    );
}

#[test]
fn an_unreachable_redis_stops_the_worker_at_start_up() {
    // Nothing listens on port 1; the connection manager gives up after its retries (~10 s).
    let mut worker = WorkerProcess::spawn(&[("REDIS_URL", "redis://127.0.0.1:1")]);

    let status = worker.wait_for_exit(START_TIMEOUT);

    assert!(!status.success(), "exit status {status}");
    assert!(
        worker.logged("Failed to connect to Redis"),
        "output: {:#?}",
        worker.output
    );
}

#[test]
fn in_production_the_worker_refuses_to_start_with_a_blank_stripe_secret() {
    for (name, value) in [
        ("STRIPE_SECRET_KEY", ""),
        ("STRIPE_WEBHOOK_SECRET", " "),
        ("JWT_SECRET", ""),
    ] {
        let mut vars = vec![
            ("APP_ENV", "production"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("STRIPE_SECRET_KEY", "sk_live_worker_test"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_worker_test"),
            ("OBJECT_STORE_URL", "file:///tmp/marketplace-objects"),
        ];
        vars.retain(|(k, _)| *k != name);
        vars.push((name, value));
        let mut worker = WorkerProcess::spawn(&vars);

        let status = worker.wait_for_exit(START_TIMEOUT);

        assert!(!status.success(), "{name}: exit status {status}");
        assert!(worker.logged(name), "output: {:#?}", worker.output);
        assert!(!worker.logged("worker running"), "{:#?}", worker.output);
    }
}
