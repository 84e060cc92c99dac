//! Parity of the readout family with neuralpredictors (fixtures README §1–§4, §9), in float64.

use burn::module::Param;
use burn::tensor::{DType, Device, Tensor, TensorData};
use cortexfit::model::readout::Reduction;
use cortexfit::model::readout::gaussian::{GaussType, GaussianReadout, GaussianSettings};
use cortexfit::model::readout::linear::TorchLinear;
use cortexfit::model::readout::retinotopy::{GridPredictor, normalize_cortex_coordinates};

use super::fixtures::{Array, Fixture, assert_close};

const REL: f64 = 1e-12;

fn device() -> Device {
    Device::flex().autodiff()
}

fn t<const D: usize>(a: &Array, device: &Device) -> Tensor<D> {
    let shape: [usize; D] = a.shape.clone().try_into().expect("rank");
    Tensor::from_data(TensorData::new(a.data.clone(), shape), (device, DType::F64))
}

fn p<const D: usize>(a: &Array, device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(t(a, device))
}

fn v<const D: usize>(x: Tensor<D>) -> Vec<f64> {
    x.into_data().iter::<f64>().collect()
}

fn gaussian(f: &Fixture, prefix: &str, mu: Option<&str>, device: &Device) -> GaussianReadout {
    let features = f.get(&format!("{prefix}features"));
    GaussianReadout {
        mu: mu.map(|m| p(f.get(m), device)),
        grid_predictor: None,
        sigma: p(f.get(&format!("{prefix}sigma")), device),
        features: Some(p(features, device)),
        feature_scales: None,
        bias: Some(p(f.get(&format!("{prefix}bias")), device)),
        settings: GaussianSettings {
            gauss_type: GaussType::Full,
            feature_reg_weight: 1.0,
            reduction: Reduction::Sum,
            n_channels: features.shape[0],
            n_neurons: features.shape[1],
            sharing: None,
        },
    }
}

#[test]
fn gaussian_readout_eval_shift_train_and_gradients() {
    let f = Fixture::load("gaussian_readout");
    let device = device();
    let mut readout = gaussian(&f, "", Some("mu_raw"), &device);
    readout.settings.feature_reg_weight = f.get("feature_reg_weight").scalar();
    let x: Tensor<4> = t(f.get("x"), &device).require_grad();

    assert_close(
        "positions_eval",
        &v(readout.positions()),
        &f.get("positions_eval").data,
        REL,
    );

    // Evaluation and its gradients.
    let y = readout.forward(x.clone(), None, None, None);
    assert_close("y_eval", &v(y.clone()), &f.get("y_eval").data, REL);
    let grads = y.sum().backward();
    let g = |p: &Param<Tensor<2>>| v(p.val().grad(&grads).expect("grad"));
    assert_close(
        "grad_mu",
        &g(readout.mu.as_ref().unwrap()),
        &f.get("grad_mu").data,
        REL,
    );
    assert_close(
        "grad_features",
        &g(readout.features.as_ref().unwrap()),
        &f.get("grad_features").data,
        REL,
    );
    let gb = v(readout.bias.as_ref().unwrap().val().grad(&grads).unwrap());
    assert_close("grad_bias", &gb, &f.get("grad_bias").data, REL);
    let gs = readout
        .sigma
        .val()
        .grad(&grads)
        .map(v)
        .unwrap_or_else(|| vec![0.0; 80]);
    assert_close("grad_sigma_eval", &gs, &f.get("grad_sigma_eval").data, REL);
    assert_close(
        "grad_x",
        &v(x.grad(&grads).unwrap()),
        &f.get("grad_x").data,
        REL,
    );
    // Where the μ gradient may be non-zero: strictly inside (−1, 1).
    let passes = &f.get("grad_mu_passes").data;
    for (i, (gm, ok)) in g(readout.mu.as_ref().unwrap())
        .iter()
        .zip(passes)
        .enumerate()
    {
        if *ok == 0.0 {
            assert_eq!(*gm, 0.0, "grad_mu[{i}] must be blocked by the clamp");
        }
    }

    // Shift.
    let shift: Tensor<2> = t(f.get("shift"), &device);
    let y_shift = readout.forward(x.clone().detach(), Some(shift), None, None);
    assert_close("y_shift", &v(y_shift), &f.get("y_shift").data, REL);

    // Training mode with the fixture's draws.
    let z: Tensor<3> = t(f.get("z"), &device);
    assert_close(
        "positions_train",
        &v(readout.sampled_positions(z.clone())),
        &f.get("positions_train").data,
        REL,
    );
    let y_train = readout.forward_with_noise(x.clone(), None, Some(z), None);
    assert_close("y_train", &v(y_train.clone()), &f.get("y_train").data, REL);
    let grads = y_train.sum().backward();
    assert_close(
        "grad_mu_train",
        &v(readout.mu.as_ref().unwrap().val().grad(&grads).unwrap()),
        &f.get("grad_mu_train").data,
        REL,
    );
    assert_close(
        "grad_sigma_train",
        &v(readout.sigma.val().grad(&grads).unwrap()),
        &f.get("grad_sigma_train").data,
        REL,
    );
    assert_close(
        "grad_x_train",
        &v(x.grad(&grads).unwrap()),
        &f.get("grad_x_train").data,
        REL,
    );

    // Regularisers.
    assert_close(
        "feature_l1_sum",
        &v(readout.feature_l1(None, Reduction::Sum)),
        &[f.get("feature_l1_sum").scalar()],
        REL,
    );
    assert_close(
        "regularizer_sum",
        &v(readout.regularizer(None)),
        &[f.get("regularizer_sum").scalar()],
        REL,
    );
    readout.settings.reduction = Reduction::Mean;
    assert_close(
        "regularizer_mean",
        &v(readout.regularizer(None)),
        &[f.get("regularizer_mean").scalar()],
        REL,
    );
}

