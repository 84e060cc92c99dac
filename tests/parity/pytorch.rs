//! PyTorch checkpoints written by `torch.save` (neuralpredictors 0.3.0 models, float32) read
//! with `model::pytorch` and run by cortexfit reproduce PyTorch's outputs within 1e-5.
//!
//! The fixtures live beside the licensed data (`../shared/fixtures/pytorch/`, README there):
//! `io.npz` holds real images of the scan, so they are not in the repository. Without them the
//! test runner lists these tests as ignored, with the reason.

// Without the fixture every test here is ignored, and the helpers look unused.
#![cfg_attr(not(cortexfit_pytorch_fixture), allow(dead_code, unused_imports))]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use cortexfit::model::pytorch::read_pytorch_state_dict;
use cortexfit::model::{DatasetFacts, DatasetReadoutFacts, Encoder, ModelConfig};

/// The largest difference accepted between cortexfit's and PyTorch's outputs.
pub const TOLERANCE: f64 = 1e-5;

/// The fixture folder (set by build.rs when it exists).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(option_env!("CORTEXFIT_PYTORCH_FIXTURE").unwrap_or_default())
}

/// One array of `io.npz` as f64, with its shape.
pub struct Npz(pub BTreeMap<String, (Vec<usize>, Vec<f64>)>);

impl Npz {
    pub fn load() -> Npz {
        let path = fixture_dir().join("io.npz");
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut archive = zip::ZipArchive::new(file).unwrap();
        let mut arrays = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let name = entry.name().unwrap().trim_end_matches(".npy").to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
            let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
            let data: Vec<f64> = match npy.dtype() {
                npyz::DType::Plain(t) => match (t.type_char(), t.size_field()) {
                    (npyz::TypeChar::Float, 4) => npy
                        .into_vec::<f32>()
                        .unwrap()
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                    (npyz::TypeChar::Float, 8) => npy.into_vec::<f64>().unwrap(),
                    (npyz::TypeChar::Int, 8) => npy
                        .into_vec::<i64>()
                        .unwrap()
                        .into_iter()
                        .map(|v| v as f64)
                        .collect(),
                    (npyz::TypeChar::Uint, 2) => npy
                        .into_vec::<u16>()
                        .unwrap()
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                    (npyz::TypeChar::Int, 4) => npy
                        .into_vec::<i32>()
                        .unwrap()
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                    other => panic!("io.npz/{name}: unexpected dtype {other:?}"),
                },
                other => panic!("io.npz/{name}: unexpected dtype {other:?}"),
            };
            arrays.insert(name, (shape, data));
        }
        Npz(arrays)
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("io.npz has no array {name}"))
    }

    pub fn f32(&self, name: &str) -> Vec<f32> {
        self.get(name).1.iter().map(|&v| v as f32).collect()
    }
}

/// The data key of the fixture's readout.
pub const KEY: &str = "20457-5-9-0";

/// The model of `preset` for the fixture's 96 neurons (36×64 images, `n_behaviors` behaviour
/// variables), built from the fixture's cortical coordinates.
pub fn fixture_model(preset: &str, n_behaviors: usize, io: &Npz) -> Encoder {
    let coords = &io.get("cell_motor_coordinates").1;
    let facts = DatasetFacts::new(
        [1, 36, 64],
        n_behaviors,
        &[DatasetReadoutFacts {
            data_key: KEY.into(),
            n_neurons: coords.len() / 3,
            cell_motor_coordinates: Some(
                coords.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
            ),
            ..Default::default()
        }],
    );
    Encoder::init(
        &ModelConfig::preset(preset).unwrap(),
        &facts,
        0,
        &Device::flex(),
    )
    .unwrap()
}

/// The largest absolute difference between two equally long vectors.
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Loads `file` into the `preset` model and checks that its names are exactly the model's.
fn import(file: &str, preset: &str, n_behaviors: usize, io: &Npz) -> Encoder {
    let path = fixture_dir().join(file);
    let torch = read_pytorch_state_dict(&path, None).unwrap();
    let model = fixture_model(preset, n_behaviors, io);
    let exported = model.export_state();
    let want: BTreeSet<&String> = exported.entries.keys().collect();
    let got: BTreeSet<&String> = torch.state.entries.keys().collect();
    assert_eq!(got, want, "{file}: tensor names");
    model.import_state(&torch.state).unwrap()
}

