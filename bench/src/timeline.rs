//! The phase over time: requests sent, answered and jobs finished per bucket, and the longest
//! stretch in which jobs were waiting but none finished (a stalled worker shows up here).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::load::Outcome;

/// Bucket width.
const BUCKET: Duration = Duration::from_millis(100);

/// Counts per 100 ms from the first request.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Timeline {
    pub bucket_ms: u64,
    pub sent: Vec<u32>,
    pub answered: Vec<u32>,
    /// Jobs seen in a final state.
    pub finished: Vec<u32>,
    /// Longest time during which at least one accepted job was outstanding and none finished.
    pub longest_stall_ms: f64,
}

fn bump(v: &mut Vec<u32>, from: Instant, at: Instant) {
    let i = (at.saturating_duration_since(from).as_millis() / BUCKET.as_millis()) as usize;
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

/// Builds the timeline of `outcomes`.
pub(crate) fn of(outcomes: &[Outcome]) -> Timeline {
    let Some(first) = outcomes.iter().map(|o| o.sent).min() else {
        return Timeline::default();
    };
    let mut t = Timeline {
        bucket_ms: BUCKET.as_millis() as u64,
        ..Timeline::default()
    };
    // (time, +1 accepted / -1 finished); finishes sort before acceptances at the same instant.
    let mut events: Vec<(Instant, i32)> = Vec::new();
    for o in outcomes {
        bump(&mut t.sent, first, o.sent);
        bump(&mut t.answered, first, o.answered);
        if o.job_id.is_some() {
            events.push((o.answered, 1));
        }
        if let Some(done) = o.finished {
            bump(&mut t.finished, first, done);
            events.push((done, -1));
        }
    }
    let len = t.sent.len().max(t.answered.len()).max(t.finished.len());
    for v in [&mut t.sent, &mut t.answered, &mut t.finished] {
        v.resize(len, 0);
    }
    events.sort();
    let mut outstanding = 0i64;
    let mut progress = first;
    let mut stall = Duration::ZERO;
    for (at, delta) in events {
        if delta < 0 {
            stall = stall.max(at.saturating_duration_since(progress));
            progress = at;
        } else if outstanding == 0 {
            progress = at;
        }
        outstanding += i64::from(delta);
    }
    t.longest_stall_ms = stall.as_secs_f64() * 1000.0;
    t
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn job(t0: Instant, answered_ms: u64, finished_ms: u64) -> Outcome {
        Outcome {
            sent: t0,
            answered: t0 + Duration::from_millis(answered_ms),
            status: 202,
            error_code: None,
            unexpected_body: None,
            job_id: Some(Uuid::nil()),
            finished: Some(t0 + Duration::from_millis(finished_ms)),
            final_status: Some("succeeded".into()),
            final_error_code: None,
        }
    }

    #[test]
    fn a_stall_is_the_longest_wait_with_jobs_outstanding() {
        let t0 = Instant::now();
        // Accepted at 10 and 20, finished at 50 and 450: stalled 400 ms between the two.
        // Then one accepted at 1000 after an idle gap, finished at 1100: 100 ms.
        let t = of(&[job(t0, 10, 50), job(t0, 20, 450), job(t0, 1000, 1100)]);
        assert!((t.longest_stall_ms - 400.0).abs() < 1e-6);
        assert_eq!(t.finished.iter().sum::<u32>(), 3);
        assert_eq!(t.sent.len(), t.finished.len());
        assert_eq!(t.sent[0], 3);
    }
}
