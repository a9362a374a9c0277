//! When the monitor may restart a failed job worker, and when the process should give up.
//!
//! An apalis-redis worker dies on any Redis error, e.g. a Redis restart or a stalled reply,
//! and the monitor then reports success on shutdown anyway. So failed workers are
//! restarted, which rides out a blip, but only within a budget: a worker that keeps failing
//! (Redis gone for good, a poison task) makes the whole process exit non-zero instead, so that
//! the supervisor restarts it with back-off and alerting sees it.
//!
//! Restarts need no extra delay: while Redis is unreachable each command first waits for the
//! connection manager's reconnect attempts (about 6 s), which paces the restarts.

use std::{
    collections::VecDeque,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use apalis::prelude::{WorkerContext, WorkerError};
use tokio::sync::watch;

/// More restarts than this within [`RESTART_WINDOW`], across all job workers of the process,
/// means the failure is not a blip. A Redis restart costs each queue's worker one or two.
pub const MAX_RESTARTS: usize = 30;

/// The sliding window [`MAX_RESTARTS`] is counted in.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Decides on restarts and remembers why the process gave up, if it did.
#[derive(Debug)]
pub struct RestartPolicy {
    recent: Mutex<VecDeque<Instant>>,
    gave_up: watch::Sender<Option<String>>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            recent: Mutex::default(),
            gave_up: watch::Sender::new(None),
        }
    }
}

impl RestartPolicy {
    /// The `Monitor::should_restart` callback: logs the failure (this is where it is handled)
    /// and allows the restart unless the process is stopping or the budget is spent.
    pub fn should_restart(&self, worker: &WorkerContext, error: &WorkerError) -> bool {
        if worker.is_shutting_down() {
            tracing::warn!(
                worker.name = worker.name(),
                error.message = %error,
                error.cause_chain = ?error,
                "job worker failed while shutting down"
            );
            return false;
        }
        let restart = self.record_restart(Instant::now());
        tracing::error!(
            worker.name = worker.name(),
            worker.restarts = worker.restarts(),
            restart,
            error.message = %error,
            error.cause_chain = ?error,
            "job worker failed"
        );
        if !restart {
            let reason = format!(
                "job worker {} failed and more than {MAX_RESTARTS} restarts happened within {}s; \
                 last error: {error}",
                worker.name(),
                RESTART_WINDOW.as_secs()
            );
            self.gave_up.send_replace(Some(reason));
        }
        restart
    }

    /// Counts a restart at `now`; false once the budget for the window is spent.
    fn record_restart(&self, now: Instant) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            recent.pop_front();
        }
        recent.push_back(now);
        recent.len() <= MAX_RESTARTS
    }

    /// Resolves once a worker has been given up on, with the reason. Never resolves otherwise.
    pub async fn given_up(&self) -> String {
        let mut gave_up = self.gave_up.subscribe();
        let reason = gave_up
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| r.clone());
        match reason {
            Some(reason) => reason,
            // Only reachable if the sender were dropped, but it lives in `self`.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_allowed_up_to_the_budget_within_the_window() {
        let policy = RestartPolicy::default();
        let start = Instant::now();
        for _ in 0..MAX_RESTARTS {
            assert!(policy.record_restart(start));
        }
        assert!(!policy.record_restart(start + Duration::from_secs(1)));
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let policy = RestartPolicy::default();
        let start = Instant::now();
        for _ in 0..MAX_RESTARTS {
            assert!(policy.record_restart(start));
        }
        assert!(policy.record_restart(start + RESTART_WINDOW + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn spending_the_budget_stops_restarts_and_reports_why() {
        let policy = RestartPolicy::default();
        let worker = WorkerContext::new("mp-checkout-host-1-abcdef12");
        let error = || WorkerError::PanicError("redis went away".to_owned());
        for _ in 0..MAX_RESTARTS {
            assert!(policy.should_restart(&worker, &error()));
        }

        assert!(!policy.should_restart(&worker, &error()));

        let reason = tokio::time::timeout(Duration::from_secs(1), policy.given_up()).await;
        let reason = reason.expect("given_up resolves once the budget is spent");
        assert!(reason.contains("mp-checkout-host-1-abcdef12"), "{reason}");
        assert!(reason.contains("redis went away"), "{reason}");
    }
}
