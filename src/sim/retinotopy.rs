//! A smooth retinotopic map from cortical position (µm) to receptive-field centre (pixels).
//!
//! Mouse V1 maps the visual field smoothly onto the cortex; the readout's retinotopy network
//! must be able to learn this map from `cell_motor_coordinates`. Each animal gets its own map:
//! a rotation / mirror and anisotropic scale (affine), a mild sinusoidal warp (smooth
//! nonlinearity), and per-neuron scatter added afterwards. Centres are kept at least
//! `margin` pixels from every border so a model whose first convolution is 15×15 "valid"
//! can still read them.

use serde::{Deserialize, Serialize};

/// Half-width of the simulated cortical patch in µm (the patch is ~1 mm²).
pub const PATCH_HALF_WIDTH_UM: f64 = 500.0;

/// Parameters of one animal's map; all randomness is drawn when it is built.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetinotopicMap {
    /// Centre of the recorded patch in motor coordinates (µm, x and y).
    pub patch_center_um: [f64; 2],
    /// Rotation of the cortical axes relative to the visual axes (radians).
    pub rotation: f64,
    /// Whether the map is mirrored (cortical x ↦ −x before the rotation).
    pub mirrored: bool,
    /// Fraction of the usable image extent covered along (rows, columns).
    pub coverage: [f64; 2],
    /// Strength of the sinusoidal warp (0 = purely affine).
    pub warp: f64,
    /// Phases of the warp along the two axes.
    pub warp_phase: [f64; 2],
    /// Pixel centre of the map (row, column).
    pub center_px: [f64; 2],
    /// Half extent, in pixels, of the region the map may cover (rows, columns).
    pub half_extent_px: [f64; 2],
}

impl RetinotopicMap {
    /// Builds the map of one animal for an image of `height × width` pixels.
    pub fn random(
        rng: &mut impl rand::Rng,
        height: usize,
        width: usize,
        margin: f64,
    ) -> RetinotopicMap {
        let half = [
            ((height - 1) as f64 / 2.0 - margin).max(0.0),
            ((width - 1) as f64 / 2.0 - margin).max(0.0),
        ];
        RetinotopicMap {
            patch_center_um: [
                rng.random_range(-400.0..400.0),
                rng.random_range(-400.0..400.0),
            ],
            rotation: rng.random_range(0.0..std::f64::consts::TAU),
            mirrored: rng.random_bool(0.5),
            coverage: [rng.random_range(0.75..0.95), rng.random_range(0.75..0.95)],
            warp: rng.random_range(0.08..0.2),
            warp_phase: [
                rng.random_range(0.0..std::f64::consts::TAU),
                rng.random_range(0.0..std::f64::consts::TAU),
            ],
            center_px: [
                (height - 1) as f64 / 2.0 + rng.random_range(-0.5..0.5) * (1.0 - 0.9) * half[0],
                (width - 1) as f64 / 2.0 + rng.random_range(-0.5..0.5) * (1.0 - 0.9) * half[1],
            ],
            half_extent_px: half,
        }
    }

    /// Noise-free RF centre (row, column) in pixels of a neuron at cortical position `(x, y)` µm.
    pub fn center_of(&self, x_um: f64, y_um: f64) -> [f64; 2] {
        let mut u = (x_um - self.patch_center_um[0]) / PATCH_HALF_WIDTH_UM;
        let v = (y_um - self.patch_center_um[1]) / PATCH_HALF_WIDTH_UM;
        if self.mirrored {
            u = -u;
        }
        let (s, c) = self.rotation.sin_cos();
        // Dividing by |cos|+|sin| keeps the rotated unit square inside [-1, 1]².
        let norm = c.abs() + s.abs();
        let (a, b) = ((c * u - s * v) / norm, (s * u + c * v) / norm);
        let pi = std::f64::consts::PI;
        let a2 = (a + self.warp * (pi * b + self.warp_phase[0]).sin()) / (1.0 + self.warp);
        let b2 = (b + self.warp * (pi * a + self.warp_phase[1]).sin()) / (1.0 + self.warp);
        [
            self.center_px[0] + self.coverage[0] * self.half_extent_px[0] * b2,
            self.center_px[1] + self.coverage[1] * self.half_extent_px[1] * a2,
        ]
    }
}

/// Grid coordinates as used by `grid_sample(align_corners=True)`: x = 2·col/(W−1) − 1,
/// y = 2·row/(H−1) − 1. Returns `[x, y]`.
pub fn pixel_to_grid(center: [f64; 2], height: usize, width: usize) -> [f64; 2] {
    [
        2.0 * center[1] / (width - 1) as f64 - 1.0,
        2.0 * center[0] / (height - 1) as f64 - 1.0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn map_is_smooth_and_stays_inside_the_margin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let map = RetinotopicMap::random(&mut rng, 36, 64, 10.0);
        let mut prev = map.center_of(
            map.patch_center_um[0] - 500.0,
            map.patch_center_um[1] - 500.0,
        );
        for i in 0..=100 {
            for j in 0..=10 {
                let x = map.patch_center_um[0] - 500.0 + 10.0 * i as f64;
                let y = map.patch_center_um[1] - 500.0 + 100.0 * j as f64;
                let p = map.center_of(x, y);
                assert!(p[0] >= 10.0 - 1e-9 && p[0] <= 25.0 + 1e-9, "{p:?}");
                assert!(p[1] >= 10.0 - 1e-9 && p[1] <= 53.0 + 1e-9, "{p:?}");
                if j == 0 {
                    // 10 µm apart on the cortex → well under a pixel apart in the image.
                    let step = (p[0] - prev[0]).hypot(p[1] - prev[1]);
                    assert!(step < 1.0, "step {step} at {i} {p:?} {prev:?}");
                    prev = p;
                }
            }
        }
        assert_eq!(pixel_to_grid([0.0, 63.0], 36, 64), [1.0, -1.0]);
    }
}
