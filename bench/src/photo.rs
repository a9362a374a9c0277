//! The picture `images` uploads: a photo-like JPEG made here, just under the api's 5 MiB limit.
//!
//! Flat colours compress to almost nothing, so a synthetic picture needs what makes a camera's
//! files large: sensor noise over gradients and soft shapes. The scene (sky, hills, textured
//! ground, a few blurred discs) is fixed and the noise comes from a seeded generator, so every
//! run uploads the same bytes; only the noise amplitude is searched until the file lands in
//! [`MIN_BYTES`, `MAX_BYTES`] (the first guess normally does).

use std::{io::Cursor, time::Instant};

use anyhow::{Context, bail, ensure};
use image::{ExtendedColorType, ImageDecoder, codecs::jpeg::JpegEncoder};
use serde::Serialize;

/// 12 megapixels in 4:3, a phone camera's size (under `IMAGE_MAX_PIXELS`, 25,000,000).
pub(crate) const WIDTH: u32 = 4000;
pub(crate) const HEIGHT: u32 = 3000;
/// A camera's "fine" setting.
pub(crate) const QUALITY: u8 = 92;
/// The api's default `IMAGE_MAX_BYTES`: the file must never exceed it.
pub(crate) const LIMIT_BYTES: usize = 5 * 1024 * 1024;
/// "Just under 5 MB".
pub(crate) const MIN_BYTES: usize = 4_500_000;
pub(crate) const MAX_BYTES: usize = 5_000_000;
/// Noise amplitude (± levels of 255) that gives ~4.7 MB at this size and quality.
const NOISE_GUESS: f32 = 19.0;
const SEED: u64 = 0x5EED_1A6E;

/// The generated file and how it was made.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Photo {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub byte_size: usize,
    pub mib: f64,
    pub width: u32,
    pub height: u32,
    pub megapixels: f64,
    pub jpeg_quality: u8,
    pub noise_amplitude: f32,
    /// Encodes it took to land in the size range.
    pub encodes: u32,
    pub generate_s: f64,
}

/// splitmix64: fast, and the same sequence everywhere (unlike `rand`'s generators across versions).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A value in [-1, 1] with a triangular distribution (closer to sensor noise than uniform)
/// from 32 random bits.
fn triangle(bits: u64) -> f32 {
    ((bits & 0xffff) as f32 + ((bits >> 16) & 0xffff) as f32) / 65535.0 - 1.0
}

