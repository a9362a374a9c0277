//! Accepting an address in the api: the `pending` address and its geocoding job are written in
//! one transaction, so there is never an address nobody will geocode. The caller pushes the job
//! after the commit.

use sqlx::PgPool;
use uuid::Uuid;

use super::{GeocodePayload, MAX_ATTEMPTS};
use crate::jobs::{GeocodeAddress, Job as _};
use crate::{
    db::{
        self, StoreError,
        addresses::AddressRow,
        jobs::{JobRow, NewJob},
    },
    domain::NewAddress,
};

/// Addresses a user may keep at once. Every new address costs a paid geocoder call, so an
/// account cannot create them without bound.
pub const MAX_ADDRESSES_PER_USER: i64 = 100;

/// Why an address was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The user already has [`MAX_ADDRESSES_PER_USER`] addresses.
    #[error("an account can keep at most {MAX_ADDRESSES_PER_USER} addresses; delete one first")]
    TooManyAddresses,
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SubmitError {
    fn from(e: sqlx::Error) -> Self {
        SubmitError::Store(e.into())
    }
}

/// The stored address and the job that will geocode it.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The `pending` address.
    pub address: AddressRow,
    /// Its `geocode_address` job (`queued`).
    pub job: JobRow,
}

/// Stores `address` for `user_id` as `pending` together with its geocoding job.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn submit(
    pool: &PgPool,
    user_id: Uuid,
    address: &NewAddress,
) -> Result<Submitted, SubmitError> {
    let mut tx = pool.begin().await?;
    if db::addresses::count_owned(&mut tx, user_id).await? >= MAX_ADDRESSES_PER_USER {
        return Err(SubmitError::TooManyAddresses);
    }
    let row = db::addresses::insert(&mut tx, user_id, address).await?;
    let payload = GeocodePayload { address_id: row.id }.to_json();
    let job = db::jobs::insert(
        &mut tx,
        &NewJob {
            kind: GeocodeAddress::NAME,
            owner_id: Some(user_id),
            payload: &payload,
            idempotency_key: None,
            request_fingerprint: None,
            max_attempts: MAX_ATTEMPTS,
        },
    )
    .await?
    // Without an idempotency key the insert cannot hit the uniqueness constraint.
    .ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(Submitted { address: row, job })
}
