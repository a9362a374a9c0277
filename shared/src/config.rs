//! Typed settings read from environment variables (and an optional `.env` file).
//!
//! Every variable has a default that works on a developer machine; a bad value stops start-up
//! with an error naming the variable.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use secrecy::SecretString;

use crate::{
    auth::TrustedProxies,
    domain::money::{self, MoneyLimits},
};

mod images;
mod ops;

pub use images::{ImageSettings, ObjectStoreSettings, StoreLocation};
pub use ops::{SchedulerSettings, SentrySettings, SweepSettings, schedule, schedule_variable};

/// The secret used when `JWT_SECRET` is unset. Only accepted when `APP_ENV` is `dev`.
const DEV_JWT_SECRET: &str = "dev-only-insecure-jwt-secret-change-me";

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid environment variable {name}: {reason}")]
pub struct ConfigError {
    /// The variable name, e.g. `API_ADDR`.
    pub name: &'static str,
    /// Why the value was rejected.
    pub reason: String,
}

/// Which deployment environment we run in; decides whether insecure defaults are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// A developer machine: insecure defaults are allowed.
    Dev,
    /// Anything else: secrets must be set explicitly.
    Production,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production, log shippers).
    Json,
    /// Human-readable lines (local runs).
    Pretty,
}

/// Settings shared by every process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_ENV`: `dev` (default) or `production`.
    pub app_env: AppEnv,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS` (default 10).
    pub database_max_connections: u32,
    /// `DATABASE_GENERIC_PLANS` (true): the hot-path statements of checkout and payment (api:
    /// admission; worker: first delivery, settling a paid order) run on connections of their own
    /// with `plan_cache_mode=force_generic_plan`, planned once per connection instead of on every
    /// execution (`Services::hot_pool`).
    pub database_generic_plans: bool,
    /// `DATABASE_CREATE`: `api migrate` creates the database when it is missing (default true
    /// in dev only). Off, it never issues `CREATE DATABASE`, so it runs as a role without
    /// `CREATEDB` on a database an operator provisioned.
    pub database_create: bool,
    /// `REDIS_URL`; `rediss://` for TLS.
    pub redis_url: String,
    /// `REDIS_CA_CERT` (unset): a PEM file with the CA certificates a `rediss://` server's
    /// certificate is checked against instead of the webpki roots (a private CA).
    pub redis_ca_cert: Option<PathBuf>,
    /// `REDIS_PREFIX`: namespace for every key and queue this deployment owns (default `mp`).
    pub redis_prefix: String,
    /// `API_ADDR`; when it is unset and `PORT` is set (what Heroku-like platforms give a `web`
    /// process), `0.0.0.0:$PORT`; else `127.0.0.1:8080`.
    pub api_addr: SocketAddr,
    /// `RUN_MIGRATIONS`: apply pending migrations when the api starts (default true in dev).
    pub run_migrations: bool,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Token settings.
    pub auth: AuthSettings,
    /// `ORDER_TTL_SECS` (900): how long a pending order holds its reservation.
    pub order_ttl: Duration,
    /// `PLATFORM_FEE_BPS` (1000 = 10 %): the platform's cut of each sale, in basis points.
    pub platform_fee_bps: i64,
    /// Money limits: unit price, line quantity, lines per cart, order total.
    pub limits: MoneyLimits,
    /// `MAX_UNPAID_ORDERS` (3): orders a buyer may hold awaiting payment at once; each holds
    /// stock, so the cap stops one account from keeping a listing reserved.
    pub max_unpaid_orders: i64,
    /// `MAX_BODY_BYTES` (65536): request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// `MAX_CONCURRENT_REQUESTS` (64, 1–100000): requests the api answers at once; the others
    /// wait in arrival order (health checks, metrics and job polls never wait).
    pub max_concurrent_requests: usize,
    /// `REQUEST_QUEUE_TIMEOUT_MS` (10000, 1–600000): how long a request may wait for its turn
    /// before it is answered 503 `unavailable`.
    pub request_queue_timeout: Duration,
    /// `READINESS_TIMEOUT_MS` (500): how long `/health/ready` waits for PostgreSQL and Redis
    /// before answering 503, so a load balancer sees an outage instead of a slow 200.
    pub readiness_timeout: Duration,
    /// `WEB_DIR` (`web/dist`): the built web client the api serves at `/` (`off`: none).
    pub web_dir: Option<std::path::PathBuf>,
    /// `ALLOWED_ORIGINS`: origins of a separately hosted web client allowed to call the API
    /// from a browser (CORS); empty (the default) allows the api's own origin only.
    pub allowed_origins: Vec<String>,
    /// Worker fleet settings.
    pub worker: WorkerSettings,
    /// `METRICS_ADDR`: where worker and scheduler expose metrics (unset = off).
    pub metrics_addr: Option<SocketAddr>,
    /// Error and trace reporting.
    pub sentry: SentrySettings,
    /// Periodic jobs and the scheduler's leader lock.
    pub scheduler: SchedulerSettings,
    /// How far back the sweeps look.
    pub sweeps: SweepSettings,
    /// Payment provider settings.
    pub stripe: StripeSettings,
    /// Address geocoding settings.
    pub geocoder: GeocoderSettings,
    /// Image uploads, processing and storage.
    pub images: ImageSettings,
}