/// RGB8 pixels of the scene with noise of amplitude `noise`.
fn pixels(width: u32, height: u32, noise: f32) -> Vec<u8> {
    let (w, h) = (width as f32, height as f32);
    let mut rng = Rng(SEED);
    let horizon: Vec<f32> = (0..width)
        .map(|x| {
            let s = x as f32 / w;
            h * (0.55
                + 0.06 * (s * 7.0).sin()
                + 0.025 * (s * 23.0 + 1.0).sin()
                + 0.01 * (s * 61.0).sin())
        })
        .collect();
    // Separable texture for the ground (furrows), from per-row and per-column tables.
    let wave = |n: u32, k: [f32; 3]| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let p = i as f32 / 40.0;
                (p * k[0]).sin() * 0.5 + (p * k[1] + 0.7).sin() * 0.3 + (p * k[2] + 2.1).sin() * 0.2
            })
            .collect()
    };
    let tx = wave(width, [3.1, 7.3, 17.9]);
    let ty = wave(height, [2.3, 5.9, 13.7]);
    // Soft discs: (centre x, centre y, radius, colour).
    let discs: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
        .map(|_| {
            let (x, y, r) = (rng.unit() * w, h * (0.45 + 0.5 * rng.unit()), rng.unit());
            let colour = [0; 3].map(|_| rng.unit() * 200.0 + 30.0);
            (x, y, h * (0.05 + 0.12 * r), colour)
        })
        .collect();
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        let yf = y as f32;
        for x in 0..width {
            let xf = x as f32;
            let hz = horizon[x as usize];
            let mut c = if yf < hz {
                let k = yf / hz;
                [70.0 + 120.0 * k, 130.0 + 80.0 * k, 200.0 + 30.0 * k]
            } else {
                let k = (yf - hz) / (h - hz).max(1.0);
                let furrow = tx[x as usize] * ty[y as usize];
                [
                    90.0 - 30.0 * k + 25.0 * furrow,
                    110.0 - 40.0 * k + 30.0 * furrow,
                    50.0 - 20.0 * k + 10.0 * furrow,
                ]
            };
            for (dx, dy, r, colour) in &discs {
                let d2 = ((xf - dx).powi(2) + (yf - dy).powi(2)) / (r * r);
                if d2 < 1.0 {
                    let a = (1.0 - d2).min(0.3) / 0.3;
                    for (ch, target) in c.iter_mut().zip(colour) {
                        *ch += (target - *ch) * a;
                    }
                }
            }
            let bits = rng.next();
            // Mostly luminance noise, some chroma noise, as a sensor gives.
            let luma = triangle(bits) * noise;
            for (i, ch) in c.iter().enumerate() {
                let chroma = triangle(bits >> (32 + i * 10)) * noise * 0.35;
                out.push((ch + luma + chroma).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// Encodes the scene at `width` x `height` with noise `noise`.
pub(crate) fn encode(width: u32, height: u32, noise: f32) -> anyhow::Result<Vec<u8>> {
    let px = pixels(width, height, noise);
    let mut out = Vec::with_capacity(px.len() / 2);
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode(&px, width, height, ExtendedColorType::Rgb8)
        .context("failed to encode the test JPEG")?;
    Ok(out)
}

/// The dimensions a JPEG's header declares.
pub(crate) fn dimensions(jpeg: &[u8]) -> anyhow::Result<(u32, u32)> {
    let decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(jpeg))
        .context("the test JPEG does not parse")?;
    Ok(decoder.dimensions())
}

/// Makes the upload: `WIDTH` x `HEIGHT`, between `MIN_BYTES` and `MAX_BYTES`.
pub(crate) fn generate() -> anyhow::Result<Photo> {
    let started = Instant::now();
    let (mut low, mut high) = (0.0_f32, 64.0_f32);
    let mut noise = NOISE_GUESS;
    let mut encodes = 0;
    let bytes = loop {
        let bytes = encode(WIDTH, HEIGHT, noise)?;
        encodes += 1;
        if (MIN_BYTES..=MAX_BYTES).contains(&bytes.len()) {
            break bytes;
        }
        if encodes >= 12 {
            bail!(
                "could not make a {WIDTH}x{HEIGHT} JPEG of {MIN_BYTES}-{MAX_BYTES} bytes (last: {} bytes at noise {noise})",
                bytes.len()
            );
        }
        // Larger with more noise: bisect.
        if bytes.len() > MAX_BYTES {
            high = noise;
        } else {
            low = noise;
        }
        noise = (low + high) / 2.0;
    };
    ensure!(
        bytes.len() <= LIMIT_BYTES,
        "the test JPEG is {} bytes, over the api's IMAGE_MAX_BYTES default of {LIMIT_BYTES}",
        bytes.len()
    );
    let (width, height) = dimensions(&bytes)?;
    ensure!(
        (width, height) == (WIDTH, HEIGHT),
        "the test JPEG is {width}x{height}"
    );
    Ok(Photo {
        byte_size: bytes.len(),
        mib: bytes.len() as f64 / (1024.0 * 1024.0),
        bytes,
        width,
        height,
        megapixels: f64::from(width) * f64::from(height) / 1e6,
        jpeg_quality: QUALITY,
        noise_amplitude: noise,
        encodes,
        generate_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scene_is_a_decodable_jpeg_that_grows_with_noise() {
        let quiet = encode(320, 240, 2.0).unwrap();
        let noisy = encode(320, 240, 20.0).unwrap();
        assert_eq!(dimensions(&noisy).unwrap(), (320, 240));
        assert!(
            noisy.len() > quiet.len() * 2,
            "{} vs {}",
            noisy.len(),
            quiet.len()
        );
        assert!(image::load_from_memory(&noisy).is_ok());
        // Deterministic: the same bytes every time.
        assert_eq!(encode(320, 240, 20.0).unwrap(), noisy);
    }
}
