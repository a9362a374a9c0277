//! Authentication: passwords, access tokens, rotating refresh tokens and login throttling.

mod client_address;
mod password;
mod service;
mod throttle;
mod tokens;

pub use client_address::TrustedProxies;
pub use password::{hash_password, verify_password};
pub use service::{AuthError, Authenticator, TokenPair, account_conflict};
pub use throttle::{LimitedAction, LoginThrottle};
pub use tokens::{AccessClaims, JwtKeys};
