//! Settings of the operational side: schedules and the leader lock (scheduler), the sweeps
//! (worker) and error reporting (every process).

use std::{str::FromStr, time::Duration};

use cron::Schedule;

use super::{AppEnv, ConfigError, Env};

/// Error and trace reporting to Sentry.
#[derive(Debug, Clone)]
pub struct SentrySettings {
    /// `SENTRY_DSN` (unset = off).
    pub dsn: Option<sentry::types::Dsn>,
    /// `SENTRY_ENVIRONMENT` (`development` in dev, else `production`).
    pub environment: String,
    /// `SENTRY_TRACES_SAMPLE_RATE` (0.1): share of traces started here that are sent; a trace
    /// continued from another process keeps that process's decision.
    pub traces_sample_rate: f32,
}

/// How the scheduler's replicas elect the one that emits ticks. The schedules themselves
/// (`SCHEDULE_<JOB>`) are read by the scheduler from the registered periodic jobs, with
/// [`schedule`].
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// `SCHEDULER_LEADER_TTL_SECS` (10): how long the leader lock outlives its holder's last
    /// renewal; renewed every 3/10 of it, so a dead leader is replaced within 1.3 × this.
    pub leader_ttl: Duration,
}

/// How far back the sweeps look (read by the worker that runs them).
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// `REQUEUE_GRACE_SECS` (20): a job or webhook event still waiting this long after its
    /// last change (and this long past its scheduled retry, if a failed attempt set one), or
    /// `running` with its lease expired this long, is pushed again.
    pub requeue_grace: Duration,
    /// `PURGE_AFTER_DAYS` (30): soft-deleted users and listings are hard-deleted after this.
    pub purge_after: Duration,
    /// `JOB_RETENTION_DAYS` (14): finished `jobs` rows are deleted after this.
    pub job_retention: Duration,
    /// `SESSION_RETENTION_DAYS` (7): a login session (refresh-token family) revoked, or whose
    /// newest token expired, this long ago is deleted by `prune_sessions`.
    pub session_retention: Duration,
    /// `TASK_RETENTION_HOURS` (24): finished apalis task data in Redis is deleted after this.
    /// Shorter than the rows: Postgres is the record, Redis memory is not for history.
    pub task_retention: Duration,
    /// `RECONCILE_PAYMENTS_WINDOW_HOURS` (48): `reconcile_payments` checks the settled orders
    /// changed this recently.
    pub reconcile_payments_window: Duration,
    /// `RECONCILE_PAYMENTS_MAX_ORDERS` (500): orders one `reconcile_payments` run checks at
    /// most (one Stripe request each), newest first.
    pub reconcile_payments_max_orders: i64,
}

/// Seconds in a day, as the multiplier a `Duration` takes.
const DAY: u32 = 24 * 60 * 60;

pub(super) fn sentry_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    app_env: AppEnv,
) -> Result<SentrySettings, ConfigError> {
    let dsn = env
        .optional("SENTRY_DSN")
        .map(|v| {
            sentry::types::Dsn::from_str(v.trim())
                .map_err(|e| env.invalid("SENTRY_DSN", format!("{e}")))
        })
        .transpose()?;
    let default_environment = match app_env {
        AppEnv::Dev => "development",
        AppEnv::Production => "production",
    };
    let traces_sample_rate: f32 = env.parse("SENTRY_TRACES_SAMPLE_RATE", 0.1)?;
    if !(0.0..=1.0).contains(&traces_sample_rate) {
        return Err(env.invalid(
            "SENTRY_TRACES_SAMPLE_RATE",
            "must be between 0 and 1".into(),
        ));
    }
    Ok(SentrySettings {
        dsn,
        environment: env.string("SENTRY_ENVIRONMENT", default_environment),
        traces_sample_rate,
    })
}

pub(super) fn scheduler_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<SchedulerSettings, ConfigError> {
    let leader_ttl = env.secs("SCHEDULER_LEADER_TTL_SECS", 10)?;
    if leader_ttl < Duration::from_secs(2) {
        return Err(env.invalid("SCHEDULER_LEADER_TTL_SECS", "must be at least 2".into()));
    }
    Ok(SchedulerSettings { leader_ttl })
}

