//! Reading the reference fixtures (`tests/fixtures/*.npz`: uncompressed NumPy zip archives).

// Each parity module uses a different part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

/// One array of a fixture file, widened to f64, with its shape.
#[derive(Debug, Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// The stored dtype as numpy writes it: `<f8`, `<i8` or `|b1`.
    pub dtype: String,
}

impl Array {
    /// The single value of a 0-d array.
    pub fn scalar(&self) -> f64 {
        assert!(self.data.len() == 1, "not a scalar: shape {:?}", self.shape);
        self.data[0]
    }

    /// The values as f32 (for building f32 tensors).
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// All arrays of one fixture file, by name (without `.npy`).
pub struct Fixture {
    pub name: String,
    arrays: BTreeMap<String, Array>,
}

impl Fixture {
    /// Loads `tests/fixtures/<name>.npz`.
    pub fn load(name: &str) -> Fixture {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.npz"));
        let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut archive = zip::ZipArchive::new(file).expect("fixture is a zip archive");
        let mut arrays = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let member = entry.name().unwrap().trim_end_matches(".npy").to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
            let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
            let dtype = match npy.dtype() {
                npyz::DType::Plain(t) => t.to_string(),
                other => panic!("{name}/{member}: unexpected dtype {other:?}"),
            };
            let data: Vec<f64> = match npy.dtype() {
                npyz::DType::Plain(t) => match (t.type_char(), t.size_field()) {
                    (npyz::TypeChar::Float, 8) => npy.into_vec::<f64>().unwrap(),
                    (npyz::TypeChar::Int, 8) => npy
                        .into_vec::<i64>()
                        .unwrap()
                        .into_iter()
                        .map(|v| v as f64)
                        .collect(),
                    (npyz::TypeChar::Bool, 1) => npy
                        .into_vec::<bool>()
                        .unwrap()
                        .into_iter()
                        .map(|v| if v { 1.0 } else { 0.0 })
                        .collect(),
                    other => panic!("{name}/{member}: unexpected dtype {other:?}"),
                },
                other => panic!("{name}/{member}: unexpected dtype {other:?}"),
            };
            assert_eq!(
                data.len(),
                shape.iter().product::<usize>(),
                "{name}/{member}: values for shape {shape:?}"
            );
            arrays.insert(member, Array { shape, data, dtype });
        }
        Fixture {
            name: name.to_string(),
            arrays,
        }
    }

    /// The array called `key`; panics with the fixture and key named when it is missing.
    pub fn get(&self, key: &str) -> &Array {
        self.arrays
            .get(key)
            .unwrap_or_else(|| panic!("fixture {} has no array {key}", self.name))
    }

    /// Names of all arrays (e.g. to iterate over `sd__*` state-dict entries).
    #[allow(dead_code)]
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.arrays.keys().map(String::as_str)
    }
}

/// Asserts that `actual` matches `expected` elementwise within `rel` relative tolerance
/// (relative to the largest magnitude in `expected`, so near-zero entries don't blow up).
#[allow(dead_code)]
pub fn assert_close(what: &str, actual: &[f64], expected: &[f64], rel: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let scale = expected
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let err = (a - e).abs() / scale;
        assert!(
            err <= rel,
            "{what}[{i}]: got {a}, expected {e} (relative error {err:.3e} > {rel:.1e})"
        );
    }
}