/// Which geocoder validates addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeocoderProvider {
    /// The Google Geocoding API.
    Google,
    /// No geocoding: addresses are accepted as typed (verified, without coordinates), so local
    /// runs can check out without a key.
    None,
}

/// Geocoder settings (read by workers; the api only queues geocoding jobs).
#[derive(Debug, Clone)]
pub struct GeocoderSettings {
    /// `GEOCODER`: `google` or `none`; default `google` when `GOOGLE_MAPS_API_KEY` is set,
    /// `none` otherwise.
    pub provider: GeocoderProvider,
    /// `GOOGLE_MAPS_API_KEY`: required with `GEOCODER=google`.
    pub google_api_key: Option<SecretString>,
    /// `GOOGLE_GEOCODING_URL` (Google's own): tests point it at a local fake.
    pub google_geocoding_url: String,
    /// `GEOCODER_MAX_QPS` (10): requests per second to the geocoder across all worker replicas.
    pub max_qps: u32,
    /// `GEOCODER_TIMEOUT_MS` (5000): how long one geocoder request may take.
    pub timeout: Duration,
}

/// Google's Geocoding API endpoint, used when `GOOGLE_GEOCODING_URL` is unset.
pub const DEFAULT_GOOGLE_GEOCODING_URL: &str = "https://maps.googleapis.com/maps/api/geocode/json";

/// How payments are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMode {
    /// Development payments: no Stripe, no network; the buyer declares the outcome
    /// (`POST /api/v1/dev/orders/{id}/payment`). Refused when `APP_ENV=production`.
    Dev,
    /// Real payments through the Stripe API.
    Stripe,
}

impl PaymentMode {
    /// `dev` or `stripe`, as in `PAYMENTS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Stripe => "stripe",
        }
    }
}

