//! In-silico answers against the simulator's ground truth (`sim::GroundTruth`): MEI vs the
//! neuron's true Gabor inside its RF, preferred orientation, simple / complex classification by
//! F1/F0, and RF centre.
//!
//! Only neurons the caller marks as well predicted count (e.g. test correlation to the
//! noise-free rates ≥ 0.5); each figure says how many neurons it is over.

use std::f64::consts::{PI, TAU};

use crate::sim::neurons::{CellType, Filters, NeuronParams};

/// The neuron's Gabor at `phase` (the simulator's even filter when `phase` is its own) on an
/// `h × w` grid, and the mask of pixels inside its RF (envelope ≥ e⁻², i.e. within 2σ).
pub fn gabor(p: &NeuronParams, phase: f64, h: usize, w: usize) -> (Vec<f64>, Vec<bool>) {
    let (s, c) = p.orientation.sin_cos();
    let mut values = Vec::with_capacity(h * w);
    let mut mask = Vec::with_capacity(h * w);
    for r in 0..h {
        for col in 0..w {
            let (dy, dx) = (r as f64 - p.center_px[0], col as f64 - p.center_px[1]);
            let along = c * dx + s * dy;
            let across = -s * dx + c * dy;
            let q = (along * along + (across * p.aspect).powi(2)) / (2.0 * p.sigma_px * p.sigma_px);
            values.push((-q).exp() * (TAU * p.frequency * along + phase).cos());
            mask.push(q <= 2.0);
        }
    }
    (values, mask)
}

/// Pearson correlation of `a` and `b` over the pixels where `mask` is set.
pub fn masked_correlation(a: &[f64], b: &[f64], mask: &[bool]) -> f64 {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|((x, y), _)| (*x, *y))
        .collect();
    let n = pairs.len() as f64;
    if pairs.len() < 3 {
        return f64::NAN;
    }
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x / n, sy + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// Correlation of an MEI plane (h × w, any offset) with the true Gabor inside the RF: at the
/// neuron's own phase for simple (and normalized) cells, the best over 16 phases for complex
/// cells (whose response does not depend on phase).
pub fn mei_gabor_correlation(mei: &[f32], p: &NeuronParams, h: usize, w: usize) -> f64 {
    let plane: Vec<f64> = mei.iter().map(|&v| v as f64).collect();
    match p.cell_type {
        CellType::Complex => (0..16)
            .map(|k| {
                let (g, mask) = gabor(p, TAU * k as f64 / 16.0, h, w);
                masked_correlation(&plane, &g, &mask)
            })
            .fold(f64::NEG_INFINITY, f64::max),
        _ => {
            let (g, mask) = gabor(p, p.phase, h, w);
            masked_correlation(&plane, &g, &mask)
        }
    }
}

/// The MEI of the *simulated* simple cell itself under the MEI constraint (deviation from
/// `grey` at L2 norm `norm`, then clipped into `range`, all in dataset units; see
/// `stimulus::constrain`): the best image found by ascending its drive — linear in the image,
/// so its gradient is the cell's (cropped, zero-mean) even filter — from that filter at the
/// norm, with steps of 10 %, 5 %, 2.5 % and 1.25 % of the norm, 75 each. `h × w` plane, deviation
/// from grey.
///
/// Its correlation with the cell's Gabor is what a perfect model's MEI would reach: the ceiling
/// of the MEI–Gabor figure at that norm. Without clipping it is the filter itself (correlation ≈
/// 1); at a contrast that the small RF cannot hold inside the range, the pixels saturate and the
/// optimum turns binary.
pub fn true_simple_mei(
    p: &NeuronParams,
    h: usize,
    w: usize,
    norm: f64,
    grey: f64,
    range: [f64; 2],
) -> Vec<f64> {
    let filters = Filters::new(p, h, w);
    let mut unit = vec![0.0; h * w];
    let filter: Vec<f64> = (0..h * w)
        .map(|i| {
            unit[i] = 1.0;
            let d = filters.drive(CellType::Simple, p.semi_saturation, &unit, w);
            unit[i] = 0.0;
            d
        })
        .collect();
    let filter_norm = filter.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
    let constrain = |d: &mut Vec<f64>| {
        let n = d.iter().map(|v| v * v).sum::<f64>().sqrt();
        let scale = if n > 0.0 { norm / n } else { 0.0 };
        d.iter_mut()
            .for_each(|v| *v = (grey + *v * scale).clamp(range[0], range[1]) - grey);
    };
    let drive = |d: &[f64]| d.iter().zip(&filter).map(|(a, b)| a * b).sum::<f64>();
    let mut d = filter.clone();
    constrain(&mut d);
    let (mut best, mut best_drive) = (d.clone(), drive(&d));
    for step in [0.1, 0.05, 0.025, 0.0125] {
        d.clone_from(&best);
        for _ in 0..75 {
            let scale = step * norm / filter_norm;
            d.iter_mut().zip(&filter).for_each(|(d, f)| *d += scale * f);
            constrain(&mut d);
            let value = drive(&d);
            if value > best_drive {
                (best, best_drive) = (d.clone(), value);
            }
        }
    }
    best
}

