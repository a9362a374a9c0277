//! SQL, as small named functions over a connection or transaction. No business decisions here
//! beyond what the database enforces.

pub mod addresses;
pub mod admission;
pub mod backlog;
pub mod cart;
pub mod checkout;
pub mod images;
pub mod jobs;
pub mod ledger;
pub mod listings;
pub mod mismatches;
pub mod orders;
pub mod outside;
pub mod settlement;
pub mod sweeps;
pub mod tokens;
pub mod users;
pub mod webhook_events;

/// A database failure, with the cases callers branch on made explicit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// A named unique or check constraint rejected the write.
    #[error("constraint {constraint} violated")]
    Conflict {
        /// The constraint name from the migration, e.g. `users_email_key`.
        constraint: String,
    },
    /// The database cannot be reached or is restarting (a lost connection, a full pool, the
    /// server shutting down): worth retrying shortly, nothing about the request is wrong.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Anything else: bugs, broken invariants.
    #[error(transparent)]
    Unexpected(sqlx::Error),
}

/// Whether `e` says the database is out of reach rather than that the statement failed:
/// I/O and TLS errors, a pool that timed out or closed, and the SQLSTATEs of a lost connection
/// (class 08) or of a server shutting down or starting (57P01, 57P02, 57P03).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() || db.is_check_violation() => {
                match db.constraint() {
                    Some(c) => StoreError::Conflict {
                        constraint: c.to_owned(),
                    },
                    None => StoreError::Unexpected(e),
                }
            }
            _ if is_unavailable(&e) => StoreError::Unavailable(e),
            _ => StoreError::Unexpected(e),
        }
    }
}

impl StoreError {
    /// The violated constraint's name, if this is a conflict.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            StoreError::Conflict { constraint } => Some(constraint),
            _ => None,
        }
    }
}

/// Checks that Postgres answers (readiness probe).
pub async fn ping(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT 1 AS one")
        .fetch_one(pool)
        .await
        .map(|_| ())
}
