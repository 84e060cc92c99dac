//! `cortexfit insilico mei|tuning|rf`: in-silico experiments on a trained run or ensemble
//! (`run::insilico`, `crate::insilico`): most exciting inputs, grating tuning, receptive fields.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::backend::DeviceKind;
use crate::insilico::mei::MeiConfig;
use crate::insilico::rf::RfConfig;
use crate::insilico::stimulus::Aperture;
use crate::insilico::tuning::TuningConfig;
use crate::run::Run;
use crate::run::insilico::{Experiment, Neurons};

/// The in-silico experiments.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Most exciting inputs: gradient ascent on the image for each chosen neuron (mei.npy,
    /// mei.csv with the response to the MEI and to the best natural image, mei.png).
    Mei(MeiArgs),
    /// Tuning to static gratings: preferred orientation and spatial frequency, orientation
    /// selectivity, F1/F0 over phase (tuning.csv, tuning_responses.npy, tuning.png/.svg).
    Tuning(TuningArgs),
    /// Receptive-field maps from the model (rf_linear.npy, rf_energy.npy, rf.csv, rf.png).
    Rf(RfArgs),
}

/// What every experiment needs.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// A run or an ensemble (the prediction is the members' mean).
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The run's dataset of the readout to study (training images set the input range and
    /// contrast, the validation tier ranks neurons for `--top`).
    #[arg(long, value_name = "DIR_OR_ZIP")]
    pub data: PathBuf,
    /// Output folder (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Study the N neurons with the best validation correlation (default: all neurons).
    #[arg(long, value_name = "N", conflicts_with = "units")]
    pub top: Option<usize>,
    /// Study these unit ids (comma-separated), or the ids in a file (one per line or comma-separated).
    #[arg(long, value_name = "IDS_OR_FILE")]
    pub units: Option<String>,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

/// Arguments of `cortexfit insilico mei`.
#[derive(clap::Args, Debug)]
pub struct MeiArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seed of the random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// σ (pixels) of the Gaussian blur of the gradient (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub blur_sigma: f64,
    /// Steps at most.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Contrast as a fraction of the training images' mean L2 norm around grey (1 = as `mei`).
    #[arg(long, default_value_t = 1.0)]
    pub contrast: f64,
    /// Neurons optimised together in one batch.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
}

/// Arguments of `cortexfit insilico tuning`.
#[derive(clap::Args, Debug)]
pub struct TuningArgs {
    #[command(flatten)]
    pub common: Common,
    /// Orientations on [0°, 180°) (at least 12).
    #[arg(long, default_value_t = 16)]
    pub orientations: usize,
    /// Phases on [0°, 360°) (at least 8).
    #[arg(long, default_value_t = 8)]
    pub phases: usize,
    /// Show gratings in a disc of this radius (pixels) centred on each neuron's readout position
    /// instead of full field.
    #[arg(long, value_name = "PIXELS")]
    pub disc: Option<f64>,
    /// Neurons whose tuning curves the figure shows.
    #[arg(long, default_value_t = 12)]
    pub figure_neurons: usize,
}

/// Arguments of `cortexfit insilico rf`.
#[derive(clap::Args, Debug)]
pub struct RfArgs {
    #[command(flatten)]
    pub common: Common,
    /// White-noise images averaged for the energy map.
    #[arg(long, default_value_t = 8)]
    pub samples: usize,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Opens the run and prepares the experiment on `--data` with the chosen neurons.
fn setup(common: &Common) -> anyhow::Result<Experiment> {
    crate::backend::init_threads(common.threads)?;
    let device = common.device.device()?;
    let run = Run::open(&common.run, &device)?;
    let neurons = match (common.top, &common.units) {
        (Some(n), _) => Neurons::Top(n),
        (None, Some(units)) => Neurons::Units(parse_units(units)?),
        (None, None) => Neurons::All,
    };
    Experiment::new(&run, &common.data, &neurons)
}

/// `--units 3,17,42` or a file of ids.
fn parse_units(text: &str) -> anyhow::Result<Vec<i64>> {
    let path = Path::new(text);
    let (source, body) = if path.is_file() {
        (
            path.display().to_string(),
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )
    } else {
        ("--units".to_string(), text.to_string())
    };
    body.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>()
                .with_context(|| format!("{source}: `{t}` is not a unit id (an integer)"))
        })
        .collect()
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Mei(args) => mei(args),
        Command::Tuning(args) => tuning(args),
        Command::Rf(args) => rf(args),
    }
}

fn mei(args: MeiArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.contrast.is_finite() && args.contrast > 0.0,
        "--contrast must be a positive fraction, got {}",
        args.contrast
    );
    let s = setup(&args.common)?;
    let config = MeiConfig {
        seed: args.seed,
        blur_sigma: args.blur_sigma,
        max_steps: args.steps,
        batch_size: args.batch,
        norm: Some(s.context.norm * args.contrast),
        ..MeiConfig::default()
    };
    let result = s.mei(&config, Some(&args.common.out))?;
    let ratio = result.ratio();
    println!(
        "MEIs of {} neurons in {}: median response ratio MEI / best natural image {:.2}",
        s.neurons.len(),
        args.common.out.display(),
        crate::insilico::ground_truth::median(&ratio)
    );
    Ok(())
}

fn tuning(args: TuningArgs) -> anyhow::Result<()> {
    let s = setup(&args.common)?;
    let aperture = match args.disc {
        Some(radius_px) => Aperture::Disc { radius_px },
        None => Aperture::FullField,
    };
    let config = TuningConfig {
        orientations: args.orientations,
        phases: args.phases,
        aperture,
        ..TuningConfig::default()
    };
    s.tuning(&config, Some(&args.common.out), args.figure_neurons)?;
    println!(
        "tuning of {} neurons to {} gratings in {}",
        s.neurons.len(),
        args.orientations * config.frequencies.len() * args.phases,
        args.common.out.display()
    );
    Ok(())
}

fn rf(args: RfArgs) -> anyhow::Result<()> {
    let s = setup(&args.common)?;
    let config = RfConfig {
        samples: args.samples,
        seed: args.seed,
        ..RfConfig::default()
    };
    s.receptive_fields(&config, Some(&args.common.out))?;
    println!(
        "receptive fields of {} neurons in {}",
        s.neurons.len(),
        args.common.out.display()
    );
    Ok(())
}
