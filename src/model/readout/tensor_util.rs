//! Small conversions between host `f64` values and tensors, shared by the readout family.

use burn::module::Param;
use burn::tensor::{DType, Device, Tensor, TensorData};

/// A tensor with `values` (row-major) of `shape`, in `dtype` or the device's default float type.
pub fn tensor_from_f64<const D: usize>(
    values: &[f64],
    shape: [usize; D],
    dtype: Option<DType>,
    device: &Device,
) -> Tensor<D> {
    let data = TensorData::new(values.to_vec(), shape);
    match dtype {
        Some(dtype) => Tensor::from_data(data, (device, dtype)),
        None => Tensor::from_data(data, device),
    }
}

/// A trainable parameter built like [`tensor_from_f64`].
pub fn param_from_f64<const D: usize>(
    values: &[f64],
    shape: [usize; D],
    dtype: Option<DType>,
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(tensor_from_f64(values, shape, dtype, device))
}

/// The values of a tensor, widened to f64, row-major.
pub fn to_f64_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// `t` as a fresh trainable leaf: detached from any graph, tracking gradients again when it lives
/// on an autodiff device (on a plain device there is nothing to track).
pub fn trainable_leaf<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    let t = t.detach();
    if t.device().is_autodiff() {
        t.require_grad()
    } else {
        t
    }
}
