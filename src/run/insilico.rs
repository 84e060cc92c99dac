//! In-silico experiments on a run or ensemble (`crate::insilico` does the science): the run's
//! readout for a dataset, the input context from its training images, the chosen neurons, then
//! MEIs, tuning or receptive fields written to a folder. The command line and the Python package
//! both call these functions.

use std::path::Path;

use anyhow::Context;

use super::open::Run;
use crate::data::{PreparedDataset, Tier};
use crate::insilico::context::InputContext;
use crate::insilico::ensemble::ModelEnsemble;
use crate::insilico::mei::{MeiConfig, MeiResult, most_exciting_inputs};
use crate::insilico::outputs;
use crate::insilico::rf::{RfConfig, RfResult, receptive_fields};
use crate::insilico::selection::NeuronChoice;
use crate::insilico::stimulus::Aperture;
use crate::insilico::tuning::{TuningConfig, TuningResult, measure_tuning};

/// Which neurons of the readout to study.
#[derive(Debug, Clone, PartialEq)]
pub enum Neurons {
    /// Every neuron.
    All,
    /// The N neurons with the best validation correlation (single-trial, the run's prediction).
    Top(usize),
    /// These unit ids, in this order.
    Units(Vec<i64>),
}

/// A run's readout for one dataset, ready for in-silico experiments.
pub struct Experiment {
    /// The dataset as the run prepares it (`dataset` holds the raw values and metadata).
    pub set: PreparedDataset,
    /// Readout index of the dataset.
    pub key: usize,
    /// The run's members as one model (mean response).
    pub ensemble: ModelEnsemble,
    /// Input units, range, contrast and fixed behaviour of the dataset's training images.
    pub context: InputContext,
    /// Readout indices of the chosen neurons.
    pub neurons: Vec<usize>,
}

impl Experiment {
    /// Prepares experiments on `run`'s readout for the dataset at `data` with `neurons`.
    pub fn new(run: &Run, data: &Path, neurons: &Neurons) -> anyhow::Result<Self> {
        let (key, set) = run.load_data(data)?;
        let context = InputContext::from_training_data(
            &set.dataset,
            run.config.data.normalize.then_some(&set.normalizer),
        )
        .with_context(|| format!("the input context of {}", data.display()))?;
        let choice = match neurons {
            Neurons::All => NeuronChoice::All,
            Neurons::Units(ids) => NeuronChoice::UnitIds(ids.clone()),
            Neurons::Top(count) => {
                let evaluation = run.evaluate(key, &set, Tier::Validation).with_context(|| {
                    format!(
                        "choosing the best neurons needs a validation tier, and {} has none",
                        data.display()
                    )
                })?;
                NeuronChoice::Top {
                    count: *count,
                    scores: evaluation.neurons.single_trial_correlation,
                }
            }
        };
        let neurons = choice.resolve(&set.dataset.neurons.unit_ids)?;
        let ensemble = ModelEnsemble::new(run.models.clone(), &run.device)?;
        Ok(Self {
            set,
            key,
            ensemble,
            context,
            neurons,
        })
    }

    /// Unit ids of the readout's neurons (readout order).
    pub fn unit_ids(&self) -> &[i64] {
        &self.set.dataset.neurons.unit_ids
    }

    /// The dataset's training images as stored (dataset units), the natural images MEIs are
    /// compared with.
    pub fn training_images(&self) -> Vec<f32> {
        let len = self.set.dataset.image_len();
        self.set
            .tier(Tier::Train)
            .iter()
            .flat_map(|&t| {
                self.set.dataset.images[t * len..(t + 1) * len]
                    .iter()
                    .copied()
            })
            .collect()
    }

    /// MEIs of the chosen neurons; written to `out` (`mei.npy`, `mei.csv`, `mei.png`) when given.
    pub fn mei(&self, config: &MeiConfig, out: Option<&Path>) -> anyhow::Result<MeiResult> {
        let result = most_exciting_inputs(
            &self.ensemble,
            self.key,
            &self.context,
            &self.neurons,
            &self.training_images(),
            config,
        )?;
        if let Some(dir) = out {
            create(dir)?;
            outputs::write_meis(dir, &result, self.unit_ids(), &self.context)?;
        }
        Ok(result)
    }

    /// Grating tuning of the chosen neurons (a disc aperture is centred on each neuron's readout
    /// position); written to `out` (`tuning.csv`, `tuning_responses.npy`, figure of
    /// `figure_neurons` neurons) when given.
    pub fn tuning(
        &self,
        config: &TuningConfig,
        out: Option<&Path>,
        figure_neurons: usize,
    ) -> anyhow::Result<TuningResult> {
        let centres = self.ensemble.readout_centres_px(self.key);
        anyhow::ensure!(
            centres.is_some() || matches!(config.aperture, Aperture::FullField),
            "a disc aperture is centred on each neuron's readout position, but this readout has \
             no positions (factorized): use full-field gratings"
        );
        let [_, h, w] = self.context.image_shape;
        let positions: Vec<[f64; 2]> = self
            .neurons
            .iter()
            .map(|&n| {
                centres
                    .as_ref()
                    .map_or([(h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0], |c| c[n])
            })
            .collect();
        let result = measure_tuning(
            &self.ensemble,
            self.key,
            &self.context,
            &self.neurons,
            &positions,
            config,
        )?;
        if let Some(dir) = out {
            create(dir)?;
            outputs::write_tuning(dir, &result, self.unit_ids(), &self.context, figure_neurons)?;
        }
        Ok(result)
    }

    /// Receptive-field maps of the chosen neurons; written to `out` (`rf_linear.npy`,
    /// `rf_energy.npy`, `rf.csv`, `rf.png` with the readout positions) when given.
    pub fn receptive_fields(
        &self,
        config: &RfConfig,
        out: Option<&Path>,
    ) -> anyhow::Result<RfResult> {
        let result = receptive_fields(
            &self.ensemble,
            self.key,
            &self.context,
            &self.neurons,
            config,
        )?;
        if let Some(dir) = out {
            create(dir)?;
            let centres = self.ensemble.readout_centres_px(self.key);
            outputs::write_rfs(dir, &result, self.unit_ids(), centres.as_deref())?;
        }
        Ok(result)
    }
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
