//! End-to-end tests of the simulator on small sessions.

use super::*;

fn small() -> SimulationConfig {
    SimulationConfig {
        neurons: 40,
        train_images: 60,
        validation_images: 10,
        test_images: 20,
        repeats: 10,
        seed: 7,
        animal: 3,
        ..SimulationConfig::default()
    }
}

fn read_npy(path: &Path) -> npyz::NpyFile<std::io::BufReader<std::fs::File>> {
    let file = std::fs::File::open(path).unwrap();
    npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap()
}

fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn writes_the_filetree_layout_with_real_dtypes_and_shapes() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("sim");
    let cfg = small();
    let summary = simulate(&cfg, &out).unwrap();
    let t = 60 + 10 + 20 * 10;
    assert_eq!(summary.trials, t);
    let img = read_npy(&out.join("data/images/0.npy"));
    assert_eq!(img.shape(), &[1, 36, 64]);
    assert_eq!(img.dtype().descr(), "'<f4'");
    let pixels: Vec<f32> = img.into_vec().unwrap();
    assert!(pixels.iter().all(|v| (0.0..=255.0).contains(v)));
    let resp = read_npy(&out.join(format!("data/responses/{}.npy", t - 1)));
    assert_eq!(
        (resp.shape(), resp.dtype().descr()),
        (&[40u64][..], "'<f4'".to_string())
    );
    assert_eq!(
        read_npy(&out.join("data/behavior/3.npy")).dtype().descr(),
        "'<f8'"
    );
    assert_eq!(read_npy(&out.join("data/pupil_center/3.npy")).shape(), &[2]);
    let tiers = read_npy(&out.join("meta/trials/tiers.npy"));
    assert_eq!(tiers.dtype().descr(), "'<U10'");
    let tiers: Vec<String> = tiers.into_vec().unwrap();
    assert_eq!(tiers.iter().filter(|s| *s == "test").count(), 200);
    assert_ne!(
        tiers[..10].iter().filter(|s| *s == "train").count(),
        10,
        "tiers not shuffled?"
    );
    let ids: Vec<i64> = read_npy(&out.join("meta/trials/frame_image_id.npy"))
        .into_vec()
        .unwrap();
    assert_eq!(ids.len(), t);
    let coords = read_npy(&out.join("meta/neurons/cell_motor_coordinates.npy"));
    assert_eq!(coords.shape(), &[40, 3]);
    let stats = read_npy(&out.join("meta/statistics/responses/all/mean.npy"));
    assert_eq!(
        (stats.shape(), stats.dtype().descr()),
        (&[40u64][..], "'<f4'".to_string())
    );
    assert_eq!(
        read_npy(&out.join("meta/statistics/images/all/std.npy")).shape(),
        &[] as &[u64]
    );

    let gt = GroundTruth::load(&out).unwrap();
    assert_eq!(gt.test_rates.len(), 200 * 40);
    assert_eq!(gt.config, cfg);
    for (p, g) in gt.neurons.iter().zip(&gt.rf_centers_grid) {
        assert!(
            p.center_px[0] >= 9.0 && p.center_px[0] <= 26.0,
            "{:?}",
            p.center_px
        );
        assert!(
            p.center_px[1] >= 9.0 && p.center_px[1] <= 54.0,
            "{:?}",
            p.center_px
        );
        assert!((g[0] - (2.0 * p.center_px[1] / 63.0 - 1.0)).abs() < 1e-12);
    }
    // Refuses to overwrite; --force replaces.
    let err = simulate(&cfg, &out).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    simulate_with(&cfg, &out, true).unwrap();
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        1,
        "temp folders left behind"
    );
}

#[test]
fn same_seed_and_animal_is_byte_identical_and_animals_differ() {
    let root = tempfile::tempdir().unwrap();
    let cfg = SimulationConfig {
        train_images: 20,
        validation_images: 5,
        test_images: 4,
        repeats: 3,
        neurons: 10,
        ..small()
    };
    simulate(&cfg, &root.path().join("a")).unwrap();
    simulate(&cfg, &root.path().join("b")).unwrap();
    let (a, b) = (
        tree_bytes(&root.path().join("a")),
        tree_bytes(&root.path().join("b")),
    );
    assert_eq!(a, b);
    let other = SimulationConfig {
        animal: 4,
        ..cfg.clone()
    };
    simulate(&other, &root.path().join("c")).unwrap();
    let (ga, gc) = (
        GroundTruth::load(&root.path().join("a")).unwrap(),
        GroundTruth::load(&root.path().join("c")).unwrap(),
    );
    assert_ne!(ga.retinotopy, gc.retinotopy);
    assert_ne!(ga.neurons, gc.neurons);
}

#[test]
fn rates_span_an_order_of_magnitude_and_oracle_is_in_a_realistic_range() {
    let root = tempfile::tempdir().unwrap();
    let cfg = SimulationConfig {
        neurons: 80,
        train_images: 300,
        test_images: 40,
        ..small()
    };
    let s = simulate(&cfg, &root.path().join("d")).unwrap();
    let [lo, hi] = s.mean_response_range;
    assert!(lo > 0.0 && hi / lo >= 10.0, "mean responses {lo}..{hi}");
    assert!(
        (0.35..=0.75).contains(&s.mean_oracle_jackknife),
        "oracle {}",
        s.mean_oracle_jackknife
    );
    assert!(
        s.cell_type_counts.iter().all(|&c| c > 0),
        "{:?}",
        s.cell_type_counts
    );
}

#[test]
fn config_rejects_unknown_fields_and_bad_values() {
    let err = toml::from_str::<SimulationConfig>("neurons = 5\nbogus = 1").unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    let cfg: SimulationConfig = toml::from_str("neurons = 5").unwrap();
    assert_eq!(cfg.train_images, 2000);
    let bad = SimulationConfig {
        repeats: 1,
        ..cfg.clone()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("repeats"));
    let bad = SimulationConfig { height: 12, ..cfg };
    assert!(bad.validate().unwrap_err().to_string().contains("height"));
}
