//! The training curve: each epoch's identity loss, triplet loss and identity accuracy from a
//! run's `metrics.csv`, each line scaled to its own largest value (the legend gives the range).

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, Polyline, PrimitiveStyle};
use embedded_graphics::text::Alignment;

use super::Canvas;

const W: u32 = 720;
const H: u32 = 420;
const LEFT: i32 = 60;
const RIGHT: i32 = 30;
const TOP: i32 = 90;
const BOTTOM: i32 = 50;
const INK: Rgb888 = Rgb888::new(38, 50, 56);
const GRID: Rgb888 = Rgb888::new(222, 226, 230);
const COLORS: [Rgb888; 4] = [
    Rgb888::new(21, 101, 192),
    Rgb888::new(198, 40, 40),
    Rgb888::new(46, 125, 50),
    Rgb888::new(239, 108, 0),
];

/// One named series over the epochs.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
}

/// Draws `series` (each over epochs 1..=n) under `title`.
pub fn training_curve(series: &[Series], title: &str) -> Canvas {
    let mut c = Canvas::new(W, H);
    let epochs = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let (x0, x1, y0, y1) = (LEFT, W as i32 - RIGHT, H as i32 - BOTTOM, TOP);
    let x_at = |i: usize| {
        if epochs == 1 {
            x0
        } else {
            x0 + (i as f64 / (epochs - 1) as f64 * f64::from(x1 - x0)).round() as i32
        }
    };
    let stroke = |color, width| PrimitiveStyle::with_stroke(color, width);
    for tenth in 0..=10 {
        let y = y0 - (f64::from(tenth) / 10.0 * f64::from(y0 - y1)).round() as i32;
        let _ = Line::new(Point::new(x0, y), Point::new(x1, y))
            .into_styled(stroke(GRID, 1))
            .draw(&mut c);
        if tenth % 5 == 0 {
            let label = format!("{}%", tenth * 10);
            c.text(
                &label,
                Point::new(x0 - 8, y - 5),
                INK,
                false,
                Alignment::Right,
            );
        }
    }
    let every = (epochs / 10).max(1);
    for i in (0..epochs).filter(|i| (i + 1) % every == 0 || *i == 0) {
        let label = format!("{}", i + 1);
        c.text(
            &label,
            Point::new(x_at(i), y0 + 6),
            INK,
            false,
            Alignment::Center,
        );
    }
    c.text(
        "epoch",
        Point::new((x0 + x1) / 2, y0 + 24),
        INK,
        false,
        Alignment::Center,
    );
    c.text(title, Point::new(x0, 12), INK, true, Alignment::Left);
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let top = s.values.iter().copied().fold(0.0f64, f64::max);
        let scale = if top > 0.0 { top } else { 1.0 };
        let points: Vec<Point> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let y = y0 - (v / scale * f64::from(y0 - y1)).round() as i32;
                Point::new(x_at(i), y)
            })
            .collect();
        let _ = Polyline::new(&points)
            .into_styled(stroke(color, 2))
            .draw(&mut c);
        let last = s.values.last().copied().unwrap_or(0.0);
        let legend = format!("{}: last {:.4}, 100% = {:.4}", s.name, last, scale);
        c.text(
            &legend,
            Point::new(x0, 36 + 13 * k as i32),
            color,
            false,
            Alignment::Left,
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_is_drawn_in_its_colour() {
        let canvas = training_curve(
            &[
                Series {
                    name: "id loss",
                    values: vec![6.0, 4.0, 2.0],
                },
                Series {
                    name: "accuracy",
                    values: vec![0.1, 0.5, 0.9],
                },
            ],
            "run",
        );
        for color in &COLORS[..2] {
            let found = canvas
                .0
                .pixels()
                .any(|p| p.0 == [color.r(), color.g(), color.b()]);
            assert!(found);
        }
    }
}
