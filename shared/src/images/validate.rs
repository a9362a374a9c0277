//! What an upload must be before anything is stored: small enough, a JPEG, PNG or WebP by its
//! bytes (never by its name or declared type), no more pixels than allowed by its header (a
//! small file can declare a huge image), and decodable in full. What is kept is the original
//! with its metadata (EXIF, GPS, XMP, text chunks) removed at the container level, so the
//! pixels and their quality are untouched; the EXIF orientation is read first and kept in the
//! row, for the renditions.

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageReader, metadata::Orientation};
use img_parts::{ImageEXIF, jpeg::Jpeg, png::Png, webp::WebP};

use crate::domain::ImageFormat;

/// Why an upload is refused (a 422 with [`Rejected::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No bytes at all.
    #[error("the file is empty")]
    Empty,
    /// Over the size limit.
    #[error("the file is larger than {max_bytes} bytes")]
    TooLarge {
        /// `IMAGE_MAX_BYTES`.
        max_bytes: usize,
    },
    /// Not a JPEG, PNG or WebP file, whatever its name says.
    #[error("the file is not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    /// The header declares more pixels than allowed.
    #[error("the image is {width}×{height} pixels; at most {max_pixels} pixels are accepted")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// `IMAGE_MAX_PIXELS`.
        max_pixels: u64,
    },
    /// It claims a supported format but does not decode.
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
}

impl Rejected {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejected::Empty => "image_empty",
            Rejected::TooLarge { .. } => "image_too_large",
            Rejected::UnsupportedFormat => "image_unsupported_format",
            Rejected::TooManyPixels { .. } => "image_too_many_pixels",
            Rejected::Corrupt(_) => "image_corrupt",
        }
    }
}

/// The limits an image is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file.
    pub max_bytes: usize,
    /// Largest width × height.
    pub max_pixels: u64,
}

/// An accepted upload.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The format its bytes are in.
    pub format: ImageFormat,
    /// The original without its metadata: what is stored.
    pub bytes: Bytes,
    /// The EXIF orientation (1-8) it had.
    pub orientation: u8,
    /// Stored width (before orientation).
    pub width: u32,
    /// Stored height (before orientation).
    pub height: u32,
}

/// Checks an upload in full (CPU-heavy: run it off the async threads).
pub fn validate(bytes: Bytes, limits: Limits) -> Result<Validated, Rejected> {
    if bytes.is_empty() {
        return Err(Rejected::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(Rejected::TooLarge {
            max_bytes: limits.max_bytes,
        });
    }
    let format = sniff(&bytes)?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(&bytes) {
        return Err(Rejected::Corrupt(
            "the JPEG data ends before its end marker".into(),
        ));
    }
    let (image, orientation) = decode(&bytes, format, limits.max_pixels)?;
    let stripped = strip_metadata(bytes, format)?;
    Ok(Validated {
        format,
        bytes: stripped,
        orientation: orientation.to_exif(),
        width: image.width(),
        height: image.height(),
    })
}

/// The format of `bytes`, from their signature.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, Rejected> {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) => Ok(ImageFormat::Jpeg),
        Ok(image::ImageFormat::Png) => Ok(ImageFormat::Png),
        Ok(image::ImageFormat::WebP) => Ok(ImageFormat::Webp),
        _ => Err(Rejected::UnsupportedFormat),
    }
}

fn image_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
    }
}

/// Decodes `bytes` in full, refusing more than `max_pixels` from the header before any pixel
/// is decoded, and caps the decoder's allocations to what such an image needs.
pub fn decode(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<(DynamicImage, Orientation), Rejected> {
    let corrupt = |e: image::ImageError| Rejected::Corrupt(e.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(format));
    let mut limits = image::Limits::default();
    // 16-bit RGBA is the widest pixel the three formats decode to.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Rejected::TooManyPixels {
            width,
            height,
            max_pixels,
        });
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok((image, orientation))
}

/// Whether a JPEG's last scan is followed by its end-of-image marker. The JPEG decoder fills a
/// truncated file (an interrupted upload) with grey instead of failing; inside entropy-coded
/// data a 0xFF byte is always stuffed, so a real EOI after the last SOS means the data is all
/// there.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOS: [u8; 2] = [0xFF, 0xDA];
    const EOI: [u8; 2] = [0xFF, 0xD9];
    let Some(last_scan) = bytes.windows(2).rposition(|w| w == SOS) else {
        return false;
    };
    bytes[last_scan..].windows(2).any(|w| w == EOI)
}

