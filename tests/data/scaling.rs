//! `data.image_scale`: skimage's `rescale` as neuralpredictors' `ScaleInputs` calls it, on the
//! fixture made by `tests/fixtures/image_scale/make_fixture.py`, and images rescaled while a
//! recording is read. Included from `tests/data.rs`.

use super::{f32s, tree};
use cortexfit::data::image_scale::{rescale_image, scaled_size};
use cortexfit::data::npy;
use cortexfit::data::*;
use std::path::Path;

fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npy::parse(&std::fs::read(path).unwrap(), path).unwrap();
    let shape = a.shape.clone();
    (shape, a.into_f32(path).unwrap())
}

#[test]
fn rescale_matches_skimage_as_scale_inputs_calls_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image_scale");
    for (name, scale) in [("quarter", 0.25), ("half_odd", 0.5), ("up", 1.7)] {
        let (shape, input) = read_f32(&dir.join(format!("{name}_in.npy")));
        let (want_shape, want) = read_f32(&dir.join(format!("{name}_out.npy")));
        let [c, h, w] = [shape[0], shape[1], shape[2]];
        let size = scaled_size(h, w, scale);
        assert_eq!([c, size.0, size.1], want_shape[..], "{name}: output shape");
        let got = rescale_image(&input, [c, h, w], size);
        for (k, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                "{name}[{k}]: {g} vs skimage {e}"
            );
        }
    }
}

#[test]
fn images_are_rescaled_while_loading_and_normalized_per_batch() {
    let (_d, root) = tree();
    // Replace the constant images by 8×12 gradients (values differ per pixel and trial).
    let (h, w) = (8, 12);
    let image = |i: usize| -> Vec<f32> {
        (0..h * w)
            .map(|p| (i * 7 + (p / w) * 3 + (p % w) * (p % 5)) as f32)
            .collect()
    };
    for i in 0..8 {
        f32s(
            &root.join(format!("data/images/{i}.npy")),
            &[1, h, w],
            &image(i),
        );
    }
    let config = DataConfig {
        image_scale: 0.25,
        ..DataConfig::default()
    };
    let p = PreparedDataset::load(&root, &config).unwrap();
    assert_eq!(p.dataset.image_shape, [1, 2, 3]);
    for i in [0, 5] {
        let want = rescale_image(&image(i), [1, h, w], (2, 3));
        assert_eq!(p.dataset.images[i * 6..(i + 1) * 6], want[..]);
        // Batches z-score the one stored copy with the image statistics (mean 3, std 2).
        let z = p.images_of(&[i]);
        for (a, b) in z.iter().zip(&want) {
            assert!((a - (b - 3.0) / 2.0).abs() < 1e-6);
        }
    }
    let bad = DataConfig {
        image_scale: 0.0,
        ..DataConfig::default()
    };
    let e = format!("{:#}", PreparedDataset::load(&root, &bad).unwrap_err());
    assert!(e.contains("data.image_scale"), "{e}");
}

/// `data.image_size`: the sensorium2022 presets' `[36, 64]` takes Sensorium's 144×256 images to
/// 36×64 by factor 0.25 (the numbers `image_scale = 0.25` gives), keeps 36×64 data as stored,
/// and refuses data no single factor maps onto it.
#[test]
fn sensorium_presets_find_the_starter_kits_scale_from_the_data() {
    let preset = cortexfit::config::RunConfig::preset("sensorium2022")
        .unwrap()
        .data;
    assert_eq!(preset.image_size, Some([36, 64]));
    assert_eq!(
        cortexfit::config::RunConfig::preset("sensorium2022_plus")
            .unwrap()
            .data
            .image_size,
        Some([36, 64])
    );
    let write = |root: &Path, (h, w): (usize, usize)| {
        for i in 0..8 {
            let img: Vec<f32> = (0..h * w)
                .map(|p| ((p / w) * 5 + (p % w) * 3 + i * 11) as f32 % 251.0)
                .collect();
            f32s(&root.join(format!("data/images/{i}.npy")), &[1, h, w], &img);
        }
    };
    // As shipped: 144×256.
    let (_d, full) = tree();
    write(&full, (144, 256));
    let by_size = PreparedDataset::load(&full, &preset).unwrap();
    assert_eq!(by_size.dataset.image_shape, [1, 36, 64]);
    let by_scale = PreparedDataset::load(
        &full,
        &DataConfig {
            image_scale: 0.25,
            image_size: None,
            ..preset.clone()
        },
    )
    .unwrap();
    assert_eq!(by_size.dataset.images, by_scale.dataset.images);
    // Already downsampled: used as stored.
    let (_d2, small) = tree();
    write(&small, (36, 64));
    let as_stored = PreparedDataset::load(&small, &preset).unwrap();
    assert_eq!(as_stored.dataset.image_shape, [1, 36, 64]);
    let raw = Dataset::load(&small, &LoadOptions::default()).unwrap();
    assert_eq!(as_stored.dataset.images, raw.images);
    // No single factor: refused, naming the key and the file.
    let (_d3, odd) = tree();
    write(&odd, (40, 40));
    let e = format!("{:#}", PreparedDataset::load(&odd, &preset).unwrap_err());
    assert!(
        e.contains("data.image_size") && e.contains("36×64") && e.contains("images/0.npy"),
        "{e}"
    );
    // Both ways of rescaling at once: refused.
    let both = DataConfig {
        image_scale: 0.5,
        ..preset.clone()
    };
    let e = format!("{:#}", PreparedDataset::load(&full, &both).unwrap_err());
    assert!(
        e.contains("data.image_size") && e.contains("data.image_scale"),
        "{e}"
    );
    // A zero height or width: refused before anything is read, naming the key and the value.
    for size in [[0, 64], [36, 0]] {
        let zero = DataConfig {
            image_size: Some(size),
            ..preset.clone()
        };
        let e = format!("{:#}", PreparedDataset::load(&full, &zero).unwrap_err());
        assert!(
            e.contains("data.image_size") && e.contains(&format!("{size:?}")),
            "{e}"
        );
    }
}
