//! Drawing people, backgrounds, occluders and camera effects.

use rand::Rng;

use super::camera::{Background, Camera};
use super::figure::{self, View, HEAD, L_ANKLE, L_ELBOW, L_HIP, L_KNEE, L_SHOULDER, L_WRIST, NECK};
use super::figure::{R_ANKLE, R_ELBOW, R_HIP, R_KNEE, R_SHOULDER, R_WRIST};
use super::identity::{BottomKind, Colour, HairStyle, Identity, Pattern, TopKind};
use super::raster::{noise, Canvas, Light, P};

/// The 14 joints in image pixels, each with whether it is visible (not hidden by an occluder).
pub type Keypoints = [[f32; 3]; 14];

/// The person's pixels and joints on the canvas.
pub struct Drawn {
    pub keypoints: Keypoints,
    /// Canvas indices the person covers.
    pub pixels: Vec<usize>,
}

fn mix(a: Colour, b: Colour, t: f32) -> Colour {
    [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t)
}

/// Cloth: `colour` with soft folds, creases that run mostly along the garment (brighter and
/// darker bands that drift with `seed`, one seed per garment so a person's folds stay theirs).
fn folds(colour: Colour, seed: u64, u: f32, v: f32) -> Colour {
    let fold = noise(seed, u * 1.6 + 7.0, v * 4.5) - 0.5;
    let crease = noise(seed ^ 0x51, u * 4.0 + 2.0, v * 1.2) - 0.5;
    let k = 1.0 + 0.22 * fold + 0.12 * crease;
    colour.map(|c| (c * k).clamp(0.0, 1.0))
}

/// The garment's colour at `(u, v)` (u across -1..1, v down 0..1) with its pattern and folds.
fn garment_paint(
    colour: Colour,
    pattern: Pattern,
    pattern_colour: Colour,
    front: bool,
    seed: u64,
) -> impl Fn(f32, f32) -> Colour {
    move |u, v| {
        let albedo = match pattern {
            Pattern::Plain => colour,
            Pattern::Stripes => {
                if ((v * 9.0).floor() as i32).rem_euclid(2) == 0 {
                    pattern_colour
                } else {
                    colour
                }
            }
            Pattern::Checks => {
                if (((u + 1.0) * 3.0).floor() as i32 + (v * 7.0).floor() as i32).rem_euclid(2) == 0
                {
                    mix(colour, pattern_colour, 0.7)
                } else {
                    colour
                }
            }
            Pattern::Logo => {
                let (du, dv) = (u, (v - 0.3) * 1.6);
                if front && du * du + dv * dv < 0.16 {
                    pattern_colour
                } else {
                    colour
                }
            }
        };
        folds(albedo, seed, u, v)
    }
}

/// Draws a part and returns the pixels it covered.
type DrawPart = Box<dyn Fn(&mut Canvas) -> Vec<usize>>;

struct Part {
    depth: f32,
    draw: DrawPart,
}

