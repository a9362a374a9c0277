//! Stripe webhook signatures, checked by hand (HMAC-SHA256) instead of through
//! async-stripe-webhook, whose strict event parser rejects validly signed events it cannot map
//! to its own structs.
//!
//! The header looks like `t=1764000000,v1=5257a8…,v1=…,v0=…`: Stripe signs `"{t}.{raw body}"`
//! with the endpoint secret and sends one `v1` signature per active secret (several during a
//! secret rotation). Any matching `v1` is enough; other schemes are ignored.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far the signed timestamp may be from our clock (Stripe's own libraries use 300 s), so a
/// captured request cannot be replayed later.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused. Each is answered with 400 so Stripe shows the delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header has no usable timestamp or no `v1` signature.
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("the Stripe-Signature timestamp is outside the tolerance of {TOLERANCE_SECS} s")]
    Stale,
    /// No `v1` signature matches the body.
    #[error("no signature matches the payload")]
    Mismatch,
}

/// Checks `header` against the raw `payload` with `secret`, at time `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    payload: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value),
            // A signature that is not hex cannot match; skip it rather than fail the others.
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    let signed_at: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // Checked: a timestamp near i64::MIN or MAX must be stale, not an overflow (a panic in a
    // debug build, a wrapped "fresh" difference in a release build).
    let skew = now.checked_sub(signed_at).map(i64::unsigned_abs);
    if skew.is_none_or(|skew| skew > TOLERANCE_SECS.unsigned_abs()) {
        return Err(SignatureError::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    // `verify_slice` compares in constant time.
    if signatures
        .iter()
        .any(|signature| mac.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"whsec_unit_test_secret";
    const NOW: i64 = 1_764_000_000;

    fn sign(secret: &[u8], timestamp: i64, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn a_correct_signature_within_the_tolerance_verifies() {
        let body = br#"{"id": "evt_1",  "type":"payment_intent.succeeded"}"#;
        let header = format!("t={NOW},v1={}", sign(SECRET, NOW, body));
        assert_eq!(verify(SECRET, Some(&header), body, NOW + 299), Ok(()));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_other_schemes_are_ignored() {
        let body = b"{}";
        let header = format!(
            "t={NOW}, v0=abc, v1={}, v1=zz-not-hex, v1={}",
            sign(b"old secret", NOW, body),
            sign(SECRET, NOW, body)
        );
        assert_eq!(verify(SECRET, Some(&header), body, NOW), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_a_changed_body_does_not_verify() {
        let body = b"{\"amount\":100}";
        let header = format!("t={NOW},v1={}", sign(b"another secret", NOW, body));
        assert_eq!(
            verify(SECRET, Some(&header), body, NOW),
            Err(SignatureError::Mismatch)
        );
        let header = format!("t={NOW},v1={}", sign(SECRET, NOW, body));
        assert_eq!(
            verify(SECRET, Some(&header), b"{\"amount\":101}", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_timestamp_outside_the_tolerance_is_stale_in_either_direction() {
        let body = b"{}";
        for signed_at in [NOW - 301, NOW + 301] {
            let header = format!("t={signed_at},v1={}", sign(SECRET, signed_at, body));
            assert_eq!(
                verify(SECRET, Some(&header), body, NOW),
                Err(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn timestamps_at_the_ends_of_the_range_are_stale_not_an_overflow() {
        let body = b"{}";
        for signed_at in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let header = format!("t={signed_at},v1={}", sign(SECRET, signed_at, body));
            assert_eq!(
                verify(SECRET, Some(&header), body, NOW),
                Err(SignatureError::Stale),
                "{signed_at}"
            );
        }
        assert_eq!(
            verify(SECRET, Some("t=99999999999999999999,v1=00"), body, NOW),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        assert_eq!(
            verify(SECRET, None, b"{}", NOW),
            Err(SignatureError::Missing)
        );
        for header in ["", "v1=00", "t=abc,v1=00", &format!("t={NOW}"), "garbage"] {
            assert_eq!(
                verify(SECRET, Some(header), b"{}", NOW),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }

    proptest! {
        /// Any header and body, however hostile: an answer, never a panic, and never `Ok`
        /// without the secret's signature.
        #[test]
        fn any_header_is_refused_or_verified_without_panicking(
            header in ".{0,300}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
            now in any::<i64>(),
        ) {
            prop_assert!(verify(SECRET, Some(&header), &body, now).is_err());
        }

        /// Headers shaped like Stripe's, with any numbers in them.
        #[test]
        fn stripe_shaped_headers_with_any_timestamp_never_panic(
            t in any::<i64>(),
            now in any::<i64>(),
            sig in "[0-9a-f]{0,70}",
        ) {
            let body: &[u8] = b"[]";
            let header = format!("t={t},v1={sig},v0=00");
            prop_assert!(verify(SECRET, Some(&header), body, now).is_err());
            let signed = format!("t={t},v1={}", sign(SECRET, t, body));
            let verdict = verify(SECRET, Some(&signed), body, now);
            let fresh = now.checked_sub(t).is_some_and(|d| d.unsigned_abs() <= 300);
            prop_assert_eq!(verdict.is_ok(), fresh);
        }
    }
}
