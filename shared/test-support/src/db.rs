//! One database per test, cloned from a template that holds the migrated schema.

use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio::sync::OnceCell;

use crate::admin_database_url;

/// Serialises template creation across test binaries running at the same time.
const TEMPLATE_LOCK_KEY: i64 = 7_243_001;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// URL of `database` on the test server.
fn url_for(database: &str) -> String {
    let admin = admin_database_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{database}")
}

/// The template's name changes whenever a migration changes, so a stale template is never used.
fn template_name() -> String {
    let mut hasher = Sha256::new();
    for m in shared::MIGRATOR.iter() {
        hasher.update(m.version.to_le_bytes());
        hasher.update(&*m.checksum);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("mp_template_{hex}")
}

async fn create_template() -> String {
    let name = template_name();
    let mut admin = PgConnection::connect(&admin_database_url())
        .await
        .expect("connect to test Postgres");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"
        )))
        .await
        .expect("template lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("look up template");
    if !exists {
        // Build under a temporary name and rename when complete, so an interrupted build never
        // leaves a half-migrated template behind.
        let building = format!("{name}_building");
        for sql in [
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building}"),
        ] {
            admin
                .execute(sqlx::AssertSqlSafe(sql))
                .await
                .expect("create template");
        }
        let pool = PgPool::connect(&url_for(&building))
            .await
            .expect("connect to template");
        shared::MIGRATOR.run(&pool).await.expect("migrate template");
        pool.close().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {building} RENAME TO {name}"
            )))
            .await
            .expect("publish template");
    }
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"
        )))
        .await
        .expect("template unlock");
    name
}

/// A private, migrated database for one test. Dropped (forcefully) when this value is dropped.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// Connection URL.
    pub url: String,
    /// Pool onto it.
    pub pool: PgPool,
}

impl TestDb {
    /// Creates a fresh database from the migrated template.
    pub async fn new() -> Self {
        let template = TEMPLATE.get_or_init(create_template).await;
        let name = format!("mp_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_database_url())
            .await
            .expect("connect to test Postgres");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {name} TEMPLATE {template}"
            )))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = url_for(&name);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await
            .expect("connect to test database");
        Self { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: use a private one.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_database_url())
                    .await
                    .map_err(std::io::Error::other)?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}