/// Absolute difference of two orientations in degrees, on the half circle (0–90°).
pub fn orientation_error_deg(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(PI);
    d.min(PI - d).to_degrees()
}

/// Median of the finite values (NaN when there are none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The item-5 figures over the well-predicted neurons.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthFigures {
    /// Neurons counted (well predicted) and in all.
    pub counted: usize,
    pub total: usize,
    /// Simple cells counted and the median MEI–Gabor correlation over them.
    pub simple: usize,
    pub simple_mei_correlation: f64,
    /// Complex cells counted and the median best-phase MEI–Gabor correlation over them.
    pub complex: usize,
    pub complex_mei_correlation: f64,
    /// Normalized (divisive) cells counted and their median MEI–Gabor correlation.
    pub normalized: usize,
    pub normalized_mei_correlation: f64,
    /// Median preferred-orientation error (degrees), all counted neurons.
    pub orientation_error_deg: f64,
    /// Accuracy of "F1/F0 > 1 ⇔ simple" over the counted simple and complex cells.
    pub f1_f0_accuracy: f64,
    /// The same with normalized cells counted as simple (phase-sensitive) cells.
    pub f1_f0_accuracy_with_normalized: f64,
    /// Median distance (pixels) of the model's RF centre from the true centre.
    pub rf_centre_error_px: f64,
}

/// Per-neuron answers of the model, all indexed like `truth` (readout order).
pub struct ModelAnswers<'a> {
    /// MEI planes (first channel), neurons × H·W, dataset units (grey offset does not matter).
    pub meis: &'a [f32],
    /// Preferred orientation (radians).
    pub orientation: &'a [f64],
    /// F1/F0.
    pub f1_f0: &'a [f64],
    /// RF centre (row, column), pixels.
    pub rf_centres: &'a [[f64; 2]],
}

/// Compares the model's answers with `truth` over the neurons with `keep[i]`.
pub fn compare(
    truth: &[NeuronParams],
    answers: &ModelAnswers,
    keep: &[bool],
    h: usize,
    w: usize,
) -> TruthFigures {
    let counted: Vec<usize> = (0..truth.len()).filter(|&i| keep[i]).collect();
    let of_type = |t: CellType| -> Vec<usize> {
        counted
            .iter()
            .copied()
            .filter(|&i| truth[i].cell_type == t)
            .collect()
    };
    let mei_corr = |idx: &[usize]| {
        let c: Vec<f64> = idx
            .iter()
            .map(|&i| {
                mei_gabor_correlation(&answers.meis[i * h * w..(i + 1) * h * w], &truth[i], h, w)
            })
            .collect();
        median(&c)
    };
    let (simple, complex, normalized) = (
        of_type(CellType::Simple),
        of_type(CellType::Complex),
        of_type(CellType::Normalized),
    );
    let orientation: Vec<f64> = counted
        .iter()
        .map(|&i| orientation_error_deg(answers.orientation[i], truth[i].orientation))
        .collect();
    let accuracy = |idx: &[usize], phase_sensitive: &dyn Fn(CellType) -> bool| {
        let right = idx
            .iter()
            .filter(|&&i| (answers.f1_f0[i] > 1.0) == phase_sensitive(truth[i].cell_type))
            .count();
        right as f64 / idx.len().max(1) as f64
    };
    let simple_or_complex: Vec<usize> = simple.iter().chain(&complex).copied().collect();
    let rf: Vec<f64> = counted
        .iter()
        .map(|&i| {
            let [r, c] = answers.rf_centres[i];
            (r - truth[i].center_px[0]).hypot(c - truth[i].center_px[1])
        })
        .collect();
    TruthFigures {
        counted: counted.len(),
        total: truth.len(),
        simple: simple.len(),
        simple_mei_correlation: mei_corr(&simple),
        complex: complex.len(),
        complex_mei_correlation: mei_corr(&complex),
        normalized: normalized.len(),
        normalized_mei_correlation: mei_corr(&normalized),
        orientation_error_deg: median(&orientation),
        f1_f0_accuracy: accuracy(&simple_or_complex, &|t| t == CellType::Simple),
        f1_f0_accuracy_with_normalized: accuracy(&counted, &|t| t != CellType::Complex),
        rf_centre_error_px: median(&rf),
    }
}

