//! The neuralpredictors (0.3.0) model that matches a cortexfit model, as Python lines that build
//! it and load an exported state dict into it (`cortexfit export` prints them).
//!
//! Covered: the data-driven stacked core (`Stacked2dCore`, which is also the Lurz 2020 `SE2dCore`
//! without SE blocks), the Gaussian readout (`FullGaussian2d` in a
//! `MultiReadoutSharedParametersBase`, free positions or a cortex grid predictor), the MLP
//! shifter (`MLPShifter`), behaviour as input channels, and the `FiringRateEncoder` output
//! ELU(x + offset) + 1. Other models (factorized or point-pooled readouts, goal-directed cores,
//! modulators, matched-feature sharing) and core settings the reference's constructor cannot
//! express get an error saying what is not covered; their state dict is still exported.

use crate::model::Encoder;
use crate::model::checkpoint::ExportFormat;
use crate::model::core::{CoreConfig, PerLayer, Stack};
use crate::model::encoder_core::EncoderCore;
use crate::model::readout::{GaussType, ReadoutConfig};

/// Python source that builds the neuralpredictors model of `model` and loads the state dict
/// `weights` (a path, written into the code as given, in `format`) into it; `Err` says why this
/// model has no neuralpredictors counterpart here.
pub fn python_loader(
    model: &Encoder,
    weights: &str,
    format: ExportFormat,
) -> Result<String, String> {
    let config = &model.config;
    if !matches!(model.core, EncoderCore::DataDriven(_)) || config.goal_directed_core.is_some() {
        return Err("a goal-directed core has no neuralpredictors counterpart here".into());
    }
    if config.modulator.is_some() {
        return Err(
            "the behavioural modulator is not generated (neuralpredictors has no \
                    FiringRateEncoder modulator of this form)"
                .into(),
        );
    }
    if config.pupil_as_channels {
        return Err("pupil position as input channels is not generated".into());
    }
    let ReadoutConfig::Gaussian(g) = &config.readout else {
        return Err("only the Gaussian readout (FullGaussian2d) is generated".into());
    };
    if g.share_features {
        return Err("matched-feature sharing (share_features) is not generated".into());
    }
    let core = core_kwargs(&config.core)?;
    let [c, h, w] = model.facts.in_shape;
    let in_channels = c + if config.behavior_as_channels {
        model.facts.n_behaviors
    } else {
        0
    };
    let keys: Vec<&str> = model.data_keys().iter().map(String::as_str).collect();
    let n: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(k, key)| format!("{key:?}: {}", model.readout.n_neurons(k)))
        .collect();
    let gauss = match g.gauss_type {
        GaussType::Full => "full",
        GaussType::Uncorrelated => "uncorrelated",
        GaussType::Isotropic => "isotropic",
    };
    let (grid, grids) = match &g.grid_mean_predictor {
        Some(p) => (
            format!(
                // The input size follows from the source grid's columns (input_dimensions).
                "dict(hidden_layers={}, hidden_features={}, final_tanh={})",
                p.hidden_layers,
                p.hidden_features,
                py_bool(p.final_tanh)
            ),
            format!(
                "{{k: state[f\"readout.{{k}}.source_grid\"].numpy() for k in {}}}",
                py_list(&keys)
            ),
        ),
        None => ("None".to_string(), "None".to_string()),
    };
    let grid_kwargs = if g.grid_mean_predictor.is_some() {
        format!(
            "grid_mean_predictor={grid},\n    grid_mean_predictor_type=\"cortex\", \
             source_grids={grids},"
        )
    } else {
        "grid_mean_predictor=None,".to_string()
    };
    let mut lines = vec![
        "import torch".to_string(),
        "from neuralpredictors.layers.cores import Stacked2dCore".to_string(),
        "from neuralpredictors.layers.encoders.firing_rate import FiringRateEncoder".to_string(),
        "from neuralpredictors.layers.readouts import FullGaussian2d, MultiReadoutSharedParametersBase"
            .to_string(),
    ];
    if config.shifter.is_some() {
        lines.push("from neuralpredictors.layers.shifters import MLPShifter".to_string());
    }
    if format == ExportFormat::Safetensors {
        lines.push("from safetensors.torch import load_file".to_string());
    }
    lines.push(String::new());
    lines.push(match format {
        ExportFormat::Safetensors => format!("state = load_file({weights:?})"),
        ExportFormat::Torch => format!("state = torch.load({weights:?}, map_location=\"cpu\")"),
    });
    lines.push(format!(
        "core = Stacked2dCore(input_channels={in_channels}, {core})"
    ));
    lines.push(format!(
        "out_shape = tuple(core.eval()(torch.zeros(1, {in_channels}, {h}, {w})).shape[1:])"
    ));
    lines.push(format!(
        "readout = MultiReadoutSharedParametersBase(\n    in_shape_dict={{k: out_shape for k in {keys}}}, \
         n_neurons_dict={{{n}}},\n    base_readout=FullGaussian2d, init_mu_range={mu}, bias={bias}, \
         init_sigma={sigma}, gamma_readout={gamma},\n    gauss_type=\"{gauss}\", {grid_kwargs}\n    \
         share_features=False, share_grid=False, shared_match_ids=None, share_transform=False)",
        keys = py_list(&keys),
        n = n.join(", "),
        mu = py_float(g.init_mu_range),
        bias = py_bool(g.bias),
        sigma = py_float(g.init_sigma),
        gamma = py_float(g.feature_reg_weight),
    ));
    let shifter = match &config.shifter {
        Some(s) => {
            lines.push(format!(
                "shifter = MLPShifter({keys}, input_channels=2, hidden_channels_shifter={}, \
                 shift_layers={}, gamma_shifter={})",
                s.hidden_channels,
                s.shift_layers,
                py_float(s.gamma_shifter),
                keys = py_list(&keys)
            ));
            "shifter=shifter, "
        }
        None => "",
    };
    lines.push(format!(
        "model = FiringRateEncoder(core, readout, {shifter}elu_offset={})",
        py_float(config.elu_offset)
    ));
    lines.push("model.load_state_dict(state)  # strict: every name and shape must match".into());
    lines.push("model.eval()".into());
    let inputs = if config.behavior_as_channels {
        format!(
            "images (B, {c}, {h}, {w}) with the {} behaviour values appended as constant channels",
            model.facts.n_behaviors
        )
    } else {
        format!("images (B, {c}, {h}, {w})")
    };
    let pupil = if config.shifter.is_some() {
        ", pupil_center=PUPIL_CENTER"
    } else {
        ""
    };
    lines.push(format!(
        "# predictions: model(x, data_key={:?}{pupil}), x = {inputs}, normalised as the run's [data]",
        keys.first().copied().unwrap_or("KEY")
    ));
    Ok(lines.join("\n"))
}

