//! Shipping addresses: accepted at once (202) and validated by a geocoding job.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use serde_json::{Value, json};
use shared::{
    db::{self, addresses::AddressRow},
    domain::{NewAddress, ValidationErrors, address},
    geocode::{self},
    jobs::{GeocodeAddress, Job as _},
    queue::JobTask,
};
use uuid::Uuid;

use super::Tag;
use crate::{
    AppState,
    error::{ApiError, ErrorCode},
    fields::{Text, text_rule},
    security::BearerAuth,
    statuses::AddressStatus,
};

text_rule!(
    /// The street and number.
    Line1 = address::LINE1
);
text_rule!(
    /// A second address line.
    Line2 = address::LINE2
);
text_rule!(
    /// A city.
    City = address::CITY
);
text_rule!(
    /// A region.
    Region = address::REGION
);
text_rule!(
    /// A postal code.
    PostalCode, |schema| {
        schema.max_length = Some(address::MAX_POSTAL_CODE);
        schema.pattern = Some(address::POSTAL_CODE_PATTERN.to_owned());
    }
);
text_rule!(
    /// An ISO 3166-1 alpha-2 code.
    Country, |schema| {
        schema.enum_items = address::ISO_3166_ALPHA_2.map(Value::from).to_vec();
    }
);

pub struct AddressesApi {
    pub state: AppState,
}

/// A new address, as the buyer typed it.
#[derive(Object)]
struct CreateAddress {
    /// Street and number; 1–200 characters.
    line1: Text<Line1>,
    /// Apartment, suite, ...; up to 200 characters.
    #[oai(nullable)]
    line2: Option<Text<Line2>>,
    /// 1–100 characters.
    city: Text<City>,
    /// State, province or county; up to 100 characters.
    #[oai(nullable)]
    region: Option<Text<Region>>,
    /// 1–20 letters, digits, spaces and hyphens.
    postal_code: Text<PostalCode>,
    /// ISO 3166-1 alpha-2 code, uppercase, e.g. `US`.
    country: Text<Country>,
}

impl TryFrom<CreateAddress> for NewAddress {
    type Error = ValidationErrors;

    fn try_from(b: CreateAddress) -> Result<Self, Self::Error> {
        NewAddress::parse(
            b.line1.as_str(),
            b.line2.as_ref().map(Text::as_str),
            b.city.as_str(),
            b.region.as_ref().map(Text::as_str),
            b.postal_code.as_str(),
            b.country.as_str(),
        )
    }
}

/// A shipping address and what geocoding made of it.
#[derive(Object)]
struct Address {
    id: Uuid,
    status: AddressStatus,
    line1: String,
    #[oai(nullable)]
    line2: Option<String>,
    city: String,
    #[oai(nullable)]
    region: Option<String>,
    postal_code: String,
    country: String,
    /// The geocoder's normalised form.
    #[oai(nullable)]
    formatted_address: Option<String>,
    #[oai(nullable)]
    latitude: Option<f64>,
    #[oai(nullable)]
    longitude: Option<f64>,
    /// The geocoder's place id.
    #[oai(nullable)]
    place_id: Option<String>,
    /// Precision of the coordinates, e.g. `ROOFTOP` or `APPROXIMATE`.
    #[oai(nullable)]
    location_type: Option<String>,
    /// Address components as the geocoder returned them.
    #[oai(nullable)]
    components: Option<Value>,
    /// Why the address is `invalid` or `failed`.
    #[oai(nullable)]
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<AddressRow> for Address {
    fn from(a: AddressRow) -> Self {
        Self {
            id: a.id,
            status: a.status.into(),
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
            formatted_address: a.formatted_address,
            latitude: a.latitude,
            longitude: a.longitude,
            place_id: a.place_id,
            location_type: a.location_type,
            components: a.components,
            error: a.error,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An accepted address and the job validating it.
#[derive(Object)]
struct AddressAccepted {
    /// The address, `pending` until the job finishes.
    address: Address,
    /// The geocoding job.
    job_id: Uuid,
    /// `GET` this URL (optionally with `?wait=<seconds>`) for the job's state.
    status_url: String,
}

/// The caller's addresses, newest first.
#[derive(Object)]
struct AddressList {
    items: Vec<Address>,
}

#[derive(ApiResponse)]
enum Accepted {
    /// Address stored as `pending`; geocoding runs in the background.
    #[oai(status = 202)]
    Address(Json<AddressAccepted>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

impl AddressesApi {
    /// The caller's address; 404 for anyone else's (ids are not disclosed).
    async fn owned(&self, id: Uuid, user_id: Uuid) -> Result<AddressRow, ApiError> {
        let mut conn = self.state.pool.acquire().await?;
        db::addresses::find_owned(&mut conn, id, user_id)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::AddressNotFound))
    }
}

#[OpenApi(prefix_path = "/api/v1/addresses", tag = "Tag::Addresses")]
impl AddressesApi {
    /// Add a shipping address. Answers 202 with the address (`pending`) and a job to poll;
    /// only `verified` addresses can be used at checkout.
    #[oai(path = "/", method = "post", operation_id = "create_address")]
    async fn create(
        &self,
        auth: BearerAuth,
        body: Json<CreateAddress>,
    ) -> Result<Accepted, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let address = NewAddress::try_from(body.0)?;
        let submitted = geocode::submit(&self.state.pool, user.id, &address).await?;
        let job_id = submitted.job.id;
        // The rows are committed: if this push is lost, the sweeper re-pushes the job.
        GeocodeAddress::enqueue_committed(&self.state.queue, JobTask::new(job_id)).await;
        Ok(Accepted::Address(Json(AddressAccepted {
            address: submitted.address.into(),
            job_id,
            status_url: format!("/api/v1/jobs/{job_id}"),
        })))
    }

    /// The caller's addresses, newest first.
    #[oai(path = "/", method = "get", operation_id = "list_addresses")]
    async fn list(&self, auth: BearerAuth) -> Result<Json<AddressList>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let mut conn = self.state.pool.acquire().await?;
        let rows = db::addresses::list_owned(&mut conn, user.id).await?;
        Ok(Json(AddressList {
            items: rows.into_iter().map(Into::into).collect(),
        }))
    }

    /// One of the caller's addresses.
    #[oai(path = "/:id", method = "get", operation_id = "get_address")]
    async fn get(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<Json<Address>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        Ok(Json(self.owned(id.0, user.id).await?.into()))
    }

    /// Delete an address. Orders already placed keep their own copy of it.
    #[oai(path = "/:id", method = "delete", operation_id = "delete_address")]
    async fn delete(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let mut conn = self.state.pool.acquire().await?;
        if !db::addresses::soft_delete(&mut conn, id.0, user.id).await? {
            return Err(ApiError::not_found(ErrorCode::AddressNotFound));
        }
        Ok(NoContent::Done)
    }

    /// Accept the geocoder's partial match: `needs_review` → `verified`. Any other state is a
    /// 409 `address_not_reviewable`.
    #[oai(
        path = "/:id/confirm",
        method = "post",
        operation_id = "confirm_address"
    )]
    async fn confirm(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<Json<Address>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let mut conn = self.state.pool.acquire().await?;
        if let Some(row) = db::addresses::confirm(&mut conn, id.0, user.id).await? {
            return Ok(Json(row.into()));
        }
        drop(conn);
        let current = self.owned(id.0, user.id).await?;
        Err(ApiError::conflict(
            ErrorCode::AddressNotReviewable,
            format!(
                "only an address in needs_review can be confirmed; this one is {}",
                current.status
            ),
            json!({ "status": current.status }),
        ))
    }
}
