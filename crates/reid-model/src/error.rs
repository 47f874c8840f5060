//! Errors a user can cause: bad images, bad weight files. Each message says what was wrong and,
//! where there is one, what to do.

/// What went wrong while preparing an input or loading weights.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file holds no bytes at all.
    #[error("the file is empty (0 bytes)")]
    EmptyFile,
    /// The bytes are not an image format we read.
    #[error("not a supported image (JPEG, PNG, WebP or BMP expected)")]
    NotAnImage,
    /// The image format was recognised but decoding failed (truncated or corrupt data).
    #[error("the image could not be decoded, it may be truncated or corrupt: {0}")]
    CorruptImage(String),
    /// The image is larger than we are willing to decode.
    #[error("the image is {width}x{height} pixels, larger than the limit of {max_side} pixels per side and {max_megapixels} megapixels; crop or downscale it first")]
    ImageTooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_megapixels: u32,
    },
    /// The image is too small to hold a person.
    #[error("the image is only {width}x{height} pixels; a person crop must be at least {min_side}x{min_side}")]
    ImageTooSmall {
        width: u32,
        height: u32,
        min_side: u32,
    },
    /// A weight file could not be read or does not fit the network.
    #[error("the model file cannot be used: {0}")]
    Weights(String),
    /// A tensor could not be read back from the device.
    #[error("reading a result back from the device failed: {0}")]
    Device(String),
}
