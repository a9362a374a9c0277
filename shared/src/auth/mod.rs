//! Authentication: passwords, access tokens, rotating refresh tokens and login throttling.

mod password;
mod service;
mod throttle;
mod tokens;

pub use password::{hash_password, verify_password};
pub use service::{AuthError, Authenticator, TokenPair};
pub use throttle::LoginThrottle;
pub use tokens::{AccessClaims, JwtKeys};
