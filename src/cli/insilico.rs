//! `cortexfit insilico mei|tuning|rf`: in-silico experiments on a trained run or ensemble
//! (`crate::insilico`): most exciting inputs, grating tuning, receptive-field maps.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::backend::DeviceKind;
use crate::data::{PreparedDataset, Tier};
use crate::insilico::context::InputContext;
use crate::insilico::ensemble::ModelEnsemble;
use crate::insilico::mei::{MeiConfig, most_exciting_inputs};
use crate::insilico::outputs;
use crate::insilico::rf::{RfConfig, receptive_fields};
use crate::insilico::selection::NeuronChoice;
use crate::insilico::stimulus::Aperture;
use crate::insilico::tuning::{TuningConfig, measure_tuning};
use crate::run::Run;

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

/// The run, its readout for `--data`, the model ensemble, the input context and the neurons.
struct Setup {
    set: PreparedDataset,
    key: usize,
    ensemble: ModelEnsemble,
    context: InputContext,
    neurons: Vec<usize>,
}

fn setup(common: &Common) -> anyhow::Result<Setup> {
    crate::backend::init_threads(common.threads)?;
    let device = common.device.device()?;
    let run = Run::open(&common.run, &device)?;
    let (key, set) = run.load_data(&common.data)?;
    let context = InputContext::from_training_data(
        &set.dataset,
        run.config.data.normalize,
        run.config.data.exclude_images,
    )
    .with_context(|| format!("the input context of {}", common.data.display()))?;
    let unit_ids = &set.dataset.neurons.unit_ids;
    let choice = if let Some(count) = common.top {
        let evaluation = run.evaluate(key, &set, Tier::Validation).with_context(|| {
            format!(
                "--top ranks neurons by validation correlation, but {} has no validation tier",
                common.data.display()
            )
        })?;
        NeuronChoice::Top {
            count,
            scores: evaluation.neurons.single_trial_correlation,
        }
    } else if let Some(units) = &common.units {
        NeuronChoice::UnitIds(parse_units(units)?)
    } else {
        NeuronChoice::All
    };
    let neurons = choice.resolve(unit_ids)?;
    let ensemble = ModelEnsemble::new(run.models.clone(), &device)?;
    std::fs::create_dir_all(&common.out)
        .with_context(|| format!("creating {}", common.out.display()))?;
    Ok(Setup {
        set,
        key,
        ensemble,
        context,
        neurons,
    })
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
    // Candidate natural images: the training images as stored (dataset units).
    let len = s.set.dataset.image_len();
    let natural: Vec<f32> = s
        .set
        .tier(Tier::Train)
        .iter()
        .flat_map(|&t| s.set.dataset.images[t * len..(t + 1) * len].iter().copied())
        .collect();
    let result = most_exciting_inputs(
        &s.ensemble,
        s.key,
        &s.context,
        &s.neurons,
        &natural,
        &config,
    )?;
    outputs::write_meis(
        &args.common.out,
        &result,
        &s.set.dataset.neurons.unit_ids,
        &s.context,
    )?;
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
    let centres = s.ensemble.readout_centres_px(s.key);
    let aperture = match args.disc {
        Some(radius_px) => {
            anyhow::ensure!(
                centres.is_some(),
                "--disc centres gratings on each neuron's readout position, but this readout \
                 has no positions (factorized)"
            );
            Aperture::Disc { radius_px }
        }
        None => Aperture::FullField,
    };
    let [_, h, w] = s.context.image_shape;
    let positions: Vec<[f64; 2]> = s
        .neurons
        .iter()
        .map(|&n| {
            centres
                .as_ref()
                .map_or([(h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0], |c| c[n])
        })
        .collect();
    let config = TuningConfig {
        orientations: args.orientations,
        phases: args.phases,
        aperture,
        ..TuningConfig::default()
    };
    let result = measure_tuning(
        &s.ensemble,
        s.key,
        &s.context,
        &s.neurons,
        &positions,
        &config,
    )?;
    outputs::write_tuning(
        &args.common.out,
        &result,
        &s.set.dataset.neurons.unit_ids,
        &s.context,
        args.figure_neurons,
    )?;
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
    let result = receptive_fields(&s.ensemble, s.key, &s.context, &s.neurons, &config)?;
    let centres = s.ensemble.readout_centres_px(s.key);
    outputs::write_rfs(
        &args.common.out,
        &result,
        &s.set.dataset.neurons.unit_ids,
        centres.as_deref(),
    )?;
    println!(
        "receptive fields of {} neurons in {}",
        s.neurons.len(),
        args.common.out.display()
    );
    Ok(())
}
