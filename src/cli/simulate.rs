//! `cortexfit simulate`: write a simulated mouse-V1 session with known ground truth.

use std::path::PathBuf;

use crate::sim::{SimulationConfig, simulate_with};

/// Arguments of `cortexfit simulate`. Unset options take the defaults of
/// `SimulationConfig::default()` (200 neurons, 2000/300 train/validation images,
/// 50 test images × 10 repeats, 36×64 pixels, seed 0, animal 1).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output dataset folder (FileTree layout, ground truth in `ground_truth/`).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of neurons.
    #[arg(long)]
    pub neurons: Option<usize>,
    /// Unique images in the train tier.
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Unique images in the validation tier.
    #[arg(long)]
    pub validation_images: Option<usize>,
    /// Unique images in the test tier.
    #[arg(long)]
    pub test_images: Option<usize>,
    /// Presentations of each test image.
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Animal id (selects the retinotopic map and the neurons).
    #[arg(long)]
    pub animal: Option<u16>,
    /// Image height in pixels.
    #[arg(long)]
    pub height: Option<usize>,
    /// Image width in pixels.
    #[arg(long)]
    pub width: Option<usize>,
    /// Replace a non-empty output folder.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let d = SimulationConfig::default();
    let config = SimulationConfig {
        neurons: args.neurons.unwrap_or(d.neurons),
        train_images: args.train_images.unwrap_or(d.train_images),
        validation_images: args.validation_images.unwrap_or(d.validation_images),
        test_images: args.test_images.unwrap_or(d.test_images),
        repeats: args.repeats.unwrap_or(d.repeats),
        seed: args.seed.unwrap_or(d.seed),
        animal: args.animal.unwrap_or(d.animal),
        height: args.height.unwrap_or(d.height),
        width: args.width.unwrap_or(d.width),
    };
    let start = std::time::Instant::now();
    let s = simulate_with(&config, &args.out, args.force)?;
    println!(
        "wrote {} ({} trials, {} neurons: {} simple, {} complex, {} normalized) in {:.1} s",
        s.out.display(),
        s.trials,
        s.neurons,
        s.cell_type_counts[0],
        s.cell_type_counts[1],
        s.cell_type_counts[2],
        start.elapsed().as_secs_f64()
    );
    println!(
        "mean response per neuron {:.2}..{:.2}; test-tier jackknife oracle (mean over neurons) {:.3}",
        s.mean_response_range[0], s.mean_response_range[1], s.mean_oracle_jackknife
    );
    Ok(())
}
