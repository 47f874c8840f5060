//! Image preprocessing shared by both homes: decode the bytes, resize to the network's input
//! size with Pillow's bilinear or bicubic filter (what torchvision's `Resize` does on a PIL
//! image), and normalise as the model card says (channel order, pixel range, mean and standard
//! deviation: [`InputSpec`]) into a `[batch, 3, height, width]` tensor.
//!
//! Decoding and resizing are done here, in Rust, in the browser as well as natively, so that the
//! same bytes give the same tensor everywhere (the browser's own decoders differ between
//! vendors).

use std::io::Cursor;

use burn::tensor::{Device, Tensor, TensorData};
use image::{ImageError, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

pub use image::RgbImage;

use crate::ModelError;

/// Largest side we decode, in pixels.
pub const MAX_SIDE: u32 = 10_000;
/// Largest image we decode, in megapixels (a 48 MP phone photo fits).
pub const MAX_MEGAPIXELS: u32 = 50;
/// Smallest side of an image that can hold a person.
pub const MIN_SIDE: u32 = 8;

/// The network's input: size, channel order, pixel range and normalisation. Part of the model
/// card, so that a model brings its own preprocessing and nobody normalises twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Order of the colour channels the network reads (files written before it existed: RGB).
    #[serde(default)]
    pub channels: ChannelOrder,
    /// Range of a pixel before normalisation (files written before it existed: 0-1).
    #[serde(default)]
    pub range: PixelRange,
    /// The filter that resizes a crop to the input size (files written before it existed:
    /// bilinear).
    #[serde(default)]
    pub interpolation: Interpolation,
    /// Per-channel mean, in the network's channel order and pixel range, subtracted first.
    pub mean: [f32; 3],
    /// Per-channel standard deviation the centred pixels are divided by.
    pub std: [f32; 3],
}

/// Order of the colour channels a network reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    /// Red, green, blue (PIL, torchvision, torchreid, fast-reid).
    #[default]
    Rgb,
    /// Blue, green, red (OpenCV's `imread` order).
    Bgr,
}

impl ChannelOrder {
    /// Which of a pixel's red, green and blue values (0, 1, 2) the network's channel `c` reads.
    pub fn source(self, c: usize) -> usize {
        match self {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => 2 - c,
        }
    }
}

/// The resampling filter, as Pillow implements it (torchvision's `Resize` on a PIL image).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Pillow's `BILINEAR` (torchvision's default; torchreid).
    #[default]
    Bilinear,
    /// Pillow's `BICUBIC` (fast-reid's `Resize(size, interpolation=3)`).
    Bicubic,
}

impl Interpolation {
    /// The filter's support at scale 1 and its value at `x`.
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    /// Pillow's `bilinear_filter` and `bicubic_filter` (a = -0.5).
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear if x < 1.0 => 1.0 - x,
            Self::Bicubic if x < 1.0 => (1.5 * x - 2.5) * x * x + 1.0,
            Self::Bicubic if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5,
            _ => 0.0,
        }
    }
}

/// The range pixels are scaled to before the mean is subtracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PixelRange {
    /// `[0, 1]`: torchvision's `ToTensor` (torchreid).
    #[default]
    #[serde(rename = "0-1")]
    Unit,
    /// `[0, 255]`: the 8-bit values unchanged (fast-reid, whose mean and std are 255 times
    /// ImageNet's).
    #[serde(rename = "0-255")]
    Byte,
}

impl InputSpec {
    /// `image` resized to the input size with the spec's filter.
    pub fn resize(&self, image: &RgbImage) -> RgbImage {
        resize_pil(
            image,
            self.width as u32,
            self.height as u32,
            self.interpolation,
        )
    }

    /// The network's channel `c` for a pixel whose red, green and blue values lie in 0..=255:
    /// the channel the order puts there, scaled to the range, minus the mean, over the std.
    pub fn normalise(&self, rgb: [f32; 3], c: usize) -> f32 {
        let v = rgb[self.channels.source(c)];
        let v = match self.range {
            PixelRange::Unit => v / 255.0,
            PixelRange::Byte => v,
        };
        (v - self.mean[c]) / self.std[c]
    }

    /// [`Self::normalise`] for an 8-bit pixel.
    pub fn normalise_pixel(&self, rgb: &[u8], c: usize) -> f32 {
        self.normalise([f32::from(rgb[0]), f32::from(rgb[1]), f32::from(rgb[2])], c)
    }
}

