//! A small anti-aliased rasteriser for shaded body parts: capsules (limbs), ellipses (heads),
//! convex quads (torsos, skirts, bags) and rectangles, each lit as a rounded surface so people
//! look solid rather than flat. Colours are linear RGB in `0..=1`.

use super::identity::Colour;

/// A point in pixels (x right, y down).
pub type P = [f32; 2];

/// Light for shading: a direction (x right, y up, z toward the viewer) and an ambient share.
#[derive(Debug, Clone, Copy)]
pub struct Light {
    pub dir: [f32; 3],
    pub ambient: f32,
}

impl Light {
    pub fn new(dir: [f32; 3], ambient: f32) -> Self {
        let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2])
            .sqrt()
            .max(1e-6);
        Self {
            dir: dir.map(|v| v / n),
            ambient,
        }
    }

    /// Brightness of a surface with normal `n` (x right, y up, z toward the viewer).
    fn shade(&self, n: [f32; 3]) -> f32 {
        let d = n[0] * self.dir[0] + n[1] * self.dir[1] + n[2] * self.dir[2];
        self.ambient + (1.0 - self.ambient) * d.max(0.0)
    }
}

/// An RGB image being drawn; `mask` optionally records which pixels a part covered.
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub px: Vec<Colour>,
}

fn smooth_cover(signed_inside: f32) -> f32 {
    (signed_inside + 0.5).clamp(0.0, 1.0)
}

impl Canvas {
    pub fn new(w: usize, h: usize, fill: Colour) -> Self {
        Self {
            w,
            h,
            px: vec![fill; w * h],
        }
    }

    #[inline]
    fn blend(&mut self, x: usize, y: usize, c: Colour, a: f32) {
        let p = &mut self.px[y * self.w + x];
        for i in 0..3 {
            p[i] += (c[i] - p[i]) * a;
        }
    }