#[test]
#[cfg_attr(
    not(cortexfit_pytorch_fixture),
    ignore = "the PyTorch fixtures ../shared/fixtures/pytorch were absent at build time (set CORTEXFIT_SHARED, then touch build.rs)"
)]
fn lurz2020_pth_and_nested_pth_tar_reproduce_pytorch() {
    let io = Npz::load();
    let device = Device::flex();
    let (shape, _) = io.get("lurz_images");
    let x = Tensor::<4>::from_data(
        TensorData::new(
            io.f32("lurz_images"),
            [shape[0], shape[1], shape[2], shape[3]],
        ),
        &device,
    );
    let want = &io.get("lurz_output").1;
    for file in ["lurz2020.pth", "lurz2020_nested.pth.tar"] {
        let model = import(file, "lurz2020", 0, &io);
        let got = values(model.forward_eval(x.clone(), 0, None, None));
        let diff = max_abs_diff(&got, want);
        println!(
            "{file}: max |cortexfit − PyTorch| = {diff:.3e} over {} values",
            got.len()
        );
        assert!(diff <= TOLERANCE, "{file}: max abs difference {diff:.3e}");
    }
    let nested =
        read_pytorch_state_dict(&fixture_dir().join("lurz2020_nested.pth.tar"), None).unwrap();
    assert_eq!(nested.nested_key.as_deref(), Some("model_state"));
    let plain = read_pytorch_state_dict(&fixture_dir().join("lurz2020.pth"), None).unwrap();
    assert_eq!(plain.nested_key, None);
    assert_eq!(plain.state, nested.state);
}

#[test]
#[cfg_attr(
    not(cortexfit_pytorch_fixture),
    ignore = "the PyTorch fixtures ../shared/fixtures/pytorch were absent at build time (set CORTEXFIT_SHARED, then touch build.rs)"
)]
fn sensorium2022_plus_pth_reproduces_pytorch() {
    let io = Npz::load();
    let device = Device::flex();
    let model = import("sensorium2022_plus.pth", "sensorium2022_plus", 3, &io);
    let (shape, x4) = io.get("sensorium_input");
    let (b, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    assert_eq!(c, 4);
    // Channel 0 is the image; channels 1..4 are the behaviour values broadcast over the image.
    let image: Vec<f32> = (0..b)
        .flat_map(|i| {
            x4[i * c * h * w..i * c * h * w + h * w]
                .iter()
                .map(|&v| v as f32)
        })
        .collect();
    let behavior: Vec<f32> = (0..b)
        .flat_map(|i| (1..c).map(move |ch| (i, ch)))
        .map(|(i, ch)| x4[(i * c + ch) * h * w] as f32)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(image, [b, 1, h, w]), &device);
    let beh = Tensor::<2>::from_data(TensorData::new(behavior, [b, c - 1]), &device);
    let pupil = Tensor::<2>::from_data(
        TensorData::new(io.f32("sensorium_pupil_center"), [b, 2]),
        &device,
    );
    let got = values(model.forward_eval(x, 0, Some(beh), Some(pupil)));
    let diff = max_abs_diff(&got, &io.get("sensorium_output").1);
    println!(
        "sensorium2022_plus.pth: max |cortexfit − PyTorch| = {diff:.3e} over {} values",
        got.len()
    );
    assert!(diff <= TOLERANCE, "max abs difference {diff:.3e}");
}

#[test]
#[cfg_attr(
    not(cortexfit_pytorch_fixture),
    ignore = "the PyTorch fixtures ../shared/fixtures/pytorch were absent at build time (set CORTEXFIT_SHARED, then touch build.rs)"
)]
fn a_checkpoint_of_another_architecture_or_a_truncated_file_is_refused_by_name() {
    let io = Npz::load();
    // sensorium2022_plus weights into the lurz2020 model: the first conv differs.
    let torch =
        read_pytorch_state_dict(&fixture_dir().join("sensorium2022_plus.pth"), None).unwrap();
    let err = fixture_model("lurz2020", 0, &io)
        .import_state(&torch.state)
        .unwrap_err()
        .to_string();
    assert!(err.contains("core.features.layer0.conv.weight"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture_dir().join("lurz2020.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", read_pytorch_state_dict(&cut, None).unwrap_err());
    assert!(
        err.contains("cut.pth") && err.contains("not a readable PyTorch checkpoint"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        read_pytorch_state_dict(
            &fixture_dir().join("lurz2020_nested.pth.tar"),
            Some("state_dict")
        )
        .unwrap_err()
    );
    assert!(
        err.contains("no tensors under the key `state_dict`") && err.contains("`model_state.`"),
        "{err}"
    );
}