/// Every fixture file loads with the arrays its README lists: their number, the dtypes
/// (float64 except the listed integer and bool arrays) and the shapes of the main arrays.
#[test]
fn every_fixture_file_loads() {
    type Shapes = &'static [(&'static str, &'static [usize])];
    /// (file, number of arrays, int64 arrays, bool arrays, shapes of the main arrays).
    type Expected = (
        &'static str,
        usize,
        &'static [&'static str],
        &'static [&'static str],
        Shapes,
    );
    const B: &[usize] = &[4, 8, 11, 17];
    let fixtures: [Expected; 10] = [
        (
            "encoder",
            46,
            &[],
            &[],
            &[
                ("x", &[4, 1, 11, 17]),
                ("targets", &[4, 20]),
                ("readout_mu", &[20, 2]),
                ("readout_sigma", &[20, 2, 2]),
                ("readout_features", &[8, 20]),
                ("core_out", B),
                ("y", &[4, 20]),
                ("loss_sum", &[]),
                ("grad_core_layer0_conv_weight", &[8, 1, 5, 5]),
                (
                    "sd__core.features.layer1.ds_conv.spatial_conv.weight",
                    &[8, 1, 3, 3],
                ),
                ("sd__core.features.layer0.norm.num_batches_tracked", &[]),
            ],
        ),
        (
            "factorized_readout",
            16,
            &[],
            &[],
            &[
                ("x", B),
                ("spatial", &[20, 11, 17]),
                ("features", &[20, 8]),
                ("bias", &[20]),
                ("normalized_normalized_spatial", &[20, 11, 17]),
                ("unnormalized_y", &[4, 20]),
                ("normalized_l1_sum", &[]),
                ("unnormalized_l1_paired_reference", &[]),
            ],
        ),
        (
            "gaussian_readout",
            28,
            &[],
            &["grad_mu_passes"],
            &[
                ("x", B),
                ("mu_raw", &[20, 2]),
                ("mu", &[20, 2]),
                ("sigma", &[20, 2, 2]),
                ("features", &[8, 20]),
                ("shift", &[4, 2]),
                ("positions_shift", &[4, 20, 2]),
                ("z", &[4, 20, 2]),
                ("positions_train_unclamped", &[4, 20, 2]),
                ("grad_mu_passes", &[20, 2]),
                ("grad_x_train", B),
                ("feature_reg_weight", &[]),
            ],
        ),
        (
            "grid_predictor",
            25,
            &[],
            &[],
            &[
                ("coords_xyz", &[20, 3]),
                ("source_grid", &[20, 2]),
                ("column_mean", &[2]),
                ("max_abs", &[]),
                ("source_grid_normalized", &[20, 2]),
                ("source_grid_library_float32", &[20, 2]),
                ("a_linear0_weight", &[2, 2]),
                ("b_linear0_weight", &[30, 2]),
                ("b_linear1_weight", &[2, 30]),
                ("b_y_eval", &[4, 20]),
            ],
        ),
        (
            "metrics",
            19,
            &["image_ids", "unique_image_ids", "repeats_per_unique_image"],
            &["fev_mask"],
            &[
                ("image_ids", &[59]),
                ("responses", &[59, 30]),
                ("predictions", &[59, 30]),
                ("unique_image_ids", &[12]),
                ("mean_responses_per_image", &[12, 30]),
                ("oracle_conservative", &[30]),
                ("fraction_oracle", &[]),
                ("fev_mask", &[30]),
            ],
        ),
        (
            "normalizer",
            29,
            &["dataset_len"],
            &[],
            &[
                ("images_mean", &[]),
                ("responses_std", &[20]),
                ("response_threshold", &[]),
                ("behavior_std", &[3]),
                ("pupil_center_mean", &[2]),
                ("dataset_len", &[]),
                ("in_images", &[3, 1, 6, 8]),
                ("in_trial_idx", &[3, 1]),
                ("inv_trial_idx", &[3, 1]),
                ("images_excluded_out", &[3, 1, 6, 8]),
            ],
        ),
        (
            "point_pooled_readout",
            13,
            &["pool_steps", "pool_kern"],
            &[],
            &[
                ("x", B),
                ("grid_raw", &[20, 2]),
                ("features", &[24, 20]),
                ("pooled1", &[4, 8, 3, 5]),
                ("pooled2", &[4, 8, 1, 1]),
                ("pool_steps", &[]),
                ("y_shift", &[4, 20]),
            ],
        ),
        (
            "shifter",
            9,
            &[],
            &[],
            &[
                ("linear0_weight", &[5, 2]),
                ("linear1_weight", &[5, 5]),
                ("linear2_weight", &[2, 5]),
                ("linear2_bias", &[2]),
                ("pupil_center", &[6, 2]),
                ("shift", &[6, 2]),
                ("regularizer", &[]),
            ],
        ),
        (
            "stacked2d_core_conv",
            43,
            &[],
            &[],
            &[
                ("x", &[4, 1, 11, 17]),
                ("sd__features.layer0.conv.weight", &[8, 1, 5, 5]),
                ("sd__features.layer2.conv.weight", &[8, 8, 3, 3]),
                ("sd__features.layer1.norm.running_var", &[8]),
                (
                    "sd___input_weights_regularizer.laplace.filter",
                    &[1, 1, 3, 3],
                ),
                ("eval_layer1_out", B),
                ("y_train", B),
                ("after_train__features.layer2.norm.running_mean", &[8]),
                ("laplace", &[]),
            ],
        ),
        (
            "stacked2d_core_ds",
            51,
            &[],
            &[],
            &[
                (
                    "sd__features.layer1.ds_conv.in_depth_conv.weight",
                    &[8, 8, 1, 1],
                ),
                (
                    "sd__features.layer1.ds_conv.spatial_conv.weight",
                    &[8, 1, 3, 3],
                ),
                ("sd__features.layer2.ds_conv.out_depth_conv.bias", &[8]),
                ("y_eval", B),
                ("group_sparsity", &[]),
            ],
        ),
    ];
    for (name, count, ints, bools, shapes) in fixtures {
        let f = Fixture::load(name);
        assert_eq!(f.names().count(), count, "{name}: number of arrays");
        for member in f.names() {
            let a = f.get(member);
            let expected = if ints.contains(&member) || member.ends_with("num_batches_tracked") {
                "<i8"
            } else if bools.contains(&member) {
                "|b1"
            } else {
                "<f8"
            };
            assert_eq!(a.dtype, expected, "{name}/{member}: dtype");
        }
        for (member, shape) in shapes {
            assert_eq!(&f.get(member).shape, shape, "{name}/{member}: shape");
        }
    }
}
