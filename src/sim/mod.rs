//! A ground-truth V1 simulator that writes datasets in the FileTree layout.
//!
//! Natural-like images ([`images`]) are shown to a population of model V1 neurons
//! ([`neurons`]) whose receptive fields follow a smooth retinotopic map of their cortical
//! position ([`retinotopy`]); a session ([`session`]) adds behaviour, eye movements, a shared
//! gain and Poisson noise; [`writer`] stores the result like the real recordings, with the
//! ground truth (RF centres, noise-free test rates, cell types, …) beside it so that a fitted
//! model can be checked against the truth.

pub mod images;
pub mod neurons;
pub mod retinotopy;
pub mod session;
pub mod writer;

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use neurons::{CellType, Filters, NeuronParams};
use retinotopy::{RetinotopicMap, pixel_to_grid};
use writer::TreeWriter;

/// Minimum distance (pixels) of every RF centre from the image border: a 15×15 valid first
/// convolution loses 7 pixels on each side, and the readout needs a little room around that.
pub const RF_MARGIN_PX: f64 = 10.0;
/// Grey level and spread used to standardize images before the cell models see them.
const IMAGE_MEAN: f64 = 112.0;
const IMAGE_STD: f64 = 55.0;
/// Range of the neurons' mean responses per trial (log-uniform), spanning more than 10×.
const MEAN_RATE_RANGE: (f64, f64) = (0.08, 1.6);

/// What to simulate. `Default` gives a dataset a demo can train on in minutes on 2 cores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Number of neurons.
    pub neurons: usize,
    /// Unique images in the train tier.
    pub train_images: usize,
    /// Unique images in the validation tier.
    pub validation_images: usize,
    /// Unique images in the test tier (each shown `repeats` times).
    pub test_images: usize,
    /// Presentations of every test image.
    pub repeats: usize,
    /// Seed of all randomness.
    pub seed: u64,
    /// Animal id: selects the retinotopic map and the neurons (written as `animal_ids`).
    pub animal: u16,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            neurons: 200,
            train_images: 2000,
            validation_images: 300,
            test_images: 50,
            repeats: 10,
            seed: 0,
            animal: 1,
            height: 36,
            width: 64,
        }
    }
}

impl SimulationConfig {
    /// Rejects configurations that cannot produce a usable dataset.
    pub fn validate(&self) -> anyhow::Result<()> {
        let min_side = (2.0 * RF_MARGIN_PX) as usize + 3;
        anyhow::ensure!(
            (1..=u16::MAX as usize).contains(&self.neurons),
            "neurons: expected 1..=65535, got {}",
            self.neurons
        );
        anyhow::ensure!(self.train_images >= 1, "train_images: expected at least 1");
        anyhow::ensure!(
            self.validation_images >= 1,
            "validation_images: expected at least 1"
        );
        anyhow::ensure!(self.test_images >= 2, "test_images: expected at least 2");
        anyhow::ensure!(
            self.repeats >= 2,
            "repeats: expected at least 2 (for the oracle)"
        );
        anyhow::ensure!(
            self.height >= min_side && self.width >= min_side,
            "height/width: expected at least {min_side} pixels so RF centres keep {RF_MARGIN_PX} px \
             from the border, got {}×{}",
            self.height,
            self.width
        );
        Ok(())
    }
}

/// What [`simulate`] produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSummary {
    /// The dataset folder. Not serialized, so that `ground_truth.json` does not depend on
    /// where the dataset was written (same seed + animal → byte-identical trees).
    #[serde(skip)]
    pub out: PathBuf,
    /// Trials written (all tiers).
    pub trials: usize,
    /// Neurons written.
    pub neurons: usize,
    /// Mean over neurons of the test-tier jackknife oracle correlation.
    pub mean_oracle_jackknife: f64,
    /// Smallest and largest per-neuron mean response.
    pub mean_response_range: [f64; 2],
    /// Cells of each type (simple, complex, normalized).
    pub cell_type_counts: [usize; 3],
}

