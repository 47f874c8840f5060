//! The CMC curve: matching rate at each rank, with the headline metrics in the title.

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, Polyline, PrimitiveStyle};
use embedded_graphics::text::Alignment;
use reid_core::RankMetrics;

use super::Canvas;

const W: u32 = 720;
const H: u32 = 480;
const LEFT: i32 = 70;
const RIGHT: i32 = 30;
const TOP: i32 = 80;
const BOTTOM: i32 = 60;

const INK: Rgb888 = Rgb888::new(38, 50, 56);
const GRID: Rgb888 = Rgb888::new(222, 226, 230);
const CURVE: Rgb888 = Rgb888::new(21, 101, 192);

/// Draws the CMC curve of `m` (ranks 1..=len) titled with `title` and the headline metrics.
pub fn cmc_plot(m: &RankMetrics, title: &str) -> Canvas {
    let mut c = Canvas::new(W, H);
    let ranks = m.cmc.len().max(1);
    // The y axis starts at a round value below the curve so that its shape is visible.
    let low = m.cmc.first().copied().unwrap_or(0.0).clamp(0.0, 1.0);
    let y_min = ((low * 10.0).floor() / 10.0 - 0.1).max(0.0);
    let (x0, x1, y0, y1) = (LEFT, W as i32 - RIGHT, H as i32 - BOTTOM, TOP);
    let x_at = |rank: usize| {
        if ranks == 1 {
            x0
        } else {
            x0 + ((rank - 1) as f64 / (ranks - 1) as f64 * f64::from(x1 - x0)).round() as i32
        }
    };
    let y_at = |v: f64| y0 - ((v - y_min) / (1.0 - y_min) * f64::from(y0 - y1)).round() as i32;
    let stroke = |color, width| PrimitiveStyle::with_stroke(color, width);

    // Horizontal grid every 10 points (5 when the range is narrow), with labels.
    let step = if 1.0 - y_min <= 0.3 { 0.05 } else { 0.1 };
    let mut v = y_min;
    while v <= 1.0 + 1e-9 {
        let y = y_at(v);
        let _ = Line::new(Point::new(x0, y), Point::new(x1, y))
            .into_styled(stroke(GRID, 1))
            .draw(&mut c);
        c.text(
            &format!("{:.0}%", 100.0 * v),
            Point::new(x0 - 8, y - 5),
            INK,
            false,
            Alignment::Right,
        );
        v += step;
    }
    // Rank ticks: 1, then every 5 or 10.
    let every = if ranks > 30 { 10 } else { 5 };
    for rank in std::iter::once(1).chain((every..=ranks).step_by(every)) {
        let x = x_at(rank);
        let _ = Line::new(Point::new(x, y0), Point::new(x, y0 + 5))
            .into_styled(stroke(INK, 1))
            .draw(&mut c);
        c.text(
            &rank.to_string(),
            Point::new(x, y0 + 9),
            INK,
            false,
            Alignment::Center,
        );
    }
    let _ = Line::new(Point::new(x0, y0), Point::new(x1, y0))
        .into_styled(stroke(INK, 1))
        .draw(&mut c);
    let _ = Line::new(Point::new(x0, y0), Point::new(x0, y1))
        .into_styled(stroke(INK, 1))
        .draw(&mut c);

    let points: Vec<Point> = m
        .cmc
        .iter()
        .enumerate()
        .map(|(i, &v)| Point::new(x_at(i + 1), y_at(v)))
        .collect();
    let _ = Polyline::new(&points)
        .into_styled(stroke(CURVE, 2))
        .draw(&mut c);
    for rank in [1, 5, 10] {
        if let Some(&v) = m.cmc.get(rank - 1) {
            let _ = Circle::with_center(Point::new(x_at(rank), y_at(v)), 7)
                .into_styled(PrimitiveStyle::with_fill(CURVE))
                .draw(&mut c);
        }
    }

    let pct = |rank: usize| {
        m.cmc
            .get(rank - 1)
            .map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v))
    };
    c.text(title, Point::new(8, 8), INK, true, Alignment::Left);
    c.text(
        &format!(
            "Rank-1 {}  Rank-5 {}  Rank-10 {}  mAP {:.2}%  mINP {:.2}%",
            pct(1),
            pct(5),
            pct(10),
            100.0 * m.map,
            100.0 * m.minp
        ),
        Point::new(8, 32),
        CURVE,
        false,
        Alignment::Left,
    );
    c.text(
        &format!(
            "{} queries, {} skipped (no true match)",
            m.valid_queries + m.skipped_queries,
            m.skipped_queries
        ),
        Point::new(8, 46),
        INK,
        false,
        Alignment::Left,
    );
    c.text(
        "rank",
        Point::new((x0 + x1) / 2, y0 + 28),
        INK,
        false,
        Alignment::Center,
    );
    c.text(
        "matching rate",
        Point::new(8, y1 - 20),
        INK,
        false,
        Alignment::Left,
    );
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(cmc: Vec<f64>) -> RankMetrics {
        RankMetrics {
            cmc,
            map: 0.5,
            minp: 0.2,
            valid_queries: 10,
            skipped_queries: 1,
        }
    }

    fn count(c: &Canvas, rgb: [u8; 3]) -> usize {
        c.0.pixels().filter(|p| p.0 == rgb).count()
    }

    #[test]
    fn the_curve_is_drawn_where_the_values_are() {
        let c = cmc_plot(
            &metrics((1..=50).map(|r| 0.6 + 0.4 * r as f64 / 50.0).collect()),
            "t",
        );
        assert_eq!(c.0.dimensions(), (W, H));
        assert!(count(&c, [21, 101, 192]) > 500, "no curve");
        // Rank-1 at 60.8% sits inside the plot, near the bottom of a 50%..100% axis.
        let y =
            H as i32 - BOTTOM - ((0.608 - 0.5) / 0.5 * f64::from(H as i32 - BOTTOM - TOP)) as i32;
        let column: Vec<[u8; 3]> = (y - 3..=y + 3)
            .map(|y| c.0.get_pixel(LEFT as u32, y as u32).0)
            .collect();
        assert!(column.contains(&[21, 101, 192]), "{column:?}");
    }

    #[test]
    fn one_rank_and_perfect_curves_draw_without_panicking() {
        cmc_plot(&metrics(vec![1.0]), "one");
        cmc_plot(&metrics(vec![0.0; 3]), "zero");
        cmc_plot(&metrics(vec![]), "empty");
    }
}
