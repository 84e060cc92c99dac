//! Integration tests of `cortexfit::data`: NeuroNormalizer parity, loading from folders and zips,
//! typed errors for broken trees, subsets and batches, and the real Lurz 2020 scan when present.

use cortexfit::data::npy::{self, NpyData};
use cortexfit::data::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

// ---------- helpers ----------

/// Write a little-endian `.npy` (format 1.0) with the given descr, shape and raw body.
fn write_npy(path: &Path, descr: &str, shape: &[usize], body: &[u8]) {
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, out).unwrap();
}
fn f32s(path: &Path, shape: &[usize], v: &[f32]) {
    write_npy(
        path,
        "<f4",
        shape,
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    );
}
fn f64s(path: &Path, shape: &[usize], v: &[f64]) {
    write_npy(
        path,
        "<f8",
        shape,
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    );
}
fn i64s(path: &Path, v: &[i64]) {
    write_npy(
        path,
        "<i8",
        &[v.len()],
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    );
}
fn strs(path: &Path, v: &[&str], width: usize) {
    let mut body = Vec::new();
    for s in v {
        let mut chars: Vec<u32> = s.chars().map(|c| c as u32).collect();
        chars.resize(width, 0);
        body.extend(chars.iter().flat_map(|c| c.to_le_bytes()));
    }
    write_npy(path, &format!("<U{width}"), &[v.len()], &body);
}

const TIERS: [&str; 8] = [
    "train",
    "train",
    "train",
    "validation",
    "test",
    "test",
    "test",
    "train",
];
const IMAGE_IDS: [i64; 8] = [10, 11, 12, 13, 20, 20, 21, 14];

/// A small valid tree: 8 trials, 4 neurons, images (1, 2, 3) f32, responses f64.
fn small_tree(root: &Path) {
    let n = 4;
    for i in 0..8 {
        let d = root.join("data");
        f32s(
            &d.join(format!("images/{i}.npy")),
            &[1, 2, 3],
            &[i as f32; 6],
        );
        let r: Vec<f64> = (0..n).map(|j| (i * n + j) as f64 * 0.5).collect();
        f64s(&d.join(format!("responses/{i}.npy")), &[n], &r);
        f64s(
            &d.join(format!("behavior/{i}.npy")),
            &[3],
            &[1.0, 2.0, i as f64],
        );
        f64s(
            &d.join(format!("pupil_center/{i}.npy")),
            &[2],
            &[i as f64, -1.0],
        );
    }
    let t = root.join("meta/trials");
    strs(&t.join("tiers.npy"), &TIERS, 10);
    i64s(&t.join("frame_image_id.npy"), &IMAGE_IDS);
    i64s(&t.join("trial_idx.npy"), &[7, 6, 5, 4, 3, 2, 1, 0]);
    strs(&t.join("frame_image_class.npy"), &["imagenet"; 8], 64);
    let nr = root.join("meta/neurons");
    write_npy(
        &nr.join("unit_ids.npy"),
        "<u2",
        &[4],
        &[5u16, 6, 7, 8]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    f64s(
        &nr.join("cell_motor_coordinates.npy"),
        &[4, 3],
        &(0..12).map(f64::from).collect::<Vec<_>>(),
    );
    strs(&nr.join("area.npy"), &["V1"; 4], 2);
    let s = root.join("meta/statistics");
    for (field, len, mean, std) in [
        ("images", 0, 3.0, 2.0),
        ("responses", 4, 1.0, 0.5),
        ("behavior", 3, 1.0, 2.0),
        ("pupil_center", 2, 0.5, 4.0),
    ] {
        for which in ["all", "stimulus_frame"] {
            let shape: Vec<usize> = if len == 0 { vec![] } else { vec![len] };
            let k = len.max(1);
            f64s(
                &s.join(format!("{field}/{which}/mean.npy")),
                &shape,
                &vec![mean; k],
            );
            f64s(
                &s.join(format!("{field}/{which}/std.npy")),
                &shape,
                &vec![std; k],
            );
        }
    }
    std::fs::write(root.join("config.json"), r#"{"links": {}}"#).unwrap();
}

fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("static11111-2-3-preproc0");
    small_tree(&root);
    (dir, root)
}

fn load_err(root: &Path) -> String {
    match Dataset::load(root, &LoadOptions::default()) {
        Ok(_) => panic!("expected an error loading {}", root.display()),
        Err(e) => e.to_string(),
    }
}

// ---------- normalizer parity ----------

fn read_npz(path: &Path) -> HashMap<String, Vec<f64>> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = HashMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        let a = npy::parse(&bytes, Path::new(&name)).unwrap();
        out.insert(name.clone(), a.into_f64(Path::new(&name)).unwrap());
    }
    out
}