    /// Pixel box covering `[x0, x1] x [y0, y1]`, clipped to the canvas.
    fn bounds(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> (usize, usize, usize, usize) {
        let clip = |v: f32, max: usize| (v.floor().max(0.0) as usize).min(max);
        (
            clip(x0 - 1.0, self.w),
            clip(y0 - 1.0, self.h),
            clip(x1 + 2.0, self.w),
            clip(y1 + 2.0, self.h),
        )
    }

    /// A limb from `a` (radius `ra`) to `b` (radius `rb`), shaded as a cylinder. `paint(u, v)`
    /// gives the albedo at `u` across (-1..1) and `v` along (0 at `a`, 1 at `b`). Returns the
    /// pixels it covered by more than half.
    pub fn capsule(
        &mut self,
        a: P,
        b: P,
        ra: f32,
        rb: f32,
        light: &Light,
        paint: &dyn Fn(f32, f32) -> Colour,
    ) -> Vec<usize> {
        let r = ra.max(rb);
        let (x0, y0, x1, y1) = self.bounds(
            a[0].min(b[0]) - r,
            a[1].min(b[1]) - r,
            a[0].max(b[0]) + r,
            a[1].max(b[1]) + r,
        );
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len2 = (dx * dx + dy * dy).max(1e-6);
        let len = len2.sqrt();
        let (px_, py_) = (-dy / len, dx / len); // unit normal (across)
        let mut covered = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                let (qx, qy) = (x as f32 + 0.5 - a[0], y as f32 + 0.5 - a[1]);
                let t = ((qx * dx + qy * dy) / len2).clamp(0.0, 1.0);
                let (ex, ey) = (qx - t * dx, qy - t * dy);
                let d = (ex * ex + ey * ey).sqrt();
                let rad = ra + (rb - ra) * t;
                let cover = smooth_cover(rad - d);
                if cover <= 0.0 {
                    continue;
                }
                let side = if ex * px_ + ey * py_ >= 0.0 {
                    1.0
                } else {
                    -1.0
                };
                let u = (side * d / rad.max(1e-3)).clamp(-1.0, 1.0);
                let nz = (1.0 - u * u).max(0.0).sqrt();
                // Across direction in image space (y down) -> light space (y up).
                let n = [u * px_, -u * py_, nz];
                let s = light.shade(n);
                let c = paint(u, t).map(|v| v * s);
                self.blend(x, y, c, cover);
                if cover > 0.5 {
                    covered.push(y * self.w + x);
                }
            }
        }
        covered
    }

    /// An ellipse centred at `c`, shaded as a sphere; `paint(u, v)` with u, v in -1..1.
    pub fn ellipse(
        &mut self,
        c: P,
        rx: f32,
        ry: f32,
        light: &Light,
        paint: &dyn Fn(f32, f32) -> Colour,
    ) -> Vec<usize> {
        let (x0, y0, x1, y1) = self.bounds(c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry);
        let mut covered = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                let (u, v) = (
                    (x as f32 + 0.5 - c[0]) / rx.max(1e-3),
                    (y as f32 + 0.5 - c[1]) / ry.max(1e-3),
                );
                let rho = (u * u + v * v).sqrt();
                let cover = smooth_cover((1.0 - rho) * rx.min(ry));
                if cover <= 0.0 {
                    continue;
                }
                let nz = (1.0 - (rho * rho).min(1.0)).sqrt();
                let s = light.shade([u.clamp(-1.0, 1.0), -v.clamp(-1.0, 1.0), nz]);
                let col = paint(u, v).map(|k| k * s);
                self.blend(x, y, col, cover);
                if cover > 0.5 {
                    covered.push(y * self.w + x);
                }
            }
        }
        covered
    }

    /// A convex quad `top-left, top-right, bottom-right, bottom-left`, shaded as a flattened
    /// cylinder across; `paint(u, v)`: u across (-1..1), v from top (0) to bottom (1).
    pub fn quad(
        &mut self,
        q: [P; 4],
        light: &Light,
        paint: &dyn Fn(f32, f32) -> Colour,
    ) -> Vec<usize> {
        let xs = q.map(|p| p[0]);
        let ys = q.map(|p| p[1]);
        let (x0, y0, x1, y1) = self.bounds(
            xs.iter().copied().fold(f32::MAX, f32::min),
            ys.iter().copied().fold(f32::MAX, f32::min),
            xs.iter().copied().fold(f32::MIN, f32::max),
            ys.iter().copied().fold(f32::MIN, f32::max),
        );
        // Orientation so that "inside" is positive for either winding.
        let area: f32 = (0..4)
            .map(|i| {
                let (a, b) = (q[i], q[(i + 1) % 4]);
                a[0] * b[1] - b[0] * a[1]
            })
            .sum();
        let sign = if area >= 0.0 { 1.0 } else { -1.0 };
        let top = [(q[0][0] + q[1][0]) / 2.0, (q[0][1] + q[1][1]) / 2.0];
        let bottom = [(q[3][0] + q[2][0]) / 2.0, (q[3][1] + q[2][1]) / 2.0];
        let (ax, ay) = (bottom[0] - top[0], bottom[1] - top[1]);
        let alen2 = (ax * ax + ay * ay).max(1e-6);
        let half_top = ((q[1][0] - q[0][0]).hypot(q[1][1] - q[0][1]) / 2.0).max(0.5);
        let half_bottom = ((q[2][0] - q[3][0]).hypot(q[2][1] - q[3][1]) / 2.0).max(0.5);
        let across = [ay / alen2.sqrt(), -ax / alen2.sqrt()];
        // Which way "across" points relative to the quad's left-to-right edge.
        let lr = if (q[1][0] - q[0][0]) * across[0] + (q[1][1] - q[0][1]) * across[1] >= 0.0 {
            1.0
        } else {
            -1.0
        };
        let mut covered = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                let p = [x as f32 + 0.5, y as f32 + 0.5];
                let mut inside = f32::MAX;
                for i in 0..4 {
                    let (a, b) = (q[i], q[(i + 1) % 4]);
                    let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
                    let l = (ex * ex + ey * ey).sqrt().max(1e-6);
                    let d = sign * (ex * (p[1] - a[1]) - ey * (p[0] - a[0])) / l;
                    inside = inside.min(d);
                }
                let cover = smooth_cover(inside);
                if cover <= 0.0 {
                    continue;
                }
                let (rx, ry) = (p[0] - top[0], p[1] - top[1]);
                let v = ((rx * ax + ry * ay) / alen2).clamp(0.0, 1.0);
                let half = half_top + (half_bottom - half_top) * v;
                let u = (lr * (rx * across[0] + ry * across[1]) / half).clamp(-1.0, 1.0);
                let nu = 0.75 * u;
                let n = [
                    nu * lr * across[0],
                    -nu * lr * across[1],
                    (1.0 - nu * nu).sqrt(),
                ];
                let s = light.shade(n);
                let c = paint(u, v).map(|k| k * s);
                self.blend(x, y, c, cover);
                if cover > 0.5 {
                    covered.push(y * self.w + x);
                }
            }
        }
        covered
    }

    /// A soft dark ellipse on the ground (a contact shadow) centred at `c`: darkens what is
    /// already there by up to `strength` in the middle, fading to nothing at the rim.
    pub fn contact_shadow(&mut self, c: P, rx: f32, ry: f32, strength: f32) {
        let (x0, y0, x1, y1) = self.bounds(c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry);
        for y in y0..y1 {
            for x in x0..x1 {
                let (u, v) = (
                    (x as f32 + 0.5 - c[0]) / rx.max(1e-3),
                    (y as f32 + 0.5 - c[1]) / ry.max(1e-3),
                );
                let rho2 = u * u + v * v;
                if rho2 < 1.0 {
                    let k = 1.0 - strength * (1.0 - rho2) * (1.0 - rho2);
                    let p = &mut self.px[y * self.w + x];
                    *p = p.map(|v| v * k);
                }
            }
        }
    }

    /// A flat axis-aligned rectangle (no shading), blended with opacity `alpha`.
    pub fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, colour: Colour, alpha: f32) {
        let (bx0, by0, bx1, by1) = self.bounds(x0, y0, x1, y1);
        for y in by0..by1 {
            for x in bx0..bx1 {
                let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
                let cover = smooth_cover((cx - x0).min(x1 - cx).min(cy - y0).min(y1 - cy));
                if cover > 0.0 {
                    self.blend(x, y, colour, cover * alpha);
                }
            }
        }
    }
}

