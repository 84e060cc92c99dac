//! The factorized readout: defaults, initialisation and positivity settings.

use super::*;

/// The factorized readout's defaults (neuralpredictors' SpatialXFeatureLinear: init_noise 1e-3,
/// the Lurz penalty weight 0.0076, summed, with bias) and its initialisation: masks and features
/// ~ N(0, init_noise), bias = the mean activity when given, else 0.
#[test]
fn factorized_defaults_and_initialisation() {
    use rand::SeedableRng;
    let from_toml: FactorizedReadoutConfig = toml::from_str("").unwrap();
    let config = FactorizedReadoutConfig::default();
    assert_eq!(from_toml, config);
    assert_eq!(
        (
            config.init_noise,
            config.feature_reg_weight,
            config.reduction
        ),
        (1e-3, 0.0076, Reduction::Sum)
    );
    assert!(config.bias && !config.normalize && !config.constrain_pos);
    let device = device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let r = FactorizedReadout::init(&config, [8, 11, 17], 50, None, &mut rng, &device);
    for (name, v) in [
        ("spatial", to_f64_vec(r.spatial.val())),
        ("features", to_f64_vec(r.features.val())),
    ] {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 2e-4, "{name}: mean {mean}");
        assert!((sd / 1e-3 - 1.0).abs() < 0.1, "{name}: sd {sd}");
    }
    assert_eq!(to_f64_vec(r.bias.as_ref().unwrap().val()), vec![0.0; 50]);
    let activity: Vec<f32> = (0..50).map(|i| i as f32 / 10.0).collect();
    let r = FactorizedReadout::init(&config, [8, 11, 17], 50, Some(&activity), &mut rng, &device);
    let bias = to_f64_vec(r.bias.as_ref().unwrap().val());
    for (b, a) in bias.iter().zip(&activity) {
        assert!((b - *a as f64).abs() < 1e-6, "{b} vs {a}");
    }
}

/// positive_weights alone clamps the features (not the masks); constrain_pos clamps both.
#[test]
fn factorized_positivity_settings() {
    use rand::SeedableRng;
    let device = device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (positive_weights, constrain_pos) in [(true, false), (false, true), (false, false)] {
        let config = FactorizedReadoutConfig {
            positive_weights,
            constrain_pos,
            ..FactorizedReadoutConfig::default()
        };
        let r = FactorizedReadout::init(&config, [3, 4, 5], 6, None, &mut rng, &device);
        let raw_f = to_f64_vec(r.features.val());
        let f = to_f64_vec(r.effective_features());
        let s = to_f64_vec(r.normalized_spatial());
        assert!(raw_f.iter().any(|&v| v < 0.0));
        let clamp_features = positive_weights || constrain_pos;
        for (e, raw) in f.iter().zip(&raw_f) {
            let want = if clamp_features { raw.max(0.0) } else { *raw };
            assert_eq!(*e, want, "{positive_weights} {constrain_pos}");
        }
        assert_eq!(s.iter().any(|&v| v < 0.0), !constrain_pos);
    }
}
