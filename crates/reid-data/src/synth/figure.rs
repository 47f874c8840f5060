//! The articulated body: 14 joints of a walking figure in 3D body space and their projection
//! into an image for a view angle and a camera tilt.
//!
//! Body space: x to the person's right, y up, z forward; the feet stand at the origin and the
//! average person is 1 unit tall.

use super::identity::Identity;

/// The 14 joints written with each image, in this order (the LSP / MPII 14-joint set).
pub const JOINT_NAMES: [&str; 14] = [
    "head",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
];

pub const HEAD: usize = 0;
pub const NECK: usize = 1;
pub const R_SHOULDER: usize = 2;
pub const R_ELBOW: usize = 3;
pub const R_WRIST: usize = 4;
pub const L_SHOULDER: usize = 5;
pub const L_ELBOW: usize = 6;
pub const L_WRIST: usize = 7;
pub const R_HIP: usize = 8;
pub const R_KNEE: usize = 9;
pub const R_ANKLE: usize = 10;
pub const L_HIP: usize = 11;
pub const L_KNEE: usize = 12;
pub const L_ANKLE: usize = 13;

/// Joint positions in body space.
pub type Pose = [[f32; 3]; 14];

/// The pose at walking phase `phase` (radians; one stride per 2 pi).
pub fn walking(id: &Identity, phase: f32) -> Pose {
    let h = id.height;
    // Joint centres: shoulders about 0.19 of the height apart, hips 0.12 (the arms and thighs
    // add their own thickness outside them).
    let (shoulder_w, hip_w) = (0.095 * id.build * h, 0.06 * id.build * h);
    let bob = 0.012 * h * phase.cos().abs();
    let mut j = [[0.0f32; 3]; 14];
    j[HEAD] = [0.0, 0.935 * h + bob, 0.01 * h];
    j[NECK] = [0.0, 0.855 * h + bob, 0.0];
    j[R_SHOULDER] = [shoulder_w, 0.815 * h + bob, 0.0];
    j[L_SHOULDER] = [-shoulder_w, 0.815 * h + bob, 0.0];
    j[R_HIP] = [hip_w, 0.52 * h + bob, 0.0];
    j[L_HIP] = [-hip_w, 0.52 * h + bob, 0.0];
    let (thigh, shin) = (0.245 * h, 0.245 * h);
    for (hip, knee, ankle, swing) in [
        (R_HIP, R_KNEE, R_ANKLE, phase.sin()),
        (L_HIP, L_KNEE, L_ANKLE, -phase.sin()),
    ] {
        let a = 0.32 * swing;
        // The knee bends most while the leg swings forward.
        let bend = 0.35 * (swing + 0.2).max(0.0);
        let k = [
            j[hip][0],
            j[hip][1] - thigh * a.cos(),
            j[hip][2] + thigh * a.sin(),
        ];
        j[knee] = k;
        j[ankle] = [
            k[0],
            k[1] - shin * (a - bend).cos(),
            k[2] + shin * (a - bend).sin(),
        ];
    }
    let (upper, fore) = (0.17 * h, 0.155 * h);
    for (shoulder, elbow, wrist, swing, side) in [
        (R_SHOULDER, R_ELBOW, R_WRIST, -phase.sin(), 1.0),
        (L_SHOULDER, L_ELBOW, L_WRIST, phase.sin(), -1.0),
    ] {
        let a = 0.3 * swing;
        let s = j[shoulder];
        let e = [
            s[0] + side * 0.02 * h,
            s[1] - upper * a.cos(),
            s[2] + upper * a.sin(),
        ];
        let b = a + 0.25 + 0.2 * swing.max(0.0);
        j[elbow] = e;
        j[wrist] = [
            e[0] + side * 0.01 * h,
            e[1] - fore * b.cos(),
            e[2] + fore * b.sin(),
        ];
    }
    j
}

/// How a body-space point lands in the image.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// Rotation of the person about the vertical axis: 0 faces the camera, pi shows the back,
    /// pi/2 walks to the image's right.
    pub yaw: f32,
    /// Camera looking down (0 to 1).
    pub tilt: f32,
    /// Pixels per body unit.
    pub scale: f32,
    /// Image position of the feet.
    pub origin: [f32; 2],
}

impl View {
    /// Depth toward the camera of a body-space point (larger is nearer).
    pub fn depth(&self, p: [f32; 3]) -> f32 {
        p[0] * self.yaw.sin() + p[2] * self.yaw.cos()
    }

    /// Image position (x right, y down) of a body-space point.
    pub fn project(&self, p: [f32; 3]) -> [f32; 2] {
        let x = -p[0] * self.yaw.cos() + p[2] * self.yaw.sin();
        let d = self.depth(p);
        let y = p[1] * (1.0 - 0.22 * self.tilt) - d * 0.3 * self.tilt;
        [
            self.origin[0] + x * self.scale,
            self.origin[1] - y * self.scale,
        ]
    }

    /// How much the person faces the camera: 1 front, -1 back, 0 side.
    pub fn facing(&self) -> f32 {
        self.yaw.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::identity;
    use rand::SeedableRng;

    #[test]
    fn a_front_view_puts_the_right_side_on_the_image_left_and_the_head_on_top() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let id = identity::sample(&mut rng, 1, None);
        let pose = walking(&id, 0.3);
        let view = View {
            yaw: 0.0,
            tilt: 0.0,
            scale: 100.0,
            origin: [50.0, 120.0],
        };
        let p = pose.map(|j| view.project(j));
        assert!(p[R_SHOULDER][0] < p[L_SHOULDER][0]);
        assert!(p[HEAD][1] < p[NECK][1] && p[NECK][1] < p[R_HIP][1] && p[R_HIP][1] < p[R_ANKLE][1]);
        let back = View {
            yaw: std::f32::consts::PI,
            ..view
        };
        assert!(back.project(pose[R_SHOULDER])[0] > back.project(pose[L_SHOULDER])[0]);
        // Feet stay near the ground line through the stride.
        for phase in [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0] {
            let pose = walking(&id, phase);
            assert!(
                pose[R_ANKLE][1].min(pose[L_ANKLE][1]) < 0.12,
                "phase {phase}"
            );
        }
    }
}
