//! Building the model of a run for its prepared datasets: the facts the model needs from the
//! data (image size, behaviour, cortical coordinates, matched ids, first-batch mean responses,
//! receptive-field centres when `init_mu_from_data` asks for them), seeded initialisation, then
//! the `[transfer]` starting point. Every path that makes a model for data goes through
//! [`build_model`], so every model option is honoured everywhere.

use anyhow::Context;
use burn::tensor::Device;

use super::seeds::{Stream, derive, rng};
use crate::config::{RunConfig, TransferInit};
use crate::data::{PreparedDataset, Tier};
use crate::model::readout::ReadoutConfig;
use crate::model::readout::rf_mapping::receptive_field_centres;
use crate::model::state_dict::StateDict;
use crate::model::{DatasetFacts, DatasetReadoutFacts, Encoder};

/// The facts the model builder needs about `sets`; with `bias` the readout biases start at these
/// per-neuron values. `compute` is where the receptive-field mapping runs.
pub fn model_facts(
    config: &RunConfig,
    sets: &[PreparedDataset],
    bias: Option<Vec<Vec<f32>>>,
    compute: &Device,
) -> anyhow::Result<DatasetFacts> {
    anyhow::ensure!(!sets.is_empty(), "no dataset to build the model for");
    let in_shape = sets[0].dataset.image_shape;
    for set in sets {
        anyhow::ensure!(
            set.dataset.image_shape == in_shape,
            "dataset {} has images of shape {:?} but {} has {:?}; one core needs one image size",
            set.data_key(),
            set.dataset.image_shape,
            sets[0].data_key(),
            in_shape
        );
    }
    let needs_pupil = config.model.shifter.is_some() || config.model.pupil_as_channels;
    for set in sets {
        anyhow::ensure!(
            !needs_pupil || set.has_pupil_center(),
            "model.{} needs the pupil position, but dataset {} has none",
            if config.model.shifter.is_some() {
                "shifter"
            } else {
                "pupil_as_channels"
            },
            set.data_key()
        );
    }
    let map_rfs =
        matches!(&config.model.readout, ReadoutConfig::Gaussian(g) if g.init_mu_from_data);
    // Behaviour variables: only when every dataset has them (the model checks what needs them).
    let n_behaviors = sets
        .iter()
        .map(PreparedDataset::n_behaviors)
        .min()
        .unwrap_or(0);
    let datasets = sets
        .iter()
        .enumerate()
        .map(|(k, set)| DatasetReadoutFacts {
            data_key: set.data_key().to_string(),
            n_neurons: set.n_neurons(),
            cell_motor_coordinates: set.dataset.neurons.cell_motor_coordinates.clone(),
            match_ids: set.dataset.neurons.multi_match_id.clone(),
            mean_activity: bias.as_ref().map(|b| b[k].clone()),
            rf_centers_px: map_rfs.then(|| training_rf_centres(set, compute)),
        })
        .collect::<Vec<_>>();
    Ok(DatasetFacts::new(in_shape, n_behaviors, &datasets))
}

/// Receptive-field centres (pixels) of a dataset's neurons, mapped from its training trials by
/// reverse correlation on the grey image (channel 0; behaviour / pupil channels, if any, follow).
fn training_rf_centres(set: &PreparedDataset, compute: &Device) -> Vec<[f64; 2]> {
    let trials = set.tier(Tier::Train);
    let [c, h, w] = set.dataset.image_shape;
    let images: Vec<f32> = set
        .images_of(&trials)
        .chunks_exact(c * h * w)
        .flat_map(|trial| trial[..h * w].iter().copied())
        .collect();
    let responses = set.responses_of(&trials);
    receptive_field_centres(&images, [h, w], &responses, set.n_neurons(), compute)
}

/// Builds the model of `config` for `sets` on `device` (seeded); with `bias` the readout biases
/// start at these per-neuron values. Applies the run's `[transfer]` section.
pub fn build_model(
    config: &RunConfig,
    sets: &[PreparedDataset],
    bias: Option<Vec<Vec<f32>>>,
    device: &Device,
) -> anyhow::Result<Encoder> {
    let compute = device.clone().inner();
    let facts = model_facts(config, sets, bias, &compute)?;
    let seed = derive(config.seed, Stream::ModelInit, 0);
    let mut model =
        Encoder::init(&config.model, &facts, seed, device).context("building the model")?;
    if let Some(init) = &config.transfer {
        model = apply_transfer(model, init)?;
    }
    Ok(model)
}

/// The per-neuron mean response of each dataset's first training batch (Lurz 2020 bias init).
pub fn first_batch_means(config: &RunConfig, sets: &[PreparedDataset]) -> Vec<Vec<f32>> {
    let mut rng = rng(config.seed, Stream::BiasBatch, 0);
    sets.iter()
        .map(|set| {
            let batches = set.train_batches(config.trainer.batch_size, &mut rng);
            match batches.first() {
                Some(first) => set.mean_response(first),
                None => vec![0.0; set.n_neurons()],
            }
        })
        .collect()
}

/// Applies a `[transfer]` section to a freshly built model: a core from another run (or from
/// PyTorch), or a whole checkpoint of the same model to fine-tune.
pub fn apply_transfer(model: Encoder, init: &TransferInit) -> anyhow::Result<Encoder> {
    let mut model = model;
    if let Some(path) = &init.core {
        let sd = read_state_dict(path)?;
        anyhow::ensure!(
            sd.entries.keys().any(|k| k.starts_with("core.")),
            "{}: no `core.` tensors (expected a core state_dict)",
            path.display()
        );
        model = model.load_core_state(&sd).with_context(|| {
            format!(
                "loading the transferred core {} (the core configuration of the run must be the \
                 source run's)",
                path.display()
            )
        })?;
    }
    if let Some(path) = &init.model {
        let sd = read_state_dict(path)?;
        model = model.import_state(&sd).with_context(|| {
            format!(
                "loading {} (expected a checkpoint of the same model and data)",
                path.display()
            )
        })?;
    }
    Ok(model)
}

fn read_state_dict(path: &std::path::Path) -> anyhow::Result<StateDict> {
    Ok(crate::model::checkpoint::read_state_dict(path)?.0)
}
