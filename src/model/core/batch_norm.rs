//! Batch normalization with PyTorch's conventions (reference: `torch.nn.BatchNorm2d`).
//!
//! burn's own `BatchNorm` updates its running variance with the *biased* batch variance and
//! decides between batch and running statistics from the device (autodiff or not). The
//! reference updates with the *unbiased* variance (×n/(n−1)), and the trainer needs to run
//! evaluation passes with running statistics on the training device, so this module takes the
//! mode explicitly and keeps its running statistics as plain (never trained) buffers that a
//! `clone()` copies rather than shares.

use burn::module::{Module, Param};
use burn::tensor::module::BatchNormTrainOutput;
use burn::tensor::{Tensor, TensorData};

use crate::model::state_dict::{StateDict, StateDictError};

use crate::model::tensor_util::{buffer, replace_param, tensor_f64, to_f64_vec as values};

/// BatchNorm2d over (B, C, H, W): per-channel normalization, optional learnable scale and shift.
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// Learnable per-channel scale (PyTorch `weight`, γ); `None` = fixed 1.
    pub scale: Option<Param<Tensor<1>>>,
    /// Learnable per-channel shift (PyTorch `bias`, β); `None` = fixed 0.
    pub shift: Option<Param<Tensor<1>>>,
    /// Running mean, a buffer (no gradient, not trained).
    pub running_mean: Param<Tensor<1>>,
    /// Running (unbiased) variance, a buffer.
    pub running_var: Param<Tensor<1>>,
    /// Number of training batches seen (PyTorch `num_batches_tracked`).
    #[module(skip)]
    pub num_batches_tracked: u64,
    /// Weight of the newest batch in the running statistics (PyTorch convention).
    #[module(skip)]
    pub momentum: f64,
    /// Added to the variance before the square root.
    #[module(skip)]
    pub eps: f64,
}

impl BatchNorm2d {
    /// Running mean 0, running variance 1, scale 1 and shift 0 where learnable.
    pub fn new(
        channels: usize,
        scale: bool,
        shift: bool,
        momentum: f64,
        eps: f64,
        device: &burn::tensor::Device,
    ) -> Self {
        let ones = || tensor_f64(&vec![1.0; channels], [channels], device);
        let zeros = || tensor_f64(&vec![0.0; channels], [channels], device);
        Self {
            scale: scale.then(|| Param::from_tensor(ones())),
            shift: shift.then(|| Param::from_tensor(zeros())),
            running_mean: buffer(zeros()),
            running_var: buffer(ones()),
            num_batches_tracked: 0,
            momentum,
            eps,
        }
    }

    fn channels(&self) -> usize {
        self.running_mean.val().dims()[0]
    }

    fn scale_and_shift(&self, like: &Tensor<1>) -> (Tensor<1>, Tensor<1>) {
        let scale = match &self.scale {
            Some(p) => p.val(),
            None => like.ones_like(),
        };
        let shift = match &self.shift {
            Some(p) => p.val(),
            None => like.zeros_like(),
        };
        (scale, shift)
    }

    /// The evaluation-mode normalization folded into one per-channel multiply-add,
    /// `x·gain + offset` with gain = scale/√(running var + ε) and offset = shift − running
    /// mean·gain: two passes over the map instead of the four of (x − mean) / √(var + ε) ·
    /// scale + shift; the result differs from that form by rounding only.
    pub fn eval_gain_and_offset(&self) -> (Tensor<1>, Tensor<1>) {
        let mean = self.running_mean.val().detach();
        let var = self.running_var.val().detach();
        let (scale, shift) = self.scale_and_shift(&mean);
        let gain = scale * var.add_scalar(self.eps).sqrt().recip();
        let offset = shift - mean * gain.clone();
        (gain, offset)
    }

    /// Normalizes with the running statistics (evaluation mode); nothing changes.
    pub fn forward_eval(&self, x: Tensor<4>) -> Tensor<4> {
        let (gain, offset) = self.eval_gain_and_offset();
        let channels = gain.dims()[0];
        x * gain.reshape([1, channels, 1, 1]) + offset.reshape([1, channels, 1, 1])
    }

    /// ELU of [`forward_eval`](Self::forward_eval) in one fused pass where the kernels allow
    /// (`kernels::affine_elu`; the same numbers as the two steps).
    pub fn forward_eval_elu(&self, x: Tensor<4>) -> Tensor<4> {
        let (gain, offset) = self.eval_gain_and_offset();
        crate::kernels::affine_elu(x, gain, offset)
    }