/// The `Stacked2dCore` keyword arguments (after `input_channels`) of a core configuration.
fn core_kwargs(core: &CoreConfig) -> Result<String, String> {
    let unsupported = |what: &str| Err(format!("model.core.{what} has no Stacked2dCore argument"));
    // The reference's one `bias`: the input conv has a bias when `bias` and no batch norm, the
    // hidden convs when `bias`; batch norm is affine (`independent_bn_bias=True`).
    if core.input_bias != (core.hidden_bias && !core.batch_norm) {
        return unsupported(
            "input_bias / hidden_bias (the reference's one `bias` gives the input conv a bias \
             only without batch norm)",
        );
    }
    if core.batch_norm
        && !(core.batch_norm_bias && core.batch_norm_scale && core.final_batch_norm_scale)
    {
        return unsupported("batch_norm_bias / batch_norm_scale = false (non-affine batch norm)");
    }
    if core.batch_norm_eps != 1e-5 {
        return unsupported("batch_norm_eps other than 1e-5");
    }
    let hidden = match &core.hidden_channels {
        PerLayer::All(v) => v.to_string(),
        PerLayer::Each(_) => return unsupported("hidden_channels per layer"),
    };
    let hidden_kern = match &core.hidden_kern {
        PerLayer::All(v) => v.to_string(),
        PerLayer::Each(v) => py_list(v),
    };
    let stack = match &core.stack {
        Stack::From(s) => s.to_string(),
        Stack::Layers(v) => py_list(v),
    };
    let laplace_padding = core
        .laplace_padding
        .map_or("None".to_string(), |p| p.to_string());
    let hidden_padding = core
        .hidden_padding
        .map_or("None".to_string(), |p| p.to_string());
    let regularizer = serde_json::to_value(core.input_regularizer)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(format!(
        "hidden_channels={hidden}, input_kern={}, hidden_kern={hidden_kern}, layers={}, \
         gamma_input={}, gamma_hidden={}, skip={}, bias={}, final_nonlinearity={}, \
         elu_shift=({}, {}), momentum={}, pad_input={}, hidden_padding={hidden_padding}, \
         batch_norm={}, hidden_dilation={}, laplace_padding={laplace_padding}, \
         input_regularizer={regularizer:?}, stack={stack}, use_avg_reg={}, depth_separable={}, \
         linear={}",
        core.input_kern,
        core.layers,
        py_float(core.gamma_input),
        py_float(core.gamma_hidden),
        core.skip,
        py_bool(core.hidden_bias),
        py_bool(core.final_nonlinearity),
        py_float(core.elu_xshift),
        py_float(core.elu_yshift),
        py_float(core.momentum),
        py_bool(core.pad_input),
        py_bool(core.batch_norm),
        core.hidden_dilation,
        py_bool(core.use_avg_reg),
        py_bool(core.depth_separable),
        py_bool(core.linear),
    ))
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn py_float(x: f64) -> String {
    format!("{x:?}")
}

fn py_list<T: std::fmt::Debug>(v: &[T]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DatasetFacts, DatasetReadoutFacts, ModelConfig};
    use burn::tensor::Device;

    fn model(preset: &str, n_behaviors: usize) -> Encoder {
        let facts = DatasetFacts::new(
            [1, 36, 64],
            n_behaviors,
            &[DatasetReadoutFacts {
                data_key: "20457-5-9".into(),
                n_neurons: 4,
                cell_motor_coordinates: Some(vec![
                    [0.0, 0.0, 0.0],
                    [10.0, 0.0, 0.0],
                    [0.0, 20.0, 0.0],
                    [5.0, 5.0, 0.0],
                ]),
                ..Default::default()
            }],
        );
        let config = ModelConfig::preset(preset).unwrap();
        Encoder::init(&config, &facts, 0, &Device::flex()).unwrap()
    }

    #[test]
    fn lurz2020_and_sensorium_plus_give_the_reference_constructors() {
        let code = python_loader(
            &model("lurz2020", 0),
            "m.safetensors",
            ExportFormat::Safetensors,
        )
        .unwrap();
        assert!(code.contains("Stacked2dCore(input_channels=1, hidden_channels=64, input_kern=15, hidden_kern=13, layers=4"), "{code}");
        assert!(code.contains("gamma_readout=2.439"), "{code}");
        assert!(code.contains("n_neurons_dict={\"20457-5-9\": 4}"), "{code}");
        assert!(
            code.contains(
                "grid_mean_predictor=dict(hidden_layers=0, hidden_features=0, final_tanh=False)"
            ),
            "{code}"
        );
        assert!(!code.contains("MLPShifter"), "{code}");
        assert!(
            code.contains("state = load_file(\"m.safetensors\")"),
            "{code}"
        );
        let code = python_loader(
            &model("sensorium2022_plus", 3),
            "m.pth",
            ExportFormat::Torch,
        )
        .unwrap();
        assert!(code.contains("Stacked2dCore(input_channels=4,"), "{code}");
        assert!(code.contains("MLPShifter([\"20457-5-9\"], input_channels=2, hidden_channels_shifter=5, shift_layers=3"), "{code}");
        assert!(code.contains("shifter=shifter"), "{code}");
        assert!(
            code.contains("state = torch.load(\"m.pth\", map_location=\"cpu\")")
                && !code.contains("safetensors"),
            "{code}"
        );
    }

    #[test]
    fn models_without_a_counterpart_say_why() {
        let err =
            python_loader(&model("lurz2020_factorized", 0), "m", ExportFormat::Torch).unwrap_err();
        assert!(err.contains("Gaussian readout"), "{err}");
    }
}