pub(super) fn sweep_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<SweepSettings, ConfigError> {
    Ok(SweepSettings {
        requeue_grace: env.secs("REQUEUE_GRACE_SECS", 20)?,
        purge_after: days(env, "PURGE_AFTER_DAYS", 30)?,
        job_retention: days(env, "JOB_RETENTION_DAYS", 14)?,
        session_retention: days(env, "SESSION_RETENTION_DAYS", 7)?,
        task_retention: env.secs("TASK_RETENTION_HOURS", 24)? * 3600,
        reconcile_payments_window: env.secs("RECONCILE_PAYMENTS_WINDOW_HOURS", 48)? * 3600,
        reconcile_payments_max_orders: env.bounded(
            "RECONCILE_PAYMENTS_MAX_ORDERS",
            500,
            1,
            100_000,
        )?,
    })
}

/// The variable that sets the schedule of periodic job `job`: `SCHEDULE_<JOB>`.
pub fn schedule_variable(job: &str) -> String {
    format!("SCHEDULE_{}", job.to_ascii_uppercase())
}

/// The schedule of periodic job `job` from `SCHEDULE_<JOB>` (looked up with `lookup`), else
/// `default`: a cron expression with a seconds field (6 or 7 fields, UTC), or `off` (`None`).
pub fn schedule(
    lookup: impl Fn(&str) -> Option<String>,
    job: &str,
    default: &str,
) -> Result<Option<Schedule>, ConfigError> {
    let name = schedule_variable(job);
    let value = lookup(&name).unwrap_or_else(|| default.to_owned());
    if value.trim() == "off" {
        return Ok(None);
    }
    Schedule::from_str(value.trim())
        .map(Some)
        .map_err(|e| ConfigError {
            // Leaked once per periodic job at start-up, so that the error names the variable
            // like every other setting does.
            name: Box::leak(name.into_boxed_str()),
            reason: format!("{value:?} is not a cron expression with seconds ({e}), nor `off`"),
        })
}

fn days<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    Ok(env.secs(name, default)? * DAY)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::Settings;
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn a_schedule_can_be_switched_off_and_a_bad_one_names_its_variable() {
        let lookup = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let off = schedule(
            lookup(&[("SCHEDULE_PRUNE_JOBS", "off")]),
            "prune_jobs",
            "0 0 * * * *",
        );
        assert!(off.unwrap().is_none());
        let default = schedule(lookup(&[]), "prune_jobs", "0 0 * * * *").unwrap();
        assert!(default.is_some());
        let err = schedule(
            lookup(&[("SCHEDULE_REQUEUE_STALE", "every 30s")]),
            "requeue_stale",
            "*/30 * * * * *",
        )
        .unwrap_err();
        assert_eq!(err.name, "SCHEDULE_REQUEUE_STALE");
        let s = settings(&[]).unwrap().scheduler;
        assert_eq!(s.leader_ttl, Duration::from_secs(10));
    }

    #[test]
    fn sweep_periods_and_sentry_settings_are_read_and_checked() {
        let s = settings(&[("PURGE_AFTER_DAYS", "7"), ("TASK_RETENTION_HOURS", "2")]).unwrap();
        assert_eq!(s.sweeps.purge_after, Duration::from_secs(7 * 86_400));
        assert_eq!(s.sweeps.task_retention, Duration::from_secs(7200));
        assert_eq!(s.sweeps.job_retention, Duration::from_secs(14 * 86_400));
        assert!(s.sentry.dsn.is_none());
        let err = settings(&[("SENTRY_DSN", "not a dsn")]).unwrap_err();
        assert_eq!(err.name, "SENTRY_DSN");
        let err = settings(&[("SENTRY_TRACES_SAMPLE_RATE", "2")]).unwrap_err();
        assert_eq!(err.name, "SENTRY_TRACES_SAMPLE_RATE");
        let ok = settings(&[("SENTRY_DSN", "http://public@127.0.0.1:9/1")]).unwrap();
        assert!(ok.sentry.dsn.is_some());
    }
}