impl Default for InputSpec {
    /// 256x128 (the usual person-crop shape), RGB in 0-1 with ImageNet statistics.
    fn default() -> Self {
        Self {
            height: 256,
            width: 128,
            channels: ChannelOrder::Rgb,
            range: PixelRange::Unit,
            interpolation: Interpolation::Bilinear,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// Decodes JPEG, PNG, WebP or BMP bytes into 8-bit RGB (alpha is dropped, grey is replicated,
/// as Pillow's `convert("RGB")` does). Refuses empty files, non-images, corrupt or truncated
/// data, images too large to decode safely and images too small to hold a person.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, ModelError> {
    if bytes.is_empty() {
        return Err(ModelError::EmptyFile);
    }
    let format = image::guess_format(bytes).map_err(|_| ModelError::NotAnImage)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Bmp
    ) {
        return Err(ModelError::NotAnImage);
    }
    let reader = |bytes| ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader(bytes).into_dimensions().map_err(decode_error)?;
    let too_large = width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > u64::from(MAX_MEGAPIXELS) * 1_000_000;
    if too_large {
        return Err(ModelError::ImageTooLarge {
            width,
            height,
            max_side: MAX_SIDE,
            max_megapixels: MAX_MEGAPIXELS,
        });
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(ModelError::ImageTooSmall {
            width,
            height,
            min_side: MIN_SIDE,
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(ModelError::CorruptImage(
            "the JPEG data ends before its end-of-image marker (truncated file)".into(),
        ));
    }
    let image = reader(bytes).decode().map_err(decode_error)?;
    Ok(image.to_rgb8())
}

/// Whether a JPEG's last scan is followed by the end-of-image marker. The decoder fills a
/// truncated scan with grey instead of failing; we refuse such files. In entropy-coded data
/// `0xFF` is always followed by `0x00` or a restart marker, so `FF D9` (end of image) and
/// `FF DA` (start of scan) cannot occur there by accident, and an embedded thumbnail's markers
/// come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

fn decode_error(error: ImageError) -> ModelError {
    match error {
        ImageError::Unsupported(_) => ModelError::NotAnImage,
        other => ModelError::CorruptImage(other.to_string()),
    }
}

/// Fixed-point precision of Pillow's 8-bit resampling (`PRECISION_BITS` in `Resample.c`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: the first input pixel it reads and its fixed-point weights.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` for `filter`, then `normalize_coeffs_8bpc`: the filter widens
/// with the downscale factor (antialiasing).
fn filter_taps(in_size: usize, out_size: usize, filter: Interpolation) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let inv = 1.0 / filter_scale;
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // `(int)` in C truncates toward zero; the clamps follow Pillow.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (xmin..xmax)
            .map(|x| filter.weight((x as f64 - center + 0.5) * inv))
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
            })
            .collect();
        first.push(xmin);
        weights.push(fixed);
    }
    Taps { first, weights }
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes like Pillow's `Image.resize((width, height), Image.BILINEAR)` on an RGB image.
pub fn resize_bilinear_pil(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_pil(src, width, height, Interpolation::Bilinear)
}

/// Resizes like Pillow's `Image.resize((width, height), filter)` on an RGB image: a
/// horizontal pass then a vertical pass, each rounded (and clipped) to 8 bits, with Pillow's
/// fixed-point weights. A pass whose size does not change is skipped, as in Pillow.
pub fn resize_pil(src: &RgbImage, width: u32, height: u32, filter: Interpolation) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (width as usize, height as usize);
    let round = 1i64 << (PRECISION_BITS - 1);

    let horizontal: Vec<u8> = if dw == sw {
        src.as_raw().clone()
    } else {
        let taps = filter_taps(sw, dw, filter);
        let raw = src.as_raw();
        let mut out = vec![0u8; dw * sh * 3];
        for y in 0..sh {
            let row = &raw[y * sw * 3..(y + 1) * sw * 3];
            for x in 0..dw {
                let mut acc = [round; 3];
                for (k, &w) in taps.weights[x].iter().enumerate() {
                    let p = (taps.first[x] + k) * 3;
                    for c in 0..3 {
                        acc[c] += i64::from(row[p + c]) * i64::from(w);
                    }
                }
                for c in 0..3 {
                    out[(y * dw + x) * 3 + c] = clip8(acc[c]);
                }
            }
        }
        out
    };

    let vertical: Vec<u8> = if dh == sh {
        horizontal
    } else {
        let taps = filter_taps(sh, dh, filter);
        let mut out = vec![0u8; dw * dh * 3];
        for y in 0..dh {
            for x in 0..dw {
                let mut acc = [round; 3];
                for (k, &w) in taps.weights[y].iter().enumerate() {
                    let p = ((taps.first[y] + k) * dw + x) * 3;
                    for c in 0..3 {
                        acc[c] += i64::from(horizontal[p + c]) * i64::from(w);
                    }
                }
                for c in 0..3 {
                    out[(y * dw + x) * 3 + c] = clip8(acc[c]);
                }
            }
        }
        out
    };
    RgbImage::from_raw(width, height, vertical).expect("buffer has width*height*3 bytes")
}

