//! The connections and clients every process works with, opened once by [`Services::connect`]
//! and handed around by reference: the api's state, the worker's job context, the scheduler and
//! the test app all wrap one `Services`, and each flow takes its dependencies from it.

use std::sync::Arc;

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::{
    checkout::CheckoutDeps,
    config::Settings,
    gate::StockGate,
    geocode::{GeocodeDeps, Geocoder},
    images::{ImageDeps, ImageStore},
    payment_events::PaymentDeps,
    payments::Payments,
    queue::JobQueue,
    sweep::SweepDeps,
};

/// Connections, clients and settings of one process. Cheap to clone: every field is a handle
/// to something shared.
#[derive(Clone)]
pub struct Services {
    /// The Postgres pool.
    pub pool: PgPool,
    /// Postgres for the hot-path statements of checkout and payment, which find their rows by
    /// id: with `DATABASE_GENERIC_PLANS` a pool of its own whose statements are planned once per
    /// connection ([`crate::kv::generic_plan_postgres`]); otherwise (and in tests built over a
    /// pool) `pool` itself.
    pub hot_pool: PgPool,
    /// A reconnecting Redis connection; queues, the gate and the limiters are built on it.
    pub redis: ConnectionManager,
    /// The client `redis` was opened from, with the TLS settings: connections of their own
    /// (pub/sub subscriptions) are opened from it, never from the bare URL.
    pub redis_client: redis::Client,
    /// The process settings.
    pub settings: Arc<Settings>,
    /// The producer side of every job queue.
    pub queue: JobQueue,
    /// The Redis stock gate in front of checkout.
    pub gate: StockGate,
    /// The payment provider (Stripe, or development mode).
    pub payments: Payments,
    /// The address geocoder (Google, or none with `GEOCODER=none`).
    pub geocoder: Geocoder,
    /// Where image files are kept.
    pub images: ImageStore,
    /// Bounds the images this process decodes at once.
    pub decode_slots: Arc<tokio::sync::Semaphore>,
}

impl Services {
    /// Connects to Postgres and Redis and builds the clients. A wrong URL, an unreachable
    /// server or an unusable provider setting stops start-up here, not the first request.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let pool = crate::kv::connect_postgres(&settings)
            .await
            .context("Failed to connect to Postgres (DATABASE_URL)")?;
        let mut services = Self::with_pool(pool, settings).await?;
        if services.settings.database_generic_plans {
            services = services.with_generic_plans()?;
        }
        services
            .images
            .verify()
            .await
            .context("The object store cannot be used (OBJECT_STORE_URL, AWS_*)")?;
        Ok(services)
    }

    /// Like [`Services::connect`], for a process that needs Postgres only now and then (the
    /// scheduler, for the leader's backlog metric): the pool opens no connection until one is
    /// asked for, so a replica that never asks holds none, and an unreachable database does
    /// not stop start-up.
    pub async fn connect_lazily(settings: Settings) -> anyhow::Result<Self> {
        let pool = crate::kv::lazy_postgres(&settings).context("Invalid DATABASE_URL")?;
        Self::with_pool(pool, settings).await
    }

    /// Connects to Redis and builds the clients over `pool`, a pool that is already open (the
    /// test app's own database, say).
    pub async fn with_pool(pool: PgPool, settings: Settings) -> anyhow::Result<Self> {
        let redis_client =
            crate::kv::redis_client(&settings.redis_url, settings.redis_ca_cert.as_deref())
                .context("Invalid Redis settings (REDIS_URL, REDIS_CA_CERT)")?;
        let redis = crate::kv::connect_redis(&redis_client)
            .await
            .context("Failed to connect to Redis (REDIS_URL)")?;
        Self::new(pool, redis_client, redis, settings)
    }

    /// Builds the clients over connections that are already open.
    fn new(
        pool: PgPool,
        redis_client: redis::Client,
        redis: ConnectionManager,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        let payments = Payments::from_settings(&settings.stripe)
            .context("Invalid Stripe settings (PAYMENTS, STRIPE_SECRET_KEY, STRIPE_API_BASE)")?;
        tracing::info!(
            payment_mode = payments.mode_name(),
            "payment provider ready"
        );
        let geocoder = Geocoder::from_settings(&settings.geocoder).context(
            "Invalid geocoder settings (GEOCODER, GOOGLE_MAPS_API_KEY, GOOGLE_GEOCODING_URL)",
        )?;
        let images = ImageStore::from_settings(&settings.images.store)
            .context("Invalid object store settings (OBJECT_STORE_URL, OBJECT_STORE_DIR, AWS_*)")?;
        let decode_slots = Arc::new(tokio::sync::Semaphore::new(
            settings.images.decode_concurrency,
        ));
        let prefix = &settings.redis_prefix;
        Ok(Self {
            images,
            decode_slots,
            queue: JobQueue::new(redis.clone(), prefix, &settings.worker),
            gate: StockGate::new(redis.clone(), prefix),
            hot_pool: pool.clone(),
            pool,
            redis,
            redis_client,
            settings: Arc::new(settings),
            payments,
            geocoder,
        })
    }

    /// These services with the hot-path statements on a pool of their own that plans them once
    /// per connection (`DATABASE_GENERIC_PLANS`). The pool connects lazily, up to
    /// `DATABASE_MAX_CONNECTIONS` beside the general pool's.
    fn with_generic_plans(mut self) -> anyhow::Result<Self> {
        self.hot_pool =
            crate::kv::generic_plan_postgres(&self.settings).context("Invalid DATABASE_URL")?;
        Ok(self)
    }

    /// What checkout processing needs.
    pub fn checkout(&self) -> CheckoutDeps {
        CheckoutDeps {
            pool: self.pool.clone(),
            hot_pool: self.hot_pool.clone(),
            redis: self.redis.clone(),
            prefix: self.settings.redis_prefix.clone(),
            gate: self.gate.clone(),
            payments: self.payments.clone(),
            order_ttl: self.settings.order_ttl,
            limits: self.settings.limits,
        }
    }

    /// What geocoding needs. The rate limiter lives in Redis, so every replica shares one
    /// request budget.
    pub fn geocode(&self) -> GeocodeDeps {
        GeocodeDeps::new(
            self.pool.clone(),
            self.redis.clone(),
            &self.settings.redis_prefix,
            self.geocoder.clone(),
            &self.settings.geocoder,
        )
    }

    /// What the payment flows (webhook events, expiry, refunds, reconciliation) need.
    pub fn payment(&self) -> PaymentDeps {
        PaymentDeps {
            pool: self.pool.clone(),
            hot_pool: self.hot_pool.clone(),
            redis: self.redis.clone(),
            prefix: self.settings.redis_prefix.clone(),
            gate: self.gate.clone(),
            payments: self.payments.clone(),
            fee_bps: self.settings.platform_fee_bps,
        }
    }

    /// What the image flows need.
    pub fn images(&self) -> ImageDeps {
        ImageDeps {
            pool: self.pool.clone(),
            redis: self.redis.clone(),
            prefix: self.settings.redis_prefix.clone(),
            queue: self.queue.clone(),
            store: self.images.clone(),
            settings: Arc::new(self.settings.images.clone()),
            decode_slots: self.decode_slots.clone(),
        }
    }

    /// What the periodic sweeps need.
    pub fn sweeps(&self) -> SweepDeps {
        SweepDeps {
            pool: self.pool.clone(),
            redis: self.redis.clone(),
            prefix: self.settings.redis_prefix.clone(),
            worker: self.settings.worker.clone(),
            settings: self.settings.sweeps.clone(),
        }
    }
}
