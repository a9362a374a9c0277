//! The renditions of an image: upright (the stored EXIF orientation applied), scaled down to
//! fit the thumbnail and display sizes (never up), encoded as lossy WebP.

use image::{DynamicImage, GenericImageView as _, imageops::FilterType, metadata::Orientation};

use super::validate::{Rejected, decode};
use crate::{config::ImageSettings, domain::ImageFormat};

/// What processing made of an original.
#[derive(Debug, Clone)]
pub struct Renditions {
    /// Upright width of the original.
    pub width: u32,
    /// Upright height of the original.
    pub height: u32,
    /// The thumbnail, WebP.
    pub thumb: Vec<u8>,
    /// The display rendition, WebP.
    pub large: Vec<u8>,
}

/// Makes both renditions of a stored original (CPU-heavy: run it off the async threads).
pub fn render(
    original: &[u8],
    format: ImageFormat,
    orientation: u8,
    settings: &ImageSettings,
) -> Result<Renditions, Rejected> {
    let (mut image, _) = decode(original, format, settings.max_pixels)?;
    image.apply_orientation(
        Orientation::from_exif(orientation).unwrap_or(Orientation::NoTransforms),
    );
    let (width, height) = image.dimensions();
    // The display size comes from the original with a cheap filter (it is the big step); the
    // thumbnail from the display size with a sharp one.
    let large = fit(&image, settings.large_px, FilterType::Triangle);
    let thumb = fit(&large, settings.thumb_px, FilterType::Lanczos3);
    drop(image);
    Ok(Renditions {
        width,
        height,
        thumb: webp(&thumb, settings.webp_quality),
        large: webp(&large, settings.webp_quality),
    })
}

/// `image` scaled to fit a `max_side` square, keeping its aspect ratio; unchanged when it fits.
fn fit(image: &DynamicImage, max_side: u32, filter: FilterType) -> DynamicImage {
    let (w, h) = image.dimensions();
    if w <= max_side && h <= max_side {
        return image.clone();
    }
    image.resize(max_side, max_side, filter)
}

/// Lossy WebP at `quality`, with the alpha channel when the image has one.
fn webp(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let (w, h) = image.dimensions();
    let encoded = if image.color().has_alpha() {
        let rgba = image.to_rgba8();
        webp::Encoder::from_rgba(rgba.as_raw(), w, h).encode(f32::from(quality))
    } else {
        let rgb = image.to_rgb8();
        webp::Encoder::from_rgb(rgb.as_raw(), w, h).encode(f32::from(quality))
    };
    encoded.to_vec()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::config::Settings;

    fn settings() -> ImageSettings {
        Settings::from_lookup(|_| None).unwrap().images
    }

    fn png(width: u32, height: u32, alpha: bool) -> Vec<u8> {
        let img = if alpha {
            DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
                width,
                height,
                image::Rgba([9, 8, 7, 100]),
            ))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
                width,
                height,
                image::Rgb([9, 8, 7]),
            ))
        };
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn size_of(webp: &[u8]) -> (u32, u32) {
        image::load_from_memory_with_format(webp, image::ImageFormat::WebP)
            .unwrap()
            .dimensions()
    }

    #[test]
    fn renditions_fit_their_sizes_upright() {
        let s = settings();
        // Orientation 6: the stored 2000×1000 image is shown rotated, 1000×2000.
        let r = render(&png(2000, 1000, false), ImageFormat::Png, 6, &s).unwrap();
        assert_eq!((r.width, r.height), (1000, 2000));
        assert_eq!(size_of(&r.large), (512, 1024));
        assert_eq!(size_of(&r.thumb), (160, 320));
    }

    #[test]
    fn small_images_are_not_scaled_up_and_keep_their_alpha() {
        let r = render(&png(100, 50, true), ImageFormat::Png, 1, &settings()).unwrap();
        assert_eq!(size_of(&r.large), (100, 50));
        assert_eq!(size_of(&r.thumb), (100, 50));
        let thumb = image::load_from_memory(&r.thumb).unwrap();
        assert!(thumb.color().has_alpha());
    }
}