fn assert_close(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{name}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn normalizer_matches_neuralpredictors() {
    let z = read_npz(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/normalizer.npz"));
    let field = |m: &str, s: &str| FieldStatistics {
        mean: z[m].clone(),
        std: z[s].clone(),
        ..Default::default()
    };
    let mut stats = Statistics::default();
    for f in ["images", "responses", "behavior", "pupil_center"] {
        stats
            .all
            .insert(f.into(), field(&format!("{f}_mean"), &format!("{f}_std")));
    }
    let norm = Normalizer::from_statistics(&stats, &NormalizeOptions::default()).unwrap();
    assert_close(
        "response_precision",
        &norm.response_precision,
        &z["response_precision"],
    );
    assert_close(
        "out_images",
        &norm.images(&z["in_images"]),
        &z["out_images"],
    );
    assert_close(
        "out_responses",
        &norm.responses(&z["in_responses"]),
        &z["out_responses"],
    );
    assert_close(
        "out_behavior",
        &norm.behavior(&z["in_behavior"]),
        &z["out_behavior"],
    );
    assert_close(
        "out_pupil_center",
        &norm.pupil_center(&z["in_pupil_center"]),
        &z["out_pupil_center"],
    );
    let len = z["dataset_len"][0] as usize;
    assert_close(
        "out_trial_idx",
        &Normalizer::trial_idx(&z["in_trial_idx"], len),
        &z["out_trial_idx"],
    );
    assert_close(
        "inv_images",
        &norm.inverse_images(&z["out_images"]),
        &z["inv_images"],
    );
    assert_close(
        "inv_responses",
        &norm.inverse_responses(&z["out_responses"]),
        &z["inv_responses"],
    );
    assert_close(
        "inv_behavior",
        &norm.inverse_behavior(&z["out_behavior"]),
        &z["inv_behavior"],
    );
    assert_close(
        "inv_pupil_center",
        &norm.inverse_pupil_center(&z["out_pupil_center"]),
        &z["inv_pupil_center"],
    );
    let excl = Normalizer::from_statistics(
        &stats,
        &NormalizeOptions {
            exclude_images: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_close(
        "images_excluded_out",
        &excl.images(&z["in_images"]),
        &z["images_excluded_out"],
    );
}

// ---------- loading ----------

#[test]
fn loads_small_tree_with_meta() {
    let (_d, root) = tree();
    let ds = Dataset::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(ds.data_key, "11111-2-3-0");
    assert_eq!(
        (ds.n_trials(), ds.n_neurons(), ds.image_shape),
        (8, 4, [1, 2, 3])
    );
    assert_eq!(ds.images[6 * 5], 5.0);
    assert_eq!(ds.responses[4 + 1], 2.5);
    assert_eq!(ds.neurons.unit_ids, vec![5, 6, 7, 8]);
    assert_eq!(
        ds.neurons.cell_motor_coordinates.as_ref().unwrap()[1],
        [3.0, 4.0, 5.0]
    );
    assert_eq!(ds.neurons.area.as_ref().unwrap()[0], "V1");
    assert_eq!(
        ds.trials.other["frame_image_class"],
        MetaArray::Str(vec!["imagenet".into(); 8])
    );
    assert_eq!(ds.tier_indices(Tier::Test), vec![4, 5, 6]);
    assert_eq!(
        ds.repeat_groups(Tier::Test),
        vec![(20, vec![4, 5]), (21, vec![6])]
    );
    let keyed = Dataset::load(
        &root,
        &LoadOptions {
            data_key: Some("mine".into()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(keyed.data_key, "mine");
}

#[test]
fn loads_from_zip_with_top_folder() {
    let (d, root) = tree();
    let zip_path = d
        .path()
        .join("static26872-17-20-GrayImageNet-94c6ff995dac583098847cfecd43e7b6.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(d.path())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                w.start_file(format!("top/{rel}"), opts).unwrap();
                w.write_all(&std::fs::read(&p).unwrap()).unwrap();
            }
        }
    }
    w.finish().unwrap();
    let a = Dataset::load(&root, &LoadOptions::default()).unwrap();
    let b = Dataset::load(&zip_path, &LoadOptions::default()).unwrap();
    assert_eq!(b.data_key, "26872-17-20");
    assert_eq!(
        (a.images, a.responses, a.tiers),
        (b.images, b.responses, b.tiers)
    );
    assert_eq!(a.neurons.unit_ids, b.neurons.unit_ids);
    assert_eq!(a.statistics.all, b.statistics.all);
}

#[test]
fn optional_fields_may_be_absent() {
    let (_d, root) = tree();
    std::fs::remove_dir_all(root.join("data/behavior")).unwrap();
    std::fs::remove_dir_all(root.join("data/pupil_center")).unwrap();
    let ds = Dataset::load(&root, &LoadOptions::default()).unwrap();
    assert!(ds.behavior.is_none() && ds.pupil_center.is_none());
}

// ---------- bad input ----------

#[test]
fn missing_trial_file_is_named() {
    let (_d, root) = tree();
    std::fs::remove_file(root.join("data/responses/3.npy")).unwrap();
    let e = load_err(&root);
    assert!(e.contains("responses") && e.contains("3.npy"), "{e}");
}

#[test]
fn truncated_npy_is_an_error() {
    let (_d, root) = tree();
    let p = root.join("data/responses/2.npy");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
    let e = load_err(&root);
    assert!(e.contains("2.npy") && e.contains("truncated"), "{e}");
    std::fs::write(&p, b"garbage").unwrap();
    let e = load_err(&root);
    assert!(e.contains("2.npy") && e.contains("not an .npy file"), "{e}");
}

#[test]
fn wrong_dtype_and_shape_are_errors() {
    let (_d, root) = tree();
    strs(&root.join("data/responses/1.npy"), &["a"; 4], 1);
    let e = load_err(&root);
    assert!(e.contains("1.npy") && e.contains("dtype"), "{e}");
    let (_d, root) = tree();
    f64s(&root.join("data/responses/5.npy"), &[5], &[0.0; 5]);
    let e = load_err(&root);
    assert!(e.contains("5.npy") && e.contains("shape"), "{e}");
    let (_d, root) = tree();
    f64s(
        &root.join("meta/neurons/cell_motor_coordinates.npy"),
        &[4, 2],
        &[0.0; 8],
    );
    let e = load_err(&root);
    assert!(
        e.contains("cell_motor_coordinates.npy") && e.contains("[4, 2]") && e.contains("(4, 3)"),
        "{e}"
    );
}

#[test]
fn trial_counts_must_agree() {
    let (_d, root) = tree();
    f64s(&root.join("data/behavior/8.npy"), &[3], &[0.0; 3]);
    let e = load_err(&root);
    assert!(e.contains("behavior") && e.contains("9 trials"), "{e}");
    let (_d, root) = tree();
    i64s(&root.join("meta/trials/frame_image_id.npy"), &[1, 2, 3]);
    let e = load_err(&root);
    assert!(
        e.contains("frame_image_id.npy") && e.contains("first axis of length 8"),
        "{e}"
    );
}

#[test]
fn unknown_tier_names_file_and_value() {
    let (_d, root) = tree();
    let mut t = TIERS;
    t[2] = "training";
    strs(&root.join("meta/trials/tiers.npy"), &t, 10);
    let e = load_err(&root);
    assert!(e.contains("tiers.npy") && e.contains("\"training\""), "{e}");
}

#[test]
fn non_finite_responses_are_rejected() {
    let (_d, root) = tree();
    f64s(
        &root.join("data/responses/6.npy"),
        &[4],
        &[0.0, f64::NAN, 0.0, 0.0],
    );
    let e = load_err(&root);
    assert!(e.contains("6.npy") && e.contains("NaN"), "{e}");
    f64s(
        &root.join("data/responses/6.npy"),
        &[4],
        &[0.0, 0.0, f64::INFINITY, 0.0],
    );
    let e = load_err(&root);
    assert!(
        e.contains("6.npy") && e.contains("inf") && e.contains("element 2"),
        "{e}"
    );
}

#[test]
fn missing_meta_is_named() {
    for rel in [
        "meta/trials/tiers.npy",
        "meta/trials/frame_image_id.npy",
        "meta/neurons/unit_ids.npy",
    ] {
        let (_d, root) = tree();
        std::fs::remove_file(root.join(rel)).unwrap();
        let e = load_err(&root);
        assert!(e.contains(rel.rsplit('/').next().unwrap()), "{rel}: {e}");
    }
    let (_d, root) = tree();
    std::fs::remove_dir_all(root.join("meta/statistics")).unwrap();
    let e = load_err(&root);
    assert!(e.contains("meta/statistics") && e.contains("mean"), "{e}");
    assert!(load_err(Path::new("/nonexistent/static1-2-3")).contains("/nonexistent"));
}

// ---------- subsets and batches ----------

#[test]
fn neuron_subsets() {
    let (_d, root) = tree();
    let ds = Dataset::load(&root, &LoadOptions::default()).unwrap();
    let s = ds
        .subset_neurons(&NeuronSelection::UnitIds(vec![8, 6]))
        .unwrap();
    assert_eq!(s.neurons.unit_ids, vec![8, 6]);
    assert_eq!(&s.responses[..2], &[ds.responses[3], ds.responses[1]]);
    assert_eq!(s.statistics.all["responses"].std.len(), 2);
    let r1 = ds
        .subset_neurons(&NeuronSelection::Random { count: 2, seed: 7 })
        .unwrap();
    let r2 = ds
        .subset_neurons(&NeuronSelection::Random { count: 2, seed: 7 })
        .unwrap();
    assert_eq!(r1.neurons.unit_ids, r2.neurons.unit_ids);
    assert_eq!(r1.n_neurons(), 2);
    assert!(
        ds.subset_neurons(&NeuronSelection::UnitIds(vec![99]))
            .is_err()
    );
    assert!(
        ds.subset_neurons(&NeuronSelection::Random { count: 5, seed: 0 })
            .is_err()
    );
}

#[test]
fn train_image_subsets_keep_other_tiers() {
    let (_d, root) = tree();
    let ds = Dataset::load(&root, &LoadOptions::default()).unwrap();
    let s = ds.subset_train_images(2, 3).unwrap();
    assert_eq!(s.tier_indices(Tier::Train).len(), 2);
    assert_eq!(s.tier_indices(Tier::Test).len(), 3);
    assert_eq!(s.n_trials(), 6);
    assert_eq!(
        ds.subset_train_images(2, 3).unwrap().trials.frame_image_id,
        s.trials.frame_image_id
    );
    assert!(ds.subset_train_images(5, 0).is_err());
}

#[test]
fn batches_are_normalized_and_cover_tiers() {
    use rand::SeedableRng;
    let (_d, root) = tree();
    let ds = Dataset::load(&root, &LoadOptions::default()).unwrap();
    let p = PreparedDataset::new(ds, &NormalizeOptions::default()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let b = p.train_batches(3, &mut rng);
    let mut all: Vec<usize> = b.concat();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 7]);
    assert_eq!(p.eval_batches(Tier::Test, 2), vec![vec![4, 5], vec![6]]);
    assert_eq!(p.repeat_batches(Tier::Test), vec![vec![4, 5], vec![6]]);
    let batch = p.batch(&[1]);
    assert_eq!(batch.images[0], (1.0 - 3.0) / 2.0);
    assert_eq!(batch.responses[1], 2.5 / 0.5);
    assert_eq!(batch.behavior.unwrap(), vec![0.5, 1.0, 0.5]);
    assert_eq!(batch.pupil_center.unwrap(), vec![0.125, -0.375]);
}

#[test]
fn npy_reads_integer_and_unicode_dtypes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.npy");
    strs(&p, &["ab", "ü"], 3);
    let a = npy::parse(&std::fs::read(&p).unwrap(), &p).unwrap();
    assert_eq!(a.data, NpyData::Str(vec!["ab".into(), "ü".into()]));
    write_npy(&p, "|u1", &[2, 1], &[3, 250]);
    let a = npy::parse(&std::fs::read(&p).unwrap(), &p).unwrap();
    assert_eq!(
        (a.shape.clone(), a.into_i64(&p).unwrap()),
        (vec![2, 1], vec![3, 250])
    );
}

// ---------- real data ----------

/// Needs the licensed real scan (`../shared/data/lurz2020_static20457-5-9`, or under
/// `$CORTEXFIT_SHARED`): build.rs looks for it, and without it the test runner lists this test as
/// ignored with the reason.
#[test]
#[cfg_attr(
    not(cortexfit_real_data),
    ignore = "the real scan ../shared/data/lurz2020_static20457-5-9 was absent at build time (set CORTEXFIT_SHARED, then touch build.rs)"
)]
fn real_lurz_scan_counts_and_normalization() {
    let root_buf = PathBuf::from(option_env!("CORTEXFIT_REAL_DATA").unwrap_or_default());
    let root = root_buf.as_path();
    assert!(
        root.join("meta").is_dir(),
        "the real scan {} was present at build time but is gone",
        root.display()
    );
    let ds = Dataset::load(root, &LoadOptions::default()).unwrap();
    assert_eq!(ds.data_key, "20457-5-9");
    assert_eq!(
        (ds.n_trials(), ds.n_neurons(), ds.image_shape),
        (4994, 5335, [1, 36, 64])
    );
    assert_eq!(ds.tier_indices(Tier::Train).len(), 4472);
    assert_eq!(ds.tier_indices(Tier::Validation).len(), 522);
    assert_eq!(&ds.neurons.unit_ids[..3], &[1, 2, 3]);
    assert_eq!(&ds.trials.frame_image_id[..3], &[1301, 5927, 3982]);
    assert_eq!(&ds.images[..2], &[76.0, 78.0]);
    let p = PreparedDataset::new(ds, &NormalizeOptions::default()).unwrap();
    // numpy: p = where(std > 0.01·mean(std), 1/std, 1/thr); responses[0]·p; behavior[0]/std
    let want_p = [0.44192705, 0.38606557, 0.54441786];
    for (g, w) in p.normalizer.response_precision.iter().zip(want_p) {
        assert!((g - w).abs() < 1e-6 * w, "{g} vs {w}");
    }
    let want_r = [7.882_141e-8f32, 8.194_581e-3, 6.762_547e-9];
    for (g, w) in p.responses.iter().zip(want_r) {
        assert!((g - w).abs() < 1e-5 * w, "{g} vs {w}");
    }
    let want_b = [3.944_605_4_f32, 0.816_798_5, 0.0];
    for (g, w) in p.behavior.as_ref().unwrap().iter().zip(want_b) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    assert!((p.images_of(&[0])[0] - (76.0 - 111.30036) / 60.936493).abs() < 1e-5);
}

#[path = "data/bad_input.rs"]
mod bad_input;

#[path = "data/selection.rs"]
mod selection;

#[path = "data/scaling.rs"]
mod scaling;

#[cfg(feature = "hdf5")]
#[path = "data/hdf5.rs"]
mod hdf5;