#[test]
fn grid_predictor_normalization_and_both_variants() {
    let f = Fixture::load("grid_predictor");
    let device = device();
    let coords: Vec<[f64; 3]> = f
        .get("coords_xyz")
        .data
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let grid = normalize_cortex_coordinates(&coords, 2);
    assert_close(
        "source_grid_normalized",
        &grid,
        &f.get("source_grid_normalized").data,
        REL,
    );
    for (tag, n_layers, tanh) in [("a", 1, false), ("b", 2, true)] {
        let layers = (0..n_layers)
            .map(|l| {
                let w = f.get(&format!("{tag}_linear{l}_weight"));
                let b = f.get(&format!("{tag}_linear{l}_bias"));
                TorchLinear::from_values(
                    &w.data,
                    &b.data,
                    w.shape[1],
                    w.shape[0],
                    Some(DType::F64),
                    &device,
                )
            })
            .collect();
        let mut readout = gaussian(&f, &format!("{tag}_"), None, &device);
        readout.grid_predictor = Some(GridPredictor::with_layers(layers, &grid, tanh, &device));
        assert_close(
            &format!("{tag}_mu"),
            &v(readout.mean_positions()),
            &f.get(&format!("{tag}_mu")).data,
            REL,
        );
        assert_close(
            &format!("{tag}_positions_eval"),
            &v(readout.positions()),
            &f.get(&format!("{tag}_positions_eval")).data,
            REL,
        );
        let y = readout.forward(t(f.get("x"), &device), None, None, None);
        assert_close(
            &format!("{tag}_y_eval"),
            &v(y),
            &f.get(&format!("{tag}_y_eval")).data,
            REL,
        );
    }
}

#[test]
fn factorized_readout_outputs_and_l1_forms() {
    use cortexfit::model::readout::factorized::{FactorizedReadout, FactorizedSettings};
    let f = Fixture::load("factorized_readout");
    let device = device();
    let x: Tensor<4> = t(f.get("x"), &device);
    for (tag, normalize) in [("unnormalized", false), ("normalized", true)] {
        let readout = FactorizedReadout {
            spatial: p(f.get("spatial"), &device),
            features: p(f.get("features"), &device),
            bias: Some(p(f.get("bias"), &device)),
            settings: FactorizedSettings {
                normalize,
                constrain_pos: false,
                positive_weights: false,
                positive_spatial: false,
                feature_reg_weight: 1.0,
                reduction: Reduction::Sum,
            },
        };
        let get = |k: &str| f.get(&format!("{tag}_{k}"));
        assert_close(
            &format!("{tag} Ŝ"),
            &v(readout.normalized_spatial()),
            &get("normalized_spatial").data,
            REL,
        );
        assert_close(
            &format!("{tag}_y"),
            &v(readout.forward(x.clone())),
            &get("y").data,
            REL,
        );
        let paired = v(readout.feature_l1(Reduction::Sum));
        assert_close(
            &format!("{tag} paired l1"),
            &paired,
            &[get("l1_paired_reference").scalar()],
            REL,
        );
        assert_close(
            &format!("{tag} regularizer"),
            &v(readout.regularizer()),
            &[get("l1_paired_reference").scalar()],
            REL,
        );
        let quirk = v(readout.reference_quirk_l1(Reduction::Sum));
        assert_close(
            &format!("{tag}_l1_sum"),
            &quirk,
            &[get("l1_sum").scalar()],
            REL,
        );
        assert_close(
            &format!("{tag}_regularizer_sum"),
            &quirk,
            &[get("regularizer_sum").scalar()],
            REL,
        );
        let quirk_mean = v(readout.reference_quirk_l1(Reduction::Mean));
        assert_close(
            &format!("{tag}_l1_mean"),
            &quirk_mean,
            &[get("l1_mean").scalar()],
            REL,
        );
        assert!(
            (paired[0] - quirk[0]).abs() > 1e-6 * quirk[0].abs(),
            "the paired form must differ from the library quirk"
        );
    }
}

