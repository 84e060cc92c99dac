//! Explanations of the `[model]` keys for `cortexfit config` (see `comments.rs`).
//!
//! Looked up by the full dotted path first, then by the last two path parts (`readout.type`),
//! then by the key name alone, so the same explanation serves every readout variant.

const DOCS: &[(&str, &str)] = &[
    // Sections.
    (
        "model.core",
        "The convolutional core shared by all neurons (Stacked2dCore / SE2dCore without SE blocks).",
    ),
    (
        "model.readout",
        "The per-neuron readout on the core's feature map; one instance per dataset (data key).",
    ),
    (
        "model.core.hidden_padding",
        "Padding of the hidden convolutions (absent: 'same', ((k - 1) dilation + 1) / 2).",
    ),
    (
        "model.core.laplace_padding",
        "Zero padding of the Laplace filter (absent: 1, 'same').",
    ),
    (
        "model.shifter",
        "Eye-position shifter: an MLP on the pupil position that shifts all readout positions.",
    ),
    (
        "model.modulator",
        "Behavioural modulator: an MLP on behaviour whose output gain multiplies the readout.",
    ),
    (
        "grid_mean_predictor",
        "Retinotopy: predict each neuron's mean position from its cortical coordinates instead of learning it freely (absent: free positions).",
    ),
    // Encoder-level.
    (
        "elu_offset",
        "Offset in the output nonlinearity ELU(x + offset) + 1.",
    ),
    (
        "behavior_as_channels",
        "Feed behaviour as extra constant input channels (Sensorium+).",
    ),
    (
        "pupil_as_channels",
        "Feed the pupil position as extra constant input channels.",
    ),
    (
        "detach_core",
        "Stop gradients into the core (transfer learning).",
    ),
    (
        "freeze_core_batch_norm",
        "Always run the core's batch norm with its running statistics (a frozen core stays exactly as trained; deviation from the reference, which keeps updating them).",
    ),
    // Core.
    (
        "input_bias",
        "Bias on the input convolution (redundant before a batch norm with shift).",
    ),
    (
        "hidden_bias",
        "Bias on the hidden convolutions (all three parts when depth-separable).",
    ),
    (
        "batch_norm_bias",
        "Learnable per-channel shift in the batch norm.",
    ),
    (
        "final_batch_norm_scale",
        "Learnable per-channel scale in the last block's batch norm.",
    ),
    ("batch_norm_eps", "Batch-norm epsilon."),
    (
        "layers",
        "Number of convolutional blocks (conv -> batch norm -> ELU).",
    ),
    (
        "hidden_channels",
        "Feature channels of each block (one number for all, or a list per block).",
    ),
    ("input_kern", "Kernel size of the first convolution."),
    (
        "hidden_kern",
        "Kernel size of the hidden convolutions (one number or a list).",
    ),
    (
        "pad_input",
        "Zero-pad the first convolution to keep the image size (false: valid convolution).",
    ),
    (
        "hidden_padding",
        "Padding of hidden convolutions (absent: 'same').",
    ),
    ("hidden_dilation", "Dilation of the hidden convolutions."),
    (
        "depth_separable",
        "Hidden convolutions as 1x1 -> depthwise kxk -> 1x1 (Lurz 2020: true).",
    ),
    (
        "skip",
        "Skip connections: each block reads the outputs of the last `skip` blocks (0 = none).",
    ),
    (
        "stack",
        "Which blocks' outputs the readout sees: absent = all, a negative number counts from the end (-1 = last block only).",
    ),
    ("batch_norm", "Batch normalization after each convolution."),
    (
        "momentum",
        "Batch-norm momentum in PyTorch's convention: running = (1 - m) running + m batch (0.9 in Lurz / Sensorium).",
    ),
    ("batch_norm_scale", "Learn a per-channel batch-norm scale."),
    (
        "final_batchnorm_scale",
        "Learn the batch-norm scale of the last block.",
    ),
    ("bn_bias", "Learn a per-channel batch-norm shift."),
    (
        "conv_bias",
        "Give convolutions a bias (redundant before batch norm).",
    ),
    (
        "bias",
        "Learn a bias (per channel for convolutions, per neuron for readouts).",
    ),
    (
        "final_nonlinearity",
        "Apply the activation after the last block too.",
    ),
    ("linear", "Drop every core nonlinearity (the LN baseline)."),
    (
        "elu_xshift",
        "Activation ELU(x - xshift) + yshift: x shift.",
    ),
    (
        "elu_yshift",
        "Activation ELU(x - xshift) + yshift: y shift.",
    ),
    (
        "gamma_input",
        "Weight of the smoothness penalty on the first-layer filters.",
    ),
    (
        "gamma_hidden",
        "Weight of the group-sparsity penalty on hidden filters.",
    ),
    (
        "input_regularizer",
        "Smoothness penalty on the first-layer filters: laplace_l2norm (Lurz / Sensorium), laplace_l2, gaussian_laplace_l2.",
    ),
    (
        "laplace_padding",
        "Padding of the Laplace filter (absent: k // 2, 'same').",
    ),
    ("use_avg_reg", "Average instead of sum in the regularizers."),
    (
        "init",
        "Initialisation scheme: lurz2020 (neuralpredictors v0.0.1 as pinned by the paper) or neuralpredictors (current).",
    ),
    ("seed", "Seed of this part's initialisation."),
    // Readouts.
    (
        "readout.type",
        "Readout kind: gaussian (Lurz 2020), factorized (Klindt 2017) or point_pooled (Sinz 2018).",
    ),
    ("type", "Which variant of this part."),
    (
        "gauss_type",
        "Shape of the covariance factor Sigma: full (2x2, the paper), uncorrelated or isotropic.",
    ),
    (
        "init_mu_range",
        "Mean positions start uniform in +-init_mu_range (grid units, in (0, 1]).",
    ),
    (
        "init_sigma",
        "Full Sigma entries start uniform in +-init_sigma; other types start at init_sigma.",
    ),
    (
        "init_mu_from_data",
        "Start free positions at each neuron's RF centre from reverse correlation (not in the reference; needs no grid_mean_predictor).",
    ),
    (
        "feature_reg_weight",
        "Weight of the L1 penalty on readout features (the reference's gamma_readout).",
    ),
    ("gamma_readout", "Weight of the readout regularizer."),
    (
        "reduction",
        "Aggregate the L1 penalty as sum (reference default, scales with neurons) or mean.",
    ),
    (
        "init_noise",
        "Std of the normal initialisations of the lurz2020 scheme.",
    ),
    (
        "share_features",
        "Matched neurons (multi_match_id) of several datasets share feature vectors.",
    ),
    (
        "hidden_layers",
        "Hidden layers of the MLP (0 = one affine map, the paper's retinotopy).",
    ),
    ("hidden_features", "Width of each hidden layer."),
    (
        "final_tanh",
        "Apply tanh to the output (keeps positions inside (-1, 1)).",
    ),
    ("input_dimensions", "Cortical coordinates used (2 = x, y)."),
    ("normalize", "Normalize the spatial mask to unit L2 norm."),
    (
        "constrain_pos",
        "Clamp the weights to be non-negative after each step.",
    ),
    ("positive_weights", "Feature weights are non-negative."),
    (
        "positive_spatial",
        "Spatial mask is non-negative (absolute value).",
    ),
    (
        "pool_steps",
        "Number of successive average poolings in the pyramid.",
    ),
    ("pool_kern", "Kernel and stride of each pooling."),
    ("init_range", "Grid points start uniform in +-init_range."),
    // Shifter / modulator.
    ("hidden", "Width of the hidden layers."),
    (
        "hidden_channels_shifter",
        "Width of the shifter's hidden layers.",
    ),
    (
        "shift_layers",
        "Linear layers of the shifter (tanh after each).",
    ),
    ("gamma_shifter", "Weight of the shifter regularizer."),
    ("gamma_modulator", "Weight of the modulator regularizer."),
    ("enabled", "Use this part."),
];

fn find(key: &str) -> Option<&'static str> {
    DOCS.iter().find(|(p, _)| *p == key).map(|(_, d)| *d)
}

/// The explanation of a `model.*` key path, if there is one.
pub fn doc(path: &str) -> Option<&'static str> {
    if !path.starts_with("model") {
        return None;
    }
    if let Some(d) = find(path) {
        return Some(d);
    }
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() >= 2
        && let Some(d) = find(&parts[parts.len() - 2..].join("."))
    {
        return Some(d);
    }
    parts.last().and_then(|k| find(k))
}
