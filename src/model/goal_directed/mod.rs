//! The **goal-directed core** (neuralpredictors' `TransferLearningCore`, the "task-driven" baseline of
//! Lurz et al. 2020): the first modules of a network pretrained on an image task (e.g. torchvision's
//! VGG16 `features`), frozen, with grey images repeated to its three input channels, followed by an
//! optional batch norm (PyTorch momentum 0.1) and ReLU. A readout on top then asks how much of the
//! neural responses a representation learned for *object recognition* explains — the baseline the
//! data-driven cores must beat.
//!
//! The pretrained weights come from a safetensors file holding a PyTorch state_dict (export it with
//! `safetensors.torch.save_file(torchvision.models.vgg16(weights="DEFAULT").state_dict(), "vgg16.safetensors")`):
//! `features.0.weight`, `features.0.bias`, `features.2.weight`, … The module sequence (3×3 convolution
//! with padding 1, ReLU, 2×2 max pool) is that of torchvision's VGG family, truncated to the first
//! `layers` modules exactly like the reference (`features[:layers]`); channel counts are read from the
//! weights, so a small network written by a test works the same way.
//!
//! Deliberate choices: the pretrained modules are frozen unless `fine_tune` (their tensors are detached
//! in `forward` and marked as not requiring gradients), as in the reference; the final batch norm stays
//! trainable; like the reference, no ImageNet mean/std normalization is applied to the input.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::module::{Module, Param};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::core::{BatchNorm2d, BatchNormMode};
use crate::model::state_dict::{StateDict, StateDictError};

/// One module of a torchvision-style `features` sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PretrainedModule {
    /// `nn.Conv2d(…, kernel_size=k, padding=k//2)`; weights `<prefix><index>.weight` / `.bias`.
    Conv,
    /// `nn.ReLU`.
    Relu,
    /// `nn.MaxPool2d(kernel_size=2, stride=2)`.
    MaxPool,
}

/// Which pretrained network the weights file holds (its module sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PretrainedNetwork {
    Vgg11,
    Vgg13,
    Vgg16,
    Vgg19,
    /// The module list is given explicitly in `modules`.
    Custom,
}

impl PretrainedNetwork {
    /// The full `features` module sequence (torchvision's VGG configurations "A", "B", "D", "E":
    /// a number means conv + ReLU, "M" a max pool).
    pub fn modules(self) -> Option<Vec<PretrainedModule>> {
        // Convolutions per stage; each stage ends with a max pool.
        let convs_per_stage: &[usize] = match self {
            PretrainedNetwork::Vgg11 => &[1, 1, 2, 2, 2],
            PretrainedNetwork::Vgg13 => &[2, 2, 2, 2, 2],
            PretrainedNetwork::Vgg16 => &[2, 2, 3, 3, 3],
            PretrainedNetwork::Vgg19 => &[2, 2, 4, 4, 4],
            PretrainedNetwork::Custom => return None,
        };
        let mut modules = Vec::new();
        for &n in convs_per_stage {
            for _ in 0..n {
                modules.push(PretrainedModule::Conv);
                modules.push(PretrainedModule::Relu);
            }
            modules.push(PretrainedModule::MaxPool);
        }
        Some(modules)
    }
}

fn default_prefix() -> String {
    "features.".to_string()
}
fn default_layers() -> usize {
    4
}
fn default_true() -> bool {
    true
}
fn default_momentum() -> f64 {
    0.1
}
fn default_eps() -> f64 {
    1e-5
}

/// Configuration of a goal-directed core. Defaults are the Lurz et al. 2020 task-driven baseline
/// (VGG16, first 4 modules, batch norm momentum 0.1 + ReLU, frozen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalDirectedCoreConfig {
    /// Safetensors file with the pretrained network's state_dict.
    pub weights: PathBuf,
    /// Module sequence of the pretrained network.
    #[serde(default = "default_network")]
    pub network: PretrainedNetwork,
    /// The module sequence when `network = "custom"` (ignored otherwise).
    #[serde(default)]
    pub modules: Vec<PretrainedModule>,
    /// Name prefix of the pretrained modules in the weights file (torchvision VGG: `features.`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Keep the first `layers` modules (conv, ReLU and pool each count as one, as `features[:layers]`).
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Batch norm (learnable scale and shift) on the truncated network's output.
    #[serde(default = "default_true")]
    pub final_batch_norm: bool,
    /// ReLU after everything.
    #[serde(default = "default_true")]
    pub final_nonlinearity: bool,
    /// Batch norm momentum in PyTorch's convention (weight of the newest batch).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Batch norm epsilon.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Train the pretrained weights too (default: frozen).
    #[serde(default)]
    pub fine_tune: bool,
}