/// Stripe settings.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// `PAYMENTS`: `dev` or `stripe`. Default: `stripe` in production; elsewhere `stripe` when
    /// `STRIPE_SECRET_KEY` is set and `dev` when it is not. Production refuses `dev`.
    pub mode: PaymentMode,
    /// `STRIPE_SECRET_KEY`: required with `PAYMENTS=stripe` (and so in production).
    pub secret_key: Option<SecretString>,
    /// `STRIPE_PUBLISHABLE_KEY` (unset): handed to the web client by `GET /api/v1/config`.
    pub publishable_key: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET`: verifies webhook signatures; required in production.
    pub webhook_secret: Option<SecretString>,
    /// `STRIPE_API_BASE` (Stripe's own): tests point it at a local fake.
    pub api_base: Option<String>,
}

/// Access/refresh token and login-throttling settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `JWT_SECRET` (required outside dev).
    pub jwt_secret: SecretString,
    /// `ACCESS_TOKEN_TTL_SECS` (600).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_SECS` (86400).
    pub refresh_token_ttl: Duration,
    /// `LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP` (5): failed logins for one account from one
    /// address in the window before that address is refused for that account (0 = off).
    pub login_max_failures_per_account_and_ip: u32,
    /// `LOGIN_MAX_FAILURES_PER_ACCOUNT` (50): failed logins for one account from all addresses;
    /// past it only addresses that have not failed for the account may still try, so a
    /// distributed guesser gets one guess per address and the owner is not locked out (0 = off).
    pub login_max_failures_per_account: u32,
    /// `LOGIN_MAX_FAILURES_PER_IP` (20): failed logins from one address, for any accounts, before
    /// the address is refused (0 = off).
    pub login_max_failures_per_ip: u32,
    /// `LOGIN_FAILURE_WINDOW_SECS` (900): how long failures are remembered.
    pub login_failure_window: Duration,
    /// `REGISTER_MAX_PER_IP` (20): sign-ups from one address per `ADDRESS_LIMIT_WINDOW_SECS`
    /// (0 = off).
    pub register_max_per_ip: u32,
    /// `REFRESH_MAX_PER_IP` (300): token refreshes from one address per window (0 = off).
    pub refresh_max_per_ip: u32,
    /// `PASSWORD_CHANGE_MAX_PER_IP` (10): password changes from one address per window
    /// (0 = off).
    pub password_change_max_per_ip: u32,
    /// `ADDRESS_LIMIT_WINDOW_SECS` (900): the window of the three limits above.
    pub address_limit_window: Duration,
    /// `TRUSTED_PROXIES` (none): addresses and CIDR ranges of the proxies whose
    /// `X-Forwarded-For` names the client; everyone else is known by their socket address.
    pub trusted_proxies: TrustedProxies,
    /// `AUTH_CACHE_TTL_MS` (5000, at most 60000; 0 = off): how long the api may accept an access
    /// token's session without reading PostgreSQL (`auth::sessions`): the bound on how long a
    /// revoked token can still work when a revocation announcement is lost.
    pub session_cache_ttl: Duration,
    /// `AUTH_CACHE_MAX_ENTRIES` (10000): sessions the api keeps at most (0 = off).
    pub session_cache_max_entries: usize,
}

