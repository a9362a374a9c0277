//! Checkout: admission in the api (validation, the stock gate, the job row) and processing on
//! the worker (reservation under row locks, the order snapshot, the PaymentIntent).

mod admit;
mod process;
mod reserve;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use admit::{AdmitError, AdmitRules, Admitted, admit};
pub use process::{CheckoutDeps, ProcessError, ProcessOutcome, process};

/// Attempts before a checkout job gives up (payment-provider outages are retried with backoff).
pub const MAX_ATTEMPTS: i32 = 8;

/// What the checkout job row carries: the cart and address as they were when the buyer
/// confirmed, so later cart edits cannot change an accepted checkout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutPayload {
    /// Buyer's username, for the order snapshot.
    pub buyer_username: String,
    /// Address snapshot (see `AddressRow::snapshot`).
    pub shipping_address: serde_json::Value,
    /// Lines, sorted by listing id.
    pub lines: Vec<CheckoutLine>,
}

/// One cart line taken into checkout.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckoutLine {
    /// The listing.
    pub listing_id: Uuid,
    /// Units.
    pub quantity: i32,
}

impl CheckoutPayload {
    /// (listing, units) pairs, the shape the stock gate takes.
    pub fn units(&self) -> Vec<(Uuid, i32)> {
        self.lines
            .iter()
            .map(|l| (l.listing_id, l.quantity))
            .collect()
    }

    /// The JSON stored in `jobs.payload` (the gate's in-flight count reads `lines` from it).
    pub fn to_json(&self) -> serde_json::Value {
        let lines: Vec<_> = self
            .lines
            .iter()
            .map(|l| serde_json::json!({ "listing_id": l.listing_id, "quantity": l.quantity }))
            .collect();
        serde_json::json!({
            "buyer_username": self.buyer_username,
            "shipping_address": self.shipping_address,
            "lines": lines,
        })
    }
}