    /// Normalizes with the batch's own mean and biased variance (training mode) and updates the
    /// running statistics: running ← (1 − m)·running + m·batch, with the unbiased variance.
    pub fn forward_train(&mut self, x: Tensor<4>) -> Tensor<4> {
        self.train_with(x, crate::kernels::batch_norm_train)
    }

    /// ELU of [`forward_train`](Self::forward_train) in one fused op where the kernels allow
    /// (`kernels::batch_norm_elu_train`; the same numbers as the two steps).
    pub fn forward_train_elu(&mut self, x: Tensor<4>) -> Tensor<4> {
        self.train_with(x, crate::kernels::batch_norm_elu_train)
    }

    /// Training mode through `op` (a batch norm with batch statistics, possibly followed by an
    /// activation); updates the running statistics from the statistics it returns.
    fn train_with(
        &mut self,
        x: Tensor<4>,
        op: impl FnOnce(Tensor<4>, Tensor<1>, Tensor<1>, f64) -> BatchNormTrainOutput<4>,
    ) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let n = (b * h * w) as f64;
        let like = self.running_mean.val().detach();
        let (scale, shift) = self.scale_and_shift(&like);
        let out = op(x, scale, shift, self.eps);
        let m = self.momentum;
        // PyTorch divides by n − 1 for the running variance; with n = 1 it would be inf.
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let mean = like
            .mul_scalar(1.0 - m)
            .add(out.mean.detach().mul_scalar(m));
        let var = self
            .running_var
            .val()
            .detach()
            .mul_scalar(1.0 - m)
            .add(out.variance.detach().mul_scalar(m * unbias));
        replace_param(&mut self.running_mean, mean);
        replace_param(&mut self.running_var, var);
        self.num_batches_tracked += 1;
        out.output
    }

    /// Writes the reference's names: `norm.{weight,bias}` when affine, else `norm.*` buffers plus
    /// `bias.bias` / `scale.scale` (shape (1,C,1,1)) for the shift-only / scale-only variants.
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        let c = self.channels();
        let affine = self.scale.is_some() && self.shift.is_some();
        if affine {
            let s = self.scale.as_ref().expect("affine");
            let b = self.shift.as_ref().expect("affine");
            sd.insert(format!("{prefix}norm.weight"), vec![c], values(s.val()));
            sd.insert(format!("{prefix}norm.bias"), vec![c], values(b.val()));
        } else if let Some(b) = &self.shift {
            sd.insert(
                format!("{prefix}bias.bias"),
                vec![1, c, 1, 1],
                values(b.val()),
            );
        } else if let Some(s) = &self.scale {
            sd.insert(
                format!("{prefix}scale.scale"),
                vec![1, c, 1, 1],
                values(s.val()),
            );
        }
        sd.insert(
            format!("{prefix}norm.running_mean"),
            vec![c],
            values(self.running_mean.val()),
        );
        sd.insert(
            format!("{prefix}norm.running_var"),
            vec![c],
            values(self.running_var.val()),
        );
        sd.insert(
            format!("{prefix}norm.num_batches_tracked"),
            vec![],
            vec![self.num_batches_tracked as f64],
        );
    }

    /// Reads what [`export_state`](Self::export_state) writes, keeping this module's dtype.
    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let c = self.channels();
        let affine = self.scale.is_some() && self.shift.is_some();
        let load = |p: &mut Param<Tensor<1>>, name: String, shape: &[usize]| {
            let t = sd.get(&name, shape)?;
            let like = p.val();
            let new = Tensor::<1>::from_data(
                TensorData::new(t.data.clone(), [c]),
                (&like.device(), like.dtype()),
            );
            replace_param(p, new);
            Ok::<(), StateDictError>(())
        };
        if affine {
            load(
                self.scale.as_mut().expect("affine"),
                format!("{prefix}norm.weight"),
                &[c],
            )?;
            load(
                self.shift.as_mut().expect("affine"),
                format!("{prefix}norm.bias"),
                &[c],
            )?;
        } else if let Some(b) = self.shift.as_mut() {
            load(b, format!("{prefix}bias.bias"), &[1, c, 1, 1])?;
        } else if let Some(s) = self.scale.as_mut() {
            load(s, format!("{prefix}scale.scale"), &[1, c, 1, 1])?;
        }
        load(
            &mut self.running_mean,
            format!("{prefix}norm.running_mean"),
            &[c],
        )?;
        load(
            &mut self.running_var,
            format!("{prefix}norm.running_var"),
            &[c],
        )?;
        let tracked = sd.get(&format!("{prefix}norm.num_batches_tracked"), &[])?;
        self.num_batches_tracked = tracked.data[0].max(0.0) as u64;
        Ok(self)
    }
}
