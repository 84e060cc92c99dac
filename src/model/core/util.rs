//! Small helpers to build and replace parameters from host values (f64, widened or narrowed to
//! the model's dtype).

use burn::module::{Param, Parameter};
use burn::tensor::{DType, Device, Tensor, TensorData};

/// A tensor with `values` (row-major) of `shape` in the device's default float dtype.
pub fn tensor_f64<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// Like [`tensor_f64`] but in the dtype (and on the device) of `like`.
pub fn tensor_like<const D: usize, const E: usize>(
    values: &[f64],
    shape: [usize; D],
    like: &Tensor<E>,
) -> Tensor<D> {
    tensor_dtype(values, shape, like.dtype(), &like.device())
}

/// A tensor with `values` of `shape` in `dtype`.
pub fn tensor_dtype<const D: usize>(
    values: &[f64],
    shape: [usize; D],
    dtype: DType,
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), (device, dtype))
}

/// A never-trained buffer (e.g. BatchNorm running statistics): a parameter without gradient.
pub fn buffer<const D: usize>(value: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(value).set_require_grad(false)
}

/// Replaces a parameter's value, keeping its id and whether it is trained.
pub fn replace_param<const D: usize>(p: &mut Param<Tensor<D>>, value: Tensor<D>) {
    let require_grad = p.val().is_require_grad();
    *p = p
        .clone()
        .map(|_| Parameter::set_require_grad(value.detach(), require_grad));
}

/// The values of a tensor widened to f64, row-major.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}