/// JPEG segments that carry metadata rather than pixels or colour: APP1 (EXIF, XMP), APP3 to
/// APP13 (IPTC, Photoshop, maker data), APP15 and comments. APP0 (JFIF), APP2 (ICC profile)
/// and APP14 (Adobe colour transform) stay: without them colours change.
fn is_jpeg_metadata(marker: u8) -> bool {
    use img_parts::jpeg::markers::{APP1, APP3, APP13, APP15, COM};
    marker == APP1 || (APP3..=APP13).contains(&marker) || marker == APP15 || marker == COM
}

/// PNG chunks that carry metadata: EXIF, text (which holds XMP too) and the modification time.
const PNG_METADATA: [[u8; 4]; 5] = [*b"eXIf", *b"tEXt", *b"zTXt", *b"iTXt", *b"tIME"];

/// `bytes` without their metadata.
fn strip_metadata(bytes: Bytes, format: ImageFormat) -> Result<Bytes, Rejected> {
    let corrupt = |e: img_parts::Error| Rejected::Corrupt(e.to_string());
    Ok(match format {
        ImageFormat::Jpeg => {
            let mut jpeg = Jpeg::from_bytes(bytes).map_err(corrupt)?;
            jpeg.segments_mut()
                .retain(|segment| !is_jpeg_metadata(segment.marker()));
            jpeg.encoder().bytes()
        }
        ImageFormat::Png => {
            let mut png = Png::from_bytes(bytes).map_err(corrupt)?;
            png.chunks_mut()
                .retain(|chunk| !PNG_METADATA.contains(&chunk.kind()));
            png.encoder().bytes()
        }
        ImageFormat::Webp => {
            let mut webp = WebP::from_bytes(bytes).map_err(corrupt)?;
            webp.remove_chunks_by_id(*b"XMP ");
            // Also clears the EXIF and XMP flags of the VP8X header.
            webp.set_exif(None);
            webp.encoder().bytes()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 1 << 20,
        max_pixels: 1_000_000,
    };

    fn encoded(format: image::ImageFormat, width: u32, height: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn the_three_formats_are_accepted_by_their_bytes() {
        for (format, ours) in [
            (image::ImageFormat::Jpeg, ImageFormat::Jpeg),
            (image::ImageFormat::Png, ImageFormat::Png),
            (image::ImageFormat::WebP, ImageFormat::Webp),
        ] {
            let v = validate(encoded(format, 40, 30).into(), LIMITS).unwrap();
            assert_eq!(
                (v.format, v.width, v.height, v.orientation),
                (ours, 40, 30, 1)
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        assert_eq!(validate(Bytes::new(), LIMITS).unwrap_err(), Rejected::Empty);
        let text = Bytes::from_static(b"just some text, named photo.jpg");
        assert_eq!(
            validate(text, LIMITS).unwrap_err(),
            Rejected::UnsupportedFormat
        );
        let gif = Bytes::from_static(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
        assert_eq!(
            validate(gif, LIMITS).unwrap_err(),
            Rejected::UnsupportedFormat
        );
        let big = Limits {
            max_bytes: 100,
            ..LIMITS
        };
        let err = validate(encoded(image::ImageFormat::Png, 40, 30).into(), big).unwrap_err();
        assert_eq!(err.code(), "image_too_large");
        for format in [
            image::ImageFormat::Png,
            image::ImageFormat::Jpeg,
            image::ImageFormat::WebP,
        ] {
            let mut truncated = encoded(format, 200, 200);
            truncated.truncate(truncated.len() / 2);
            let err = validate(truncated.into(), LIMITS).unwrap_err();
            assert_eq!(err.code(), "image_corrupt", "{format:?}");
        }
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_decoding() {
        let err =
            validate(encoded(image::ImageFormat::Png, 1001, 1000).into(), LIMITS).unwrap_err();
        assert!(matches!(
            err,
            Rejected::TooManyPixels {
                width: 1001,
                height: 1000,
                ..
            }
        ));
    }

    #[test]
    fn metadata_is_stripped_and_the_orientation_kept() {
        let png = encoded(image::ImageFormat::Png, 8, 8);
        let mut with_meta = Png::from_bytes(png.into()).unwrap();
        // An EXIF block saying "rotate 90° clockwise" (orientation 6), and a GPS-ish comment.
        let exif: &[u8] = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00";
        with_meta.set_exif(Some(Bytes::from_static(exif)));
        let text = img_parts::png::PngChunk::new(*b"tEXt", Bytes::from_static(b"GPS\x0052.1,4.3"));
        let at = with_meta.chunks().len() - 1;
        with_meta.chunks_mut().insert(at, text);
        let v = validate(with_meta.encoder().bytes(), LIMITS).unwrap();
        assert_eq!(v.orientation, 6);
        let stored = Png::from_bytes(v.bytes).unwrap();
        assert!(stored.exif().is_none());
        assert!(
            stored
                .chunks()
                .iter()
                .all(|c| !PNG_METADATA.contains(&c.kind()))
        );
    }
}