fn default_network() -> PretrainedNetwork {
    PretrainedNetwork::Vgg16
}

impl GoalDirectedCoreConfig {
    /// The reference's task-driven baseline on the given weights file.
    pub fn vgg16(weights: impl Into<PathBuf>) -> Self {
        GoalDirectedCoreConfig {
            weights: weights.into(),
            network: PretrainedNetwork::Vgg16,
            modules: Vec::new(),
            prefix: default_prefix(),
            layers: default_layers(),
            final_batch_norm: true,
            final_nonlinearity: true,
            momentum: default_momentum(),
            eps: default_eps(),
            fine_tune: false,
        }
    }

    /// The truncated module sequence, checked.
    pub fn truncated_modules(&self) -> anyhow::Result<Vec<PretrainedModule>> {
        let all = match self.network.modules() {
            Some(m) => m,
            None if self.modules.is_empty() => {
                bail!("goal-directed core: `network = \"custom\"` needs a non-empty `modules` list")
            }
            None => self.modules.clone(),
        };
        if self.layers == 0 || self.layers > all.len() {
            bail!(
                "goal-directed core: `layers` = {} but the network has {} modules (expected 1..={})",
                self.layers,
                all.len(),
                all.len()
            );
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            bail!(
                "goal-directed core: `momentum` = {} (expected within [0, 1])",
                self.momentum
            );
        }
        let kept = all[..self.layers].to_vec();
        if !kept.contains(&PretrainedModule::Conv) {
            bail!(
                "goal-directed core: the first {} modules contain no convolution",
                self.layers
            );
        }
        Ok(kept)
    }

    /// Builds the core: reads the weights file and checks every tensor's name and shape.
    pub fn init(&self, device: &Device) -> anyhow::Result<GoalDirectedCore> {
        let modules = self.truncated_modules()?;
        let convs = read_pretrained_convs(&self.weights, &self.prefix, &modules)?;
        GoalDirectedCore::from_convs(self, modules, convs, device)
    }
}

/// A pretrained convolution as read from the weights file (row-major f64).
#[derive(Debug, Clone)]
pub struct PretrainedConv {
    /// Index in the `features` sequence (names `<prefix><index>.weight`).
    pub index: usize,
    /// (out, in, k, k)
    pub shape: [usize; 4],
    pub weight: Vec<f64>,
    pub bias: Option<Vec<f64>>,
}

fn read_pretrained_convs(
    path: &Path,
    prefix: &str,
    modules: &[PretrainedModule],
) -> anyhow::Result<Vec<PretrainedConv>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the pretrained weights {}", path.display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let read = |name: &str| -> anyhow::Result<Option<(Vec<usize>, Vec<f64>)>> {
        let view = match file.tensor(name) {
            Ok(v) => v,
            Err(safetensors::SafeTensorError::TensorNotFound(_)) => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("{}: tensor `{name}`", path.display()));
            }
        };
        let data = decode(view.dtype(), view.data())
            .with_context(|| format!("{}: tensor `{name}`", path.display()))?;
        Ok(Some((view.shape().to_vec(), data)))
    };
    let mut convs = Vec::new();
    let mut channels: Option<usize> = None;
    for (index, module) in modules.iter().enumerate() {
        if *module != PretrainedModule::Conv {
            continue;
        }
        let name = format!("{prefix}{index}.weight");
        let (shape, weight) = read(&name)?.with_context(|| {
            format!(
                "{}: no tensor `{name}` (expected the weight of module {index}, a convolution; \
                 check `network`, `prefix` and `layers`)",
                path.display()
            )
        })?;
        let shape: [usize; 4] = match shape[..] {
            [o, i, kh, kw] if kh == kw && kh % 2 == 1 => [o, i, kh, kw],
            _ => bail!(
                "{}: tensor `{name}` has shape {shape:?}, expected (out, in, k, k) with odd k",
                path.display()
            ),
        };
        if let Some(c) = channels
            && c != shape[1]
        {
            bail!(
                "{}: tensor `{name}` expects {} input channels but the previous convolution gives {c}",
                path.display(),
                shape[1]
            );
        }
        channels = Some(shape[0]);
        let bias_name = format!("{prefix}{index}.bias");
        let bias = match read(&bias_name)? {
            None => None,
            Some((s, b)) if s == [shape[0]] => Some(b),
            Some((s, _)) => bail!(
                "{}: tensor `{bias_name}` has shape {s:?}, expected [{}]",
                path.display(),
                shape[0]
            ),
        };
        convs.push(PretrainedConv {
            index,
            shape,
            weight,
            bias,
        });
    }
    Ok(convs)
}

