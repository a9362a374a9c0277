//! The measured phase: every buyer checks out at (nearly) the same instant; accepted checkouts are
//! followed to their final state, by long-polling the job over HTTP or by watching Postgres.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{Barrier, Semaphore};
use uuid::Uuid;

use crate::{
    client::{Api, CheckoutAnswer},
    setup::Buyer,
};

/// What happened to one buyer.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub sent: Instant,
    pub answered: Instant,
    /// HTTP status, or 0 when the request failed without an answer.
    pub status: u16,
    pub error_code: Option<String>,
    pub unexpected_body: Option<String>,
    pub job_id: Option<Uuid>,
    /// When the final state was seen.
    pub finished: Option<Instant>,
    /// `succeeded`, `failed`, `timeout:<status>` or `error:<reason>`.
    pub final_status: Option<String>,
    pub final_error_code: Option<String>,
}

/// How to run the phase.
pub(crate) struct Load {
    /// Checkout requests in flight at once; `None` = everyone at once.
    pub concurrency: Option<usize>,
    /// Long-poll jobs over HTTP (otherwise watch Postgres).
    pub poll: bool,
    pub job_timeout: Duration,
}

/// All outcomes, in buyer order.
pub(crate) struct Phase {
    pub outcomes: Vec<Outcome>,
    /// HTTP requests of the phase (checkouts and polls).
    pub requests: u64,
}

/// Opens `n` pooled connections so the measured phase does not pay for TCP handshakes.
pub(crate) async fn warm_up(api: &Api, n: usize) -> anyhow::Result<()> {
    let calls = (0..n).map(|_| api.live());
    futures::future::try_join_all(calls).await?;
    Ok(())
}

async fn one_buyer(
    api: Arc<Api>,
    buyer: (String, Uuid),
    start: Arc<Barrier>,
    limit: Option<Arc<Semaphore>>,
    poll_deadline: Option<Duration>,
) -> Outcome {
    let (token, address) = buyer;
    let key = Uuid::new_v4().to_string();
    start.wait().await;
    let permit = match &limit {
        Some(s) => s.clone().acquire_owned().await.ok(),
        None => None,
    };
    let sent = Instant::now();
    let answer = api
        .checkout(&token, address, &key)
        .await
        .unwrap_or_else(|e| CheckoutAnswer {
            status: 0,
            job_id: None,
            error_code: None,
            unexpected_body: Some(format!("{e:#}")),
        });
    let answered = Instant::now();
    drop(permit);
    let mut outcome = Outcome {
        sent,
        answered,
        status: answer.status,
        error_code: answer.error_code,
        unexpected_body: answer.unexpected_body,
        job_id: answer.job_id,
        finished: None,
        final_status: None,
        final_error_code: None,
    };
    if let (Some(job), Some(limit)) = (answer.job_id, poll_deadline) {
        let done = api.wait_job(&token, job, answered + limit).await;
        outcome.finished = Some(Instant::now());
        outcome.final_status = Some(done.status);
        outcome.final_error_code = done.error_code;
    }
    outcome
}

/// Runs the phase for `buyers`.
pub(crate) async fn run(
    api: &Arc<Api>,
    pool: &PgPool,
    buyers: &[Buyer],
    load: &Load,
) -> anyhow::Result<Phase> {
    let requests_before = api.requests();
    let start = Arc::new(Barrier::new(buyers.len() + 1));
    let limit = load.concurrency.map(|n| Arc::new(Semaphore::new(n)));
    let poll = load.poll.then_some(load.job_timeout);
    let tasks: Vec<_> = buyers
        .iter()
        .map(|b| {
            tokio::spawn(one_buyer(
                api.clone(),
                (b.token.clone(), b.address_id),
                start.clone(),
                limit.clone(),
                poll,
            ))
        })
        .collect();
    // Every task is parked on the barrier: release them together.
    start.wait().await;
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await?);
    }
    if !load.poll {
        watch_in_postgres(pool, &mut outcomes, load.job_timeout).await?;
    }
    Ok(Phase {
        outcomes,
        requests: api.requests() - requests_before,
    })
}

/// `(id, status, error_code, finished_at)` of a job.
type FinalRow = (Uuid, String, Option<String>, Option<DateTime<Utc>>);

/// Without HTTP polling: waits until Postgres shows every accepted job final, then takes each
/// job's `finished_at` (same machine, same clock) as its finish time.
async fn watch_in_postgres(
    pool: &PgPool,
    outcomes: &mut [Outcome],
    timeout: Duration,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = outcomes.iter().filter_map(|o| o.job_id).collect();
    let deadline = Instant::now() + timeout;
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status IN ('succeeded', 'failed')",
        )
        .bind(&ids)
        .fetch_one(pool)
        .await?;
        if done as usize >= ids.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows: Vec<FinalRow> =
        sqlx::query_as("SELECT id, status, error_code, finished_at FROM jobs WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(pool)
            .await?;
    let (now, now_utc) = (Instant::now(), Utc::now());
    let by_id: HashMap<Uuid, _> = rows.into_iter().map(|r| (r.0, r)).collect();
    for o in outcomes.iter_mut() {
        let Some((_, status, code, finished_at)) = o.job_id.and_then(|id| by_id.get(&id)) else {
            continue;
        };
        match finished_at {
            Some(at) if status == "succeeded" || status == "failed" => {
                let ago = (now_utc - *at).to_std().unwrap_or_default();
                o.finished = Some(now.checked_sub(ago).unwrap_or(now));
                o.final_status = Some(status.clone());
                o.final_error_code = code.clone();
            }
            _ => o.final_status = Some(format!("timeout:{status}")),
        }
    }
    Ok(())
}