/// Draws `id` in pose `pose` seen through `view`, lit by `light`.
pub fn draw_person(
    c: &mut Canvas,
    id: &Identity,
    pose: &figure::Pose,
    view: &View,
    light: &Light,
) -> Drawn {
    let s = view.scale;
    let pj = pose.map(|j| view.project(j));
    let depth = |i: usize| view.depth(pose[i]);
    let facing = view.facing();
    let front = facing > 0.2;
    let skin = id.skin;
    let top = id.top;
    let bottom = id.bottom;
    let limb = 0.045 * s * id.build.sqrt();
    let mut parts: Vec<Part> = Vec::new();
    let l = *light;
    let plain = |c: Colour| move |_: f32, _: f32| c;
    // One seed per garment, so folds and creases belong to the person.
    let seed = u64::from(id.pid).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (top_seed, bottom_seed, hair_seed) = (seed ^ 1, seed ^ 2, seed ^ 3);
    let cloth = move |c: Colour, seed: u64| move |u: f32, v: f32| folds(c, seed, u, v);

    // Contact shadow on the ground under the feet, so the person stands rather than floats.
    let feet = view.project([0.0, 0.0, 0.0]);
    c.contact_shadow(feet, 0.16 * s * id.build.sqrt(), 0.03 * s, 0.45);

    // Legs and feet.
    for (hip, knee, ankle) in [(R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)] {
        let (h, k, a) = (pj[hip], pj[knee], pj[ankle]);
        let d = (depth(hip) + depth(knee) + depth(ankle)) / 3.0;
        let thigh_c = match bottom.kind {
            BottomKind::Skirt => skin,
            _ => bottom.colour,
        };
        let shin_c = match bottom.kind {
            BottomKind::Trousers => bottom.colour,
            _ => skin,
        };
        let shoes = id.shoes;
        let fwd = view.project([
            pose[ankle][0],
            pose[ankle][1],
            pose[ankle][2] + 0.07 * id.height,
        ]);
        let pat = garment_paint(
            bottom.colour,
            bottom.pattern,
            bottom.pattern_colour,
            front,
            bottom_seed,
        );
        let thigh_paint = move |u: f32, v: f32| if thigh_c == skin { skin } else { pat(u, v) };
        let shin_paint = cloth(shin_c, bottom_seed ^ 0x11);
        let shin_paint = move |u: f32, v: f32| {
            if shin_c == skin {
                skin
            } else {
                shin_paint(u, v)
            }
        };
        // Legs are a little wider than deep: wider seen from the front than from the side.
        let widen = 1.0 + 0.12 * facing.abs();
        let (r1, r2) = (limb * 1.1 * widen, limb * 0.85 * widen);
        parts.push(Part {
            depth: d,
            draw: Box::new(move |c| {
                let mut px = c.capsule(h, k, r1, r2, &l, &thigh_paint);
                px.extend(c.capsule(k, a, r2, limb * 0.66, &l, &shin_paint));
                // The shoe: a sole-heavy capsule from heel to toe.
                px.extend(c.capsule(a, fwd, limb * 0.68, limb * 0.58, &l, &plain(shoes)));
                px
            }),
        });
    }

    // Torso (a coat reaches down the thighs; a skirt or dress hangs from the hips).
    let shoulder_half = |a: P, b: P, grow: f32| -> (P, P) {
        let (mx, my) = ((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0);
        let min_half = 0.06 * s * id.build;
        let half = ((b[0] - a[0]) / 2.0).abs().max(min_half) * grow;
        let dir = if b[0] >= a[0] { 1.0 } else { -1.0 };
        ([mx - dir * half, my], [mx + dir * half, my])
    };
    let (sl, sr) = shoulder_half(pj[R_SHOULDER], pj[L_SHOULDER], 1.05);
    let (hl, hr) = shoulder_half(pj[R_HIP], pj[L_HIP], 1.3);
    let coat_drop = if top.kind == TopKind::Coat {
        0.14 * s
    } else {
        0.03 * s
    };
    let torso = [
        sl,
        sr,
        [hr[0], hr[1] + coat_drop],
        [hl[0], hl[1] + coat_drop],
    ];
    let torso_paint = garment_paint(top.colour, top.pattern, top.pattern_colour, front, top_seed);
    // Rounded shoulders: a yoke across the top of the torso, drawn first so the torso's edge
    // meets it, then the torso; a dress has straps and bare shoulders.
    let yoke = if top.kind == TopKind::Dress {
        skin
    } else {
        top.colour
    };
    let (ys_r, ys_l) = (pj[R_SHOULDER], pj[L_SHOULDER]);
    let yoke_r = limb * 0.9;
    let yoke_paint = cloth(yoke, top_seed ^ 0x22);
    parts.push(Part {
        depth: 0.0,
        draw: Box::new(move |c| {
            let drop = |p: P| [p[0], p[1] + yoke_r * 0.55];
            let mut px = c.capsule(drop(ys_r), drop(ys_l), yoke_r, yoke_r, &l, &yoke_paint);
            px.extend(c.quad(torso, &l, &torso_paint));
            px
        }),
    });
    if bottom.kind == BottomKind::Skirt {
        let knee_y = (pj[R_KNEE][1] + pj[L_KNEE][1]) / 2.0;
        let flare = 1.6;
        let (kl, kr) = (
            [
                hl[0] - (hr[0] - hl[0]) * (flare - 1.0) / 2.0,
                knee_y - 0.02 * s,
            ],
            [
                hr[0] + (hr[0] - hl[0]) * (flare - 1.0) / 2.0,
                knee_y - 0.02 * s,
            ],
        );
        let skirt = [[hl[0], hl[1] - 0.02 * s], [hr[0], hr[1] - 0.02 * s], kr, kl];
        let paint = garment_paint(
            bottom.colour,
            bottom.pattern,
            bottom.pattern_colour,
            front,
            bottom_seed,
        );
        parts.push(Part {
            depth: 0.01,
            draw: Box::new(move |c| c.quad(skirt, &l, &paint)),
        });
    }

    // Arms.
    for (shoulder, elbow, wrist) in [
        (R_SHOULDER, R_ELBOW, R_WRIST),
        (L_SHOULDER, L_ELBOW, L_WRIST),
    ] {
        let (sh, e, w) = (pj[shoulder], pj[elbow], pj[wrist]);
        let d = (depth(shoulder) + depth(elbow) + depth(wrist)) / 3.0 + 0.001;
        let (upper_c, fore_c) = match top.kind {
            TopKind::TShirt => (top.colour, skin),
            TopKind::Dress => (skin, skin),
            TopKind::Shirt | TopKind::Coat => (top.colour, top.colour),
        };
        let sleeve = |c: Colour, k: u64| {
            let paint = cloth(c, top_seed ^ k);
            move |u: f32, v: f32| if c == skin { skin } else { paint(u, v) }
        };
        let (upper_paint, fore_paint) = (sleeve(upper_c, 0x33), sleeve(fore_c, 0x44));
        // The hand hangs a little past the wrist.
        let hand = [w[0] + (w[0] - e[0]) * 0.22, w[1] + (w[1] - e[1]) * 0.22];
        parts.push(Part {
            depth: d,
            draw: Box::new(move |c| {
                let mut px = c.capsule(sh, e, limb * 0.9, limb * 0.75, &l, &upper_paint);
                px.extend(c.capsule(e, w, limb * 0.75, limb * 0.58, &l, &fore_paint));
                px.extend(c.capsule(w, hand, limb * 0.6, limb * 0.55, &l, &plain(skin)));
                px
            }),
        });
    }

    // Backpack: behind the torso, seen over it from the back and beside it from the side.
    if let Some(bag) = id.accessories.backpack {
        let centre = [0.0, 0.68 * id.height, -0.1 * id.height];
        let d = view.depth(centre);
        let p = view.project(centre);
        let half_w = s * (0.1 * facing.abs() + 0.06 * (1.0 - facing.abs())) * id.build.sqrt();
        let half_h = 0.13 * s;
        let q = [
            [p[0] - half_w, p[1] - half_h],
            [p[0] + half_w, p[1] - half_h],
            [p[0] + half_w, p[1] + half_h],
            [p[0] - half_w, p[1] + half_h],
        ];
        parts.push(Part {
            depth: d,
            draw: Box::new(move |c| c.quad(q, &l, &plain(bag))),
        });
    }
    // Handbag hanging from the left hand.
    if let Some(bag) = id.accessories.handbag {
        let w = pj[L_WRIST];
        let d = depth(L_WRIST) + 0.02;
        let (bw, bh) = (0.06 * s, 0.07 * s);
        let q = [
            [w[0] - bw, w[1] + 0.01 * s],
            [w[0] + bw, w[1] + 0.01 * s],
            [w[0] + bw * 1.1, w[1] + bh],
            [w[0] - bw * 1.1, w[1] + bh],
        ];
        parts.push(Part {
            depth: d,
            draw: Box::new(move |c| c.quad(q, &l, &plain(bag))),
        });
    }

    // Neck, head, face, hair, hat, glasses.
    let (n, h) = (pj[NECK], pj[HEAD]);
    let head_r = 0.07 * s;
    let hair_colour = id.hair_colour;
    let style = id.hair_style;
    let hat = id.accessories.hat;
    let glasses = id.accessories.glasses;
    // Where the face points across the image (the back of the head is the other way).
    let side_shift = -view.yaw.sin() * 0.25 * head_r;
    parts.push(Part {
        depth: 0.05,
        draw: Box::new(move |c| {
            // Hair: strands as streaks of lighter and darker tone.
            let hair = move |u: f32, v: f32| {
                let streak = noise(hair_seed, u * 9.0, v * 1.5) - 0.5;
                hair_colour.map(|k| (k * (1.0 + 0.5 * streak) + 0.03 * streak).clamp(0.0, 1.0))
            };
            let mut px = c.capsule(
                n,
                [h[0], h[1] + head_r * 0.6],
                limb * 0.7,
                limb * 0.7,
                &l,
                &plain(skin),
            );
            let long = style == HairStyle::Long;
            if long && facing > -0.3 {
                // Long hair falls behind the head and shoulders.
                px.extend(c.quad(
                    [
                        [h[0] - head_r * 1.05, h[1]],
                        [h[0] + head_r * 1.05, h[1]],
                        [h[0] + head_r * 1.2, h[1] + head_r * 2.2],
                        [h[0] - head_r * 1.2, h[1] + head_r * 2.2],
                    ],
                    &l,
                    &hair,
                ));
            }
            if style == HairStyle::Ponytail && facing < 0.6 {
                // A ponytail hangs from the back of the head (hidden behind it from the front).
                let root = [h[0] - side_shift * 3.2, h[1] - head_r * 0.1];
                let tip = [
                    root[0] - side_shift * 1.5,
                    h[1] + head_r * (1.3 + 0.4 * (1.0 - facing.abs())),
                ];
                px.extend(c.capsule(root, tip, head_r * 0.32, head_r * 0.16, &l, &hair));
            }
            let back_of_head = facing < -0.3 && style != HairStyle::Bald;
            if back_of_head {
                px.extend(c.ellipse(h, head_r * 0.8, head_r, &l, &hair));
            } else {
                px.extend(c.ellipse(h, head_r * 0.8, head_r, &l, &plain(skin)));
                // Ear on the side away from the face, seen in side views.
                if facing.abs() < 0.7 {
                    let ear = [h[0] - side_shift * 1.6, h[1] + head_r * 0.08];
                    c.ellipse(ear, head_r * 0.16, head_r * 0.26, &l, &plain(skin));
                }
            }
            if facing > 0.3 {
                // Eyes, brows and mouth as shading, a pixel or two in the crop.
                let dark = skin.map(|k| k * 0.45);
                for side in [-1.0f32, 1.0] {
                    let x = h[0] + side_shift + side * head_r * 0.34 * facing;
                    c.ellipse(
                        [x, h[1] - head_r * 0.02],
                        head_r * 0.1,
                        head_r * 0.06,
                        &l,
                        &plain([0.12, 0.09, 0.08]),
                    );
                    c.rect(
                        x - head_r * 0.16,
                        h[1] - head_r * 0.24,
                        x + head_r * 0.16,
                        h[1] - head_r * 0.16,
                        hair_colour,
                        0.3,
                    );
                }
                c.rect(
                    h[0] + side_shift - head_r * 0.22,
                    h[1] + head_r * 0.48,
                    h[0] + side_shift + head_r * 0.22,
                    h[1] + head_r * 0.56,
                    dark,
                    0.5,
                );
            }
            if style != HairStyle::Bald && !back_of_head {
                px.extend(c.ellipse(
                    [h[0] - side_shift, h[1] - head_r * 0.45],
                    head_r * 0.92,
                    head_r * 0.62,
                    &l,
                    &hair,
                ));
            }
            if long && facing <= -0.3 {
                px.extend(c.quad(
                    [
                        [h[0] - head_r * 0.9, h[1]],
                        [h[0] + head_r * 0.9, h[1]],
                        [h[0] + head_r, h[1] + head_r * 2.3],
                        [h[0] - head_r, h[1] + head_r * 2.3],
                    ],
                    &l,
                    &hair,
                ));
            }
            if glasses && facing > 0.3 {
                c.rect(
                    h[0] - head_r * 0.7 + side_shift,
                    h[1] - head_r * 0.15,
                    h[0] + head_r * 0.7 + side_shift,
                    h[1] + head_r * 0.12,
                    [0.05, 0.05, 0.06],
                    0.85,
                );
            }
            if let Some(hat) = hat {
                px.extend(c.ellipse(
                    [h[0], h[1] - head_r * 0.55],
                    head_r * 1.0,
                    head_r * 0.6,
                    &l,
                    &plain(hat),
                ));
                c.rect(
                    h[0] - head_r * 1.35,
                    h[1] - head_r * 0.5,
                    h[0] + head_r * 1.35,
                    h[1] - head_r * 0.3,
                    hat,
                    1.0,
                );
            }
            px
        }),
    });

    parts.sort_by(|a, b| a.depth.total_cmp(&b.depth));
    let mut pixels = Vec::new();
    for part in &parts {
        pixels.extend((part.draw)(c));
    }
    pixels.sort_unstable();
    pixels.dedup();
    Drawn {
        keypoints: pj.map(|p| [p[0], p[1], 1.0]),
        pixels,
    }
}

/// Where a background is and what it looks like.
#[derive(Debug, Clone, Copy)]
pub struct Scenery {
    pub kind: Background,
    pub palette: [Colour; 2],
    /// Texture seed and offset (moving the offset shows another part of the same place).
    pub seed: u64,
    pub offset: [f32; 2],
    /// Row of the horizon as a share of the height (the ground is below it).
    pub horizon: f32,
}

/// Paints `scenery` onto the whole canvas; `unit` is the texture's scale in pixels.
pub fn background(c: &mut Canvas, scenery: &Scenery, unit: f32) {
    let [a, b] = scenery.palette;
    let (seed, offset) = (scenery.seed, scenery.offset);
    let horizon = c.h as f32 * scenery.horizon;
    let (w, h) = (c.w, c.h);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = ((x as f32 + offset[0]) / unit, (y as f32 + offset[1]) / unit);
            let grain = noise(seed ^ 0x55, fx * 3.0, fy * 3.0) - 0.5;
            let ground = y as f32 > horizon || scenery.kind == Background::Pavement;
            let colour = if ground {
                // Paving slabs: joints every 0.5 units, slabs of slightly varied tone.
                let (gx, gy) = (fx * 2.0, fy * 2.0 + if ground { 0.0 } else { 0.5 });
                let joint = gx.fract() < 0.04 || gy.fract() < 0.05;
                let tone = noise(seed ^ 0xA1, gx.floor(), gy.floor());
                let base = mix([0.5, 0.49, 0.47], b, 0.5);
                if joint {
                    base.map(|v| v * 0.7)
                } else {
                    base.map(|v| v * (0.85 + 0.25 * tone))
                }
            } else {
                match scenery.kind {
                    Background::Wall => {
                        let row = (fy * 4.0).floor();
                        let bx = fx * 2.0
                            + if (row as i32).rem_euclid(2) == 0 {
                                0.0
                            } else {
                                0.5
                            };
                        let mortar = (fy * 4.0).fract() < 0.1 || bx.fract() < 0.05;
                        let tone = noise(seed ^ 0xB2, bx.floor(), row);
                        if mortar {
                            b
                        } else {
                            a.map(|v| v * (0.8 + 0.35 * tone))
                        }
                    }
                    Background::Foliage => {
                        let leaf = noise(seed ^ 0xC3, fx * 5.0, fy * 5.0)
                            + 0.5 * noise(seed ^ 0xC4, fx * 11.0, fy * 11.0);
                        mix(b, a, (leaf / 1.5).clamp(0.0, 1.0).powf(0.7))
                    }
                    Background::Clutter | Background::Pavement => {
                        // Shop fronts: blocks of colour with window frames and signs.
                        let (bx, by) = ((fx * 1.3).floor(), (fy * 1.7).floor());
                        let t = noise(seed ^ 0xD5, bx * 7.1, by * 3.3);
                        let hue = noise(seed ^ 0xD6, bx * 2.3, by * 5.9);
                        let frame = (fx * 1.3).fract() < 0.08 || (fy * 1.7).fract() < 0.08;
                        if frame {
                            b.map(|v| v * 0.6)
                        } else {
                            mix(a, [hue, 1.0 - hue, t], 0.2).map(|v| v * (0.6 + 0.6 * t))
                        }
                    }
                }
            };
            c.px[y * w + x] = colour.map(|v| (v + grain * 0.08).clamp(0.0, 1.0));
        }
    }
}

