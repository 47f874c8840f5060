//! Ranked lists: one row per query, its picture then the first gallery results framed green
//! (same identity), red (another identity) or grey (not known), each with a label (its rank and
//! score) and a line of detail under it.

use std::path::PathBuf;

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::Alignment;
use image::imageops::FilterType;

use super::Canvas;

const THUMB_W: u32 = 64;
const THUMB_H: u32 = 128;
const GAP: i32 = 10;
const HEADER: i32 = 20;
const FOOTER: i32 = 36;

const INK: Rgb888 = Rgb888::new(38, 50, 56);
const QUERY: Rgb888 = Rgb888::new(21, 101, 192);
const MATCH: Rgb888 = Rgb888::new(46, 125, 50);
const WRONG: Rgb888 = Rgb888::new(198, 40, 40);
const UNKNOWN: Rgb888 = Rgb888::new(96, 125, 139);

/// A picture for the figure: a file (read when drawn) or one in memory.
pub enum Picture {
    File(PathBuf),
    Image(image::RgbImage),
}

/// One result of a row.
pub struct RankedResult {
    pub picture: Picture,
    /// Whether it is the query's identity, when that is known.
    pub verdict: Option<bool>,
    /// Under the picture (for example "#1 0.912").
    pub label: String,
    /// A second, smaller line (for example the camera); cut to the picture's width.
    pub detail: String,
}

/// One query's row.
pub struct RankedRow {
    pub query: Picture,
    /// Printed above the row (for example the file name and the query's AP).
    pub caption: String,
    pub results: Vec<RankedResult>,
}

/// Draws the rows. A picture that cannot be read is drawn as a grey box marked "?" so one
/// missing file does not lose the rest of the figure.
pub fn ranked_lists(rows: &[RankedRow]) -> Canvas {
    let columns = rows.iter().map(|r| r.results.len()).max().unwrap_or(0) + 1;
    let row_h = HEADER + THUMB_H as i32 + FOOTER;
    let width = GAP + columns as i32 * (THUMB_W as i32 + GAP) + GAP;
    let mut c = Canvas::new(
        width as u32,
        (GAP + rows.len() as i32 * (row_h + GAP)).max(1) as u32,
    );
    for (r, row) in rows.iter().enumerate() {
        let top = GAP + r as i32 * (row_h + GAP);
        c.text(
            &row.caption,
            Point::new(GAP, top + 4),
            INK,
            false,
            Alignment::Left,
        );
        let y = top + HEADER;
        thumb(&mut c, &row.query, Point::new(GAP, y), QUERY);
        c.text(
            "query",
            Point::new(GAP + THUMB_W as i32 / 2, y + THUMB_H as i32 + 6),
            QUERY,
            false,
            Alignment::Center,
        );
        for (i, result) in row.results.iter().enumerate() {
            // A wider gap after the query separates it from its results.
            let x = GAP + (i as i32 + 1) * (THUMB_W as i32 + GAP) + GAP / 2;
            let colour = match result.verdict {
                Some(true) => MATCH,
                Some(false) => WRONG,
                None => UNKNOWN,
            };
            thumb(&mut c, &result.picture, Point::new(x, y), colour);
            let under = Point::new(x + THUMB_W as i32 / 2, y + THUMB_H as i32 + 6);
            c.text(&result.label, under, colour, false, Alignment::Center);
            // 6-pixel glyphs: what fits under the picture and its gap.
            let fits = (THUMB_W as i32 + GAP) as usize / 6;
            let detail: String = result.detail.chars().take(fits).collect();
            c.text(
                &detail,
                under + Point::new(0, 11),
                INK,
                false,
                Alignment::Center,
            );
        }
    }
    c
}

/// Pastes the picture resized to the thumbnail box, framed in `frame`.
fn thumb(c: &mut Canvas, picture: &Picture, at: Point, frame: Rgb888) {
    let picture = match picture {
        Picture::File(path) => std::fs::read(path)
            .ok()
            .and_then(|bytes| image::load_from_memory(&bytes).ok()),
        Picture::Image(image) => Some(image::DynamicImage::ImageRgb8(image.clone())),
    };
    match picture {
        Some(p) => {
            let small = p
                .resize_exact(THUMB_W, THUMB_H, FilterType::Triangle)
                .to_rgb8();
            image::imageops::replace(&mut c.0, &small, i64::from(at.x), i64::from(at.y));
        }
        None => {
            let _ = Rectangle::new(at, Size::new(THUMB_W, THUMB_H))
                .into_styled(PrimitiveStyle::with_fill(Rgb888::new(200, 200, 200)))
                .draw(c);
            c.text(
                "?",
                at + Point::new(THUMB_W as i32 / 2, THUMB_H as i32 / 2 - 7),
                INK,
                true,
                Alignment::Center,
            );
        }
    }
    let _ = Rectangle::new(at - Point::new(2, 2), Size::new(THUMB_W + 4, THUMB_H + 4))
        .into_styled(PrimitiveStyle::with_stroke(frame, 3))
        .draw(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_say_match_or_not_and_missing_pictures_do_not_stop_the_figure() {
        let dir = tempfile::tempdir().unwrap();
        let person = dir.path().join("p.png");
        image::RgbImage::from_pixel(32, 64, image::Rgb([250, 200, 0]))
            .save(&person)
            .unwrap();
        let result = |picture, verdict| RankedResult {
            picture,
            verdict,
            label: "#1 0.100".into(),
            detail: "c1".into(),
        };
        let rows = vec![RankedRow {
            query: Picture::File(person.clone()),
            caption: "query".into(),
            results: vec![
                result(Picture::File(person.clone()), Some(true)),
                result(Picture::File(dir.path().join("missing.jpg")), Some(false)),
                result(
                    Picture::Image(image::RgbImage::from_pixel(
                        64,
                        128,
                        image::Rgb([250, 200, 0]),
                    )),
                    None,
                ),
            ],
        }];
        let c = ranked_lists(&rows);
        let count = |rgb: [u8; 3]| c.0.pixels().filter(|p| p.0 == rgb).count();
        assert!(count([46, 125, 50]) > 300, "no green frame");
        assert!(count([198, 40, 40]) > 300, "no red frame");
        assert!(count([96, 125, 139]) > 300, "no grey frame");
        assert!(
            count([250, 200, 0]) >= 3 * 64 * 128 - 150,
            "pictures not pasted"
        );
        assert!(count([200, 200, 200]) > 1000, "no placeholder");
    }
}
