//! Authentication: passwords, access tokens, rotating refresh tokens, login throttling and the
//! session cache.

mod client_address;
mod password;
mod service;
pub mod sessions;
mod throttle;
mod tokens;

pub use client_address::TrustedProxies;
pub use password::{hash_password, verify_password};
pub use service::{AuthError, Authenticator, TokenPair, account_conflict};
pub use throttle::{LimitedAction, LoginThrottle};
pub use tokens::{AccessClaims, JwtKeys};
