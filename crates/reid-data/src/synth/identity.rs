//! Identities: what a person looks like, sampled from a seed and written out as labels.
//!
//! Clothing colours follow a street palette (mostly dark and neutral, some saturated), and a
//! share of identities are deliberate look-alikes of an earlier one: the same clothing colours
//! with different details (pattern, garment type, hair, accessories), as in real crowds.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// An RGB colour with components in `0..=1`.
pub type Colour = [f32; 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HairStyle {
    Short,
    Long,
    Ponytail,
    Bald,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopKind {
    TShirt,
    Shirt,
    Coat,
    Dress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BottomKind {
    Trousers,
    Shorts,
    Skirt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Plain,
    Stripes,
    Checks,
    Logo,
}

/// A garment: its cut, main colour and pattern (drawn in `pattern_colour`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Garment<K> {
    pub kind: K,
    pub colour: Colour,
    pub pattern: Pattern,
    pub pattern_colour: Colour,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accessories {
    pub backpack: Option<Colour>,
    pub handbag: Option<Colour>,
    pub hat: Option<Colour>,
    pub glasses: bool,
}

/// Everything that makes one person look like themselves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub pid: u32,
    /// Body height relative to the average (about 0.88 to 1.12).
    pub height: f32,
    /// Body width relative to the average (about 0.85 to 1.3).
    pub build: f32,
    pub skin: Colour,
    pub hair_style: HairStyle,
    pub hair_colour: Colour,
    pub top: Garment<TopKind>,
    pub bottom: Garment<BottomKind>,
    pub shoes: Colour,
    pub accessories: Accessories,
    /// The earlier identity whose clothing colours this one copies, if it is a look-alike.
    pub lookalike_of: Option<u32>,
}

const SKIN: [Colour; 6] = [
    [0.96, 0.80, 0.69],
    [0.91, 0.72, 0.57],
    [0.80, 0.60, 0.45],
    [0.65, 0.46, 0.33],
    [0.48, 0.33, 0.23],
    [0.34, 0.23, 0.16],
];

const HAIR: [Colour; 6] = [
    [0.08, 0.06, 0.05],
    [0.20, 0.13, 0.08],
    [0.40, 0.26, 0.14],
    [0.72, 0.58, 0.35],
    [0.55, 0.53, 0.52],
    [0.50, 0.20, 0.10],
];

/// Street clothing colours: the colour name an attribute label gives it, the colour, and how
/// often it is worn (weights).
const CLOTHES: [(&str, Colour, f32); 16] = [
    ("black", [0.07, 0.07, 0.08], 9.0),  // black
    ("grey", [0.30, 0.30, 0.32], 6.0),   // dark grey
    ("grey", [0.60, 0.60, 0.62], 4.0),   // light grey
    ("white", [0.92, 0.92, 0.90], 5.0),  // white
    ("blue", [0.10, 0.14, 0.30], 6.0),   // navy
    ("blue", [0.25, 0.36, 0.55], 5.0),   // denim
    ("brown", [0.76, 0.68, 0.52], 3.0),  // beige
    ("brown", [0.40, 0.28, 0.18], 3.0),  // brown
    ("green", [0.22, 0.30, 0.18], 2.0),  // olive
    ("red", [0.70, 0.10, 0.12], 2.0),    // red
    ("red", [0.85, 0.45, 0.10], 1.0),    // orange
    ("yellow", [0.90, 0.80, 0.20], 1.0), // yellow
    ("green", [0.15, 0.50, 0.25], 1.5),  // green
    ("blue", [0.20, 0.45, 0.80], 1.5),   // blue
    ("pink", [0.80, 0.45, 0.60], 1.0),   // pink
    ("purple", [0.40, 0.20, 0.50], 1.0), // purple
];

fn pick<T: Copy>(rng: &mut impl Rng, items: &[T]) -> T {
    *items.choose(rng).expect("non-empty table")
}

/// A clothing colour from the street palette, slightly varied.
pub fn clothing_colour(rng: &mut impl Rng) -> Colour {
    let total: f32 = CLOTHES.iter().map(|c| c.2).sum();
    let mut x = rng.random::<f32>() * total;
    let mut colour = CLOTHES[0].1;
    for (_, c, w) in CLOTHES {
        if x < w {
            colour = c;
            break;
        }
        x -= w;
    }
    jitter(rng, colour, 0.05)
}

/// The names [`clothing_colour_name`] gives, in a fixed order.
pub const CLOTHING_COLOUR_NAMES: [&str; 10] = [
    "black", "grey", "white", "blue", "brown", "green", "red", "yellow", "pink", "purple",
];

/// The name of the street-palette colour nearest to `colour` (one of
/// [`CLOTHING_COLOUR_NAMES`]): what a person would call the colour of a garment.
pub fn clothing_colour_name(colour: Colour) -> &'static str {
    let distance =
        |c: &Colour| -> f32 { c.iter().zip(&colour).map(|(a, b)| (a - b).powi(2)).sum() };
    CLOTHES
        .iter()
        .min_by(|a, b| distance(&a.1).total_cmp(&distance(&b.1)))
        .map_or("black", |c| c.0)
}

fn jitter(rng: &mut impl Rng, c: Colour, amount: f32) -> Colour {
    let k = 1.0 + rng.random_range(-amount..=amount);
    c.map(|v| (v * k + rng.random_range(-amount..=amount) * 0.5).clamp(0.0, 1.0))
}

fn pattern(rng: &mut impl Rng) -> Pattern {
    match rng.random_range(0..10) {
        0..=5 => Pattern::Plain,
        6 | 7 => Pattern::Stripes,
        8 => Pattern::Checks,
        _ => Pattern::Logo,
    }
}

fn top_kind(rng: &mut impl Rng) -> TopKind {
    match rng.random_range(0..10) {
        0..=3 => TopKind::TShirt,
        4..=6 => TopKind::Shirt,
        7 | 8 => TopKind::Coat,
        _ => TopKind::Dress,
    }
}

fn bottom_kind(rng: &mut impl Rng) -> BottomKind {
    match rng.random_range(0..10) {
        0..=6 => BottomKind::Trousers,
        7 | 8 => BottomKind::Shorts,
        _ => BottomKind::Skirt,
    }
}

fn maybe_colour(rng: &mut impl Rng, p: f64) -> Option<Colour> {
    rng.random_bool(p).then(|| clothing_colour(rng))
}

/// A value from `draw` that differs from `not` (a few tries; the tables have several values).
fn other<R: Rng, T: PartialEq + Copy>(rng: &mut R, not: T, draw: impl Fn(&mut R) -> T) -> T {
    for _ in 0..32 {
        let v = draw(rng);
        if v != not {
            return v;
        }
    }
    not
}

/// Samples identity `pid`. With `model` it becomes a look-alike: the model's clothing colours
/// and body, with at least two details changed.
pub fn sample(rng: &mut impl Rng, pid: u32, model: Option<&Identity>) -> Identity {
    let (skin, hair) = (pick(rng, &SKIN), pick(rng, &HAIR));
    let mut id = Identity {
        pid,
        height: rng.random_range(0.88..1.12),
        build: rng.random_range(0.85..1.3),
        skin: jitter(rng, skin, 0.04),
        hair_style: pick(
            rng,
            &[
                HairStyle::Short,
                HairStyle::Short,
                HairStyle::Long,
                HairStyle::Ponytail,
                HairStyle::Bald,
            ],
        ),
        hair_colour: jitter(rng, hair, 0.05),
        top: Garment {
            kind: top_kind(rng),
            colour: clothing_colour(rng),
            pattern: pattern(rng),
            pattern_colour: clothing_colour(rng),
        },
        bottom: Garment {
            kind: bottom_kind(rng),
            colour: clothing_colour(rng),
            pattern: if rng.random_bool(0.1) {
                Pattern::Stripes
            } else {
                Pattern::Plain
            },
            pattern_colour: clothing_colour(rng),
        },
        shoes: clothing_colour(rng),
        accessories: Accessories {
            backpack: maybe_colour(rng, 0.3),
            handbag: maybe_colour(rng, 0.15),
            hat: maybe_colour(rng, 0.12),
            glasses: rng.random_bool(0.2),
        },
        lookalike_of: None,
    };
    if let Some(m) = model {
        id.lookalike_of = Some(m.pid);
        id.height = m.height + rng.random_range(-0.03..0.03);
        id.build = m.build + rng.random_range(-0.05..0.05);
        id.top.colour = jitter(rng, m.top.colour, 0.03);
        id.bottom.colour = jitter(rng, m.bottom.colour, 0.03);
        id.shoes = m.shoes;
        // Change two details, chosen at random, so that the two can be told apart.
        let mut details = [0, 1, 2, 3, 4];
        details.shuffle(rng);
        for detail in &details[..2] {
            match detail {
                0 => id.top.pattern = other(rng, m.top.pattern, pattern),
                1 => id.top.kind = other(rng, m.top.kind, top_kind),
                2 => {
                    id.hair_style = other(rng, m.hair_style, |r| {
                        pick(
                            r,
                            &[
                                HairStyle::Short,
                                HairStyle::Long,
                                HairStyle::Ponytail,
                                HairStyle::Bald,
                            ],
                        )
                    })
                }
                3 => {
                    id.accessories.backpack = match m.accessories.backpack {
                        Some(_) => None,
                        None => Some(clothing_colour(rng)),
                    }
                }
                _ => id.bottom.kind = other(rng, m.bottom.kind, bottom_kind),
            }
        }
    }
    if id.top.kind == TopKind::Dress {
        id.bottom.kind = BottomKind::Skirt;
        id.bottom.colour = id.top.colour;
    }
    id
}
