//! `bench`: a load generator for the marketplace API (see `bench/run` and `bench --help`).
//!
//! It drives the real HTTP API with many concurrent buyers against servers that are already
//! running, samples the servers' CPU and memory from `/proc`, checks stock integrity in Postgres,
//! and writes one JSON summary per scenario.

mod args;
mod chaos;
mod client;
mod images;
mod load;
mod output;
mod paid;
mod photo;
mod procstat;
mod report;
mod scenario;
mod setup;
mod stats;
mod stripe;
mod timeline;
mod verify;
mod watch;

use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::{AssertSqlSafe, Connection, PgConnection, postgres::PgPoolOptions};

use crate::args::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built with `rustls-no-provider`: without a process default it panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match args::parse(std::env::args().skip(1))? {
        Command::Help => print!("{}", args::USAGE),
        Command::ResetDb { database_url } => reset_db(&database_url).await?,
        Command::WaitReady { api, timeout } => {
            client::Api::new(&api, 1)?.wait_ready(timeout).await?;
        }
        Command::CleanRedis { redis_url, prefix } => clean_redis(&redis_url, &prefix).await?,
        Command::Chaos(args) => {
            if !chaos::run(*args).await? {
                std::process::exit(1);
            }
        }
        Command::Run(run) => {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect(&run.database_url)
                .await
                .with_context(|| format!("failed to connect to {}", run.database_url))?;
            let mut paths = Vec::new();
            for scenario in &run.scenarios {
                paths.push(scenario::run(*scenario, &run, &pool).await?);
            }
            for p in paths {
                println!("summary: {}", p.display());
            }
        }
    }
    Ok(())
}

/// Drops and recreates the database named in `url` (through the `postgres` database).
async fn reset_db(url: &str) -> anyhow::Result<()> {
    let (server, name) = url
        .rsplit_once('/')
        .context("the database URL has no database name")?;
    let name = name.split('?').next().unwrap_or_default();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("refusing to reset database {name:?}: use letters, digits and '_' only");
    }
    let mut conn = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .context("failed to connect to the `postgres` database")?;
    // `name` was checked above to be a plain identifier.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    eprintln!("database {name} recreated");
    Ok(())
}

/// Deletes every key under `prefix` (a bench run's queues and gate counters).
async fn clean_redis(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for chunk in keys.chunks(500) {
        redis::cmd("UNLINK")
            .arg(chunk)
            .query_async::<i64>(&mut conn)
            .await?;
    }
    eprintln!("deleted {} Redis keys under {prefix}", keys.len());
    Ok(())
}