/// Settings read by worker processes.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `WORKER_CONCURRENCY` (8): jobs processed at once per queue in one process.
    pub concurrency: usize,
    /// `WORKER_QUEUES` (`all`): comma-separated queue names this replica consumes.
    pub queues: Vec<String>,
    /// `WORKER_POLL_INTERVAL_MS` (200): how often an idle worker polls its queues as a safety
    /// net; pushes wake idle workers at once.
    pub poll_interval: Duration,
    /// `WORKER_SHUTDOWN_TIMEOUT_SECS` (30): how long in-flight jobs may run after SIGTERM.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env file is normal; a malformed one is a mistake worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError {
                    name: ".env",
                    reason: e.to_string(),
                });
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable source; used by tests to avoid touching the process
    /// environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { get: &get };
        let app_env = match env.string("APP_ENV", "dev").as_str() {
            "dev" | "development" | "test" => AppEnv::Dev,
            "production" | "prod" | "staging" => AppEnv::Production,
            other => return Err(env.invalid("APP_ENV", format!("unknown value {other:?}"))),
        };
        let jwt_secret = match (env.optional("JWT_SECRET"), app_env) {
            (Some(s), _) if s.len() < 32 => {
                return Err(env.invalid("JWT_SECRET", "must be at least 32 bytes".into()));
            }
            (Some(s), _) => s,
            (None, AppEnv::Dev) => DEV_JWT_SECRET.to_owned(),
            (None, AppEnv::Production) => return Err(env.required_in_production("JWT_SECRET")),
        };
        let log_format = match env.optional("LOG_FORMAT").as_deref() {
            None => match app_env {
                AppEnv::Dev => LogFormat::Pretty,
                AppEnv::Production => LogFormat::Json,
            },
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(env.invalid(
                    "LOG_FORMAT",
                    format!("expected json or pretty, got {other:?}"),
                ));
            }
        };
        let (redis_url, redis_ca_cert) = redis_target(&env)?;
        let queues = env
            .string("WORKER_QUEUES", "all")
            .split(',')
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
            .collect();
        Ok(Settings {
            app_env,
            database_url: env.string(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/marketplace",
            ),
            database_max_connections: env.parse("DATABASE_MAX_CONNECTIONS", 10)?,
            database_generic_plans: env.parse("DATABASE_GENERIC_PLANS", true)?,
            database_create: env.parse("DATABASE_CREATE", app_env == AppEnv::Dev)?,
            redis_url,
            redis_ca_cert,
            redis_prefix: env.string("REDIS_PREFIX", "mp"),
            api_addr: api_addr(&env)?,
            run_migrations: env.parse("RUN_MIGRATIONS", app_env == AppEnv::Dev)?,
            log_format,
            auth: AuthSettings {
                jwt_secret: SecretString::from(jwt_secret),
                access_token_ttl: env.secs("ACCESS_TOKEN_TTL_SECS", 600)?,
                refresh_token_ttl: env.secs("REFRESH_TOKEN_TTL_SECS", 86_400)?,
                login_max_failures_per_account_and_ip: env
                    .parse("LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP", 5)?,
                login_max_failures_per_account: env.parse("LOGIN_MAX_FAILURES_PER_ACCOUNT", 50)?,
                login_max_failures_per_ip: env.parse("LOGIN_MAX_FAILURES_PER_IP", 20)?,
                login_failure_window: env.secs("LOGIN_FAILURE_WINDOW_SECS", 900)?,
                register_max_per_ip: env.parse("REGISTER_MAX_PER_IP", 20)?,
                refresh_max_per_ip: env.parse("REFRESH_MAX_PER_IP", 300)?,
                password_change_max_per_ip: env.parse("PASSWORD_CHANGE_MAX_PER_IP", 10)?,
                address_limit_window: env.secs("ADDRESS_LIMIT_WINDOW_SECS", 900)?,
                session_cache_ttl: Duration::from_millis(env.bounded(
                    "AUTH_CACHE_TTL_MS",
                    5_000,
                    0,
                    60_000,
                )?),
                session_cache_max_entries: env.parse("AUTH_CACHE_MAX_ENTRIES", 10_000)?,
                trusted_proxies: TrustedProxies::parse(&env.string("TRUSTED_PROXIES", ""))
                    .map_err(|entry| {
                        env.invalid(
                            "TRUSTED_PROXIES",
                            format!("{entry:?} is not an IP address or CIDR range"),
                        )
                    })?,
            },
            order_ttl: env.secs("ORDER_TTL_SECS", 900)?,
            platform_fee_bps: match env.parse("PLATFORM_FEE_BPS", 1000)? {
                bps @ 0..=10_000 => bps,
                _ => {
                    return Err(
                        env.invalid("PLATFORM_FEE_BPS", "must be between 0 and 10000".into())
                    );
                }
            },
            limits: money_limits(&env)?,
            max_unpaid_orders: env.bounded("MAX_UNPAID_ORDERS", 3, 1, 1_000)?,
            max_body_bytes: env.parse("MAX_BODY_BYTES", 64 * 1024)?,
            max_concurrent_requests: env.bounded("MAX_CONCURRENT_REQUESTS", 64, 1, 100_000)?,
            request_queue_timeout: Duration::from_millis(env.bounded(
                "REQUEST_QUEUE_TIMEOUT_MS",
                10_000,
                1,
                600_000,
            )?),
            readiness_timeout: Duration::from_millis(env.bounded(
                "READINESS_TIMEOUT_MS",
                500,
                1,
                60_000,
            )?),
            web_dir: match env.string("WEB_DIR", "web/dist").trim() {
                "" | "off" => None,
                dir => Some(dir.into()),
            },
            allowed_origins: allowed_origins(&env)?,
            worker: WorkerSettings {
                concurrency: env.parse("WORKER_CONCURRENCY", 8)?,
                queues,
                poll_interval: Duration::from_millis(env.parse("WORKER_POLL_INTERVAL_MS", 200)?),
                shutdown_timeout: env.secs("WORKER_SHUTDOWN_TIMEOUT_SECS", 30)?,
            },
            stripe: stripe_settings(&env, app_env)?,
            geocoder: geocoder_settings(&env)?,
            images: images::image_settings(&env, app_env)?,
            sentry: ops::sentry_settings(&env, app_env)?,
            scheduler: ops::scheduler_settings(&env)?,
            sweeps: ops::sweep_settings(&env)?,
            metrics_addr: env
                .optional("METRICS_ADDR")
                .map(|v| {
                    v.parse()
                        .map_err(|e| env.invalid("METRICS_ADDR", format!("{e}")))
                })
                .transpose()?,
        })
    }
}