/// Something in front of the person: a pole, a low object or a passer-by's arm and body.
/// Returns the canvas pixels it covers.
pub fn occluder(c: &mut Canvas, rng: &mut impl Rng, light: &Light) -> Vec<usize> {
    let (w, h) = (c.w as f32, c.h as f32);
    match rng.random_range(0..3) {
        0 => {
            let x = rng.random_range(0.1..0.9) * w;
            let r = rng.random_range(0.04..0.09) * w;
            let grey = rng.random_range(0.2..0.6);
            c.capsule(
                [x, -r],
                [x + rng.random_range(-0.05..0.05) * w, h + r],
                r,
                r,
                light,
                &|_, _| [grey, grey, grey * 1.05],
            )
        }
        1 => {
            let top = rng.random_range(0.6..0.8) * h;
            let colour = [rng.random(), rng.random(), rng.random()].map(|v: f32| 0.2 + 0.6 * v);
            let (x0, x1) = if rng.random_bool(0.5) {
                (-0.1 * w, rng.random_range(0.5..1.1) * w)
            } else {
                (rng.random_range(-0.1..0.5) * w, 1.1 * w)
            };
            c.quad(
                [[x0, top], [x1, top], [x1, h * 1.1], [x0, h * 1.1]],
                light,
                &|_, v| colour.map(|k| k * (1.0 - 0.3 * v)),
            )
        }
        _ => {
            // A passer-by crossing at the edge of the frame.
            let x = if rng.random_bool(0.5) {
                -0.05 * w
            } else {
                1.05 * w
            };
            let colour = [rng.random(), rng.random(), rng.random()].map(|v: f32| 0.1 + 0.6 * v);
            c.capsule(
                [x, 0.3 * h],
                [x, 1.1 * h],
                0.22 * w,
                0.2 * w,
                light,
                &|_, _| colour,
            )
        }
    }
}

