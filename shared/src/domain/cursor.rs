//! Opaque page cursors: what a client gets as `next_cursor` and hands back as `cursor`.
//!
//! A cursor is base64url of a small tagged text. Decoding checks everything a forged token
//! could get wrong (encoding, tag, length, the id, the range of its sort key) before anything
//! reaches the database, and every failure is the same [`InvalidCursor`].

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

/// The longest token accepted (ours are well under 100 characters).
pub const MAX_CURSOR_LEN: usize = 128;

/// A cursor that is not one of ours: forged, truncated, out of range or from another query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is invalid, truncated or belongs to another query; start from the first page")]
pub struct InvalidCursor;

/// Encodes `raw` as a cursor token.
pub fn encode(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// The `(tag, key, id)` inside a token made by [`encode`] from `"{tag}:{key}:{id}"` (or
/// `"{tag}:{id}"`, with an empty key).
pub fn decode(token: &str) -> Result<(String, String, Uuid), InvalidCursor> {
    if token.is_empty() || token.len() > MAX_CURSOR_LEN {
        return Err(InvalidCursor);
    }
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| InvalidCursor)?;
    let raw = String::from_utf8(raw).map_err(|_| InvalidCursor)?;
    let (tag, rest) = raw.split_once(':').ok_or(InvalidCursor)?;
    let (key, id) = rest.rsplit_once(':').unwrap_or(("", rest));
    // Only the hyphenated form we write, so one position has one token.
    if id.len() != 36 {
        return Err(InvalidCursor);
    }
    let id = Uuid::try_parse(id).map_err(|_| InvalidCursor)?;
    Ok((tag.to_owned(), key.to_owned(), id))
}

/// A position in a list of orders, newest first: the last order shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCursor(pub Uuid);

impl OrderCursor {
    /// The token for clients.
    pub fn encode(&self) -> String {
        encode(&format!("o:{}", self.0))
    }

    /// Parses a token from [`encode`](Self::encode).
    pub fn decode(token: &str) -> Result<Self, InvalidCursor> {
        match decode(token)? {
            (tag, key, id) if tag == "o" && key.is_empty() => Ok(Self(id)),
            _ => Err(InvalidCursor),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_order_cursor_round_trips_and_nothing_else_decodes() {
        let c = OrderCursor(Uuid::now_v7());
        assert_eq!(OrderCursor::decode(&c.encode()), Ok(c));
        let id = Uuid::now_v7();
        for forged in [
            String::new(),
            id.to_string(),
            encode(&format!("p:5:{id}")),
            encode(&format!("o:{}", id.simple())),
            encode("o:"),
            "!".repeat(10),
            "A".repeat(MAX_CURSOR_LEN + 1),
        ] {
            assert_eq!(
                OrderCursor::decode(&forged),
                Err(InvalidCursor),
                "{forged:?}"
            );
        }
    }

    proptest! {
        /// Whatever a client sends, decoding answers without panicking.
        #[test]
        fn any_text_decodes_or_is_invalid(token in ".{0,200}") {
            let _ = OrderCursor::decode(&token);
            let _ = decode(&token);
        }

        /// Any bytes behind valid base64 are handled too.
        #[test]
        fn any_encoded_bytes_decode_or_are_invalid(raw in proptest::collection::vec(any::<u8>(), 0..90)) {
            let token = URL_SAFE_NO_PAD.encode(&raw);
            let _ = OrderCursor::decode(&token);
        }
    }
}
