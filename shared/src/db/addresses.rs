//! Shipping addresses. Deletion is soft (`deleted_at`): orders keep their own snapshot, and a
//! geocoding job still in flight finds the row and stops.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{AddressStatus, NewAddress};

/// An address row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AddressRow {
    /// UUIDv7.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Street line.
    pub line1: String,
    /// Second line.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// State/region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Where the address is in its validation.
    pub status: AddressStatus,
    /// Normalised address from the geocoder.
    pub formatted_address: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Geocoder place id.
    pub place_id: Option<String>,
    /// Precision of the coordinates (Google: `ROOFTOP`, `RANGE_INTERPOLATED`, ...).
    pub location_type: Option<String>,
    /// The geocoder's address components, as it sent them.
    pub components: Option<Value>,
    /// Why the address is `invalid` or `failed`.
    pub error: Option<String>,
    /// Soft deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl AddressRow {
    /// The snapshot an order keeps, independent of later edits or deletion.
    pub fn snapshot(&self) -> Value {
        json!({
            "address_id": self.id,
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "region": self.region,
            "postal_code": self.postal_code,
            "country": self.country,
            "formatted_address": self.formatted_address,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "place_id": self.place_id,
        })
    }
}

/// The user's (not deleted) address by id.
#[tracing::instrument(skip_all, fields(address.id = %id))]
pub async fn find_owned(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<AddressRow>, StoreError> {
    Ok(sqlx::query_as!(
        AddressRow,
        r#"SELECT id, user_id, line1, line2, city, region, postal_code, country,
                  status AS "status: AddressStatus", formatted_address, latitude, longitude, place_id,
                  location_type, components, error, deleted_at, created_at, updated_at
           FROM addresses WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"#,
        id,
        user_id
    )
    .fetch_optional(conn)
    .await?)
}

/// Stores a new `pending` address for `user_id`.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn insert(
    conn: &mut PgConnection,
    user_id: Uuid,
    address: &NewAddress,
) -> Result<AddressRow, StoreError> {
    Ok(sqlx::query_as!(
        AddressRow,
        r#"INSERT INTO addresses (id, user_id, line1, line2, city, region, postal_code, country)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, user_id, line1, line2, city, region, postal_code, country,
                  status AS "status: AddressStatus", formatted_address, latitude, longitude, place_id,
                  location_type, components, error, deleted_at, created_at, updated_at"#,
        Uuid::now_v7(),
        user_id,
        &address.line1,
        address.line2.as_deref(),
        &address.city,
        address.region.as_deref(),
        &address.postal_code,
        address.country.as_str()
    )
    .fetch_one(conn)
    .await?)
}

/// How many (not deleted) addresses the user has.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn count_owned(conn: &mut PgConnection, user_id: Uuid) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM addresses WHERE user_id = $1 AND deleted_at IS NULL"#,
        user_id
    )
    .fetch_one(conn)
    .await?)
}

/// The user's (not deleted) addresses, newest first.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn list_owned(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<AddressRow>, StoreError> {
    Ok(sqlx::query_as!(
        AddressRow,
        r#"SELECT id, user_id, line1, line2, city, region, postal_code, country,
                  status AS "status: AddressStatus", formatted_address, latitude, longitude, place_id,
                  location_type, components, error, deleted_at, created_at, updated_at
           FROM addresses WHERE user_id = $1 AND deleted_at IS NULL
           ORDER BY created_at DESC, id DESC"#,
        user_id
    )
    .fetch_all(conn)
    .await?)
}

/// An address by id, deleted or not (for the geocoding job).
#[tracing::instrument(skip_all, fields(address.id = %id))]
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<AddressRow>, StoreError> {
    Ok(sqlx::query_as!(
        AddressRow,
        r#"SELECT id, user_id, line1, line2, city, region, postal_code, country,
                  status AS "status: AddressStatus", formatted_address, latitude, longitude, place_id,
                  location_type, components, error, deleted_at, created_at, updated_at
           FROM addresses WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// Soft-deletes the user's address; `false` when there is no such (undeleted) address.
#[tracing::instrument(skip_all, fields(address.id = %id))]
pub async fn soft_delete(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE addresses SET deleted_at = now()
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
        id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The buyer accepts the geocoder's partial match: `needs_review` → `verified`. `None` when the
/// address is not the user's, is deleted, or is in another state.
#[tracing::instrument(skip_all, fields(address.id = %id))]
pub async fn confirm(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<AddressRow>, StoreError> {
    Ok(sqlx::query_as!(
        AddressRow,
        r#"UPDATE addresses SET status = $3
           WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL AND status = 'needs_review'
           RETURNING id, user_id, line1, line2, city, region, postal_code, country,
                  status AS "status: AddressStatus", formatted_address, latitude, longitude, place_id,
                  location_type, components, error, deleted_at, created_at, updated_at"#,
        id,
        user_id,
        AddressStatus::Verified as AddressStatus
    )
    .fetch_optional(conn)
    .await?)
}

/// The outcome of geocoding, as stored on the address.
#[derive(Debug, Clone)]
pub struct GeocodeUpdate<'a> {
    /// `verified`, `needs_review`, `invalid` or `failed`.
    pub status: AddressStatus,
    /// Normalised address.
    pub formatted_address: Option<&'a str>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Geocoder place id.
    pub place_id: Option<&'a str>,
    /// Precision of the coordinates.
    pub location_type: Option<&'a str>,
    /// Address components.
    pub components: Option<&'a Value>,
    /// Why the address is `invalid` or `failed`.
    pub error: Option<&'a str>,
}

impl GeocodeUpdate<'_> {
    /// An outcome with only a status (no geocoder fields, no error).
    pub fn status(status: AddressStatus) -> Self {
        Self {
            status,
            formatted_address: None,
            latitude: None,
            longitude: None,
            place_id: None,
            location_type: None,
            components: None,
            error: None,
        }
    }
}

/// Records the geocoding outcome on a `pending` address. Returns the updated row, or `None` when
/// the address is no longer pending (an earlier delivery already recorded it).
#[tracing::instrument(skip_all, fields(address.id = %id, address.status = update.status.as_str()))]
pub async fn record_geocode(
    conn: &mut PgConnection,
    id: Uuid,
    update: &GeocodeUpdate<'_>,
) -> Result<Option<AddressRow>, StoreError> {
    Ok(sqlx::query_as!(
        AddressRow,
        r#"UPDATE addresses SET status = $2, formatted_address = $3, latitude = $4, longitude = $5,
                  place_id = $6, location_type = $7, components = $8, error = $9
           WHERE id = $1 AND status = 'pending'
           RETURNING id, user_id, line1, line2, city, region, postal_code, country,
                  status AS "status: AddressStatus", formatted_address, latitude, longitude, place_id,
                  location_type, components, error, deleted_at, created_at, updated_at"#,
        id,
        update.status as AddressStatus,
        update.formatted_address,
        update.latitude,
        update.longitude,
        update.place_id,
        update.location_type,
        update.components,
        update.error
    )
    .fetch_optional(conn)
    .await?)
}