/// A cast shadow: darkens one side of a soft line through the canvas.
pub fn shadow(c: &mut Canvas, rng: &mut impl Rng, strength: f32) {
    let (cx, cy) = (
        rng.random_range(0.0..c.w as f32),
        rng.random_range(0.0..c.h as f32),
    );
    let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let (nx, ny) = (angle.cos(), angle.sin());
    let soft = 0.04 * c.w as f32 + 1.0;
    for y in 0..c.h {
        for x in 0..c.w {
            let d = (x as f32 - cx) * nx + (y as f32 - cy) * ny;
            let t = (d / soft + 0.5).clamp(0.0, 1.0);
            let k = 1.0 - strength * t;
            let p = &mut c.px[y * c.w + x];
            *p = p.map(|v| v * k);
        }
    }
}

/// The camera's light (colour and exposure), resolution, blur and noise, then 8-bit RGB.
pub fn camera_effects(
    c: &Canvas,
    cam: &Camera,
    rng: &mut impl Rng,
    out_w: u32,
    out_h: u32,
) -> image::RgbImage {
    use image::imageops::{blur, resize, FilterType};
    let exposure = cam.brightness * rng.random_range(0.9..1.1);
    let raw = image::Rgb32FImage::from_fn(c.w as u32, c.h as u32, |x, y| {
        let p = c.px[y as usize * c.w + x as usize];
        image::Rgb([0, 1, 2].map(|i| (p[i] * cam.light[i] * exposure).clamp(0.0, 1.0)))
    });
    let rgb: image::RgbImage = image::DynamicImage::ImageRgb32F(raw).to_rgb8();
    let small_w = ((out_w as f32 * cam.resolution).round() as u32).max(8);
    let small_h = ((out_h as f32 * cam.resolution).round() as u32).max(16);
    let small = resize(&rgb, small_w, small_h, FilterType::Triangle);
    let mut img = resize(&small, out_w, out_h, FilterType::Triangle);
    if cam.blur > 0.3 {
        img = blur(&img, cam.blur);
    }
    for p in img.pixels_mut() {
        for v in p.0.iter_mut() {
            let n: f32 = (rng.random::<f32>() + rng.random::<f32>() + rng.random::<f32>() - 1.5)
                * 2.0
                * cam.noise
                * 255.0;
            *v = (f32::from(*v) + n).round().clamp(0.0, 255.0) as u8;
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::identity;
    use rand::SeedableRng;

    #[test]
    fn cloth_folds_shade_a_garment_without_changing_its_colour() {
        let colour = [0.6, 0.3, 0.2];
        let samples: Vec<Colour> = (0..40)
            .flat_map(|i| (0..40).map(move |j| (i as f32 / 20.0 - 1.0, j as f32 / 40.0)))
            .map(|(u, v)| folds(colour, 42, u, v))
            .collect();
        let mean = |k: usize| samples.iter().map(|c| c[k]).sum::<f32>() / samples.len() as f32;
        for (k, c) in colour.iter().enumerate() {
            assert!((mean(k) / c - 1.0).abs() < 0.06, "channel {k}");
        }
        let red: Vec<f32> = samples.iter().map(|c| c[0]).collect();
        let (lo, hi) = red
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(hi / lo > 1.1, "folds should vary the shade: {lo}..{hi}");
        // Hue stays: every sample is the garment's colour, brighter or darker.
        for c in &samples {
            assert!((c[1] / c[0] - 0.5).abs() < 1e-4 && (c[2] / c[0] - 1.0 / 3.0).abs() < 1e-4);
        }
    }

    #[test]
    fn a_person_stands_on_a_contact_shadow_that_is_not_part_of_them() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let id = identity::sample(&mut rng, 3, None);
        let mut c = Canvas::new(128, 256, [0.8; 3]);
        let view = View {
            yaw: 0.0,
            tilt: 0.0,
            scale: 200.0,
            origin: [64.0, 245.0],
        };
        let light = Light::new([0.3, 0.6, 0.8], 0.5);
        let drawn = draw_person(&mut c, &id, &figure::walking(&id, 0.0), &view, &light);
        let person: std::collections::HashSet<usize> = drawn.pixels.iter().copied().collect();
        // Ground pixels beside the feet are darkened, and none of them count as the person.
        let shaded: Vec<usize> = (240..250)
            .flat_map(|y| (0..128).map(move |x| y * 128 + x))
            .filter(|i| !person.contains(i) && c.px[*i][0] < 0.75)
            .collect();
        assert!(!shaded.is_empty());
        // Far from the person the background is untouched.
        assert_eq!(c.px[10 * 128 + 2], [0.8; 3]);
        assert_eq!(c.px[250 * 128 + 1], [0.8; 3]);
    }
}
