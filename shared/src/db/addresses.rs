//! Shipping addresses.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

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
    /// `pending`, `verified`, `needs_review`, `invalid`, `failed`.
    pub status: String,
    /// Normalised address from the geocoder.
    pub formatted_address: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Geocoder place id.
    pub place_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
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

const COLUMNS: &str = "id, user_id, line1, line2, city, region, postal_code, country, status,
    formatted_address, latitude, longitude, place_id, created_at";

/// The user's (not deleted) address by id.
#[tracing::instrument(skip_all, fields(address.id = %id))]
pub async fn find_owned(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<AddressRow>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM addresses WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}