/// `API_ADDR` wins; without it a platform's `PORT` is served on every interface (the platform's
/// router connects from outside the container); without either, loopback port 8080.
fn api_addr<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<SocketAddr, ConfigError> {
    const DEFAULT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
    if env.optional("API_ADDR").is_some() || env.optional("PORT").is_none() {
        return env.parse("API_ADDR", DEFAULT);
    }
    // PORT is set here, so the default is never used.
    let port: u16 = env.bounded("PORT", 8080, 1, u16::MAX)?;
    Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

/// `REDIS_URL` and `REDIS_CA_CERT`. A CA file with a plain `redis://` URL is refused: the
/// operator meant TLS and would silently get none.
fn redis_target<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<(String, Option<PathBuf>), ConfigError> {
    let url = env.string("REDIS_URL", "redis://127.0.0.1:6379");
    let ca_cert = env.optional("REDIS_CA_CERT").map(PathBuf::from);
    let tls = ["rediss://", "valkeys://"]
        .iter()
        .any(|scheme| url.trim_start().starts_with(scheme));
    if ca_cert.is_some() && !tls {
        return Err(env.invalid(
            "REDIS_CA_CERT",
            "only used with a rediss:// REDIS_URL (TLS)".into(),
        ));
    }
    Ok((url, ca_cert))
}

/// `ALLOWED_ORIGINS`: comma-separated `scheme://host[:port]` origins (no path, no `*`: a wildcard
/// with credentials is what CORS exists to prevent).
fn allowed_origins<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<Vec<String>, ConfigError> {
    let raw = env.string("ALLOWED_ORIGINS", "");
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            match host {
                Some(host) if !host.is_empty() && !host.contains(['/', '*', ' ']) => {
                    Ok(origin.to_owned())
                }
                _ => Err(env.invalid(
                    "ALLOWED_ORIGINS",
                    format!("{origin:?} is not an origin like https://shop.example.com"),
                )),
            }
        })
        .collect()
}

/// `MAX_UNIT_PRICE_CENTS`, `MAX_LINE_QUANTITY`, `MAX_CART_LINES`, `MAX_ORDER_TOTAL_CENTS`: each
/// at least 1 and at most the hard ceiling (Stripe's maximum charge, the database's line CHECK).
fn money_limits<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<MoneyLimits, ConfigError> {
    let defaults = MoneyLimits::default();
    let max_order_total_cents = env.bounded(
        "MAX_ORDER_TOTAL_CENTS",
        defaults.max_order_total_cents,
        1,
        money::STRIPE_MAX_CHARGE,
    )?;
    Ok(MoneyLimits {
        max_unit_price_cents: env.bounded(
            "MAX_UNIT_PRICE_CENTS",
            defaults.max_unit_price_cents.min(max_order_total_cents),
            1,
            max_order_total_cents,
        )?,
        max_line_quantity: env.bounded(
            "MAX_LINE_QUANTITY",
            defaults.max_line_quantity,
            1,
            money::MAX_LINE_QUANTITY_CEILING,
        )?,
        max_cart_lines: env.bounded("MAX_CART_LINES", defaults.max_cart_lines, 1, 1_000)?,
        max_order_total_cents,
    })
}

/// `PAYMENTS` and the Stripe keys. Production fails closed: real payments only, and every
/// secret present and not blank. Elsewhere a blank variable counts as unset.
fn stripe_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    app_env: AppEnv,
) -> Result<StripeSettings, ConfigError> {
    let secret_key = env.optional("STRIPE_SECRET_KEY");
    let webhook_secret = env.optional("STRIPE_WEBHOOK_SECRET");
    let mode = match (env.optional("PAYMENTS").as_deref().map(str::trim), app_env) {
        (Some("stripe"), _) | (None, AppEnv::Production) => PaymentMode::Stripe,
        (Some("dev"), AppEnv::Production) => {
            return Err(env.invalid(
                "PAYMENTS",
                "development payments are refused when APP_ENV=production".into(),
            ));
        }
        (Some("dev"), AppEnv::Dev) => PaymentMode::Dev,
        (None, AppEnv::Dev) if secret_key.is_some() => PaymentMode::Stripe,
        (None, AppEnv::Dev) => PaymentMode::Dev,
        (Some(other), _) => {
            return Err(env.invalid("PAYMENTS", format!("expected dev or stripe, got {other:?}")));
        }
    };
    if app_env == AppEnv::Production {
        for (name, value) in [
            ("STRIPE_SECRET_KEY", &secret_key),
            ("STRIPE_WEBHOOK_SECRET", &webhook_secret),
        ] {
            if value.is_none() {
                return Err(env.required_in_production(name));
            }
        }
    }
    if mode == PaymentMode::Stripe && secret_key.is_none() {
        return Err(env.invalid(
            "STRIPE_SECRET_KEY",
            "required with PAYMENTS=stripe (missing or blank)".into(),
        ));
    }
    Ok(StripeSettings {
        mode,
        // Development payments never talk to Stripe, whatever keys are lying around.
        secret_key: secret_key
            .filter(|_| mode == PaymentMode::Stripe)
            .map(SecretString::from),
        publishable_key: env.optional("STRIPE_PUBLISHABLE_KEY"),
        webhook_secret: webhook_secret.map(SecretString::from),
        api_base: env.optional("STRIPE_API_BASE"),
    })
}

