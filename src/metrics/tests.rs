//! Parity with the reference numpy metrics (`tests/fixtures/metrics.npz`, fixtures README §7).

use std::io::Read;

use super::*;

/// Reads every array of an `.npz` (zip of `.npy`) into raw npy bytes keyed by name.
fn load_npz(path: &str) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn array<T: npyz::Deserialize>(npz: &BTreeMap<String, Vec<u8>>, name: &str) -> Vec<T> {
    npyz::NpyFile::new(&npz[name][..])
        .unwrap()
        .into_vec()
        .unwrap()
}

fn assert_close(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{name}[{j}]: got {g}, want NaN");
            continue;
        }
        let tol = 1e-12 * w.abs().max(1e-3);
        assert!((g - w).abs() <= tol, "{name}[{j}]: got {g}, want {w}");
    }
}

#[test]
fn metrics_match_reference_fixture() {
    let npz = load_npz(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics.npz"
    ));
    let responses: Vec<f64> = array(&npz, "responses");
    let predictions: Vec<f64> = array(&npz, "predictions");
    let ids: Vec<i64> = array(&npz, "image_ids");
    let n = 30;
    assert_eq!(array::<f64>(&npz, "corr_eps"), vec![CORR_EPS]);
    assert_eq!(array::<f64>(&npz, "fev_threshold"), vec![FEV_THRESHOLD]);

    let m = evaluate(&responses, &predictions, n, &ids).unwrap();
    assert_close(
        "single_trial_corr",
        &m.single_trial_correlation,
        &array(&npz, "single_trial_corr"),
    );
    assert_close(
        "single_trial_corr_mean",
        &[m.mean_single_trial_correlation],
        &array(&npz, "single_trial_corr_mean"),
    );
    assert_close(
        "corr_to_average",
        &m.correlation_to_average,
        &array(&npz, "corr_to_average"),
    );
    assert_close(
        "oracle_jackknife",
        &m.oracle_jackknife,
        &array(&npz, "oracle_jackknife"),
    );
    assert_close(
        "oracle_conservative",
        &m.oracle_conservative,
        &array(&npz, "oracle_conservative"),
    );
    assert!(m.oracle_conservative[28].is_nan());
    assert_close(
        "fraction_oracle",
        &[m.fraction_oracle],
        &array(&npz, "fraction_oracle"),
    );
    assert_close("fev", &m.fev, &array(&npz, "fev"));
    assert_close("feve", &m.feve, &array(&npz, "feve"));
    assert_eq!(m.fev_mask, array::<bool>(&npz, "fev_mask"));
    assert_close(
        "feve_mean_above_threshold",
        &[m.feve_mean_above_threshold],
        &array(&npz, "feve_mean_above_threshold"),
    );

    let groups = repeat_groups(&ids);
    // Per-image quantities come in the order of the sorted unique ids.
    let group_ids: Vec<i64> = groups.iter().map(|g| ids[g[0]]).collect();
    assert_eq!(group_ids, array::<i64>(&npz, "unique_image_ids"));
    for g in &groups {
        assert!(g.iter().all(|&t| ids[t] == ids[g[0]]), "{g:?}");
    }
    let repeats: Vec<i64> = groups.iter().map(|g| g.len() as i64).collect();
    assert_eq!(repeats, array::<i64>(&npz, "repeats_per_unique_image"));
    assert_close(
        "mean_responses_per_image",
        &per_image_means(&responses, n, &groups),
        &array(&npz, "mean_responses_per_image"),
    );
    assert_close(
        "mean_predictions_per_image",
        &per_image_means(&predictions, n, &groups),
        &array(&npz, "mean_predictions_per_image"),
    );
}

#[test]
fn constant_prediction_has_zero_correlation_and_perfect_prediction_one() {
    let responses = [1.0, 2.0, 3.0, 5.0, 2.0, 0.0];
    let c = single_trial_correlation(&responses, &[0.5; 6], 2);
    assert_eq!(c, vec![0.0, 0.0]);
    let c = single_trial_correlation(&responses, &responses, 2);
    assert!(c.iter().all(|x| (x - 1.0).abs() < 1e-6), "{c:?}");
}

#[test]
fn poisson_loss_sums_over_trials() {
    let y = [1.0, 0.0, 2.0, 3.0];
    let p = [2.0, 1.0, 0.5, 3.0];
    let l = poisson_loss(&y, &p, 2);
    let want0 = 2.0 - (2.0f64 + 1e-12).ln() + 0.5 - 2.0 * (0.5f64 + 1e-12).ln();
    let want1 = 1.0 + 3.0 - 3.0 * (3.0f64 + 1e-12).ln();
    assert!(
        (l[0] - want0).abs() < 1e-12 && (l[1] - want1).abs() < 1e-12,
        "{l:?}"
    );
}

#[test]
fn evaluate_rejects_mismatched_shapes() {
    let err = evaluate(&[1.0; 6], &[1.0; 4], 2, &[0, 0, 1]).unwrap_err();
    assert!(matches!(
        err,
        MetricsError::Shape {
            name: "predictions",
            ..
        }
    ));
    assert_eq!(
        evaluate(&[1.0; 6], &[1.0; 6], 0, &[0, 0, 1]).unwrap_err(),
        MetricsError::NoNeurons
    );
}

#[test]
fn tier_without_repeats_gives_nan_oracles_not_a_panic() {
    let m = evaluate(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.5, 2.0, 4.0], 2, &[0, 1]).unwrap();
    assert!(m.oracle_jackknife.iter().all(|x| x.is_nan()));
    assert!(m.single_trial_correlation.iter().all(|x| x.is_finite()));
}

#[test]
fn fraction_oracle_leaves_out_neurons_with_a_non_finite_value() {
    // Neuron 1 has no oracle (NaN), neuron 2 no correlation (NaN): both are left out, so the
    // slope is the one through neurons 0 and 3 only.
    let corr = [0.3, 0.5, f64::NAN, 0.2];
    let oracle = [0.6, f64::NAN, 0.9, 0.5];
    let want = (0.6 * 0.3 + 0.5 * 0.2) / (0.6 * 0.6 + 0.5 * 0.5);
    let got = fraction_oracle(&corr, &oracle);
    assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    // An infinite value is left out the same way.
    let got = fraction_oracle(&[0.3, f64::INFINITY, 0.2], &[0.6, 0.4, 0.5]);
    let want = (0.6 * 0.3 + 0.5 * 0.2) / (0.6 * 0.6 + 0.5 * 0.5);
    assert!((got - want).abs() < 1e-15, "{got} vs {want}");
}
