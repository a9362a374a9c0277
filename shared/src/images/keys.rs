//! How image files are named in the object store: `images/<image id>/<file>`, the file named
//! after its role and a hash of its bytes. A name never stands for two contents, so every file
//! can be cached forever, a second run of a job rewrites exactly the same names, and all files
//! of one image share one prefix (which the sweep groups by).

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::ImageFormat;

/// The folder every image file lives under.
pub const ROOT: &str = "images";

/// Hex characters of the SHA-256 kept in a file name (64 bits: names are per image, so this
/// only has to tell one image's versions apart).
const HASH_CHARS: usize = 16;

/// A rendition the worker makes of every image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    /// The small one (lists, cart, orders, avatars).
    Thumb,
    /// The display one (the listing's gallery).
    Large,
}

impl Rendition {
    fn name(self) -> &'static str {
        match self {
            Rendition::Thumb => "thumb",
            Rendition::Large => "large",
        }
    }
}

fn short_hash(bytes: &[u8]) -> String {
    let mut hex = hex::encode(Sha256::digest(bytes));
    hex.truncate(HASH_CHARS);
    hex
}

/// The key of an image's original.
pub fn original(image_id: Uuid, format: ImageFormat, bytes: &[u8]) -> String {
    let ext = match format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
        ImageFormat::Webp => "webp",
    };
    format!("{ROOT}/{image_id}/original-{}.{ext}", short_hash(bytes))
}

/// The key of one of an image's WebP renditions.
pub fn rendition(image_id: Uuid, rendition: Rendition, bytes: &[u8]) -> String {
    format!(
        "{ROOT}/{image_id}/{}-{}.webp",
        rendition.name(),
        short_hash(bytes)
    )
}

/// The folder of all files of `image_id`.
pub fn folder(image_id: Uuid) -> String {
    format!("{ROOT}/{image_id}")
}

/// The image a key belongs to.
pub fn image_of(key: &str) -> Option<Uuid> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix('/')?;
    let (id, _) = rest.split_once('/')?;
    id.parse().ok()
}

/// The key a public file name (`<image id>/<file>`) stands for, if it names a rendition: the
/// originals are never served (they are the seller's upload at full size).
pub fn served(image_id: Uuid, file: &str) -> Option<String> {
    let (role, rest) = file.split_once('-')?;
    let hash = rest.strip_suffix(".webp")?;
    let known_role = role == Rendition::Thumb.name() || role == Rendition::Large.name();
    let hex =
        hash.len() == HASH_CHARS && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (known_role && hex).then(|| format!("{ROOT}/{image_id}/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_image_and_per_content() {
        let id = Uuid::now_v7();
        let a = rendition(id, Rendition::Thumb, b"a");
        assert_eq!(a, rendition(id, Rendition::Thumb, b"a"));
        assert_ne!(a, rendition(id, Rendition::Thumb, b"b"));
        assert_ne!(a, rendition(Uuid::now_v7(), Rendition::Thumb, b"a"));
        assert_eq!(image_of(&a), Some(id));
        assert_eq!(image_of(&original(id, ImageFormat::Png, b"x")), Some(id));
        assert!(a.starts_with(&folder(id)));
        assert_eq!(image_of("other/x"), None);
    }

    #[test]
    fn only_renditions_are_served() {
        let id = Uuid::now_v7();
        let key = rendition(id, Rendition::Large, b"pixels");
        let file = key.rsplit('/').next().unwrap();
        assert_eq!(served(id, file), Some(key.clone()));
        let original = original(id, ImageFormat::Jpeg, b"pixels");
        assert_eq!(served(id, original.rsplit('/').next().unwrap()), None);
        for bad in [
            "thumb-../../etc.webp",
            "thumb-0123456789abcdeF.webp",
            "large-01.webp",
            "x-0123456789abcdef.webp",
            "thumb-0123456789abcdef.png",
        ] {
            assert_eq!(served(id, bad), None, "{bad}");
        }
    }
}