/// Resizes each image to the spec's size and normalises it ([`InputSpec::normalise`]),
/// channel-first. Returns a `[batch, 3, height, width]` tensor on `device`.
pub fn preprocess(images: &[RgbImage], spec: &InputSpec, device: &Device) -> Tensor<4> {
    let (h, w) = (spec.height, spec.width);
    let mut values = Vec::with_capacity(images.len() * 3 * h * w);
    for image in images {
        let resized = spec.resize(image);
        let raw = resized.as_raw();
        for c in 0..3 {
            values.extend(raw.chunks_exact(3).map(|px| spec.normalise_pixel(px, c)));
        }
    }
    Tensor::from_data(TensorData::new(values, [images.len(), 3, h, w]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn channel_order_and_range_follow_the_card() {
        let torchreid = InputSpec::default();
        let fastreid = InputSpec {
            range: PixelRange::Byte,
            mean: torchreid.mean.map(|m| m * 255.0),
            std: torchreid.std.map(|s| s * 255.0),
            ..InputSpec::default()
        };
        let px = [200u8, 100, 30];
        for c in 0..3 {
            let (a, b) = (
                torchreid.normalise_pixel(&px, c),
                fastreid.normalise_pixel(&px, c),
            );
            assert!((a - b).abs() < 1e-5, "channel {c}: {a} vs {b}");
        }
        let bgr = InputSpec {
            channels: ChannelOrder::Bgr,
            ..InputSpec::default()
        };
        assert_eq!(bgr.normalise_pixel(&px, 0), (30.0 / 255.0 - 0.485) / 0.229);
        // Cards written before the fields existed read as RGB in 0-1.
        let old: InputSpec = serde_json::from_str(
            r#"{"height": 256, "width": 128, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}"#,
        )
        .unwrap();
        assert_eq!(old, torchreid);
    }

    #[test]
    fn empty_file_non_image_and_truncated_image_are_told_apart() {
        assert!(matches!(decode_image(&[]), Err(ModelError::EmptyFile)));
        assert!(matches!(
            decode_image(b"hello, this is text"),
            Err(ModelError::NotAnImage)
        ));
        let png = png_bytes(64, 128);
        assert!(matches!(
            decode_image(&png[..png.len() / 2]),
            Err(ModelError::CorruptImage(_))
        ));
    }

    #[test]
    fn a_jpeg_cut_before_its_end_marker_is_refused() {
        let image = RgbImage::from_fn(64, 128, |x, y| image::Rgb([x as u8 * 4, y as u8 * 2, 9]));
        let mut jpeg = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        assert!(decode_image(&jpeg).is_ok());
        let cut = &jpeg[..jpeg.len() * 7 / 10];
        assert!(matches!(
            decode_image(cut),
            Err(ModelError::CorruptImage(_))
        ));
    }

    #[test]
    fn tiny_images_are_refused_with_their_size() {
        let err = decode_image(&png_bytes(1, 1)).unwrap_err();
        assert!(err.to_string().contains("1x1"), "{err}");
    }

    #[test]
    fn decoded_pixels_are_the_encoded_ones() {
        let image = decode_image(&png_bytes(40, 80)).unwrap();
        assert_eq!(image.dimensions(), (40, 80));
        assert_eq!(image.get_pixel(5, 9).0, [5, 9, 7]);
    }

    #[test]
    fn resizing_to_the_same_size_is_the_identity() {
        let src = RgbImage::from_fn(13, 29, |x, y| image::Rgb([x as u8 * 9, y as u8 * 5, 200]));
        assert_eq!(resize_bilinear_pil(&src, 13, 29), src);
    }

    #[test]
    fn resizing_a_flat_image_keeps_its_colour() {
        let src = RgbImage::from_pixel(301, 97, image::Rgb([10, 128, 250]));
        let out = resize_bilinear_pil(&src, 128, 256);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }

    #[test]
    fn downscaling_by_two_averages_neighbours() {
        // Pillow's bilinear filter at scale 2 spans 4 input pixels with weights 1/8, 3/8, 3/8, 1/8.
        let src = RgbImage::from_fn(8, 8, |x, _| {
            image::Rgb([if x % 2 == 0 { 0 } else { 200 }; 3])
        });
        let out = resize_bilinear_pil(&src, 4, 8);
        assert_eq!(out.get_pixel(1, 0).0[0], 100);
    }
}
