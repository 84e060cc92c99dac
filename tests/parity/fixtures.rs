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
            arrays.insert(member, Array { shape, data });
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

#[test]
fn every_fixture_file_loads() {
    for name in [
        "encoder",
        "factorized_readout",
        "gaussian_readout",
        "grid_predictor",
        "metrics",
        "normalizer",
        "point_pooled_readout",
        "shifter",
        "stacked2d_core_conv",
        "stacked2d_core_ds",
    ] {
        let f = Fixture::load(name);
        assert!(f.names().count() > 0, "{name} is empty");
    }
}
