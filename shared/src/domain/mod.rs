//! Validated domain types and the pure rules that apply to them.

mod listing;
mod user;
mod validation;

pub use listing::{Currency, ListingPatch, ListingSort, NewListing};
pub use user::{Email, NewUser, Password, ProfilePatch, Username};
pub use validation::{FieldError, ValidationErrors};
