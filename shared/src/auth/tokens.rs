//! HS256 access tokens and opaque refresh tokens.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: Uuid,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Unique token id.
    pub jti: Uuid,
    /// The user's token version when issued; a bump (password change, deletion) voids the token.
    pub ver: i32,
    /// The session (refresh-token family) it was issued in: logging out revokes the family and
    /// with it every access token of the session. Required: a token from before sessions were
    /// carried is refused, and its client refreshes, which its refresh token still allows.
    pub fam: Uuid,
    /// Always `access`: nothing else is accepted where an access token is expected.
    pub typ: String,
}

/// Signing and verification keys derived from `JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

const ACCESS: &str = "access";

impl JwtKeys {
    /// Keys for HS256 with the given secret.
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        // Only HS256 is accepted: `alg: none` and other algorithms fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
        }
    }

    /// Issues an access token for `user_id` valid for `ttl`.
    pub fn issue_access(
        &self,
        user_id: Uuid,
        version: i32,
        family: Uuid,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id,
            iat: now,
            exp: now + ttl.as_secs() as i64,
            jti: Uuid::new_v4(),
            ver: version,
            fam: family,
            typ: ACCESS.to_owned(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm, expiry and type; returns the claims.
    pub fn verify_access(&self, token: &str) -> Option<AccessClaims> {
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.typ == ACCESS).then_some(data.claims)
    }

    /// Signs arbitrary claims with the same key (tests build expired or mistyped tokens with it).
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }
}

/// A new opaque refresh token (256 random bits, URL-safe) and its SHA-256 for storage.
pub(crate) fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// The stored form of a refresh token.
pub(crate) fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn access_tokens_round_trip_and_reject_other_keys() {
        let k = keys("a-secret-that-is-long-enough-for-hs256");
        let id = Uuid::now_v7();
        let token = k
            .issue_access(id, 3, Uuid::from_u128(5), Duration::from_secs(60))
            .unwrap();
        let claims = k.verify_access(&token).unwrap();
        assert_eq!((claims.sub, claims.ver), (id, 3));
        assert!(
            keys("another-secret-that-is-long-enough!!")
                .verify_access(&token)
                .is_none()
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(ha, hash_refresh_token(&a));
        assert_eq!(ha.len(), 32);
    }
}
