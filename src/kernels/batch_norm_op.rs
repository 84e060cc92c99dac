//! The training-mode batch-norm kernels ([`super::batch_norm`]) as burn backend ops with their
//! backward: the batch norm alone, and a core block's batch norm with the ELU after it, `y =
//! ELU(γ·(x − mean)/√(var + ε) + β)` with batch statistics.
//!
//! As two ops, the normalised map is written, read back by the ELU and kept until the ELU has
//! written its output; backward, the ELU writes its input gradient and the batch norm reads it
//! twice. Here the forward writes `y` straight from `x` (one activation-sized map less to
//! write and read), and the backward forms the ELU's input gradient (`grad` where y > 0, `grad ·
//! (y + 1)` elsewhere) on the fly in both of the batch norm's passes. The arithmetic is that of
//! the two ops, value for value, so the numbers are the same.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::Shape;

use super::batch_norm::{
    NormGrads, NormShape, backward_elu_on, backward_on, forward_elu_on, forward_on,
};
use super::extension::{flex_tensor, values};
use super::isa::Isa;

/// Training-mode batch norm as a backend op with a fused backward.
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormBackend: Backend {
    /// Output (shape of `x`), batch mean and biased batch variance (`[channels]`, detached) of
    /// `γ·(x − mean)/√(var + ε) + β` with per-channel `scale` γ and `shift` β.
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Training-mode batch norm followed by ELU as a backend op with a fused backward.
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormEluBackend: Backend {
    /// Output (shape of `x`), batch mean and biased batch variance (`[channels]`, detached) of
    /// `ELU(γ·(x − mean)/√(var + ε) + β)` with per-channel `scale` γ and `shift` β.
    fn fused_batch_norm_elu_train(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Output, mean and variance of both ops on flex (`elu`: with the ELU).
fn flex_train(
    x: FlexTensor,
    scale: FlexTensor,
    shift: FlexTensor,
    eps: f64,
    elu: bool,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let dims = x.shape();
    let shape = NormShape::from_dims(&dims);
    let (x, scale, shift) = (values(&x), values(&scale), values(&shift));
    let forward = if elu { forward_elu_on } else { forward_on };
    let out = forward(Isa::active(), &shape, &x, &scale, &shift, eps);
    let channels = Shape::new([shape.channels]);
    (
        flex_tensor(out.output, dims),
        flex_tensor(out.mean, channels.clone()),
        flex_tensor(out.variance, channels),
    )
}

impl BatchNormBackend for Flex {
    fn fused_batch_norm_train(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        flex_train(x, scale, shift, eps, false)
    }
}

impl BatchNormEluBackend for Flex {
    fn fused_batch_norm_elu_train(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        flex_train(x, scale, shift, eps, true)
    }
}

/// Backward step of both ops: keeps the checkpointed input and scale, the batch statistics
/// and, where the ELU follows, the op's output.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    /// Input and scale (checkpointed), the output if an ELU follows, mean, variance, ε.
    type State = (
        NodeId,
        NodeId,
        Option<FlexTensor>,
        FlexTensor,
        FlexTensor,
        f64,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, scale_state, elu_output, mean, variance, eps) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let scale = checkpointer.retrieve_node_output::<FlexTensor>(scale_state);
        let dims = x.shape();
        let shape = NormShape::from_dims(&dims);
        let (x, scale, grad) = (values(&x), values(&scale), values(&grad));
        let stats = (&values(&mean)[..], &values(&variance)[..]);
        let isa = Isa::active();
        let result = match &elu_output {
            Some(y) => backward_elu_on(isa, &shape, (&x, &values(y)), &scale, stats, eps, &grad),
            None => backward_on(isa, &shape, &x, &scale, stats, eps, &grad),
        };
        let parents = ops.parents.map(|node| node.map(|node| node.id));
        register_grads(grads, parents, result, dims);
    }
}

/// Registers the gradients of the input (shape `dims`), scale and shift with the parents that
/// track them.
fn register_grads(
    grads: &mut Gradients,
    [node_x, node_scale, node_shift]: [Option<NodeId>; 3],
    result: NormGrads,
    dims: Shape,
) {
    let channels = Shape::new([dims[1]]);
    if let Some(node) = node_x {
        grads.register::<Flex>(node, flex_tensor(result.input, dims));
    }
    if let Some(node) = node_scale {
        grads.register::<Flex>(node, flex_tensor(result.scale, channels.clone()));
    }
    if let Some(node) = node_shift {
        grads.register::<Flex>(node, flex_tensor(result.shift, channels));
    }
}

/// Both ops on autodiff over flex (`elu`: with the ELU).
fn autodiff_train<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    scale: FloatTensor<Autodiff<Flex, C>>,
    shift: FloatTensor<Autodiff<Flex, C>>,
    eps: f64,
    elu: bool,
) -> [FloatTensor<Autodiff<Flex, C>>; 3] {
    let detached = <Autodiff<Flex, C> as AutodiffBackend>::from_inner;
    match BatchNormBackward
        .prepare::<C>([x.node(), scale.node(), shift.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let scale_state = prep.checkpoint(&scale);
            let (y, mean, variance) = flex_train(
                x.into_primitive(),
                scale.into_primitive(),
                shift.into_primitive(),
                eps,
                elu,
            );
            let elu_output = elu.then(|| y.clone());
            let state = (
                x_state,
                scale_state,
                elu_output,
                mean.clone(),
                variance.clone(),
                eps,
            );
            [prep.finish(state, y), detached(mean), detached(variance)]
        }
        OpsKind::UnTracked(prep) => {
            let (y, mean, variance) = flex_train(
                x.into_primitive(),
                scale.into_primitive(),
                shift.into_primitive(),
                eps,
                elu,
            );
            [prep.finish(y), detached(mean), detached(variance)]
        }
    }
}

impl<C: CheckpointStrategy> BatchNormBackend for Autodiff<Flex, C> {
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [y, mean, variance] = autodiff_train::<C>(x, scale, shift, eps, false);
        (y, mean, variance)
    }
}

impl<C: CheckpointStrategy> BatchNormEluBackend for Autodiff<Flex, C> {
    fn fused_batch_norm_elu_train(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [y, mean, variance] = autodiff_train::<C>(x, scale, shift, eps, true);
        (y, mean, variance)
    }
}