#[test]
fn point_pooled_readout_pyramid_outputs_and_shift() {
    use cortexfit::model::readout::point_pooled::{PointPooledReadout, PointPooledSettings};
    let f = Fixture::load("point_pooled_readout");
    let device = device();
    let readout = PointPooledReadout {
        grid: p(f.get("grid_raw"), &device),
        features: p(f.get("features"), &device),
        bias: Some(p(f.get("bias"), &device)),
        settings: PointPooledSettings {
            pool_steps: f.get("pool_steps").scalar() as usize,
            pool_kern: f.get("pool_kern").scalar() as usize,
            feature_reg_weight: 1.0,
            reduction: Reduction::Sum,
        },
    };
    let x: Tensor<4> = t(f.get("x"), &device);
    let levels = readout.pyramid(x.clone());
    assert_close(
        "pooled1",
        &v(levels[1].clone()),
        &f.get("pooled1").data,
        REL,
    );
    assert_close(
        "pooled2",
        &v(levels[2].clone()),
        &f.get("pooled2").data,
        REL,
    );
    assert_close("grid", &v(readout.points()), &f.get("grid").data, REL);
    assert_close(
        "y_eval",
        &v(readout.forward(x.clone(), None)),
        &f.get("y_eval").data,
        REL,
    );
    let shift: Tensor<2> = t(f.get("shift"), &device);
    assert_close(
        "y_shift",
        &v(readout.forward(x, Some(shift))),
        &f.get("y_shift").data,
        REL,
    );
    assert_close(
        "regularizer_sum",
        &v(readout.regularizer()),
        &[f.get("regularizer_sum").scalar()],
        REL,
    );
}

#[test]
fn mlp_shifter_matches_reference() {
    use cortexfit::model::shifter::MlpShifter;
    let f = Fixture::load("shifter");
    let device = device();
    let layers = (0..3)
        .map(|l| {
            let w = f.get(&format!("linear{l}_weight"));
            let b = f.get(&format!("linear{l}_bias"));
            TorchLinear::from_values(
                &w.data,
                &b.data,
                w.shape[1],
                w.shape[0],
                Some(DType::F64),
                &device,
            )
        })
        .collect();
    let shifter = MlpShifter { layers };
    let shift = shifter.forward(t(f.get("pupil_center"), &device));
    assert_close("shift", &v(shift), &f.get("shift").data, REL);
    assert_eq!(f.get("regularizer").scalar(), 0.0);
}

/// The same readout in f32 (the training precision) stays within 1e-5 of the f64 reference.
#[test]
fn gaussian_readout_in_f32_is_close_to_reference() {
    let f = Fixture::load("gaussian_readout");
    let device = device();
    let t32 = |a: &Array| -> Vec<f32> { a.to_f32() };
    let mk = |name: &str| {
        let a = f.get(name);
        (t32(a), a.shape.clone())
    };
    let param2 = |name: &str| {
        let (v, s) = mk(name);
        Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(v, [s[0], s[1]]),
            (&device, DType::F32),
        ))
    };
    let (sv, ss) = mk("sigma");
    let (bv, _) = mk("bias");
    let readout = GaussianReadout {
        mu: Some(param2("mu_raw")),
        grid_predictor: None,
        sigma: Param::from_tensor(Tensor::from_data(
            TensorData::new(sv, [ss[0], ss[1], ss[2]]),
            (&device, DType::F32),
        )),
        features: Some(param2("features")),
        feature_scales: None,
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bv, [20]),
            (&device, DType::F32),
        ))),
        settings: GaussianSettings {
            gauss_type: GaussType::Full,
            feature_reg_weight: 1.0,
            reduction: Reduction::Sum,
            n_channels: 8,
            n_neurons: 20,
            sharing: None,
        },
    };
    let (xv, xs) = mk("x");
    let x = Tensor::<4>::from_data(
        TensorData::new(xv, [xs[0], xs[1], xs[2], xs[3]]),
        (&device, DType::F32),
    );
    let (zv, zs) = mk("z");
    let z = Tensor::<3>::from_data(
        TensorData::new(zv, [zs[0], zs[1], zs[2]]),
        (&device, DType::F32),
    );
    let y = readout.forward(x.clone(), None, None, None);
    assert_eq!(y.dtype(), DType::F32);
    assert_close("y_eval f32", &v(y), &f.get("y_eval").data, 1e-5);
    let y = readout.forward_with_noise(x, None, Some(z), None);
    assert_close("y_train f32", &v(y), &f.get("y_train").data, 1e-5);
}
