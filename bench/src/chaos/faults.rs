//! The fault timeline: each fault at its own moment of the load, each recorded with the window
//! it lasted (from the first blow until the thing hit was back).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    services::{Fleet, Postgres, Redis},
    timeline::Timeline,
};

/// The faults, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// SIGKILL worker-1; a supervisor starts it again a few seconds later.
    KillWorker,
    /// `FLUSHDB` on the drill's Redis: queues, stock gate, leader lock, pub/sub state gone.
    FlushRedis,
    /// Redis stopped and started again on the same port (empty: no persistence).
    RestartRedis,
    /// `pg_ctl stop -m fast`, 2 s down, `pg_ctl start`.
    RestartPostgres,
    /// SIGTERM to the api, wait for its exit, start a new one.
    RestartApi,
}

pub(crate) const ALL: [Kind; 5] = [
    Kind::KillWorker,
    Kind::FlushRedis,
    Kind::RestartRedis,
    Kind::RestartPostgres,
    Kind::RestartApi,
];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::KillWorker => "worker SIGKILL",
            Kind::FlushRedis => "Redis FLUSHDB",
            Kind::RestartRedis => "Redis restart",
            Kind::RestartPostgres => "PostgreSQL restart",
            Kind::RestartApi => "api restart",
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fault {
    pub kind: Kind,
    pub name: &'static str,
    /// Seconds after the load started: the blow, and when the thing hit was back.
    pub start_t: f64,
    pub end_t: f64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub detail: String,
}

/// What the faults act on.
pub(crate) struct Targets {
    pub fleet: Fleet,
    pub redis: Arc<tokio::sync::Mutex<Redis>>,
    pub postgres: Arc<Postgres>,
    pub http: reqwest::Client,
    /// `http://<api>/health/live`.
    pub api_live: String,
    pub timeline: Timeline,
    /// How long the killed worker stays down.
    pub worker_down: Duration,
}

/// Runs each `(seconds after t = 0, fault)` at its moment; `origin` is t = 0.
pub(crate) async fn run(plan: Vec<(f64, Kind)>, origin: Instant, targets: Targets) -> Vec<Fault> {
    let mut done = Vec::new();
    for (at, kind) in plan {
        tokio::time::sleep_until((origin + Duration::from_secs_f64(at)).into()).await;
        let start = Utc::now();
        let start_t = targets.timeline.t();
        let detail = match inject(kind, &targets).await {
            Ok(d) => d,
            Err(e) => {
                let d = format!("FAILED to inject: {e:#}");
                targets.timeline.event(format!("{}: {d}", kind.name()));
                d
            }
        };
        done.push(Fault {
            kind,
            name: kind.name(),
            start_t,
            end_t: targets.timeline.t(),
            start,
            end: Utc::now(),
            detail,
        });
    }
    done
}

async fn inject(kind: Kind, t: &Targets) -> anyhow::Result<String> {
    let tl = &t.timeline;
    match kind {
        Kind::KillWorker => {
            let pid = t
                .fleet
                .kill("worker-1")
                .await
                .context("worker-1 is not running")?;
            tl.event(format!(
                "FAULT {}: SIGKILL worker-1 (pid {pid})",
                kind.name()
            ));
            tokio::time::sleep(t.worker_down).await;
            let new = t.fleet.start("worker-1")?;
            tl.event(format!(
                "worker-1 started again after {:.1} s, as a supervisor would (pid {new})",
                t.worker_down.as_secs_f64()
            ));
            Ok(format!("pid {pid} killed, pid {new} started"))
        }
        Kind::FlushRedis => {
            let url = t.redis.lock().await.url();
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let keys: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
            redis::cmd("FLUSHDB").query_async::<()>(&mut conn).await?;
            tl.event(format!("FAULT {}: {keys} keys deleted", kind.name()));
            Ok(format!("{keys} keys deleted"))
        }
        Kind::RestartRedis => {
            let mut redis = t.redis.lock().await;
            tl.event(format!("FAULT {}: stopping redis-server", kind.name()));
            redis.stop().await;
            tl.event("redis-server stopped; down for 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            redis.start().await?;
            tl.event(format!(
                "redis-server answering again on port {}",
                redis.port
            ));
            Ok("stopped, 1 s down, started empty".into())
        }
        Kind::RestartPostgres => {
            // Down for 2 s, like a managed database's restart or failover, rather than the
            // 0.3 s of a local `pg_ctl restart`, which a pool can hide entirely.
            tl.event(format!("FAULT {}: pg_ctl stop -m fast", kind.name()));
            let started = Instant::now();
            let pg = t.postgres.clone();
            tokio::task::spawn_blocking(move || pg.stop_fast()).await??;
            tl.event("PostgreSQL stopped; down for 2 s");
            tokio::time::sleep(Duration::from_secs(2)).await;
            let pg = t.postgres.clone();
            tokio::task::spawn_blocking(move || pg.start()).await??;
            let took = started.elapsed().as_secs_f64();
            tl.event(format!(
                "PostgreSQL accepting connections again ({took:.2} s after the stop)"
            ));
            Ok(format!("stopped, 2 s down, started: {took:.2} s"))
        }
        Kind::RestartApi => {
            tl.event(format!("FAULT {}: SIGTERM api", kind.name()));
            let started = Instant::now();
            let (pid, status) = t
                .fleet
                .terminate("api", Duration::from_secs(30))
                .await
                .context("the api is not running")?;
            tl.event(format!(
                "api (pid {pid}) exited after {:.2} s: {status}",
                started.elapsed().as_secs_f64()
            ));
            let new = t.fleet.start("api")?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let up = t
                    .http
                    .get(&t.api_live)
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if up {
                    break;
                }
                if Instant::now() >= deadline {
                    anyhow::bail!("the new api (pid {new}) did not answer within 60 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tl.event(format!("new api (pid {new}) answering /health/live"));
            Ok(format!("pid {pid} exited ({status}), pid {new} started"))
        }
    }
}

/// When each fault happens for a load of `secs`: spread evenly, the first after a calm start,
/// the last with load left to watch the recovery (60 s: 8, 18, 28, 38, 48).
pub(crate) fn schedule(secs: f64) -> Vec<(f64, Kind)> {
    let spacing = secs / 6.0;
    ALL.iter()
        .enumerate()
        .map(|(i, k)| (spacing * (0.8 + i as f64), *k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_spreads_the_faults_ten_seconds_apart() {
        let at: Vec<f64> = schedule(60.0).iter().map(|(t, _)| t.round()).collect();
        assert_eq!(at, vec![8.0, 18.0, 28.0, 38.0, 48.0]);
        assert_eq!(schedule(30.0)[0].0.round(), 4.0);
    }
}
