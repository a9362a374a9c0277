//! Validated domain types and the pure rules that apply to them.

mod address;
pub mod cursor;
mod listing;
pub mod money;
mod user;
mod validation;

pub use address::{CountryCode, NewAddress};
pub use listing::{Currency, ListingPatch, ListingSort, NewListing};
pub use user::{Email, NewUser, Password, ProfilePatch, Username};
pub use validation::{FieldError, ValidationErrors, plain_text};