/// Smooth value noise in 0..1 at `(x, y)` for `seed` (a cheap hash on an integer lattice).
pub fn noise(seed: u64, x: f32, y: f32) -> f32 {
    let hash = |ix: i64, iy: i64| {
        let mut h = seed
            ^ (ix as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (iy as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= h >> 31;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 29;
        (h >> 40) as f32 / (1u64 << 24) as f32
    };
    let (fx, fy) = (x.floor(), y.floor());
    let (tx, ty) = (x - fx, y - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let (ix, iy) = (fx as i64, fy as i64);
    let top = hash(ix, iy) + (hash(ix + 1, iy) - hash(ix, iy)) * sx;
    let bottom = hash(ix, iy + 1) + (hash(ix + 1, iy + 1) - hash(ix, iy + 1)) * sx;
    top + (bottom - top) * sy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capsule_covers_its_segment_and_nothing_far_away() {
        let mut c = Canvas::new(40, 40, [0.0; 3]);
        let light = Light::new([0.0, 0.0, 1.0], 0.5);
        let covered = c.capsule([10.0, 10.0], [30.0, 30.0], 3.0, 3.0, &light, &|_, _| {
            [1.0; 3]
        });
        assert!(covered.contains(&(20 * 40 + 20)));
        assert_eq!(c.px[5 * 40 + 35], [0.0; 3]);
        // Lit from the front, the middle of the limb is brighter than its edge.
        let mid = c.px[20 * 40 + 20][0];
        let edge = c.px[22 * 40 + 18][0];
        assert!(mid > edge && mid > 0.9, "{mid} {edge}");
    }

    #[test]
    fn quads_of_either_winding_fill_the_same_pixels() {
        let light = Light::new([0.0, 0.0, 1.0], 1.0);
        let q = [[5.0, 5.0], [25.0, 5.0], [22.0, 30.0], [8.0, 30.0]];
        let mut a = Canvas::new(32, 32, [0.0; 3]);
        let mut b = Canvas::new(32, 32, [0.0; 3]);
        let ca = a.quad(q, &light, &|_, _| [1.0; 3]);
        let cb = b.quad([q[1], q[0], q[3], q[2]], &light, &|_, _| [1.0; 3]);
        assert_eq!(ca, cb);
        assert!(ca.len() > 300 && ca.len() < 520, "{}", ca.len());
    }

    #[test]
    fn noise_is_smooth_and_deterministic() {
        assert_eq!(noise(3, 1.25, 2.5), noise(3, 1.25, 2.5));
        assert!((noise(3, 1.25, 2.5) - noise(3, 1.26, 2.5)).abs() < 0.05);
        assert!((0.0..=1.0).contains(&noise(9, -4.2, 7.7)));
    }
}
