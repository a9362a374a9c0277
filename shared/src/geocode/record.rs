//! The end of a geocoding run: the address outcome and the job's final state are written in
//! one transaction, then announced to long-polling clients.

use serde_json::json;

use super::{GeocodeAnswer, GeocodeDeps, ProcessError, ProcessOutcome};
use crate::{
    db::{
        self,
        addresses::{AddressRow, GeocodeUpdate},
        jobs::JobRow,
    },
    domain::AddressStatus,
    job_events,
};

/// Shown on an address the geocoder could not find.
const NO_MATCH: &str = "the address could not be found; please check it";

/// How a definitive answer is stored on the address.
pub(super) fn update_for(answer: &GeocodeAnswer) -> GeocodeUpdate<'_> {
    match answer {
        GeocodeAnswer::Match(g) => GeocodeUpdate {
            status: if g.partial_match {
                AddressStatus::NeedsReview
            } else {
                AddressStatus::Verified
            },
            formatted_address: Some(&g.formatted_address),
            latitude: Some(g.latitude),
            longitude: Some(g.longitude),
            place_id: Some(&g.place_id),
            location_type: g.location_type.as_deref(),
            components: Some(&g.components),
            error: None,
        },
        GeocodeAnswer::NoMatch => GeocodeUpdate {
            error: Some(NO_MATCH),
            ..GeocodeUpdate::status(AddressStatus::Invalid)
        },
    }
}

/// Records `update` on the address (if still pending) and succeeds the job, in one transaction.
pub(super) async fn finish(
    deps: &GeocodeDeps,
    job: &JobRow,
    address: &AddressRow,
    update: Option<&GeocodeUpdate<'_>>,
) -> Result<ProcessOutcome, ProcessError> {
    let mut tx = deps.pool.begin().await?;
    let recorded = match update {
        Some(update) => db::addresses::record_geocode(&mut tx, address.id, update).await?,
        None => None,
    };
    let status = recorded.map_or_else(|| address.status, |row| row.status);
    let result = json!({ "address_id": address.id, "status": status });
    db::jobs::succeed(&mut tx, job.id, &result).await?;
    tx.commit().await?;
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(ProcessOutcome::Recorded {
        address_id: address.id,
        status,
    })
}

/// Marks the address `failed` with `message` and fails the job, in one transaction.
pub(super) async fn give_up(
    deps: &GeocodeDeps,
    job: &JobRow,
    address: &AddressRow,
    code: &str,
    message: &str,
) -> Result<ProcessOutcome, ProcessError> {
    let failed = GeocodeUpdate {
        error: Some(message),
        ..GeocodeUpdate::status(AddressStatus::Failed)
    };
    let mut tx = deps.pool.begin().await?;
    db::addresses::record_geocode(&mut tx, address.id, &failed).await?;
    db::jobs::fail(&mut tx, job.id, code, message).await?;
    tx.commit().await?;
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(ProcessOutcome::Failed {
        code: code.to_owned(),
    })
}

/// Fails a job that has no address to update.
pub(super) async fn fail_job(
    deps: &GeocodeDeps,
    job: &JobRow,
    code: &str,
    message: &str,
) -> Result<ProcessOutcome, ProcessError> {
    let mut conn = deps.pool.acquire().await?;
    db::jobs::fail(&mut conn, job.id, code, message).await?;
    drop(conn);
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(ProcessOutcome::Failed {
        code: code.to_owned(),
    })
}
