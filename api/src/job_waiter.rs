//! Wakes `GET /jobs/{id}?wait=N` long-polls as soon as a worker announces the job finished.
//!
//! One Redis subscription per api process feeds a map of waiters keyed by job id, so each
//! announcement wakes only the requests waiting for that job. If the subscription drops (a Redis
//! restart) it is re-established, and then every waiting request is woken once: announcements
//! made while it was down are lost, so each re-reads its job in PostgreSQL and answers (a
//! client still waiting polls again) instead of sleeping through its whole `wait`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::{Notify, futures::OwnedNotified};
use uuid::Uuid;

type Waiters = Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>;

/// Registry of requests waiting for jobs to finish.
#[derive(Clone, Default)]
pub struct JobWaiter {
    waiters: Waiters,
}

/// A registration; dropping it unregisters.
pub struct Waiting {
    job_id: Uuid,
    // Created at registration: it receives every announcement from then on, even before it is
    // first polled, so nothing between "register" and "wait" is missed.
    notified: Option<OwnedNotified>,
    waiters: Waiters,
}

impl Waiting {
    /// Waits until the job is announced or `timeout` passes.
    pub async fn wait(&mut self, timeout: Duration) {
        if let Some(notified) = self.notified.take() {
            // A timeout is a normal outcome: the caller re-reads the row either way.
            let _ = tokio::time::timeout(timeout, notified).await;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Ok(mut map) = self.waiters.lock() {
            // Remove the entry only when no other request for the same job still holds it.
            self.notified = None;
            if map
                .get(&self.job_id)
                .is_some_and(|n| Arc::strong_count(n) <= 1)
            {
                map.remove(&self.job_id);
            }
        }
    }
}

impl JobWaiter {
    /// Starts the subscription task on `channel`, subscribing through `client` (the process's
    /// Redis client, so its TLS settings apply).
    pub fn start(client: redis::Client, channel: String) -> Self {
        let waiter = Self::default();
        let waiters = waiter.waiters.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = subscribe(&client, &channel, &waiters).await {
                    tracing::warn!(error.message = %e, "job completion subscription lost; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        waiter
    }

    /// Registers interest in `job_id`. Register before reading the job's state, so an
    /// announcement between the read and the wait is not missed.
    pub fn register(&self, job_id: Uuid) -> Waiting {
        let notify = match self.waiters.lock() {
            Ok(mut map) => map.entry(job_id).or_default().clone(),
            // A poisoned lock only means another request panicked; waiting still times out.
            Err(_) => Arc::new(Notify::new()),
        };
        let notified = Some(notify.notified_owned());
        Waiting {
            job_id,
            notified,
            waiters: self.waiters.clone(),
        }
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
    waiters: &Waiters,
) -> redis::RedisResult<()> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    wake_all(waiters);
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        let Ok(job_id) = payload.parse::<Uuid>() else {
            continue;
        };
        let notify = waiters
            .lock()
            .ok()
            .and_then(|map| map.get(&job_id).cloned());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
    Ok(())
}

/// Wakes every registered request (see the module comment).
fn wake_all(waiters: &Waiters) {
    let all: Vec<Arc<Notify>> = waiters
        .lock()
        .map(|map| map.values().cloned().collect())
        .unwrap_or_default();
    for notify in all {
        notify.notify_waiters();
    }
}