fn decode(dtype: safetensors::Dtype, bytes: &[u8]) -> anyhow::Result<Vec<f64>> {
    use safetensors::Dtype;
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        // bf16 is the upper half of an f32.
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64)
            .collect(),
        other => bail!("dtype {other:?} is not supported (expected F32, F64 or BF16)"),
    })
}

/// The goal-directed core (see the module documentation).
#[derive(Module, Debug)]
pub struct GoalDirectedCore {
    /// Pretrained convolution weights (out, in, k, k), in module order.
    pub conv_weights: Vec<Param<Tensor<4>>>,
    /// Their biases (a zero bias where the file has none).
    pub conv_biases: Vec<Param<Tensor<1>>>,
    /// Final batch norm (PyTorch conventions, learnable scale and shift).
    pub batch_norm: Option<BatchNorm2d>,
    #[module(skip)]
    pub plan: CorePlan,
}

/// The fixed structure of a goal-directed core (not trained).
#[derive(Debug, Clone, PartialEq)]
pub struct CorePlan {
    pub modules: Vec<PretrainedModule>,
    /// `features` index of each convolution (for state_dict names).
    pub conv_indices: Vec<usize>,
    pub input_channels: usize,
    pub output_channels: usize,
    pub final_nonlinearity: bool,
    pub fine_tune: bool,
}

impl GoalDirectedCore {
    /// Builds the core from convolutions already read (tests and importers use this directly).
    pub fn from_convs(
        config: &GoalDirectedCoreConfig,
        modules: Vec<PretrainedModule>,
        convs: Vec<PretrainedConv>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let first = convs
            .first()
            .context("goal-directed core: no convolution")?;
        let input_channels = first.shape[1];
        let output_channels = convs.last().expect("non-empty").shape[0];
        let mut conv_weights = Vec::new();
        let mut conv_biases = Vec::new();
        for c in &convs {
            let w = Tensor::<4>::from_data(TensorData::new(c.weight.clone(), c.shape), device);
            let bias = c.bias.clone().unwrap_or_else(|| vec![0.0; c.shape[0]]);
            let b = Tensor::<1>::from_data(TensorData::new(bias, [c.shape[0]]), device);
            conv_weights.push(Param::from_tensor(w).set_require_grad(config.fine_tune));
            conv_biases.push(Param::from_tensor(b).set_require_grad(config.fine_tune));
        }
        let batch_norm = config.final_batch_norm.then(|| {
            BatchNorm2d::new(
                output_channels,
                true,
                true,
                config.momentum,
                config.eps,
                device,
            )
        });
        Ok(GoalDirectedCore {
            conv_weights,
            conv_biases,
            batch_norm,
            plan: CorePlan {
                conv_indices: convs.iter().map(|c| c.index).collect(),
                modules,
                input_channels,
                output_channels,
                final_nonlinearity: config.final_nonlinearity,
                fine_tune: config.fine_tune,
            },
        })
    }

    /// Output shape (C, H, W) for an input of (C, H, W): convolutions keep the size ("same" padding),
    /// each max pool halves it (floor).
    pub fn output_shape(&self, input: [usize; 3]) -> [usize; 3] {
        let (mut h, mut w) = (input[1], input[2]);
        for m in &self.plan.modules {
            if *m == PretrainedModule::MaxPool {
                h /= 2;
                w /= 2;
            }
        }
        [self.plan.output_channels, h, w]
    }

