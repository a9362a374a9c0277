//! The drill's clock and its timeline of events (faults, restarts, readiness flips), printed as
//! they happen and again, in order, at the end.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One thing that happened, `t` seconds after the load started (negative: during setup).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    pub t: f64,
    pub at: DateTime<Utc>,
    pub what: String,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    events: Vec<Event>,
}

/// Shared by every task of the drill; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Timeline(Arc<Mutex<Inner>>);

impl Timeline {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(Inner {
            origin: Instant::now(),
            events: Vec::new(),
        })))
    }

    /// t = 0 from now on (the load starts).
    pub(crate) fn start_clock(&self) {
        let mut inner = self.0.lock().expect("timeline lock");
        let now = Instant::now();
        let shift = now.duration_since(inner.origin).as_secs_f64();
        for e in &mut inner.events {
            e.t -= shift;
        }
        inner.origin = now;
    }

    /// Seconds since t = 0.
    pub(crate) fn t(&self) -> f64 {
        self.t_of(Instant::now())
    }

    pub(crate) fn t_of(&self, at: Instant) -> f64 {
        let origin = self.0.lock().expect("timeline lock").origin;
        if at >= origin {
            at.duration_since(origin).as_secs_f64()
        } else {
            -origin.duration_since(at).as_secs_f64()
        }
    }

    /// Records and prints an event.
    pub(crate) fn event(&self, what: impl Into<String>) -> f64 {
        let what = what.into();
        let t = self.t();
        eprintln!("chaos: t={t:7.2}s  {what}");
        self.0.lock().expect("timeline lock").events.push(Event {
            t,
            at: Utc::now(),
            what,
        });
        t
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        let mut events = self.0.lock().expect("timeline lock").events.clone();
        events.sort_by(|a, b| a.t.total_cmp(&b.t));
        events
    }
}
