//! Pictures of results, written as PNG: the CMC curve, ranked lists of the worst queries and
//! training curves.
//! Drawn with `embedded-graphics` (lines, rectangles and its built-in bitmap fonts, so no font
//! file is needed) onto an `image` buffer.

mod cmc;
mod curve;
mod ranked;

pub use cmc::cmc_plot;
pub use curve::{training_curve, Series};
pub use ranked::{ranked_lists, Picture, RankedResult, RankedRow};

use std::convert::Infallible;

use embedded_graphics::mono_font::{ascii::FONT_6X10, ascii::FONT_9X15, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use image::RgbImage;

/// An RGB image that `embedded-graphics` draws on; pixels outside it are dropped.
pub struct Canvas(pub RgbImage);

impl Canvas {
    /// A white canvas.
    pub fn new(width: u32, height: u32) -> Self {
        Self(RgbImage::from_pixel(
            width,
            height,
            image::Rgb([255, 255, 255]),
        ))
    }

    /// Writes `text` with its top edge at `at`, aligned left, centred or right.
    pub fn text(&mut self, text: &str, at: Point, color: Rgb888, large: bool, align: Alignment) {
        let font = if large { &FONT_9X15 } else { &FONT_6X10 };
        let style = TextStyleBuilder::new()
            .alignment(align)
            .baseline(Baseline::Top)
            .build();
        // Drawing on an in-memory image cannot fail (the error type is Infallible).
        let _ = Text::with_text_style(text, at, MonoTextStyle::new(font, color), style).draw(self);
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb888>>,
    {
        let (w, h) = self.0.dimensions();
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < w && (p.y as u32) < h {
                self.0
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// Saves a canvas as PNG, creating the parent folder.
pub fn save_png(canvas: &Canvas, path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    canvas
        .0
        .save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("cannot write {}", path.display()))
}
