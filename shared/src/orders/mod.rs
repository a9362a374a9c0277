//! The life of an order once checkout has placed it (`crate::checkout`): paid or refused by its
//! payment events (`crate::payment_events`), cancelled by its buyer, expired, refunded, shipped,
//! and what its buyer and its sellers see of it.
//!
//! Statuses are [`crate::domain::OrderStatus`] and [`crate::domain::LineStatus`]; every change
//! happens under the order's row lock, with the listings locked in id order, and no network call
//! is made while a lock is held.

mod cancel;
pub mod expire;
pub mod refund;
pub mod ship;
pub mod view;

pub use cancel::{CancelError, cancel};
