//! A model-level ensemble: the mean of several trained [`Encoder`]s' evaluation-mode predictions
//! (batch norm with running statistics, Gaussian readout at μ). One member is a single model.
//!
//! The members live on the autodiff version of their device with every parameter frozen, so they
//! serve gradients with respect to the input (MEIs, RFs) without building gradients for the
//! weights. Plain predictions (no gradient) run on a second copy without autodiff, where no graph
//! is recorded; both copies run the same kernels and give the same numbers.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::context::InputContext;
use crate::model::Encoder;

/// Why models cannot form an ensemble, or an ensemble cannot serve a request.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("an ensemble needs at least one model")]
    Empty,
    #[error(
        "ensemble member {member} has data keys {found:?}, but member 0 has {expected:?}; members must be trained on the same recordings"
    )]
    DataKeys {
        member: usize,
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error(
        "ensemble member {member} reads out {found} neurons for data key `{key}`, member 0 reads {expected}"
    )]
    Neurons {
        member: usize,
        key: String,
        expected: usize,
        found: usize,
    },
    #[error("ensemble member {member} takes images of shape {found:?}, member 0 {expected:?}")]
    ImageShape {
        member: usize,
        expected: [usize; 3],
        found: [usize; 3],
    },
    #[error("readout index {key} does not exist; the models have {count} data keys: {keys:?}")]
    UnknownKey {
        key: usize,
        count: usize,
        keys: Vec<String>,
    },
    #[error("the input context describes images of shape {context:?}, the models take {model:?}")]
    ContextShape {
        context: [usize; 3],
        model: [usize; 3],
    },
    #[error(
        "the models need {what} in every batch (modulator / shifter / extra input channels), but the input context has none"
    )]
    MissingInput { what: &'static str },
    #[error("the input context gives {found} {what} values, the models take {expected}")]
    InputWidth {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("neuron index {index} is out of range (the readout has {count} neurons)")]
    NeuronIndex { index: usize, count: usize },
    #[error(transparent)]
    Context(#[from] super::context::ContextError),
}

/// Several trained models whose predictions are averaged.
#[derive(Debug, Clone)]
pub struct ModelEnsemble {
    members: Vec<Encoder>,
    device: Device,
    /// The same models without autodiff, for [`predict`](Self::predict).
    plain: Vec<Encoder>,
    plain_device: Device,
}

impl ModelEnsemble {
    /// Forms an ensemble of models trained on the same recordings (same data keys, neurons and
    /// image shape); members may come from any device and are moved to `device` (with autodiff).
    pub fn new(members: Vec<Encoder>, device: &Device) -> Result<Self, EnsembleError> {
        let Some(first) = members.first() else {
            return Err(EnsembleError::Empty);
        };
        let keys = first.data_keys().to_vec();
        let shape = first.facts.in_shape;
        for (m, model) in members.iter().enumerate().skip(1) {
            if model.data_keys() != keys.as_slice() {
                return Err(EnsembleError::DataKeys {
                    member: m,
                    expected: keys,
                    found: model.data_keys().to_vec(),
                });
            }
            if model.facts.in_shape != shape {
                return Err(EnsembleError::ImageShape {
                    member: m,
                    expected: shape,
                    found: model.facts.in_shape,
                });
            }
            for (k, key) in keys.iter().enumerate() {
                let (expected, found) = (
                    first.facts.datasets[k].n_neurons,
                    model.facts.datasets[k].n_neurons,
                );
                if expected != found {
                    return Err(EnsembleError::Neurons {
                        member: m,
                        key: key.clone(),
                        expected,
                        found,
                    });
                }
            }
        }
        let plain_device = device.clone().without_autodiff();
        let device = plain_device.clone().autodiff();
        let plain: Vec<Encoder> = members
            .into_iter()
            .map(|m| m.valid().to_device(&plain_device))
            .collect();
        let members = plain
            .iter()
            .map(|m| m.clone().to_device(&device).train().no_grad())
            .collect();
        Ok(Self {
            members,
            device,
            plain,
            plain_device,
        })
    }

    /// The members (on the ensemble's autodiff device, frozen).
    pub fn members(&self) -> &[Encoder] {
        &self.members
    }

    /// The device the ensemble computes on (autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The data keys, indexed by readout index.
    pub fn data_keys(&self) -> &[String] {
        self.members[0].data_keys()
    }

    /// Image (C, H, W) the models take.
    pub fn image_shape(&self) -> [usize; 3] {
        self.members[0].facts.in_shape
    }

    /// Neurons of readout `key`.
    pub fn n_neurons(&self, key: usize) -> Result<usize, EnsembleError> {
        self.check_key(key)?;
        Ok(self.members[0].facts.datasets[key].n_neurons)
    }

    fn check_key(&self, key: usize) -> Result<(), EnsembleError> {
        let keys = self.data_keys();
        if key >= keys.len() {
            return Err(EnsembleError::UnknownKey {
                key,
                count: keys.len(),
                keys: keys.to_vec(),
            });
        }
        Ok(())
    }

    /// Checks that `context` can drive readout `key` of every member.
    pub fn check(&self, key: usize, context: &InputContext) -> Result<(), EnsembleError> {
        self.check_key(key)?;
        context.validate()?;
        if context.image_shape != self.image_shape() {
            return Err(EnsembleError::ContextShape {
                context: context.image_shape,
                model: self.image_shape(),
            });
        }
        let model = &self.members[0];
        if model.needs_behavior() {
            let b = context
                .behavior
                .as_ref()
                .ok_or(EnsembleError::MissingInput { what: "behaviour" })?;
            if b.len() != model.facts.n_behaviors {
                return Err(EnsembleError::InputWidth {
                    what: "behaviour",
                    expected: model.facts.n_behaviors,
                    found: b.len(),
                });
            }
        }
        if model.needs_pupil_center() && context.pupil_center.is_none() {
            return Err(EnsembleError::MissingInput {
                what: "the pupil position",
            });
        }
        Ok(())
    }

    /// Mean prediction (B, N) of readout `key` for model-input `images` (B, C, H, W) on the
    /// ensemble's device, with behaviour / pupil from `context` where the models use them.
    /// Differentiable with respect to `images`. Call [`check`](Self::check) first.
    pub fn forward(&self, images: Tensor<4>, key: usize, context: &InputContext) -> Tensor<2> {
        mean_forward(&self.members, &self.device, images, key, context, None)
    }

    /// [`forward`](Self::forward) for only the readout neurons `neurons` (repeats allowed):
    /// column k of the (B, K) result is column `neurons[k]` of `forward`, the same numbers,
    /// without reading out the rest of the readout. Call [`check`](Self::check) first, and check
    /// the indices.
    pub fn forward_neurons(
        &self,
        images: Tensor<4>,
        key: usize,
        context: &InputContext,
        neurons: &[usize],
    ) -> Tensor<2> {
        mean_forward(
            &self.members,
            &self.device,
            images,
            key,
            context,
            Some(neurons),
        )
    }

    /// Mean predictions (rows × N, model units) for images in **dataset units** (rows × C·H·W,
    /// row-major), computed in batches of `batch_size` without gradients, on the copy of the
    /// models without autodiff.
    pub fn predict(
        &self,
        images: &[f32],
        key: usize,
        context: &InputContext,
        batch_size: usize,
    ) -> Result<Vec<f32>, EnsembleError> {
        self.predict_columns(images, key, context, batch_size, None)
    }

    /// [`predict`](Self::predict) of only the readout neurons `neurons` (rows × K, column k =
    /// neuron `neurons[k]`, the same numbers), without reading out the rest of the readout.
    pub fn predict_neurons(
        &self,
        images: &[f32],
        key: usize,
        context: &InputContext,
        batch_size: usize,
        neurons: &[usize],
    ) -> Result<Vec<f32>, EnsembleError> {
        let count = self.n_neurons(key)?;
        if let Some(&index) = neurons.iter().find(|&&n| n >= count) {
            return Err(EnsembleError::NeuronIndex { index, count });
        }
        self.predict_columns(images, key, context, batch_size, Some(neurons))
    }

    fn predict_columns(
        &self,
        images: &[f32],
        key: usize,
        context: &InputContext,
        batch_size: usize,
        neurons: Option<&[usize]>,
    ) -> Result<Vec<f32>, EnsembleError> {
        self.check(key, context)?;
        let [c, h, w] = context.image_shape;
        let len = c * h * w;
        let columns = neurons.map_or(self.n_neurons(key)?, <[usize]>::len);
        let mut out = Vec::with_capacity(images.len() / len * columns);
        for chunk in images.chunks(len * batch_size.max(1)) {
            let b = chunk.len() / len;
            let x = Tensor::<4>::from_data(
                TensorData::new(context.to_model(&chunk[..b * len]), [b, c, h, w]),
                &self.plain_device,
            );
            let y = mean_forward(&self.plain, &self.plain_device, x, key, context, neurons);
            out.extend(y.into_data().iter::<f32>());
        }
        Ok(out)
    }

    /// Readout positions μ of readout `key` in image pixels (row, column), averaged over the
    /// members; `None` for readouts without positions (factorized). Positions are read on the
    /// core's output map, the centred crop of the image left by unpadded convolutions.
    pub fn readout_centres_px(&self, key: usize) -> Option<Vec<[f64; 2]>> {
        let [_, in_h, in_w] = self.image_shape();
        let mut sum: Option<Vec<[f64; 2]>> = None;
        for model in &self.members {
            let mu: Vec<f64> = model
                .readout
                .positions(key)?
                .into_data()
                .iter::<f32>()
                .map(f64::from)
                .collect();
            let [_, out_h, out_w] = model.core_output_shape();
            let px: Vec<[f64; 2]> = mu
                .chunks_exact(2)
                .map(|xy| {
                    [
                        grid_to_pixel(xy[1], in_h, out_h),
                        grid_to_pixel(xy[0], in_w, out_w),
                    ]
                })
                .collect();
            sum = Some(match sum {
                None => px,
                Some(s) => s
                    .iter()
                    .zip(&px)
                    .map(|(a, b)| [a[0] + b[0], a[1] + b[1]])
                    .collect(),
            });
        }
        let k = self.members.len() as f64;
        sum.map(|s| s.into_iter().map(|[r, c]| [r / k, c / k]).collect())
    }
}

/// The mean of `members`' evaluation-mode predictions (B, N) of readout `key` for model-input
/// `images` on `device`, with behaviour / pupil from `context` where the models use them; only
/// the columns of `neurons` (B, K) when given.
fn mean_forward(
    members: &[Encoder],
    device: &Device,
    images: Tensor<4>,
    key: usize,
    context: &InputContext,
    neurons: Option<&[usize]>,
) -> Tensor<2> {
    let [b, _, _, _] = images.dims();
    let rows = |values: &Option<Vec<f32>>, needed: bool| {
        values.as_ref().filter(|_| needed).map(|v| {
            let row = Tensor::<2>::from_data(TensorData::new(v.clone(), [1, v.len()]), device);
            row.expand([b, v.len()])
        })
    };
    let mut sum: Option<Tensor<2>> = None;
    for model in members {
        let behavior = rows(&context.behavior, model.needs_behavior());
        let pupil = rows(&context.pupil_center, model.needs_pupil_center());
        let y = match neurons {
            None => model.forward_eval(images.clone(), key, behavior, pupil),
            Some(n) => model.forward_eval_neurons(images.clone(), key, n, behavior, pupil),
        };
        sum = Some(match sum {
            Some(s) => s + y,
            None => y,
        });
    }
    let sum = sum.expect("an ensemble has at least one member");
    if members.len() == 1 {
        sum
    } else {
        sum.div_scalar(members.len() as f64)
    }
}

/// Inverse of `model::readout::rf_mapping::pixels_to_grid` along one axis: grid coordinate (align_corners)
/// on an `n_out` map that is the centred crop of an `n_in` image → image pixel.
pub fn grid_to_pixel(g: f64, n_in: usize, n_out: usize) -> f64 {
    let offset = (n_in as f64 - n_out as f64) / 2.0;
    offset + (g + 1.0) / 2.0 * (n_out as f64 - 1.0).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insilico::objective::row_gradients;
    use crate::model::core::{PerLayer, Stack};
    use crate::model::{CoreConfig, DatasetFacts, DatasetReadoutFacts, ModelConfig};

    fn model(seed: u64, neurons: usize) -> Encoder {
        let mut config = ModelConfig::preset("sensorium2022").unwrap();
        config.core = CoreConfig {
            layers: 2,
            hidden_channels: PerLayer::All(4),
            input_kern: 5,
            hidden_kern: PerLayer::All(3),
            stack: Stack::From(-1),
            ..config.core
        };
        let facts = DatasetFacts {
            in_shape: [1, 12, 16],
            n_behaviors: 0,
            datasets: vec![DatasetReadoutFacts {
                data_key: "a".into(),
                n_neurons: neurons,
                cell_motor_coordinates: Some(
                    (0..neurons)
                        .map(|i| [i as f64 * 10.0, (i * i) as f64, 0.0])
                        .collect(),
                ),
                match_ids: None,
                mean_activity: None,
                rf_centers_px: None,
            }],
        };
        Encoder::init(&config, &facts, seed, &Device::flex()).unwrap()
    }

    fn context() -> InputContext {
        InputContext {
            image_shape: [1, 12, 16],
            image_normalization: Some((100.0, 40.0)),
            grey: 100.0,
            range: [0.0, 255.0],
            norm: 400.0,
            behavior: None,
            pupil_center: None,
            response_scale: None,
        }
    }

    fn images(count: usize) -> Vec<f32> {
        (0..count * 192)
            .map(|i| 100.0 + 60.0 * ((i as f32 * 0.37).sin() + (i as f32 * 0.011).cos()))
            .collect()
    }

    #[test]
    fn the_ensemble_predicts_the_mean_of_its_members_and_refuses_mismatches() {
        let device = Device::flex();
        let (a, b) = (model(1, 5), model(2, 5));
        let x = images(3);
        let c = context();
        let single = |m: &Encoder| {
            ModelEnsemble::new(vec![m.clone()], &device)
                .unwrap()
                .predict(&x, 0, &c, 2)
                .unwrap()
        };
        let (pa, pb) = (single(&a), single(&b));
        let both = ModelEnsemble::new(vec![a, b], &device).unwrap();
        let mean = both.predict(&x, 0, &c, 2).unwrap();
        assert_eq!(mean.len(), 3 * 5);
        for ((m, x), y) in mean.iter().zip(&pa).zip(&pb) {
            assert!((m - (x + y) / 2.0).abs() < 1e-5, "{m} vs {x}, {y}");
        }
        assert!(pa.iter().zip(&pb).any(|(x, y)| (x - y).abs() > 1e-4));
        let err = ModelEnsemble::new(vec![model(1, 5), model(1, 6)], &device).unwrap_err();
        assert!(err.to_string().contains("5"), "{err}");
        let mut wrong = context();
        wrong.image_shape = [1, 12, 17];
        let err = both.predict(&x, 0, &wrong, 2).unwrap_err().to_string();
        assert!(err.contains("shape"), "{err}");
        assert!(both.predict(&x, 1, &c, 2).is_err());
        // Reading out some neurons (repeats allowed) gives those columns, the same bits.
        let some = both.predict_neurons(&x, 0, &c, 2, &[3, 0, 3]).unwrap();
        let columns: Vec<f32> = mean
            .chunks_exact(5)
            .flat_map(|r| [r[3], r[0], r[3]])
            .collect();
        assert_eq!(some, columns);
        let err = both
            .predict_neurons(&x, 0, &c, 2, &[5])
            .unwrap_err()
            .to_string();
        assert!(err.contains("5") && err.contains("range"), "{err}");
    }

    #[test]
    fn row_gradients_match_finite_differences_in_dataset_units() {
        let device = Device::flex();
        let ensemble = ModelEnsemble::new(vec![model(3, 4), model(4, 4)], &device).unwrap();
        let c = context();
        let x = images(2);
        let neurons = [2, 0];
        let out = row_gradients(&ensemble, 0, &c, &x, &neurons, 4);
        let base = ensemble.predict(&x, 0, &c, 2).unwrap();
        assert!((out.responses[0] - base[2]).abs() < 1e-5);
        assert!((out.responses[1] - base[4]).abs() < 1e-5);
        // Perturb single pixels of row 1 (neuron 0); row 0 must not matter for it.
        for pixel in [40, 97, 150] {
            let eps = 0.5f32;
            let mut plus = x.clone();
            plus[192 + pixel] += eps;
            let mut minus = x.clone();
            minus[192 + pixel] -= eps;
            let p = ensemble.predict(&plus, 0, &c, 2).unwrap()[4];
            let m = ensemble.predict(&minus, 0, &c, 2).unwrap()[4];
            let numeric = (p - m) / (2.0 * eps);
            let analytic = out.gradients[192 + pixel];
            assert!(
                (numeric - analytic).abs() <= 2e-3 * analytic.abs().max(1e-3) + 2e-5,
                "pixel {pixel}: numeric {numeric}, analytic {analytic}"
            );
        }
    }
}