/// The truth behind a simulated dataset, stored in `DIR/ground_truth/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundTruth {
    /// The configuration (incl. seed and animal) that produced the data.
    pub config: SimulationConfig,
    /// The animal's retinotopic map.
    pub retinotopy: RetinotopicMap,
    /// Every neuron's parameters, in `unit_ids` order.
    pub neurons: Vec<NeuronParams>,
    /// RF centres as grid coordinates `[x, y]` (grid_sample, align_corners=True).
    pub rf_centers_grid: Vec<[f64; 2]>,
    /// File indices (`data/*/<i>.npy`) of the test trials, the rows of `test_rates`.
    pub test_trials: Vec<i64>,
    /// Noise-free rates of the test trials, row-major `test_trials × neurons`, in the units
    /// of the responses (expected counts per trial, incl. shared gain and eye shift).
    /// Stored in `test_rates.npy`, not in the JSON.
    #[serde(skip)]
    pub test_rates: Vec<f64>,
    /// Summary numbers of the simulation.
    pub summary: SimulationSummary,
}

impl GroundTruth {
    /// Reads `DIR/ground_truth/` of a simulated dataset `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<GroundTruth> {
        let gt_dir = dir.join("ground_truth");
        let json = gt_dir.join("ground_truth.json");
        let text = std::fs::read_to_string(&json).with_context(|| {
            format!("reading {} (is this a simulated dataset?)", json.display())
        })?;
        let mut gt: GroundTruth =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
        let rates_path = gt_dir.join("test_rates.npy");
        let bytes = std::fs::read(&rates_path)
            .with_context(|| format!("reading {}", rates_path.display()))?;
        let npy = npyz::NpyFile::new(&bytes[..])
            .with_context(|| format!("parsing {}", rates_path.display()))?;
        let expected = [gt.test_trials.len() as u64, gt.neurons.len() as u64];
        anyhow::ensure!(
            npy.shape() == expected,
            "{}: expected shape {expected:?}, found {:?}",
            rates_path.display(),
            npy.shape()
        );
        gt.test_rates = npy
            .into_vec::<f64>()
            .with_context(|| format!("{}: expected float64", rates_path.display()))?;
        Ok(gt)
    }
}

/// An independent random stream for one part of the simulation, so that parallel and
/// sequential parts stay deterministic and different animals differ everywhere.
fn stream(config: &SimulationConfig, part: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(((config.animal as u64) << 48) ^ part);
    rng
}

/// Simulates a session and writes it to `out` (atomically; a non-empty `out` is refused).
pub fn simulate(config: &SimulationConfig, out: &Path) -> anyhow::Result<SimulationSummary> {
    simulate_with(config, out, false)
}

