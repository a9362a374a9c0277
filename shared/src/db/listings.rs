//! Listings: create, read with visibility rules, keyset-paginated search, update, soft delete.

use chrono::{DateTime, Datelike, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{
    ListingPatch, ListingSort, NewListing,
    cursor::{self, InvalidCursor},
};

/// A listing joined with its seller's username.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListingRow {
    /// UUIDv7.
    pub id: Uuid,
    /// Owner.
    pub seller_id: Uuid,
    /// Owner's username (public).
    pub seller_username: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Unit price in minor units.
    pub price_cents: i64,
    /// Lowercase ISO currency.
    pub currency: String,
    /// Units in stock (sold units are removed on payment).
    pub quantity: i32,
    /// Units held by pending orders.
    pub reserved: i32,
    /// Visible to everyone and purchasable.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl ListingRow {
    /// Units a buyer can still take.
    pub fn available(&self) -> i32 {
        self.quantity - self.reserved
    }
}

/// Inserts a listing for `seller_id`.
#[tracing::instrument(skip_all, fields(user.id = %seller_id))]
pub async fn insert(
    conn: &mut PgConnection,
    seller_id: Uuid,
    listing: &NewListing,
) -> Result<ListingRow, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO listings (id, seller_id, title, description, price_cents, currency, quantity)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        seller_id,
        &listing.title,
        &listing.description,
        listing.price_cents,
        listing.currency.as_str(),
        listing.quantity
    )
    .execute(&mut *conn)
    .await?;
    find(conn, id).await?.ok_or(StoreError::NotFound)
}

