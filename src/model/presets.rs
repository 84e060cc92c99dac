//! Named model configurations from the literature (REFERENCE.md §3). Each is a complete, typed
//! [`ModelConfig`]; `cortexfit config --preset NAME` prints one to start from.

use crate::model::config::ModelConfig;
use crate::model::core::{CoreConfig, PerLayer, Stack};
use crate::model::readout::{
    FactorizedReadoutConfig, GaussType, GaussianReadoutConfig, GridPredictorConfig, InitScheme,
    PointPooledReadoutConfig, ReadoutConfig, Reduction,
};
use crate::model::regularizers::InputRegularizer;
use crate::model::shifter::ShifterConfig;

/// The known preset names, in the order they are listed in errors and help texts.
pub const PRESET_NAMES: &[&str] = &[
    "lurz2020",
    "lurz2020_factorized",
    "lurz2020_point_pooled",
    "sensorium2022",
    "sensorium2022_plus",
];

/// An unknown preset name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown model preset `{name}`; known presets: {}", PRESET_NAMES.join(", "))]
pub struct UnknownPreset {
    pub name: String,
}

impl ModelConfig {
    /// The preset called `name` (see [`PRESET_NAMES`]).
    pub fn preset(name: &str) -> Result<ModelConfig, UnknownPreset> {
        Ok(match name {
            "lurz2020" => lurz2020(),
            "lurz2020_factorized" => lurz2020_factorized(),
            "lurz2020_point_pooled" => lurz2020_point_pooled(),
            "sensorium2022" => sensorium2022(),
            "sensorium2022_plus" => sensorium2022_plus(),
            _ => {
                return Err(UnknownPreset {
                    name: name.to_string(),
                });
            }
        })
    }
}

/// The depth-separable core of Lurz et al. 2020 (SE2dCore with no SE blocks, neuralpredictors
/// v0.0.1): 4 blocks of 64 channels, 15×15 valid input conv, 13×13 "same" depthwise hidden convs,
/// no conv biases, affine batch norm with momentum 0.9, ELU everywhere, last block read out;
/// γ_input 1.0 on the summed LaplaceL2norm. 1×36×64 input → 64×22×50 features.
pub fn lurz2020_core() -> CoreConfig {
    CoreConfig {
        layers: 4,
        hidden_channels: PerLayer::All(64),
        input_kern: 15,
        hidden_kern: PerLayer::All(13),
        pad_input: false,
        hidden_padding: None,
        hidden_dilation: 1,
        depth_separable: true,
        skip: 0,
        stack: Stack::From(-1),
        input_bias: false,
        hidden_bias: false,
        batch_norm: true,
        batch_norm_bias: true,
        batch_norm_scale: true,
        final_batch_norm_scale: true,
        momentum: 0.9,
        batch_norm_eps: 1e-5,
        elu_xshift: 0.0,
        elu_yshift: 0.0,
        final_nonlinearity: true,
        linear: false,
        gamma_input: 1.0,
        gamma_hidden: 0.0,
        input_regularizer: InputRegularizer::LaplaceL2Norm,
        laplace_padding: None,
        use_avg_reg: false,
    }
}

fn model(core: CoreConfig, readout: ReadoutConfig) -> ModelConfig {
    ModelConfig {
        core,
        goal_directed_core: None,
        readout,
        shifter: None,
        modulator: None,
        elu_offset: 0.0,
        behavior_as_channels: false,
        pupil_as_channels: false,
        detach_core: false,
        freeze_core_batch_norm: false,
    }
}

/// Lurz et al. 2020, the paper / released-core configuration (REFERENCE §3.1): the core above and
/// a Gaussian readout with full Σ, μ predicted from cortical (x, y) by one affine 2→2 map (no
/// tanh), init_mu_range 0.55, init_sigma 0.4, γ_readout 2.439 (Σ|f|), v0.0.1 initialisation.
pub fn lurz2020() -> ModelConfig {
    model(
        lurz2020_core(),
        ReadoutConfig::Gaussian(GaussianReadoutConfig {
            gauss_type: GaussType::Full,
            init_mu_range: 0.55,
            init_sigma: 0.4,
            feature_reg_weight: 2.439,
            reduction: Reduction::Sum,
            bias: true,
            init: InitScheme::Lurz2020,
            init_noise: 1e-3,
            init_mu_from_data: false,
            grid_mean_predictor: Some(GridPredictorConfig {
                input_dimensions: 2,
                hidden_layers: 0,
                hidden_features: 0,
                final_tanh: false,
            }),
            share_features: false,
        }),
    )
}