/// Like [`simulate`]; with `force` an existing `out` is replaced once the new tree is complete.
pub fn simulate_with(
    config: &SimulationConfig,
    out: &Path,
    force: bool,
) -> anyhow::Result<SimulationSummary> {
    config.validate()?;
    let (h, w) = (config.height, config.width);

    // Cortical positions, the map and the neurons' tuning.
    let mut rng = stream(config, 1);
    let map = RetinotopicMap::random(&mut rng, h, w, RF_MARGIN_PX);
    let scatter = Normal::new(0.0, 0.8).expect("valid normal");
    let mut coordinates = Vec::with_capacity(config.neurons * 3);
    let mut neurons = Vec::with_capacity(config.neurons);
    for _ in 0..config.neurons {
        let x = map.patch_center_um[0] + rng.random_range(-500.0..500.0);
        let y = map.patch_center_um[1] + rng.random_range(-500.0..500.0);
        let z: f64 = rng.random_range(200.0..300.0);
        coordinates.extend([x.round(), y.round(), z.round()]);
        let c = map.center_of(x.round(), y.round());
        let center = [
            (c[0] + scatter.sample(&mut rng)).clamp(RF_MARGIN_PX, (h - 1) as f64 - RF_MARGIN_PX),
            (c[1] + scatter.sample(&mut rng)).clamp(RF_MARGIN_PX, (w - 1) as f64 - RF_MARGIN_PX),
        ];
        neurons.push(neurons::random_tuning(&mut rng, center));
    }

    // Images (one random stream per image, generated in parallel).
    let n_images = config.train_images + config.validation_images + config.test_images;
    let images: Vec<Vec<f32>> = (0..n_images)
        .into_par_iter()
        .map(|i| images::natural_image(&mut stream(config, 1_000_000 + i as u64), h, w))
        .collect();
    let standardized: Vec<Vec<f64>> = images
        .par_iter()
        .map(|img| {
            img.iter()
                .map(|&v| (v as f64 - IMAGE_MEAN) / IMAGE_STD)
                .collect()
        })
        .collect();

    // Threshold and gain from the drive on (up to 500) train images.
    let filters: Vec<Filters> = neurons.iter().map(|p| Filters::new(p, h, w)).collect();
    let calibration = &standardized[..config.train_images.min(500)];
    neurons
        .par_iter_mut()
        .zip(&filters)
        .enumerate()
        .for_each(|(j, (p, f))| {
            let mut r = stream(config, 2_000_000 + j as u64);
            let mut drives: Vec<f64> = calibration
                .iter()
                .map(|img| f.drive(p.cell_type, p.semi_saturation, img, w))
                .collect();
            let quantile = r.random_range(0.3..0.7);
            let (lo, hi) = MEAN_RATE_RANGE;
            let target = (lo.ln() + r.random::<f64>() * (hi.ln() - lo.ln())).exp();
            neurons::calibrate(p, &mut drives, quantile, target);
        });

    // Trials: noise-free rates, then Poisson counts.
    let trials = session::trials(
        &mut stream(config, 3),
        config.train_images,
        config.validation_images,
        config.test_images,
        config.repeats,
    );
    let n = config.neurons;
    let rates: Vec<Vec<f64>> = trials
        .par_iter()
        .map(|t| {
            let img = session::shift_image(&standardized[t.image_id as usize], h, w, t.rf_shift_px);
            neurons
                .iter()
                .zip(&filters)
                .map(|(p, f)| {
                    t.shared_gain
                        * neurons::rate(p, f.drive(p.cell_type, p.semi_saturation, &img, w))
                })
                .collect()
        })
        .collect();
    let responses: Vec<Vec<f32>> = rates
        .par_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut rng = stream(config, 10_000_000 + i as u64);
            r.iter()
                .map(|&l| session::poisson(&mut rng, l) as f32)
                .collect()
        })
        .collect();

    // Summary numbers.
    let test: Vec<usize> = (0..trials.len())
        .filter(|&i| trials[i].tier == "test")
        .collect();
    let test_responses: Vec<f64> = test
        .iter()
        .flat_map(|&i| responses[i].iter().map(|&v| v as f64))
        .collect();
    let test_ids: Vec<i64> = test.iter().map(|&i| trials[i].image_id).collect();
    let oracle = crate::metrics::oracle_jackknife(&test_responses, n, &test_ids);
    let mut means = vec![0.0; n];
    for r in &responses {
        means
            .iter_mut()
            .zip(r)
            .for_each(|(m, &v)| *m += v as f64 / trials.len() as f64);
    }
    let count = |t: CellType| neurons.iter().filter(|p| p.cell_type == t).count();
    let summary = SimulationSummary {
        out: out.to_path_buf(),
        trials: trials.len(),
        neurons: n,
        mean_oracle_jackknife: oracle.iter().sum::<f64>() / n as f64,
        mean_response_range: [
            means.iter().copied().fold(f64::INFINITY, f64::min),
            means.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ],
        cell_type_counts: [
            count(CellType::Simple),
            count(CellType::Complex),
            count(CellType::Normalized),
        ],
    };
    let rf_centers_grid = neurons
        .iter()
        .map(|p| pixel_to_grid(p.center_px, h, w))
        .collect();
    let truth = GroundTruth {
        config: config.clone(),
        retinotopy: map,
        neurons,
        rf_centers_grid,
        test_trials: test.iter().map(|&i| i as i64).collect(),
        test_rates: test
            .iter()
            .flat_map(|&i| rates[i].iter().copied())
            .collect(),
        summary: summary.clone(),
    };

    let tmp = writer::sibling(out, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    let written = write_tree(
        &TreeWriter::new(&tmp),
        config,
        &images,
        &trials,
        &responses,
        &coordinates,
        &truth,
    );
    if let Err(e) = written.and_then(|_| writer::publish(&tmp, out, force)) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(summary)
}

