//! Paging for list endpoints: the page size every list takes, and the cursor of the next page.

use shared::domain::ValidationErrors;

use crate::fields::{Int, rules::PageLimit};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 20;

/// The page size of a request: `limit`, 1–100, or [`DEFAULT_LIMIT`].
pub fn limit(limit: Option<Int<PageLimit>>) -> Result<i64, ValidationErrors> {
    let limit = limit.map_or(DEFAULT_LIMIT, |l| l.get());
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(ValidationErrors::single(
            "limit",
            "must be between 1 and 100",
        ))
    }
}

/// `next_cursor` of a page: the cursor after its last row when more rows follow, else none.
pub fn next_cursor<T>(
    has_more: bool,
    rows: &[T],
    after: impl FnOnce(&T) -> String,
) -> Option<String> {
    if has_more {
        rows.last().map(after)
    } else {
        None
    }
}
