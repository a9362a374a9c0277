//! Wake-on-push: a worker starts a new job within a millisecond or two of its push instead of
//! at its next poll.
//!
//! The api publishes on `<queue>:pushed` after every push (`shared::queue`). Each worker process
//! keeps one Redis subscription for all its queues and turns a message into a wake-up of that
//! queue's worker. Polling stays as the safety net (a missed message, retries that apalis
//! re-schedules, a lost subscription), so a lost wake-up costs at most one poll interval.
//!
//! The strategy also fixes a lost wake-up in apalis-core 1.0's `IntervalStrategy`: after its
//! timer fires it arms a new timer without polling it, so nothing wakes the worker when that
//! timer fires, and an idle worker falls back to its heartbeat (seconds). Here every timer and
//! notification is polled until it is pending, so it is always registered.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use apalis::prelude::{PollSnapshot, PollStrategy};
use futures::StreamExt;
use tokio::{
    sync::{Notify, futures::OwnedNotified},
    time::{Instant, Sleep},
};

/// Per-queue notifiers fed by one Redis subscription.
#[derive(Clone, Default)]
pub struct PushWakeups {
    queues: Arc<HashMap<String, Arc<Notify>>>,
}

impl PushWakeups {
    /// Subscribes to the push channels of `queues` (full queue names) through `client` (the
    /// process's Redis client, so its TLS settings apply) and keeps the subscription alive in a
    /// background task.
    pub fn start(client: redis::Client, queues: Vec<String>) -> Self {
        let map: HashMap<String, Arc<Notify>> = queues
            .into_iter()
            .map(|q| (q, Arc::new(Notify::new())))
            .collect();
        let wakeups = Self {
            queues: Arc::new(map),
        };
        let task = wakeups.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = task.listen(&client).await {
                    tracing::warn!(error.message = %e, "push wake-up subscription lost; polling meanwhile");
                }
                // Everything may have been pushed while the subscription was down.
                task.wake_all();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        wakeups
    }

    /// The notifier of `queue` (a fresh, never-notified one for an unknown queue).
    pub fn notifier(&self, queue: &str) -> Arc<Notify> {
        self.queues.get(queue).cloned().unwrap_or_default()
    }

    fn wake_all(&self) {
        for notify in self.queues.values() {
            notify.notify_one();
        }
    }

    async fn listen(&self, client: &redis::Client) -> redis::RedisResult<()> {
        let mut pubsub = client.get_async_pubsub().await?;
        for queue in self.queues.keys() {
            pubsub
                .subscribe(shared::queue::pushed_channel(queue))
                .await?;
        }
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let queue = msg.get_channel_name().trim_end_matches(":pushed");
            if let Some(notify) = self.queues.get(queue) {
                // A stored permit if the worker is busy: it fetches again as soon as it polls.
                notify.notify_one();
            }
        }
        Ok(())
    }
}

/// Polls when told a task was pushed, and at least every `interval`.
pub struct WakeOnPush {
    interval: Duration,
    timer: Pin<Box<Sleep>>,
    notify: Arc<Notify>,
    notified: Pin<Box<OwnedNotified>>,
}

impl WakeOnPush {
    /// A strategy woken by `notify`, polling at least every `interval`.
    pub fn new(interval: Duration, notify: Arc<Notify>) -> Self {
        let notified = Box::pin(notify.clone().notified_owned());
        Self {
            interval,
            timer: Box::pin(tokio::time::sleep(interval)),
            notify,
            notified,
        }
    }
}

impl PollStrategy for WakeOnPush {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut due = false;
        // Poll each source until it is pending, so both stay registered with `cx`.
        while self.notified.as_mut().poll(cx).is_ready() {
            self.notified = Box::pin(self.notify.clone().notified_owned());
            due = true;
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            let next = Instant::now() + self.interval;
            self.timer.as_mut().reset(next);
            due = true;
        }
        if due {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}
