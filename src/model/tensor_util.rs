//! Small conversions between host values and tensors, shared by every layer of the crate:
//! tensors and parameters from `f64` values (in the model's dtype), parameter replacement that
//! keeps ids, and tensor values back on the host.

use burn::module::{Module, ModuleMapper, Param, Parameter};
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

/// The first value of a tensor as f64 (NaN when empty), e.g. a loss.
pub fn scalar(t: &Tensor<1>) -> f64 {
    t.to_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// Casts every floating-point parameter and buffer of `module` to `dtype` (e.g. `DType::F64` for
/// parity checks against float64 references), keeping parameter ids and what is trained.
pub fn cast_module<M: Module>(module: M, dtype: DType) -> M {
    struct Cast(DType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            let require_grad = param.val().is_require_grad();
            // A fresh leaf from the values: a `cast` op would make it a non-leaf of the graph.
            param.map(|t| {
                let device = t.device();
                let fresh = Tensor::from_data(t.into_data(), (&device, dtype));
                burn::module::Parameter::set_require_grad(fresh, require_grad)
            })
        }
    }
    module.map(&mut Cast(dtype))
}
