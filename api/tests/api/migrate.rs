//! `api migrate` (the real binary) on a database it may not create: with `DATABASE_CREATE` off it
//! migrates, as a role without `CREATEDB`, the database that role was given, and a missing
//! database is an error naming the setting instead of a `CREATE DATABASE` attempt.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection, postgres::PgConnectOptions};
use test_support::{admin_database_url, process::BinaryProcess};

const TIMEOUT: Duration = Duration::from_secs(60);

/// `postgres://user:password@<test server>/database`.
fn url_as(user: &str, password: &str, database: &str) -> String {
    let admin: PgConnectOptions = admin_database_url().parse().expect("TEST_DATABASE_URL");
    let (host, port) = (admin.get_host(), admin.get_port());
    format!("postgres://{user}:{password}@{host}:{port}/{database}")
}

async fn admin() -> PgConnection {
    PgConnection::connect(&admin_database_url())
        .await
        .expect("connect to test Postgres")
}

/// A login role without `CREATEDB` (nor superuser) and an empty database it owns, as an
/// operator provisions them; both dropped when this is dropped, pass or fail.
struct ProvisionedDatabase {
    name: String,
    url: String,
}

impl ProvisionedDatabase {
    async fn create() -> Self {
        let name = format!("mp_migrate_{}", uuid::Uuid::new_v4().simple());
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut admin = admin().await;
        for sql in [
            format!(
                "CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
            ),
            format!("CREATE DATABASE {name} OWNER {name}"),
        ] {
            admin
                .execute(sqlx::AssertSqlSafe(sql))
                .await
                .expect("provision the role and its database");
        }
        admin.close().await.ok();
        let url = url_as(&name, &password, &name);
        Self { name, url }
    }
}

impl Drop for ProvisionedDatabase {
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
                for sql in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("DROP ROLE IF EXISTS {name}"),
                ] {
                    admin
                        .execute(sqlx::AssertSqlSafe(sql))
                        .await
                        .map_err(std::io::Error::other)?;
                }
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop database and role {}", self.name);
        }
    }
}

fn api_migrate(vars: &[(&str, &str)]) -> BinaryProcess {
    let mut command: Vec<(&str, &str)> = vec![("API_ADDR", "127.0.0.1:0")];
    command.extend_from_slice(vars);
    BinaryProcess::spawn_with_args("api", env!("CARGO_BIN_EXE_api"), &["migrate"], &command)
}

#[tokio::test]
async fn migrate_needs_no_createdb_right_on_a_provisioned_database() {
    let db = ProvisionedDatabase::create().await;
    // The role really cannot create databases, so a CREATE DATABASE would have failed.
    let mut own = PgConnection::connect(&db.url)
        .await
        .expect("connect as the role");
    let refused = own
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {}_other",
            db.name
        )))
        .await
        .expect_err("the role has no CREATEDB");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("42501"),
        "{refused}"
    );

    let mut migrate = api_migrate(&[("DATABASE_URL", &db.url), ("DATABASE_CREATE", "false")]);
    let status = migrate.wait_for_exit(TIMEOUT);

    assert!(status.success(), "{:#?}", migrate.output);
    migrate.logged_message("migrations applied");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut own)
        .await
        .expect("the migrations table");
    assert_eq!(
        applied,
        i64::try_from(shared::MIGRATOR.iter().count()).unwrap()
    );
    let owner: String =
        sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'orders'")
            .fetch_one(&mut own)
            .await
            .expect("the orders table");
    assert_eq!(owner, db.name);
    own.close().await.ok();
}

#[tokio::test]
async fn migrate_refuses_a_missing_database_when_creation_is_off_naming_the_setting() {
    let name = format!("mp_missing_{}", uuid::Uuid::new_v4().simple());
    let admin_url = admin_database_url();
    let (server, _) = admin_url
        .rsplit_once('/')
        .expect("a database in TEST_DATABASE_URL");
    let url = format!("{server}/{name}");
    let explicit: Vec<(&str, &str)> = vec![
        ("APP_ENV", "dev"),
        ("DATABASE_URL", &url),
        ("DATABASE_CREATE", "false"),
    ];
    // Production's default: creation off without saying so.
    let production: Vec<(&str, &str)> = vec![
        ("APP_ENV", "production"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("STRIPE_SECRET_KEY", "sk_live_migrate_test"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_migrate_test"),
        ("OBJECT_STORE_URL", "file:///tmp/marketplace-objects"),
        ("DATABASE_URL", &url),
    ];
    for vars in [explicit, production] {
        let mut migrate = api_migrate(&vars);
        let status = migrate.wait_for_exit(TIMEOUT);

        assert!(!status.success(), "{:#?}", migrate.output);
        assert!(
            migrate.logged("DATABASE_CREATE") && migrate.logged("does not exist"),
            "{:#?}",
            migrate.output
        );
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin().await)
                .await
                .expect("look the database up");
        assert!(!exists, "the database was created anyway");
    }
}
