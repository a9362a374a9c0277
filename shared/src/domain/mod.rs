//! Validated domain types and the pure rules that apply to them.

pub mod address;
pub mod cursor;
pub mod listing;
pub mod money;
pub mod status;
pub mod text;
pub mod user;
mod validation;

pub use address::{CountryCode, NewAddress};
pub use listing::{Currency, ListingPatch, ListingSort, NewListing};
pub use status::{
    AddressStatus, ImageFormat, ImagePurpose, ImageStatus, JobStatus, LineStatus, OrderStatus,
};
pub use text::{TextRule, no_control};
pub use user::{Email, NewUser, Password, ProfilePatch, Username};
pub use validation::{FieldError, ValidationErrors};
