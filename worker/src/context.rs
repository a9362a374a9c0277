//! What every job handler receives: connections and settings, opened once per process.

use std::sync::Arc;

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use shared::{
    checkout::CheckoutDeps,
    config::Settings,
    gate::StockGate,
    geocode::{GeocodeDeps, Geocoder},
    payment_events::PaymentDeps,
    payments::Payments,
    queue::JobQueue,
    sweep::SweepDeps,
};
use sqlx::PgPool;

use crate::wake::PushWakeups;

/// Shared state handed to job handlers as `Data<JobContext>`.
///
/// Cheap to clone: the pool and the Redis connection manager are handles to shared
/// connections, and the settings sit behind an `Arc`.
#[derive(Clone)]
pub struct JobContext {
    /// The Postgres pool (domain reads and writes).
    pub pool: PgPool,
    /// A reconnecting Redis connection; also the connection every job queue is built on.
    pub redis: ConnectionManager,
    /// The process settings (queue prefix, worker concurrency, ...).
    pub settings: Arc<Settings>,
    /// The payment provider (Stripe, or development mode without `STRIPE_SECRET_KEY`).
    pub payments: Payments,
    /// The address geocoder (Google, or none with `GEOCODER=none`).
    pub geocoder: Geocoder,
    /// Wake-ups announced by producers after each push, per queue.
    pub wakeups: PushWakeups,
}

impl JobContext {
    /// Connects to Postgres and Redis. Both are needed by every job, so a wrong URL or an
    /// unreachable server stops start-up here instead of failing each job later.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let pool = shared::kv::connect_postgres(&settings)
            .await
            .context("Failed to connect to Postgres (DATABASE_URL)")?;
        let redis = shared::kv::connect_redis(&settings.redis_url)
            .await
            .context("Failed to connect to Redis (REDIS_URL)")?;
        let payments = Payments::from_settings(&settings.stripe)
            .context("Invalid Stripe settings (PAYMENTS, STRIPE_SECRET_KEY, STRIPE_API_BASE)")?;
        tracing::info!(
            payment_mode = payments.mode_name(),
            "payment provider ready"
        );
        let geocoder = Geocoder::from_settings(&settings.geocoder).context(
            "Invalid geocoder settings (GEOCODER, GOOGLE_MAPS_API_KEY, GOOGLE_GEOCODING_URL)",
        )?;
        let queues = shared::jobs::QUEUES
            .iter()
            .map(|job| shared::jobs::queue_name(&settings.redis_prefix, job))
            .collect();
        let wakeups = PushWakeups::start(&settings.redis_url, queues);
        Ok(Self {
            pool,
            redis,
            settings: Arc::new(settings),
            payments,
            geocoder,
            wakeups,
        })
    }

    /// What the checkout job needs, from this context.
    pub fn checkout(&self) -> CheckoutDeps {
        let prefix = &self.settings.redis_prefix;
        CheckoutDeps {
            pool: self.pool.clone(),
            redis: self.redis.clone(),
            prefix: prefix.clone(),
            gate: StockGate::new(self.redis.clone(), prefix),
            payments: self.payments.clone(),
            order_ttl: self.settings.order_ttl,
            limits: self.settings.limits,
        }
    }

    /// What the geocoding job needs, from this context. The rate limiter lives in Redis, so
    /// every replica built this way shares one request budget.
    pub fn geocode(&self) -> GeocodeDeps {
        GeocodeDeps::new(
            self.pool.clone(),
            self.redis.clone(),
            &self.settings.redis_prefix,
            self.geocoder.clone(),
            &self.settings.geocoder,
        )
    }

    /// What the payment jobs (webhook events, expiry, refunds) need, from this context.
    pub fn payment(&self) -> PaymentDeps {
        let prefix = &self.settings.redis_prefix;
        PaymentDeps {
            pool: self.pool.clone(),
            redis: self.redis.clone(),
            prefix: prefix.clone(),
            gate: StockGate::new(self.redis.clone(), prefix),
            payments: self.payments.clone(),
            fee_bps: self.settings.platform_fee_bps,
        }
    }

    /// What the periodic sweeps (reconcile, requeue, purge, prune) need, from this context.
    pub fn sweeps(&self) -> SweepDeps {
        SweepDeps {
            pool: self.pool.clone(),
            redis: self.redis.clone(),
            prefix: self.settings.redis_prefix.clone(),
            worker: self.settings.worker.clone(),
            settings: self.settings.sweeps.clone(),
        }
    }

    /// The producer side of the queues, for jobs that schedule their own retries.
    pub fn queue(&self) -> JobQueue {
        JobQueue::new(
            self.redis.clone(),
            &self.settings.redis_prefix,
            &self.settings.worker,
        )
    }
}
