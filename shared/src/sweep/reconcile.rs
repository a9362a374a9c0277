//! `reconcile_stock`: sets every stock-gate counter to what Postgres says the gate may admit,
//! and reports the drift it found (counter − truth).
//!
//! The truth is [`available_in_postgres`]: quantity − reserved − units admitted by checkout
//! jobs that have not created their order yet. Only counters that exist are reconciled; a
//! missing one is loaded from the same truth by the next checkout.
//!
//! Live checkouts keep changing counters while this runs, so each counter is read first, the
//! truth computed after, and the new value written only if the counter still holds what was
//! read (compare-and-set in one script); a counter that changed meanwhile is skipped until the
//! next run. What remains is the few milliseconds inside one checkout between its two halves:
//! admission takes units from the gate *before* its job row commits, and a cancellation
//! returns units to the gate *after* its transaction commits. A reconciliation whose read falls
//! into such a gap sets the counter too high by that checkout's units (never too low); the
//! gate then admits a checkout Postgres refuses (`out_of_stock` from the worker, no oversell)
//! until the next run corrects it.

use std::collections::HashMap;

use redis::Script;
use uuid::Uuid;

use super::{BATCH, SweepDeps, SweepError};
use crate::{gate::available_in_postgres, metrics};

/// Listings logged one by one per run at most; the rest only count in the summary.
const LOGGED_DRIFTS: usize = 20;

/// `KEYS[i]` := `ARGV[2i]` if it still holds `ARGV[2i-1]` (an empty new value deletes it).
/// Returns 1 per key that was written, 0 per key that had changed.
const COMPARE_AND_SET: &str = r"
local applied = {}
for i, key in ipairs(KEYS) do
  local expected, new = ARGV[2 * i - 1], ARGV[2 * i]
  if redis.call('GET', key) == expected then
    if new == '' then redis.call('DEL', key) else redis.call('SET', key, new) end
    applied[i] = 1
  else
    applied[i] = 0
  end
end
return applied
";

/// What a reconciliation found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconcileReport {
    /// Counters compared with Postgres.
    pub checked: u64,
    /// Counters that differed and were corrected.
    pub drifted: u64,
    /// Counters a live checkout changed meanwhile, left for the next run.
    pub skipped: u64,
    /// Units by which counters were above the truth (the gate admitted too much).
    pub over_units: i64,
    /// Units by which counters were below the truth (the gate refused sales).
    pub under_units: i64,
}

/// Reconciles every existing gate counter.
#[tracing::instrument(skip_all)]
pub async fn reconcile_stock(deps: &SweepDeps) -> Result<ReconcileReport, SweepError> {
    let keys = counter_keys(deps).await?;
    let mut report = ReconcileReport::default();
    let batch = usize::try_from(BATCH).unwrap_or(500);
    for chunk in keys.chunks(batch) {
        let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
        let keys: Vec<&str> = chunk.iter().map(|(_, key)| key.as_str()).collect();
        // Counter first, truth second: see the module docs for why this order.
        let before: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut deps.redis.clone())
            .await?;
        let truth = available_in_postgres(&deps.pool, &ids).await?;
        reconcile_chunk(deps, &ids, &before, &truth, &mut report).await?;
    }
    metrics::GATE_DRIFT_UNITS.set(["over"], report.over_units);
    metrics::GATE_DRIFT_UNITS.set(["under"], report.under_units);
    for (state, n) in [
        ("checked", report.checked),
        ("drifted", report.drifted),
        ("skipped", report.skipped),
    ] {
        metrics::GATE_LISTINGS.set([state], n);
    }
    let drift_log = if report.drifted > 0 {
        "stock gate drift corrected"
    } else {
        "stock gate reconciled"
    };
    tracing::info!(
        gate.checked = report.checked,
        gate.drifted = report.drifted,
        gate.skipped = report.skipped,
        gate.over_units = report.over_units,
        gate.under_units = report.under_units,
        "{drift_log}"
    );
    Ok(report)
}

async fn reconcile_chunk(
    deps: &SweepDeps,
    ids: &[Uuid],
    before: &[Option<String>],
    truth: &HashMap<Uuid, i64>,
    report: &mut ReconcileReport,
) -> Result<(), SweepError> {
    let gate = deps.gate();
    let script = Script::new(COMPARE_AND_SET);
    let mut invocation = script.prepare_invoke();
    // (listing, counter, target); target None: the listing is gone, the counter goes too.
    let mut planned: Vec<(Uuid, i64, Option<i64>)> = Vec::new();
    for (id, counter) in ids.iter().zip(before) {
        // Gone since the scan, or not a number (never written by the gate): nothing to fix.
        let Some(raw) = counter else { continue };
        let Ok(value) = raw.parse::<i64>() else {
            continue;
        };
        let target = truth.get(id).map(|units| (*units).max(0));
        invocation
            .key(gate.key(*id))
            .arg(raw)
            .arg(target.map(|t| t.to_string()).unwrap_or_default());
        planned.push((*id, value, target));
    }
    if planned.is_empty() {
        return Ok(());
    }
    let applied: Vec<i64> = invocation.invoke_async(&mut deps.redis.clone()).await?;
    for ((id, counter, target), applied) in planned.into_iter().zip(applied) {
        report.checked += 1;
        if applied == 0 {
            report.skipped += 1;
            continue;
        }
        let drift = counter - target.unwrap_or(0);
        if drift == 0 {
            continue;
        }
        report.drifted += 1;
        if drift > 0 {
            report.over_units += drift;
        } else {
            report.under_units -= drift;
        }
        if report.drifted <= LOGGED_DRIFTS as u64 {
            tracing::warn!(
                listing.id = %id,
                gate.counter = counter,
                gate.truth = target.unwrap_or(0),
                gate.drift = drift,
                "stock gate counter drifted"
            );
        }
    }
    Ok(())
}

/// Every gate counter of the deployment, as (listing, key).
async fn counter_keys(deps: &SweepDeps) -> Result<Vec<(Uuid, String)>, SweepError> {
    let prefix = deps.gate().key_prefix();
    let pattern = format!("{}*", glob_escape(&prefix));
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut deps.redis.clone())
            .await?;
        keys.extend(page.into_iter().filter_map(|key| {
            let id = key.strip_prefix(&prefix)?.parse::<Uuid>().ok()?;
            Some((id, key))
        }));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Escapes the characters `SCAN MATCH` treats as a pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