impl TruthFigures {
    /// The figures against the targets, one line each.
    pub fn render(&self) -> String {
        let mark = |ok: bool| if ok { "met" } else { "NOT met" };
        format!(
            "neurons counted (well predicted): {} of {}\n\
             simple cells ({}): median MEI–Gabor correlation {:.3} (target ≥ 0.7: {})\n\
             complex cells ({}): median best-phase MEI–Gabor correlation {:.3} (target ≥ 0.7: {})\n\
             normalized cells ({}): median MEI–Gabor correlation {:.3}\n\
             preferred orientation: median error {:.1}° (target ≤ 15°: {})\n\
             F1/F0 > 1 ⇔ simple: accuracy {:.1} % over simple + complex (target ≥ 80 %: {}), {:.1} % counting normalized cells as simple\n\
             RF centre: median error {:.2} px (target ≤ 1.5 px: {})\n",
            self.counted,
            self.total,
            self.simple,
            self.simple_mei_correlation,
            mark(self.simple_mei_correlation >= 0.7),
            self.complex,
            self.complex_mei_correlation,
            mark(self.complex_mei_correlation >= 0.7),
            self.normalized,
            self.normalized_mei_correlation,
            self.orientation_error_deg,
            mark(self.orientation_error_deg <= 15.0),
            100.0 * self.f1_f0_accuracy,
            mark(self.f1_f0_accuracy >= 0.8),
            100.0 * self.f1_f0_accuracy_with_normalized,
            self.rf_centre_error_px,
            mark(self.rf_centre_error_px <= 1.5),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neuron(cell_type: CellType) -> NeuronParams {
        NeuronParams {
            cell_type,
            center_px: [12.0, 15.0],
            sigma_px: 3.0,
            aspect: 0.8,
            frequency: 0.12,
            orientation: 0.7,
            phase: 1.1,
            semi_saturation: 0.5,
            threshold: 0.0,
            gain: 1.0,
        }
    }

    #[test]
    fn a_gabor_correlates_with_itself_and_complex_cells_ignore_phase() {
        let (h, w) = (25, 30);
        let simple = neuron(CellType::Simple);
        let (g, _) = gabor(&simple, simple.phase, h, w);
        let plane: Vec<f32> = g.iter().map(|&v| (100.0 + 30.0 * v) as f32).collect();
        assert!(mei_gabor_correlation(&plane, &simple, h, w) > 0.999);
        let (shifted, _) = gabor(&simple, simple.phase + PI / 2.0, h, w);
        let shifted: Vec<f32> = shifted.iter().map(|&v| v as f32).collect();
        assert!(mei_gabor_correlation(&shifted, &simple, h, w) < 0.3);
        assert!(mei_gabor_correlation(&shifted, &neuron(CellType::Complex), h, w) > 0.97);
        assert!((orientation_error_deg(0.1, PI - 0.1) - 11.459).abs() < 0.01);
        // The simulated cell's own MEI: its Gabor at a low contrast, a saturated (binary)
        // version of it when the contrast does not fit into the range.
        let low = true_simple_mei(&simple, h, w, 10.0, 100.0, [0.0, 255.0]);
        let corr = |d: &[f64]| {
            let plane: Vec<f32> = d.iter().map(|&v| v as f32).collect();
            mei_gabor_correlation(&plane, &simple, h, w)
        };
        assert!(corr(&low) > 0.98, "{}", corr(&low));
        let high = true_simple_mei(&simple, h, w, 3000.0, 100.0, [0.0, 255.0]);
        let saturated = high.iter().filter(|&&v| v <= -99.99 || v >= 154.99).count();
        assert!(saturated > 20, "{saturated} saturated pixels");
        assert!(
            corr(&high) < corr(&low) - 0.05,
            "{} vs {}",
            corr(&high),
            corr(&low)
        );
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), 2.0);
    }
}