/// A listing by id regardless of visibility (callers apply the visibility rule).
#[tracing::instrument(skip_all, fields(listing.id = %id))]
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<ListingRow>, StoreError> {
    Ok(sqlx::query_as!(
        ListingRow,
        "SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.description,
                l.price_cents, l.currency, l.quantity, l.reserved, l.is_active, l.created_at, l.updated_at
         FROM listings l JOIN users u ON u.id = l.seller_id
         WHERE l.id = $1",
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// A position in a sorted listing search: the last row's sort key and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingCursor {
    /// After (or before, descending) this creation time and id.
    CreatedAt(DateTime<Utc>, Uuid),
    /// After (or before, descending) this price and id.
    Price(i64, Uuid),
}

impl ListingCursor {
    /// The cursor pointing just past `row` in `sort` order.
    pub fn after(row: &ListingRow, sort: ListingSort) -> Self {
        match sort {
            ListingSort::CreatedAt | ListingSort::CreatedAtDesc => {
                Self::CreatedAt(row.created_at, row.id)
            }
            ListingSort::Price | ListingSort::PriceDesc => Self::Price(row.price_cents, row.id),
        }
    }
}

impl ListingCursor {
    /// An opaque, URL-safe token for clients.
    pub fn encode(&self) -> String {
        cursor::encode(&match self {
            Self::CreatedAt(ts, id) => format!("c:{}:{id}", ts.timestamp_micros()),
            Self::Price(p, id) => format!("p:{p}:{id}"),
        })
    }

    /// Parses a token from [`encode`](Self::encode); it must belong to `sort`, and its key
    /// must be a value the column can hold (a creation time between 1970 and 9999, a positive
    /// price), so a forged one never reaches the database.
    pub fn decode(token: &str, sort: ListingSort) -> Result<Self, InvalidCursor> {
        let (tag, key, id) = cursor::decode(token)?;
        let key: i64 = key.parse().map_err(|_| InvalidCursor)?;
        let by_price = matches!(sort, ListingSort::Price | ListingSort::PriceDesc);
        match (tag.as_str(), by_price) {
            ("c", false) => DateTime::from_timestamp_micros(key)
                .filter(|ts| (1970..=9999).contains(&ts.year()))
                .map(|ts| Self::CreatedAt(ts, id))
                .ok_or(InvalidCursor),
            ("p", true) if key >= 1 => Ok(Self::Price(key, id)),
            _ => Err(InvalidCursor),
        }
    }
}

/// What `GET /listings` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListingQuery {
    /// Every whitespace-separated term must appear in the title, description or seller username.
    pub terms: Vec<String>,
    /// Only this seller's listings (username, case-insensitive).
    pub seller: Option<String>,
    /// Order of results.
    pub sort: ListingSort,
    /// Page size.
    pub limit: i64,
    /// Continue after this position. Must match `sort`.
    pub cursor: Option<ListingCursor>,
    /// The signed-in user: their own inactive listings are included.
    pub viewer: Option<Uuid>,
}

/// Escapes LIKE wildcards so user input matches literally.
fn like_pattern(term: &str) -> String {
    let escaped = term
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// One page of listings, plus whether more rows follow.
#[tracing::instrument(skip_all)]
pub async fn search(
    conn: &mut PgConnection,
    query: &ListingQuery,
) -> Result<(Vec<ListingRow>, bool), StoreError> {
    let patterns: Vec<String> = query.terms.iter().map(|t| like_pattern(t)).collect();
    let (ts, price, id) = match query.cursor {
        Some(ListingCursor::CreatedAt(ts, id)) => (Some(ts), None, Some(id)),
        Some(ListingCursor::Price(p, id)) => (None, Some(p), Some(id)),
        None => (None, None, None),
    };
    // One statement per sort order: the ORDER BY and keyset comparison differ (each matches its
    // index), and a statement per order keeps them static. `$5` is the cursor's sort key.
    let mut rows: Vec<ListingRow> = match query.sort {
        ListingSort::CreatedAt => {
            sqlx::query_as!(
                ListingRow,
                "SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.description,
                        l.price_cents, l.currency, l.quantity, l.reserved, l.is_active, l.created_at,
                        l.updated_at
                 FROM listings l JOIN users u ON u.id = l.seller_id
                 WHERE (l.is_active OR l.seller_id = $1)
                   AND ($2::text IS NULL OR lower(u.username) = lower($2))
                   AND NOT EXISTS (
                       SELECT 1 FROM unnest($3::text[]) AS t(pattern)
                       WHERE NOT (l.title ILIKE t.pattern OR l.description ILIKE t.pattern
                                  OR u.username ILIKE t.pattern))
                   AND ($6::uuid IS NULL OR (l.created_at, l.id) > ($5, $6))
                 ORDER BY l.created_at ASC, l.id ASC
                 LIMIT $4",
                query.viewer as Option<Uuid>,
                query.seller.as_deref(),
                &patterns,
                query.limit + 1,
                ts as Option<DateTime<Utc>>,
                id as Option<Uuid>
            )
            .fetch_all(conn)
            .await?
        }
        ListingSort::CreatedAtDesc => {
            sqlx::query_as!(
                ListingRow,
                "SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.description,
                        l.price_cents, l.currency, l.quantity, l.reserved, l.is_active, l.created_at,
                        l.updated_at
                 FROM listings l JOIN users u ON u.id = l.seller_id
                 WHERE (l.is_active OR l.seller_id = $1)
                   AND ($2::text IS NULL OR lower(u.username) = lower($2))
                   AND NOT EXISTS (
                       SELECT 1 FROM unnest($3::text[]) AS t(pattern)
                       WHERE NOT (l.title ILIKE t.pattern OR l.description ILIKE t.pattern
                                  OR u.username ILIKE t.pattern))
                   AND ($6::uuid IS NULL OR (l.created_at, l.id) < ($5, $6))
                 ORDER BY l.created_at DESC, l.id DESC
                 LIMIT $4",
                query.viewer as Option<Uuid>,
                query.seller.as_deref(),
                &patterns,
                query.limit + 1,
                ts as Option<DateTime<Utc>>,
                id as Option<Uuid>
            )
            .fetch_all(conn)
            .await?
        }
        ListingSort::Price => {
            sqlx::query_as!(
                ListingRow,
                "SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.description,
                        l.price_cents, l.currency, l.quantity, l.reserved, l.is_active, l.created_at,
                        l.updated_at
                 FROM listings l JOIN users u ON u.id = l.seller_id
                 WHERE (l.is_active OR l.seller_id = $1)
                   AND ($2::text IS NULL OR lower(u.username) = lower($2))
                   AND NOT EXISTS (
                       SELECT 1 FROM unnest($3::text[]) AS t(pattern)
                       WHERE NOT (l.title ILIKE t.pattern OR l.description ILIKE t.pattern
                                  OR u.username ILIKE t.pattern))
                   AND ($6::uuid IS NULL OR (l.price_cents, l.id) > ($5, $6))
                 ORDER BY l.price_cents ASC, l.id ASC
                 LIMIT $4",
                query.viewer as Option<Uuid>,
                query.seller.as_deref(),
                &patterns,
                query.limit + 1,
                price as Option<i64>,
                id as Option<Uuid>
            )
            .fetch_all(conn)
            .await?
        }
        ListingSort::PriceDesc => {
            sqlx::query_as!(
                ListingRow,
                "SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.description,
                        l.price_cents, l.currency, l.quantity, l.reserved, l.is_active, l.created_at,
                        l.updated_at
                 FROM listings l JOIN users u ON u.id = l.seller_id
                 WHERE (l.is_active OR l.seller_id = $1)
                   AND ($2::text IS NULL OR lower(u.username) = lower($2))
                   AND NOT EXISTS (
                       SELECT 1 FROM unnest($3::text[]) AS t(pattern)
                       WHERE NOT (l.title ILIKE t.pattern OR l.description ILIKE t.pattern
                                  OR u.username ILIKE t.pattern))
                   AND ($6::uuid IS NULL OR (l.price_cents, l.id) < ($5, $6))
                 ORDER BY l.price_cents DESC, l.id DESC
                 LIMIT $4",
                query.viewer as Option<Uuid>,
                query.seller.as_deref(),
                &patterns,
                query.limit + 1,
                price as Option<i64>,
                id as Option<Uuid>
            )
            .fetch_all(conn)
            .await?
        }
    };
    let has_more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit as usize);
    Ok((rows, has_more))
}

/// Applies a patch. Lowering `quantity` below `reserved` fails with
/// `Conflict { listings_reserved_within_quantity }`.
#[tracing::instrument(skip_all, fields(listing.id = %id))]
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    patch: &ListingPatch,
) -> Result<ListingRow, StoreError> {
    let done = sqlx::query!(
        "UPDATE listings SET
            title = COALESCE($2, title),
            description = COALESCE($3, description),
            price_cents = COALESCE($4, price_cents),
            currency = COALESCE($5, currency),
            quantity = COALESCE($6, quantity),
            is_active = COALESCE($7, is_active),
            deleted_at = CASE WHEN $7 IS NULL THEN deleted_at
                              WHEN $7 THEN NULL
                              ELSE COALESCE(deleted_at, now()) END
         WHERE id = $1",
        id,
        patch.title.as_deref(),
        patch.description.as_deref(),
        patch.price_cents,
        patch.currency.as_ref().map(|c| c.as_str()),
        patch.quantity,
        patch.is_active
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    find(conn, id).await?.ok_or(StoreError::NotFound)
}

/// Soft-deletes (deactivates) a listing; it can be reactivated with a patch.
#[tracing::instrument(skip_all, fields(listing.id = %id))]
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE listings SET is_active = false, deleted_at = COALESCE(deleted_at, now()) WHERE id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What the stock gate may admit per listing according to Postgres (see
/// `gate::available_in_postgres`): active listings only, minus units held by pending orders
/// (`reserved`) and units admitted by checkouts still in the queue. Listings that do not exist
/// are left out.
#[tracing::instrument(skip_all)]
pub async fn available_for_gate(
    db: impl PgExecutor<'_>,
    listings: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    Ok(sqlx::query!(
        r#"SELECT l.id,
                CASE WHEN l.is_active THEN l.quantity - l.reserved - COALESCE((
                    SELECT sum((line->>'quantity')::int)
                    FROM jobs j, jsonb_array_elements(j.payload->'lines') AS line
                    WHERE j.kind = 'checkout' AND j.status IN ('queued', 'running')
                      AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.checkout_job_id = j.id)
                      AND line->>'listing_id' = l.id::text), 0) ELSE 0 END::bigint AS "available!"
         FROM listings l WHERE l.id = ANY($1)"#,
        listings
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.id, r.available))
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_sort() {
        let id = Uuid::now_v7();
        let ts = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let c = ListingCursor::CreatedAt(ts, id);
        assert_eq!(
            ListingCursor::decode(&c.encode(), ListingSort::CreatedAtDesc).unwrap(),
            c
        );
        assert!(ListingCursor::decode(&c.encode(), ListingSort::Price).is_err());
        let p = ListingCursor::Price(1999, id);
        assert_eq!(
            ListingCursor::decode(&p.encode(), ListingSort::PriceDesc).unwrap(),
            p
        );
        assert!(ListingCursor::decode("not base64!", ListingSort::Price).is_err());
    }

    #[test]
    fn forged_cursor_keys_outside_the_columns_range_are_refused() {
        let id = Uuid::now_v7();
        for (raw, sort) in [
            (
                format!("c:-300000000000000000:{id}"),
                ListingSort::CreatedAt,
            ),
            (format!("c:{}:{id}", i64::MAX), ListingSort::CreatedAtDesc),
            (format!("p:-5:{id}"), ListingSort::Price),
            (format!("p:99999999999999999999:{id}"), ListingSort::Price),
            (
                format!("c:1764000000000000:{}", &id.to_string()[..30]),
                ListingSort::CreatedAt,
            ),
        ] {
            let token = cursor::encode(&raw);
            assert_eq!(
                ListingCursor::decode(&token, sort),
                Err(InvalidCursor),
                "{raw}"
            );
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
