//! `sweep_images`: removes what the image flows can leave behind.
//!
//! - Orphaned rows: listing pictures whose listing was purged (`ON DELETE SET NULL`) and
//!   avatars no user has any more. The row is deleted, then its files.
//! - Files without a row: an upload that crashed between writing its original and committing
//!   its row, a deletion that crashed before deleting the files, a user purged with their
//!   images (`ON DELETE CASCADE`). Only folders whose files are all older than
//!   `IMAGE_ORPHAN_GRACE_SECS` are touched, so an upload in flight is never raced; files an
//!   order line keeps stay. The store is walked a page of `MAX_FILES` keys per run, resuming
//!   where the last run ended (kept in Redis), so a large bucket is covered over several runs.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use redis::AsyncCommands as _;
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
pub async fn sweep(deps: &ImageDeps) -> Result<ImageSweepReport, ImageError> {
    sweep_paged(deps, MAX_FILES).await
}

/// One sweep, looking at `page_size` files of the store (the next page after the last run's).
#[tracing::instrument(skip_all)]
pub async fn sweep_paged(
    deps: &ImageDeps,
    page_size: usize,
) -> Result<ImageSweepReport, ImageError> {
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
    let cursor_key = format!("{}:images:sweep_after", deps.prefix);
    let mut redis = deps.redis.clone();
    let after: Option<String> = redis.get(&cursor_key).await?;
    let page = deps
        .store
        .list_page(keys::ROOT, after.as_deref(), page_size)
        .await?;
    // A short page is the end of the walk: the next run starts from the beginning again.
    let next = (page.len() == page_size)
        .then(|| page.last().map(|f| f.key.clone()))
        .flatten();
    let mut folders: BTreeMap<Uuid, bool> = BTreeMap::new();
    for file in page {
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
    match next {
        Some(key) => redis.set::<_, _, ()>(&cursor_key, key).await?,
        None => redis.del::<_, ()>(&cursor_key).await?,
    }
    tracing::info!(
        swept.images = report.orphan_images,
        swept.files = report.orphan_files,
        "orphaned images and files removed"
    );
    Ok(report)
}