/// Lurz et al. 2020 factorized baseline (REFERENCE §3.2): same core, Klindt et al. spatial ×
/// feature readout with init_noise 4.1232e-5, unnormalized masks, γ_readout 0.0076.
pub fn lurz2020_factorized() -> ModelConfig {
    model(
        lurz2020_core(),
        ReadoutConfig::Factorized(FactorizedReadoutConfig {
            init_noise: 4.1232e-5,
            normalize: false,
            feature_reg_weight: 0.0076,
            ..FactorizedReadoutConfig::default()
        }),
    )
}

/// Lurz et al. 2020 point-pooled baseline (REFERENCE §3.2): same core with γ_input 46.402;
/// point-pooled readout (pool_steps 2, pool_kern 3, init_range 0.2, γ_readout 0.0207).
pub fn lurz2020_point_pooled() -> ModelConfig {
    let mut core = lurz2020_core();
    core.gamma_input = 46.402;
    model(
        core,
        ReadoutConfig::PointPooled(PointPooledReadoutConfig {
            pool_steps: 2,
            pool_kern: 3,
            init_range: 0.2,
            feature_reg_weight: 0.0207,
            reduction: Reduction::Sum,
            bias: true,
        }),
    )
}

/// Sensorium 2022 baseline (REFERENCE §3.3): 9×9 / 7×7 depth-separable core, γ_input 6.3831;
/// Gaussian readout (full Σ, init 0.3 / 0.1, γ_readout 0.0076) with μ from cortical (x, y) by a
/// 2→30→ELU→2→tanh network; current-library initialisation (features 1/C; bias = mean activity
/// when the trainer provides it, the starter kit itself starts at 0). 1×36×64 → 64×28×56.
pub fn sensorium2022() -> ModelConfig {
    let core = CoreConfig {
        input_kern: 9,
        hidden_kern: PerLayer::All(7),
        gamma_input: 6.3831,
        ..lurz2020_core()
    };
    model(
        core,
        ReadoutConfig::Gaussian(GaussianReadoutConfig {
            gauss_type: GaussType::Full,
            init_mu_range: 0.3,
            init_sigma: 0.1,
            feature_reg_weight: 0.0076,
            reduction: Reduction::Sum,
            bias: true,
            init: InitScheme::Neuralpredictors,
            init_noise: 1e-3,
            init_mu_from_data: false,
            grid_mean_predictor: Some(GridPredictorConfig {
                input_dimensions: 2,
                hidden_layers: 1,
                hidden_features: 30,
                final_tanh: true,
            }),
            share_features: false,
        }),
    )
}

/// Sensorium+ 2022 baseline: [`sensorium2022`] with the behaviour as 3 extra constant input
/// channels and an MLP shifter 2→5→5→2 (tanh) on the pupil position.
pub fn sensorium2022_plus() -> ModelConfig {
    let mut config = sensorium2022();
    config.behavior_as_channels = true;
    config.shifter = Some(ShifterConfig {
        hidden_channels: 5,
        shift_layers: 3,
        gamma_shifter: 0.0,
    });
    config
}

impl Default for ModelConfig {
    /// The Lurz 2020 paper model ([`lurz2020`]).
    fn default() -> Self {
        lurz2020()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds_and_round_trips_through_toml() {
        for name in PRESET_NAMES {
            let config = ModelConfig::preset(name).unwrap();
            let text = toml::to_string(&config).unwrap();
            let back: ModelConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, config, "{name}");
        }
    }

    #[test]
    fn unknown_preset_lists_the_known_names() {
        let err = ModelConfig::preset("lurz").unwrap_err().to_string();
        assert!(
            err.contains("lurz2020_point_pooled") && err.contains("sensorium2022"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = toml::from_str::<ModelConfig>("[core]\nlayer = 3\n").unwrap_err();
        assert!(err.to_string().contains("layer"), "{err}");
    }

    #[test]
    fn lurz2020_core_output_is_64_by_22_by_50_and_sensorium_64_by_28_by_56() {
        assert_eq!(
            lurz2020_core().output_shape([1, 36, 64]).unwrap(),
            [64, 22, 50]
        );
        assert_eq!(
            sensorium2022().core.output_shape([1, 36, 64]).unwrap(),
            [64, 28, 56]
        );
    }
}
