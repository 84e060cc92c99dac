//! HDF5 static image sets (neuralpredictors' `StaticImageSet` layout, REFERENCE.md §6.3): read
//! like a FileTree, converted to one, and bad files named. The test writes its small files itself
//! with the same HDF5 crate. Included from `tests/data.rs`.

use cortexfit::data::*;
use h5::types::FixedAscii;
use hdf5_metno as h5;
use std::path::{Path, PathBuf};

const T: usize = 8;
const N: usize = 4;

fn ascii<const L: usize>(v: &[&str]) -> Vec<FixedAscii<L>> {
    v.iter()
        .map(|s| FixedAscii::<L>::from_ascii(s.as_bytes()).unwrap())
        .collect()
}

fn floats(g: &h5::Group, name: &str, shape: &[usize], v: &[f64]) {
    g.new_dataset::<f64>()
        .shape(shape.to_vec())
        .create(name)
        .unwrap()
        .write_raw(v)
        .unwrap();
}

/// A small static set: 8 trials (5 train, 2 validation… as `TIERS`), 4 neurons, 1×2×3 images.
/// `skip` leaves out one top-level member (dataset or group) to make a broken file.
fn write_set(path: &Path, skip: &str) {
    let f = h5::File::create(path).unwrap();
    let images: Vec<f64> = (0..T * 6)
        .map(|i| (i / 6) as f64 + 0.5 * (i % 6) as f64)
        .collect();
    let responses: Vec<f64> = (0..T * N).map(|i| i as f64 * 0.25).collect();
    let behavior: Vec<f64> = (0..T * 3).map(|i| (i % 5) as f64).collect();
    let eye: Vec<f64> = (0..T * 2).map(|i| i as f64 - 3.0).collect();
    let tiers = [
        "train",
        "train",
        "train",
        "train",
        "test",
        "test",
        "validation",
        "train",
    ];
    if skip != "images" {
        floats(&f, "images", &[T, 1, 2, 3], &images);
    }
    floats(&f, "responses", &[T, N], &responses);
    floats(&f, "behavior", &[T, 3], &behavior);
    // Older files call the pupil position eye_position.
    floats(&f, "eye_position", &[T, 2], &eye);
    f.new_dataset_builder()
        .with_data(&ascii::<10>(&tiers))
        .create("tiers")
        .unwrap();
    if skip != "item_info" {
        let g = f.create_group("item_info").unwrap();
        g.new_dataset_builder()
            .with_data(&[10i64, 11, 12, 13, 20, 20, 21, 14])
            .create("frame_image_id")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[7u32, 6, 5, 4, 3, 2, 1, 0])
            .create("trial_idx")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&ascii::<16>(&["imagenet"; T]))
            .create("image_class")
            .unwrap();
    }
    let g = f.create_group("neurons").unwrap();
    g.new_dataset_builder()
        .with_data(&[5u16, 6, 7, 8])
        .create("unit_ids")
        .unwrap();
    g.new_dataset_builder()
        .with_data(&ascii::<4>(&["V1", "V1", "LM", "V1"]))
        .create("area")
        .unwrap();
    floats(
        &g,
        "cell_motor_coordinates",
        &[N, 3],
        &(0..12).map(f64::from).collect::<Vec<_>>(),
    );
    if skip != "statistics" {
        let s = f.create_group("statistics").unwrap();
        for (field, len, mean, std) in [
            ("images", 1, 3.0, 2.0),
            ("responses", N, 1.0, 0.5),
            ("behavior", 3, 1.0, 2.0),
            ("eye_position", 2, 0.5, 4.0),
        ] {
            let g = s.create_group(field).unwrap();
            let a = g.create_group("all").unwrap();
            floats(&a, "mean", &[len], &vec![mean; len]);
            floats(&a, "std", &[len], &vec![std; len]);
        }
    }
}

fn set(skip: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("static22564-2-13-preproc0.h5");
    write_set(&p, skip);
    (d, p)
}

#[test]
fn hdf5_sets_load_like_a_filetree_and_convert_to_one() {
    let (d, path) = set("");
    let ds = Dataset::load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(ds.data_key, "22564-2-13-0");
    assert_eq!(
        (ds.n_trials(), ds.n_neurons(), ds.image_shape),
        (8, 4, [1, 2, 3])
    );
    assert_eq!(ds.images[6..12], [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
    assert_eq!(ds.tier_indices(Tier::Test), vec![4, 5]);
    assert_eq!(ds.neurons.unit_ids, vec![5, 6, 7, 8]);
    assert_eq!(ds.trials.trial_idx.as_ref().unwrap()[0], 7);
    assert_eq!(ds.pupil_center.as_ref().unwrap()[..2], [-3.0, -2.0]);
    assert!(ds.statistics.all.contains_key("pupil_center"));
    // Same normalization and neuron selection as the FileTree path.
    let config = DataConfig {
        areas: vec!["V1".into()],
        ..DataConfig::default()
    };
    let p = PreparedDataset::load(&path, &config).unwrap();
    assert_eq!(p.dataset.neurons.unit_ids, vec![5, 6, 8]);
    assert!((p.images_of(&[1])[0] - (1.0 - 3.0) / 2.0).abs() < 1e-6);
    assert!((p.responses_of(&[1])[0] - 1.0 / 0.5).abs() < 1e-6);
    // convert: a FileTree that loads to the same recording.
    let out = d.path().join("static22564-2-13-preproc0");
    write_filetree(&ds, &out).unwrap();
    let tree = Dataset::load(&out, &LoadOptions::default()).unwrap();
    assert_eq!(tree.data_key, ds.data_key);
    assert_eq!((&tree.images, &tree.responses), (&ds.images, &ds.responses));
    assert_eq!(
        (&tree.behavior, &tree.pupil_center),
        (&ds.behavior, &ds.pupil_center)
    );
    assert_eq!(tree.tiers, ds.tiers);
    assert_eq!(tree.trials.frame_image_id, ds.trials.frame_image_id);
    assert_eq!(tree.trials.other, ds.trials.other);
    assert_eq!(tree.neurons.area, ds.neurons.area);
    assert_eq!(
        tree.neurons.cell_motor_coordinates,
        ds.neurons.cell_motor_coordinates
    );
    assert_eq!(tree.statistics.all, ds.statistics.all);
    // An existing folder is never overwritten.
    let e = write_filetree(&ds, &out).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn broken_hdf5_sets_name_the_file_and_the_missing_member() {
    for (skip, named) in [
        ("item_info", "item_info"),
        ("statistics", "statistics"),
        ("images", "images"),
    ] {
        let (_d, path) = set(skip);
        let e = Dataset::load(&path, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("static22564-2-13-preproc0.h5") && e.contains(named),
            "{skip}: {e}"
        );
    }
    // A file that is not HDF5 at all.
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("static1-2-3.h5");
    std::fs::write(&bad, b"not an hdf5 file").unwrap();
    let e = Dataset::load(&bad, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("static1-2-3.h5"), "{e}");
}