    /// The frozen (or fine-tuned) pretrained part: grey → repeated channels → conv/ReLU/pool.
    fn pretrained(&self, images: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = images.dims();
        let mut x = if c == 1 && self.plan.input_channels != 1 {
            images.repeat_dim(1, self.plan.input_channels)
        } else {
            images
        };
        let mut conv = 0;
        for m in &self.plan.modules {
            x = match m {
                PretrainedModule::Conv => {
                    let (mut w, mut b) =
                        (self.conv_weights[conv].val(), self.conv_biases[conv].val());
                    if !self.plan.fine_tune {
                        w = w.detach();
                        b = b.detach();
                    }
                    conv += 1;
                    let k = w.dims()[2];
                    conv2d(
                        x,
                        w,
                        Some(b),
                        ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1),
                    )
                }
                PretrainedModule::Relu => burn::tensor::activation::relu(x),
                PretrainedModule::MaxPool => max_pool2d(x, MaxPoolOptions::new([2, 2])),
            };
        }
        x
    }

    fn output_nonlinearity(&self, x: Tensor<4>) -> Tensor<4> {
        if self.plan.final_nonlinearity {
            burn::tensor::activation::relu(x)
        } else {
            x
        }
    }

    /// Images (B, 1 or the network's input channels, H, W) → features (B, C, H', W').
    /// A one-channel (grey) input is repeated to the network's input channels. `mode` selects the
    /// final batch norm's statistics (batch statistics + running-statistics update, or running).
    pub fn forward(&mut self, images: Tensor<4>, mode: BatchNormMode) -> Tensor<4> {
        let mut x = self.pretrained(images);
        if let Some(bn) = self.batch_norm.as_mut() {
            x = match mode {
                BatchNormMode::Train => bn.forward_train(x),
                BatchNormMode::Eval => bn.forward_eval(x),
            };
        }
        self.output_nonlinearity(x)
    }

    /// Evaluation mode (running statistics); changes nothing.
    pub fn forward_eval(&self, images: Tensor<4>) -> Tensor<4> {
        let mut x = self.pretrained(images);
        if let Some(bn) = &self.batch_norm {
            x = bn.forward_eval(x);
        }
        self.output_nonlinearity(x)
    }

    /// The core regularizer: none (as in the reference).
    pub fn regularizer(&self, device: &Device) -> Tensor<1> {
        Tensor::zeros([1], device)
    }

    /// Writes the reference's state_dict names (`features.TransferLearning.<i>.weight`,
    /// `features.OutBatchNorm.running_mean`, …) under `prefix` (e.g. `core.`).
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        let values = |t: Tensor<4>| -> Vec<f64> { t.into_data().iter::<f64>().collect() };
        for (i, idx) in self.plan.conv_indices.iter().enumerate() {
            let w = self.conv_weights[i].val();
            let shape = w.dims().to_vec();
            sd.insert(
                format!("{prefix}features.TransferLearning.{idx}.weight"),
                shape,
                values(w),
            );
            let b = self.conv_biases[i].val();
            let n = b.dims()[0];
            sd.insert(
                format!("{prefix}features.TransferLearning.{idx}.bias"),
                vec![n],
                b.into_data().iter::<f64>().collect(),
            );
        }
        if let Some(bn) = &self.batch_norm {
            let v = |t: Tensor<1>| -> Vec<f64> { t.into_data().iter::<f64>().collect() };
            let n = self.plan.output_channels;
            let p = format!("{prefix}features.OutBatchNorm.");
            if let (Some(scale), Some(shift)) = (&bn.scale, &bn.shift) {
                sd.insert(format!("{p}weight"), vec![n], v(scale.val()));
                sd.insert(format!("{p}bias"), vec![n], v(shift.val()));
            }
            sd.insert(
                format!("{p}running_mean"),
                vec![n],
                v(bn.running_mean.val()),
            );
            sd.insert(format!("{p}running_var"), vec![n], v(bn.running_var.val()));
            sd.insert(
                format!("{p}num_batches_tracked"),
                vec![],
                vec![bn.num_batches_tracked as f64],
            );
        }
    }

    /// Reads back what [`export_state`](Self::export_state) wrote (shapes checked), keeping
    /// parameter ids, dtypes and which parameters are trained.
    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        fn load<const D: usize>(
            param: &mut Param<Tensor<D>>,
            name: &str,
            sd: &StateDict,
        ) -> Result<(), StateDictError> {
            let like = param.val();
            let shape = like.dims();
            let e = sd.get(name, &shape)?;
            let t = Tensor::<D>::from_data(
                TensorData::new(e.data.clone(), shape),
                (&like.device(), like.dtype()),
            );
            let rg = like.is_require_grad();
            *param = param
                .clone()
                .map(|_| burn::module::Parameter::set_require_grad(t.detach(), rg));
            Ok(())
        }
        for i in 0..self.conv_weights.len() {
            let idx = self.plan.conv_indices[i];
            let p = format!("{prefix}features.TransferLearning.{idx}.");
            load(&mut self.conv_weights[i], &format!("{p}weight"), sd)?;
            load(&mut self.conv_biases[i], &format!("{p}bias"), sd)?;
        }
        if let Some(bn) = self.batch_norm.as_mut() {
            let p = format!("{prefix}features.OutBatchNorm.");
            if let Some(scale) = bn.scale.as_mut() {
                load(scale, &format!("{p}weight"), sd)?;
            }
            if let Some(shift) = bn.shift.as_mut() {
                load(shift, &format!("{p}bias"), sd)?;
            }
            load(&mut bn.running_mean, &format!("{p}running_mean"), sd)?;
            load(&mut bn.running_var, &format!("{p}running_var"), sd)?;
            if let Some(t) = sd.entries.get(&format!("{p}num_batches_tracked")) {
                bn.num_batches_tracked = t.data.first().copied().unwrap_or(0.0) as u64;
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests;
