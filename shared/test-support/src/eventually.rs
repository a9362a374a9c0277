//! Waiting for something that happens in the background (another process, a worker, Redis), with
//! a bound: poll a condition until it holds, and fail naming what never happened and what was
//! seen last.
//!
//! A poll returns an [`Observation`]: `Option<T>` (`None`: not yet) or `Result<T, E>` (`Err`: not
//! yet, and the error says what was seen instead, shown if the wait times out).

use std::{
    fmt::Debug,
    future::Future,
    time::{Duration, Instant},
};

/// How long [`eventually`] sleeps between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What one poll saw: the awaited value, or what was there instead.
pub trait Observation<T> {
    /// `Ok` when the condition holds; otherwise a description of what was observed.
    fn observe(self) -> Result<T, String>;
}

impl<T> Observation<T> for Option<T> {
    fn observe(self) -> Result<T, String> {
        self.ok_or_else(|| "None".to_owned())
    }
}

impl<T, E: Debug> Observation<T> for Result<T, E> {
    fn observe(self) -> Result<T, String> {
        self.map_err(|seen| format!("{seen:?}"))
    }
}

/// Polls `poll` every [`POLL_INTERVAL`] until it observes a value, and returns it. Panics after
/// `timeout` naming `what` (what was awaited) and the last observation.
pub async fn eventually<T, F, Fut, O>(what: &str, timeout: Duration, poll: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
    O: Observation<T>,
{
    eventually_every(what, timeout, POLL_INTERVAL, poll).await
}

/// [`eventually`] with a chosen interval between polls (for polls that are expensive).
pub async fn eventually_every<T, F, Fut, O>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut poll: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
    O: Observation<T>,
{
    let outcome = poll_until(timeout, interval, || {
        let polled = poll();
        async move { polled.await.observe() }
    })
    .await;
    outcome.unwrap_or_else(|seen| {
        panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
    })
}

/// Polls `poll` every `interval` until it returns `Ok`, for at most `timeout`; returns that, or
/// the last `Err` it returned. For a test that asserts on the outcome itself (with more context
/// than a timeout message could carry); [`eventually`] is the usual choice.
pub async fn poll_until<T, E, F, Fut>(
    timeout: Duration,
    interval: Duration,
    mut poll: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match poll().await {
            Ok(value) => return Ok(value),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(interval).await,
        }
    }
}

/// [`eventually`] for code that is not async (it blocks the calling thread between polls).
pub fn eventually_blocking<T, O>(what: &str, timeout: Duration, mut poll: impl FnMut() -> O) -> T
where
    O: Observation<T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match poll().observe() {
            Ok(value) => return value,
            Err(seen) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}");
                }
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_observed() {
        let mut polls = 0;
        let value = eventually("the third poll", Duration::from_secs(5), || {
            polls += 1;
            let now = polls;
            async move { (now >= 3).then_some(now) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a miracle; last seen: \"still 7\"")]
    async fn names_what_never_happened_and_the_last_observation() {
        eventually("a miracle", Duration::from_millis(50), || async {
            Err::<(), _>("still 7")
        })
        .await;
    }

    #[test]
    fn blocking_polls_until_the_condition_holds() {
        let mut polls = 0;
        let value = eventually_blocking("the second poll", Duration::from_secs(5), || {
            polls += 1;
            (polls >= 2).then_some(polls)
        });
        assert_eq!(value, 2);
    }
}