/// Writes the whole FileTree plus `ground_truth/` below the writer's root.
fn write_tree(
    tree: &TreeWriter,
    config: &SimulationConfig,
    images: &[Vec<f32>],
    trials: &[session::Trial],
    responses: &[Vec<f32>],
    coordinates: &[f64],
    truth: &GroundTruth,
) -> anyhow::Result<()> {
    let (h, w, n) = (config.height, config.width, config.neurons);
    let t = trials.len();
    trials.par_iter().zip(responses).enumerate().try_for_each(
        |(i, (trial, resp))| -> anyhow::Result<()> {
            tree.npy(
                &format!("data/images/{i}.npy"),
                &[1, h, w],
                &images[trial.image_id as usize],
            )?;
            tree.npy(&format!("data/responses/{i}.npy"), &[n], resp)?;
            tree.npy(&format!("data/behavior/{i}.npy"), &[3], &trial.behavior)?;
            tree.npy(
                &format!("data/pupil_center/{i}.npy"),
                &[2],
                &trial.pupil_center,
            )
        },
    )?;

    let tiers: Vec<&str> = trials.iter().map(|t| t.tier).collect();
    tree.write("meta/trials/tiers.npy", &writer::npy_unicode(&tiers, 10)?)?;
    let ids: Vec<i64> = trials.iter().map(|t| t.image_id).collect();
    tree.npy("meta/trials/frame_image_id.npy", &[t], &ids)?;
    tree.npy(
        "meta/trials/trial_idx.npy",
        &[t],
        &trials.iter().map(|t| t.trial_idx).collect::<Vec<_>>(),
    )?;
    tree.npy(
        "meta/trials/animal_id.npy",
        &[t],
        &vec![config.animal as i64; t],
    )?;
    tree.write(
        "meta/trials/frame_image_class.npy",
        &writer::npy_unicode(&vec!["simulated"; t], 64)?,
    )?;

    let unit_ids: Vec<u16> = (1..=n as u16).collect();
    tree.npy("meta/neurons/unit_ids.npy", &[n], &unit_ids)?;
    tree.npy("meta/neurons/animal_ids.npy", &[n], &vec![config.animal; n])?;
    tree.npy(
        "meta/neurons/cell_motor_coordinates.npy",
        &[n, 3],
        coordinates,
    )?;
    tree.write(
        "meta/neurons/area.npy",
        &writer::npy_unicode(&vec!["V1"; n], 2)?,
    )?;
    tree.write(
        "meta/neurons/layer.npy",
        &writer::npy_unicode(&vec!["L2/3"; n], 4)?,
    )?;

    let pixels: Vec<f64> = images_of_trials(images, trials);
    tree.statistics("images", &pixels, 0)?;
    let flat: Vec<f64> = responses
        .iter()
        .flat_map(|r| r.iter().map(|&v| v as f64))
        .collect();
    tree.statistics("responses", &flat, n)?;
    let behavior: Vec<f64> = trials.iter().flat_map(|t| t.behavior).collect();
    tree.statistics("behavior", &behavior, 3)?;
    let pupil: Vec<f64> = trials.iter().flat_map(|t| t.pupil_center).collect();
    tree.statistics("pupil_center", &pupil, 2)?;
    tree.write(
        "config.json",
        br#"{"links": {"targets": "responses", "inputs": "images"}}"#,
    )?;

    let gt = "ground_truth";
    let centers: Vec<f64> = truth.neurons.iter().flat_map(|p| p.center_px).collect();
    tree.npy(&format!("{gt}/rf_centers_pixels.npy"), &[n, 2], &centers)?;
    let grid: Vec<f64> = truth.rf_centers_grid.iter().flatten().copied().collect();
    tree.npy(&format!("{gt}/rf_centers_grid.npy"), &[n, 2], &grid)?;
    tree.npy(
        &format!("{gt}/test_rates.npy"),
        &[truth.test_trials.len(), n],
        &truth.test_rates,
    )?;
    tree.npy(
        &format!("{gt}/test_trials.npy"),
        &[truth.test_trials.len()],
        &truth.test_trials,
    )?;
    let types: Vec<&str> = truth.neurons.iter().map(|p| p.cell_type.name()).collect();
    tree.write(
        &format!("{gt}/cell_types.npy"),
        &writer::npy_unicode(&types, 10)?,
    )?;
    let gain: Vec<f64> = truth.neurons.iter().map(|p| p.gain).collect();
    tree.npy(&format!("{gt}/gain.npy"), &[n], &gain)?;
    let threshold: Vec<f64> = truth.neurons.iter().map(|p| p.threshold).collect();
    tree.npy(&format!("{gt}/threshold.npy"), &[n], &threshold)?;
    tree.write(
        &format!("{gt}/ground_truth.json"),
        serde_json::to_string_pretty(truth)?.as_bytes(),
    )
}

/// Pixel values of every trial's image (statistics are over trials, like the real data).
fn images_of_trials(images: &[Vec<f32>], trials: &[session::Trial]) -> Vec<f64> {
    trials
        .iter()
        .flat_map(|t| images[t.image_id as usize].iter().map(|&v| v as f64))
        .collect()
}

#[cfg(test)]
mod tests;
