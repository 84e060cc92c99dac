//! Bad input, field by field: every error names the file (or the dataset and what was asked
//! for) and what was expected. Included from `tests/data.rs`.

use super::{f32s, f64s, load_err, strs, tree, write_npy};
use cortexfit::data::*;
use std::path::Path;

/// Writes `data/<field>/<i>.npy` for all 8 trials of the small tree with the given shape.
fn every_trial(root: &Path, field: &str, shape: &[usize]) {
    let n: usize = shape.iter().product();
    for i in 0..8 {
        f64s(
            &root.join(format!("data/{field}/{i}.npy")),
            shape,
            &vec![1.0; n],
        );
    }
}

#[test]
fn non_finite_images_are_rejected_with_file_and_element() {
    // The bug of issue #18: a NaN pixel loaded silently, and training later blamed the LR.
    let (_d, root) = tree();
    let mut pixels = [3.0f32; 6];
    pixels[4] = f32::NAN;
    f32s(&root.join("data/images/3.npy"), &[1, 2, 3], &pixels);
    let e = load_err(&root);
    assert!(e.contains("images/3.npy"), "{e}");
    assert!(e.contains("NaN") && e.contains("element 4"), "{e}");
    // Element 4 of a (1, 2, 3) image is channel 0, row 1, column 1.
    assert!(e.contains("[0, 1, 1]"), "{e}");

    // An infinite pixel in an f8 image, and an f8 value that overflows f32.
    let (_d, root) = tree();
    let mut pixels = [3.0f64; 6];
    pixels[0] = f64::NEG_INFINITY;
    f64s(&root.join("data/images/7.npy"), &[1, 2, 3], &pixels);
    let e = load_err(&root);
    assert!(
        e.contains("images/7.npy") && e.contains("-inf") && e.contains("element 0"),
        "{e}"
    );
    let (_d, root) = tree();
    pixels[0] = 1e300;
    f64s(&root.join("data/images/2.npy"), &[1, 2, 3], &pixels);
    let e = load_err(&root);
    assert!(e.contains("images/2.npy") && e.contains("inf"), "{e}");
}

#[test]
fn non_finite_behaviour_and_pupil_are_rejected() {
    let (_d, root) = tree();
    f64s(
        &root.join("data/behavior/1.npy"),
        &[3],
        &[1.0, f64::NAN, 0.0],
    );
    let e = load_err(&root);
    assert!(
        e.contains("behavior/1.npy") && e.contains("NaN") && e.contains("element 1"),
        "{e}"
    );
    let (_d, root) = tree();
    f64s(
        &root.join("data/pupil_center/0.npy"),
        &[2],
        &[f64::INFINITY, 0.0],
    );
    let e = load_err(&root);
    assert!(e.contains("pupil_center/0.npy") && e.contains("inf"), "{e}");
}

#[test]
fn bad_image_dtype_rank_and_shape_are_named() {
    // dtype: strings where pixels belong.
    let (_d, root) = tree();
    strs(&root.join("data/images/2.npy"), &["a"; 6], 1);
    let e = load_err(&root);
    assert!(
        e.contains("images/2.npy") && e.contains("dtype") && e.contains("<U1"),
        "{e}"
    );
    // An unsupported numeric dtype (complex).
    let (_d, root) = tree();
    write_npy(&root.join("data/images/4.npy"), "<c8", &[1, 2, 3], &[0; 48]);
    let e = load_err(&root);
    assert!(
        e.contains("images/4.npy") && e.contains("dtype") && e.contains("<c8"),
        "{e}"
    );
    // rank: 4-d and 1-d images.
    for shape in [vec![1, 1, 2, 3], vec![6]] {
        let (_d, root) = tree();
        every_trial(&root, "images", &shape);
        let e = load_err(&root);
        assert!(
            e.contains("images/0.npy") && e.contains("(C, H, W) or (H, W)"),
            "{shape:?}: {e}"
        );
    }
    // One image of a different size than trial 0.
    let (_d, root) = tree();
    f32s(&root.join("data/images/5.npy"), &[1, 3, 2], &[0.0; 6]);
    let e = load_err(&root);
    assert!(
        e.contains("images/5.npy") && e.contains("[1, 3, 2]") && e.contains("[1, 2, 3]"),
        "{e}"
    );
    // 2-d images are read as one channel.
    let (_d, root) = tree();
    every_trial(&root, "images", &[2, 3]);
    let ds = Dataset::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(ds.image_shape, [1, 2, 3]);
}