/// `GEOCODER` and friends. Choosing Google without a key is refused rather than silently
/// degraded to `none`; a key without `GEOCODER` means Google.
fn geocoder_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<GeocoderSettings, ConfigError> {
    let google_api_key = env.optional("GOOGLE_MAPS_API_KEY");
    let provider = match env.optional("GEOCODER").as_deref().map(str::trim) {
        None if google_api_key.is_some() => GeocoderProvider::Google,
        None | Some("none") => GeocoderProvider::None,
        Some("google") if google_api_key.is_some() => GeocoderProvider::Google,
        Some("google") => {
            return Err(env.invalid(
                "GOOGLE_MAPS_API_KEY",
                "required when GEOCODER=google".into(),
            ));
        }
        Some(other) => {
            return Err(env.invalid(
                "GEOCODER",
                format!("expected google or none, got {other:?}"),
            ));
        }
    };
    let max_qps: u32 = env.parse("GEOCODER_MAX_QPS", 10)?;
    if max_qps == 0 {
        return Err(env.invalid("GEOCODER_MAX_QPS", "must be greater than zero".into()));
    }
    let timeout_ms: u64 = env.parse("GEOCODER_TIMEOUT_MS", 5_000)?;
    if timeout_ms == 0 {
        return Err(env.invalid("GEOCODER_TIMEOUT_MS", "must be greater than zero".into()));
    }
    Ok(GeocoderSettings {
        provider,
        google_api_key: google_api_key.map(SecretString::from),
        google_geocoding_url: env.string("GOOGLE_GEOCODING_URL", DEFAULT_GOOGLE_GEOCODING_URL),
        max_qps,
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// Small helpers that turn lookups into typed values with errors naming the variable.
struct Env<'a, F: Fn(&str) -> Option<String>> {
    get: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| self.invalid(name, format!("{v:?}: {e}"))),
        }
    }

    fn bounded<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse(name, default)?;
        if value < min || value > max {
            return Err(self.invalid(name, format!("must be between {min} and {max}")));
        }
        Ok(value)
    }

    fn secs(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse(name, default)?;
        if secs == 0 {
            return Err(self.invalid(name, "must be greater than zero".into()));
        }
        Ok(Duration::from_secs(secs))
    }

    fn invalid(&self, name: &'static str, reason: String) -> ConfigError {
        ConfigError { name, reason }
    }

    fn required_in_production(&self, name: &'static str) -> ConfigError {
        self.invalid(
            name,
            "required when APP_ENV=production (missing or blank)".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.api_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.auth.access_token_ttl, Duration::from_secs(600));
        assert_eq!(s.order_ttl, Duration::from_secs(900));
        assert_eq!(s.worker.queues, vec!["all".to_string()]);
    }

    #[test]
    fn money_limits_default_to_stripes_maximum_and_cannot_exceed_it() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.limits, MoneyLimits::default());
        assert_eq!(s.max_unpaid_orders, 3);
        let err = settings(&[("MAX_ORDER_TOTAL_CENTS", "100000000")]).unwrap_err();
        assert_eq!(err.name, "MAX_ORDER_TOTAL_CENTS");
        let err = settings(&[
            ("MAX_ORDER_TOTAL_CENTS", "500"),
            ("MAX_UNIT_PRICE_CENTS", "501"),
        ])
        .unwrap_err();
        assert_eq!(err.name, "MAX_UNIT_PRICE_CENTS");
        let lowered = settings(&[("MAX_ORDER_TOTAL_CENTS", "500")]).unwrap();
        assert_eq!(lowered.limits.max_unit_price_cents, 500);
        assert_eq!(
            settings(&[("MAX_CART_LINES", "0")]).unwrap_err().name,
            "MAX_CART_LINES"
        );
        assert_eq!(
            settings(&[("MAX_UNPAID_ORDERS", "-1")]).unwrap_err().name,
            "MAX_UNPAID_ORDERS"
        );
    }

    #[test]
    fn the_web_client_directory_and_cors_origins_are_read_and_checked() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.web_dir.as_deref(), Some(std::path::Path::new("web/dist")));
        assert!(s.allowed_origins.is_empty());
        assert_eq!(settings(&[("WEB_DIR", "off")]).unwrap().web_dir, None);
        let s = settings(&[(
            "ALLOWED_ORIGINS",
            "https://shop.example.com, http://localhost:5173",
        )])
        .unwrap();
        assert_eq!(
            s.allowed_origins,
            ["https://shop.example.com", "http://localhost:5173"]
        );
        for bad in [
            "*",
            "https://*.example.com",
            "shop.example.com",
            "https://shop.example.com/app",
            "https://",
        ] {
            let err = settings(&[("ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert_eq!(err.name, "ALLOWED_ORIGINS", "{bad}");
        }
    }

    #[test]
    fn databases_are_created_by_default_in_dev_only() {
        assert!(settings(&[]).unwrap().database_create);
        assert!(!settings(&PRODUCTION).unwrap().database_create);
        assert!(
            !settings(&[("DATABASE_CREATE", "false")])
                .unwrap()
                .database_create
        );
        let mut vars = PRODUCTION.to_vec();
        vars.push(("DATABASE_CREATE", "true"));
        assert!(settings(&vars).unwrap().database_create);
        let err = settings(&[("DATABASE_CREATE", "yes")]).unwrap_err();
        assert_eq!(err.name, "DATABASE_CREATE");
    }

    #[test]
    fn a_redis_ca_certificate_needs_a_tls_url() {
        assert_eq!(settings(&[]).unwrap().redis_ca_cert, None);
        let tls = settings(&[
            ("REDIS_URL", "rediss://redis.internal:6380"),
            ("REDIS_CA_CERT", "/etc/redis/ca.pem"),
        ])
        .unwrap();
        assert_eq!(
            tls.redis_ca_cert.as_deref(),
            Some(std::path::Path::new("/etc/redis/ca.pem"))
        );
        let err = settings(&[("REDIS_CA_CERT", "/etc/redis/ca.pem")]).unwrap_err();
        assert_eq!(err.name, "REDIS_CA_CERT");
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let err = settings(&[("API_ADDR", "not-an-address")]).unwrap_err();
        assert_eq!(err.name, "API_ADDR");
        let err = settings(&[("ORDER_TTL_SECS", "0")]).unwrap_err();
        assert_eq!(err.name, "ORDER_TTL_SECS");
    }

    #[test]
    fn a_platform_port_is_served_on_every_interface_unless_api_addr_is_set() {
        let s = settings(&[("PORT", "5000")]).unwrap();
        assert_eq!(s.api_addr.to_string(), "0.0.0.0:5000");
        let s = settings(&[("PORT", " 5000 "), ("API_ADDR", "")]).unwrap();
        assert_eq!(
            s.api_addr.to_string(),
            "0.0.0.0:5000",
            "a blank API_ADDR is unset"
        );
        let s = settings(&[("PORT", "5000"), ("API_ADDR", "127.0.0.1:9000")]).unwrap();
        assert_eq!(s.api_addr.to_string(), "127.0.0.1:9000");
        let s = settings(&[("PORT", "")]).unwrap();
        assert_eq!(
            s.api_addr.to_string(),
            "127.0.0.1:8080",
            "a blank PORT is unset"
        );
    }

    #[test]
    fn a_bad_port_names_the_variable() {
        for bad in ["http", "0", "-1", "65536", "80.5", "0.0.0.0:80"] {
            let err = settings(&[("PORT", bad)]).unwrap_err();
            assert_eq!(err.name, "PORT", "{bad}");
        }
        // Not read at all when API_ADDR is set.
        let s = settings(&[("PORT", "http"), ("API_ADDR", "127.0.0.1:9000")]).unwrap();
        assert_eq!(s.api_addr.to_string(), "127.0.0.1:9000");
    }

    #[test]
    fn the_geocoder_is_google_with_a_key_and_none_without() {
        let none = settings(&[]).unwrap().geocoder;
        assert_eq!(none.provider, GeocoderProvider::None);
        assert_eq!(none.max_qps, 10);
        assert_eq!(none.timeout, Duration::from_secs(5));
        assert_eq!(none.google_geocoding_url, DEFAULT_GOOGLE_GEOCODING_URL);
        let google = settings(&[("GOOGLE_MAPS_API_KEY", "k")]).unwrap().geocoder;
        assert_eq!(google.provider, GeocoderProvider::Google);
        let off = settings(&[("GEOCODER", "none"), ("GOOGLE_MAPS_API_KEY", "k")]).unwrap();
        assert_eq!(off.geocoder.provider, GeocoderProvider::None);
    }

    #[test]
    fn bad_geocoder_settings_name_the_variable() {
        let err = settings(&[("GEOCODER", "google")]).unwrap_err();
        assert_eq!(err.name, "GOOGLE_MAPS_API_KEY");
        let err = settings(&[("GEOCODER", "bing")]).unwrap_err();
        assert_eq!(err.name, "GEOCODER");
        let err = settings(&[("GEOCODER_MAX_QPS", "0")]).unwrap_err();
        assert_eq!(err.name, "GEOCODER_MAX_QPS");
        let err = settings(&[("GEOCODER_TIMEOUT_MS", "soon")]).unwrap_err();
        assert_eq!(err.name, "GEOCODER_TIMEOUT_MS");
    }

    const PRODUCTION: [(&str, &str); 5] = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("STRIPE_SECRET_KEY", "sk_live_x"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ("OBJECT_STORE_URL", "s3://marketplace-media"),
    ];

    fn production_with(name: &str, value: Option<&str>) -> Result<Settings, ConfigError> {
        let mut vars: Vec<(&str, &str)> = PRODUCTION
            .iter()
            .copied()
            .filter(|(k, _)| *k != name)
            .collect();
        if let Some(value) = value {
            vars.push((name, value));
        }
        settings(&vars)
    }

    #[test]
    fn production_with_every_secret_takes_real_payments() {
        let s = settings(&PRODUCTION).expect("complete production settings");
        assert_eq!(s.stripe.mode, PaymentMode::Stripe);
    }

    #[test]
    fn production_refuses_each_missing_or_blank_secret_by_name() {
        for name in [
            "JWT_SECRET",
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
            "OBJECT_STORE_URL",
        ] {
            for value in [None, Some(""), Some("   ")] {
                let err = production_with(name, value).unwrap_err();
                assert_eq!(err.name, name, "{value:?}");
                assert!(err.reason.contains("missing or blank"), "{err}");
            }
        }
    }

    #[test]
    fn production_refuses_development_payments() {
        let mut vars = PRODUCTION.to_vec();
        vars.push(("PAYMENTS", "dev"));
        assert_eq!(settings(&vars).unwrap_err().name, "PAYMENTS");
    }

    #[test]
    fn outside_production_development_payments_are_the_default_without_a_key() {
        assert_eq!(settings(&[]).unwrap().stripe.mode, PaymentMode::Dev);
        let blank = settings(&[("STRIPE_SECRET_KEY", " ")]).unwrap();
        assert_eq!(blank.stripe.mode, PaymentMode::Dev);
        let keyed = settings(&[("STRIPE_SECRET_KEY", "sk_test_x")]).unwrap();
        assert_eq!(keyed.stripe.mode, PaymentMode::Stripe);
        let chosen = settings(&[("STRIPE_SECRET_KEY", "sk_test_x"), ("PAYMENTS", "dev")]).unwrap();
        assert_eq!(chosen.stripe.mode, PaymentMode::Dev);
        assert!(
            chosen.stripe.secret_key.is_none(),
            "dev mode never uses the key"
        );
        let err = settings(&[("PAYMENTS", "stripe")]).unwrap_err();
        assert_eq!(err.name, "STRIPE_SECRET_KEY");
        assert_eq!(
            settings(&[("PAYMENTS", "free")]).unwrap_err().name,
            "PAYMENTS"
        );
    }
}
