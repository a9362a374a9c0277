//! `sweep_images`: removes what the image flows can leave behind.
//!
//! - Orphaned rows: listing pictures whose listing was purged (`ON DELETE SET NULL`) and
//!   avatars no user has any more. The row is deleted, then its files.
//! - Files without a row: an upload that crashed between writing its original and committing
//!   its row, a deletion that crashed before deleting the files, a user purged with their
//!   images (`ON DELETE CASCADE`). Only folders whose files are all older than
//!   `IMAGE_ORPHAN_GRACE_SECS` are touched, so an upload in flight is never raced; files an
//!   order line keeps stay.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use uuid::Uuid;

use super::{ImageDeps, ImageError, keys, remove};
use crate::db;

/// Rows one run removes at most.
const MAX_ROWS: i64 = 500;
/// Files one run looks at at most (the rest wait for the next run).
const MAX_FILES: usize = 10_000;

/// What a run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageSweepReport {
    /// Orphaned image rows deleted (with their files).
    pub orphan_images: u64,
    /// Files deleted that had no row.
    pub orphan_files: u64,
}

/// One sweep.
#[tracing::instrument(skip_all)]
pub async fn sweep(deps: &ImageDeps) -> Result<ImageSweepReport, ImageError> {
    let grace = deps.settings.orphan_grace;
    let mut report = ImageSweepReport::default();
    let rows = {
        let mut conn = deps.pool.acquire().await?;
        db::images::orphans(&mut conn, grace.as_secs_f64(), MAX_ROWS).await?
    };
    for row in rows {
        let mut conn = deps.pool.acquire().await?;
        if db::images::delete(&mut conn, row.id).await?.is_some() {
            report.orphan_images += 1;
        }
        drop(conn);
        remove::delete_files(deps, row.id).await?;
    }

    let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut folders: BTreeMap<Uuid, bool> = BTreeMap::new();
    for file in deps.store.list_some(keys::ROOT, MAX_FILES).await? {
        if let Some(id) = keys::image_of(&file.key) {
            let old = folders.entry(id).or_insert(true);
            *old &= file.last_modified < cutoff;
        }
    }
    let old: Vec<Uuid> = folders
        .into_iter()
        .filter_map(|(id, old)| old.then_some(id))
        .collect();
    if !old.is_empty() {
        let existing: HashSet<Uuid> = {
            let mut conn = deps.pool.acquire().await?;
            db::images::existing(&mut conn, &old)
                .await?
                .into_iter()
                .collect()
        };
        for id in old.into_iter().filter(|id| !existing.contains(id)) {
            report.orphan_files += remove::delete_files(deps, id).await? as u64;
        }
    }
    tracing::info!(
        swept.images = report.orphan_images,
        swept.files = report.orphan_files,
        "orphaned images and files removed"
    );
    Ok(report)
}
