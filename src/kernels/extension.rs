//! The channel-wise convolution as a burn backend extension: the forward op on the flex
//! backend and, on burn's autodiff backend wrapping flex, the same op with its hand-written
//! backward (input and filter gradients from [`super::channelwise`]).

use super::channelwise::{self, ChannelwiseShape};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Shape, TensorData};

/// Channel-wise 2-D convolution (stride 1, zero padding, no bias): each of the `channels`
/// filters (`weight`: `[channels, 1, kh, kw]`) reads either its own input channel (depthwise,
/// `x`: `[batch, channels, h, w]`) or the single input plane (`x`: `[batch, 1, h, w]`).
#[backend_extension(Flex, Autodiff)]
pub trait ChannelwiseConvBackend: Backend {
    /// Output `[batch, channels, h + 2·pad_h − kh + 1, w + 2·pad_w − kw + 1]`.
    ///
    /// `pair_images`: whether two images may share one transform of the FFT path
    /// ([`channelwise::forward_auto`]); each image's values then depend on its partner's at float
    /// rounding level. Training allows it; evaluation must not (a prediction may not depend on
    /// the rest of its batch).
    fn channelwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        pad_h: usize,
        pad_w: usize,
        pair_images: bool,
    ) -> FloatTensor<Self>;
}

/// Reads the sizes of a channel-wise convolution from its input and filter tensors.
fn shape_of(x: &FlexTensor, weight: &FlexTensor, pad_h: usize, pad_w: usize) -> ChannelwiseShape {
    let [batch, in_channels, in_h, in_w] = x.shape().dims();
    let [channels, _, kernel_h, kernel_w] = weight.shape().dims();
    ChannelwiseShape {
        batch,
        channels,
        shared_input: in_channels == 1 && channels != 1,
        in_h,
        in_w,
        kernel_h,
        kernel_w,
        pad_h,
        pad_w,
    }
}

/// Contiguous f32 values of a flex tensor (copies only when it is a strided view).
pub(super) fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("channel-wise conv: tensors must be f32")
                .to_vec(),
        ),
    }
}

/// A flex tensor holding `values` in `shape`.
pub(super) fn flex_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl ChannelwiseConvBackend for Flex {
    fn channelwise_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        pad_h: usize,
        pad_w: usize,
        pair_images: bool,
    ) -> FlexTensor {
        let shape = shape_of(&x, &weight, pad_h, pad_w);
        let out = channelwise::forward_auto(&shape, &values(&x), &values(&weight), pair_images);
        flex_tensor(
            out,
            [shape.batch, shape.channels, shape.out_h(), shape.out_w()],
        )
    }
}

/// Backward step of [`ChannelwiseConvBackend::channelwise_conv2d`] on the autodiff graph.
#[derive(Debug)]
struct ChannelwiseConvBackward;

impl Backward<Flex, 2> for ChannelwiseConvBackward {
    /// Checkpointed input and filters, the padding, and whether images may be paired.
    type State = (NodeId, NodeId, usize, usize, bool);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, pad_h, pad_w, pair_images) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        let shape = shape_of(&x, &weight, pad_h, pad_w);
        let grad_out = values(&grad_out);
        let (grad_x, grad_w) = channelwise::backward_auto(
            &shape,
            (&values(&x), &values(&weight), &grad_out),
            node_x.is_some(),
            node_weight.is_some(),
            pair_images,
        );
        if let (Some(node), Some(grad)) = (node_x, grad_x) {
            let dims = [shape.batch, shape.in_channels(), shape.in_h, shape.in_w];
            grads.register::<Flex>(node.id, flex_tensor(grad, dims));
        }
        if let (Some(node), Some(grad)) = (node_weight, grad_w) {
            let dims = [shape.channels, 1, shape.kernel_h, shape.kernel_w];
            grads.register::<Flex>(node.id, flex_tensor(grad, dims));
        }
    }
}

impl<C: CheckpointStrategy> ChannelwiseConvBackend for Autodiff<Flex, C> {
    fn channelwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        pad_h: usize,
        pad_w: usize,
        pair_images: bool,
    ) -> FloatTensor<Self> {
        match ChannelwiseConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = Flex::channelwise_conv2d(
                    x.into_primitive(),
                    weight.into_primitive(),
                    pad_h,
                    pad_w,
                    pair_images,
                );
                prep.finish((x_state, weight_state, pad_h, pad_w, pair_images), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::channelwise_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                pad_h,
                pad_w,
                pair_images,
            )),
        }
    }
}