#[test]
fn behaviour_and_pupil_widths_are_checked() {
    let (_d, root) = tree();
    every_trial(&root, "behavior", &[4]);
    let e = load_err(&root);
    assert!(
        e.contains("behavior/0.npy") && e.contains("[4]") && e.contains("(3,)"),
        "{e}"
    );
    let (_d, root) = tree();
    every_trial(&root, "pupil_center", &[3]);
    let e = load_err(&root);
    assert!(
        e.contains("pupil_center/0.npy") && e.contains("[3]") && e.contains("(2,)"),
        "{e}"
    );
    // A (2, 1) pupil array is not a (2,) one either.
    let (_d, root) = tree();
    every_trial(&root, "pupil_center", &[2, 1]);
    let e = load_err(&root);
    assert!(
        e.contains("pupil_center/0.npy") && e.contains("(2,)"),
        "{e}"
    );
    // Responses must be one value per neuron.
    let (_d, root) = tree();
    every_trial(&root, "responses", &[2, 2]);
    let e = load_err(&root);
    assert!(e.contains("responses/0.npy") && e.contains("(N,)"), "{e}");
}

#[test]
fn statistics_of_the_wrong_shape_are_named() {
    let s = "meta/statistics";
    for (rel, shape, expected) in [
        ("responses/all/std.npy", vec![3], "(4,)"),
        ("responses/stimulus_frame/mean.npy", vec![5], "(4,)"),
        ("images/all/mean.npy", vec![2], "scalar"),
        ("behavior/all/std.npy", vec![2], "(3,)"),
        ("pupil_center/all/mean.npy", vec![2, 1], "(2,)"),
        ("pupil_center/all/max.npy", vec![3], "(2,)"),
    ] {
        let (_d, root) = tree();
        let n: usize = shape.iter().product();
        f64s(&root.join(format!("{s}/{rel}")), &shape, &vec![1.0; n]);
        let e = load_err(&root);
        assert!(
            e.contains(rel) && e.contains(&format!("{shape:?}")) && e.contains(expected),
            "{rel}: {e}"
        );
    }
    // mean and std feed the normalizer: they must be finite.
    let (_d, root) = tree();
    f64s(
        &root.join(format!("{s}/responses/all/std.npy")),
        &[4],
        &[1.0, 1.0, f64::NAN, 1.0],
    );
    let e = load_err(&root);
    assert!(
        e.contains("responses/all/std.npy") && e.contains("NaN") && e.contains("element 2"),
        "{e}"
    );
    // A string array is a dtype error naming the file.
    let (_d, root) = tree();
    strs(
        &root.join(format!("{s}/behavior/all/mean.npy")),
        &["a"; 3],
        1,
    );
    let e = load_err(&root);
    assert!(
        e.contains("behavior/all/mean.npy") && e.contains("dtype"),
        "{e}"
    );
}

#[test]
fn zero_trials_are_an_error() {
    let (_d, root) = tree();
    for i in 0..8 {
        std::fs::remove_file(root.join(format!("data/images/{i}.npy"))).unwrap();
    }
    let e = load_err(&root);
    assert!(
        e.contains("images/0.npy") && e.contains("at least one trial"),
        "{e}"
    );
    // Images present, but no responses.
    let (_d, root) = tree();
    for i in 0..8 {
        std::fs::remove_file(root.join(format!("data/responses/{i}.npy"))).unwrap();
    }
    let e = load_err(&root);
    assert!(
        e.contains("data/responses") && e.contains("0 trials") && e.contains("8 trials"),
        "{e}"
    );
    // A gap in the trial files names the first missing one.
    let (_d, root) = tree();
    std::fs::remove_file(root.join("data/images/4.npy")).unwrap();
    let e = load_err(&root);
    assert!(
        e.contains("images/4.npy") && e.contains("without gaps"),
        "{e}"
    );
}

#[test]
fn subset_errors_name_the_dataset_and_the_request() {
    let (_d, root) = tree();
    let ds = Dataset::load(&root, &LoadOptions::default()).unwrap();
    let key = &ds.data_key;
    let e = ds
        .subset_neurons(&NeuronSelection::UnitIds(vec![99]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unit id 99") && e.contains(key.as_str()), "{e}");
    let e = ds
        .subset_neurons(&NeuronSelection::Random { count: 5, seed: 0 })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("5 neurons") && e.contains("has 4") && e.contains(key.as_str()),
        "{e}"
    );
    let e = ds.subset_train_images(5, 0).unwrap_err().to_string();
    assert!(
        e.contains("5 training images") && e.contains("has 4") && e.contains(key.as_str()),
        "{e}"
    );
}
