//! Neuron selection in `[data]` (areas, layers, unit-id lists, exclusion lists) and behaviour-mean
//! subtraction, through the one pipeline (`PreparedDataset::prepare`). Included from
//! `tests/data.rs`.

use super::{strs, tree};
use cortexfit::data::*;

/// The small tree (unit ids 5, 6, 7, 8) with areas V1, V1, LM, V1 and layers L2/3, L4, L2/3, L4.
fn tree_with_areas() -> (tempfile::TempDir, std::path::PathBuf) {
    let (d, root) = tree();
    strs(
        &root.join("meta/neurons/area.npy"),
        &["V1", "V1", "LM", "V1"],
        2,
    );
    strs(
        &root.join("meta/neurons/layer.npy"),
        &["L2/3", "L4", "L2/3", "L4"],
        4,
    );
    (d, root)
}

fn prepare(root: &std::path::Path, config: &DataConfig) -> anyhow::Result<PreparedDataset> {
    PreparedDataset::load(root, config)
}

#[test]
fn areas_and_layers_keep_matching_neurons_with_their_responses() {
    let (_d, root) = tree_with_areas();
    let all = prepare(&root, &DataConfig::default()).unwrap();
    let config = DataConfig {
        areas: vec!["V1".into()],
        layers: vec!["L4".into()],
        ..DataConfig::default()
    };
    let p = prepare(&root, &config).unwrap();
    assert_eq!(p.dataset.neurons.unit_ids, vec![6, 8]);
    // Responses (and their normalization) follow the neurons: columns 1 and 3 of the full set.
    let (r, r_all) = (p.responses_of(&[2]), all.responses_of(&[2]));
    assert_eq!(r, vec![r_all[1], r_all[3]]);
    let lm = DataConfig {
        areas: vec!["LM".into()],
        ..DataConfig::default()
    };
    assert_eq!(prepare(&root, &lm).unwrap().dataset.neurons.unit_ids, [7]);
    // An area no neuron is in is an error naming the key and the areas there are.
    let bad = DataConfig {
        areas: vec!["AL".into()],
        ..DataConfig::default()
    };
    let e = format!("{:#}", prepare(&root, &bad).unwrap_err());
    assert!(
        e.contains("data.areas") && e.contains("\"AL\"") && e.contains("LM"),
        "{e}"
    );
    // Layers asked of a dataset without meta/neurons/layer.npy: the missing file is named.
    let (_d2, plain) = tree();
    let e = format!(
        "{:#}",
        prepare(
            &plain,
            &DataConfig {
                layers: vec!["L4".into()],
                ..DataConfig::default()
            }
        )
        .unwrap_err()
    );
    assert!(e.contains("meta/neurons/layer.npy"), "{e}");
}

#[test]
fn unit_id_lists_select_and_exclude_and_name_unknown_ids() {
    let (d, root) = tree_with_areas();
    let keep = d.path().join("keep.txt");
    std::fs::write(
        &keep,
        "# chosen by hand\n8, 5\n11111-2-3-0 7\nother-scan 99\n",
    )
    .unwrap();
    let drop = d.path().join("drop.txt");
    std::fs::write(&drop, "7\n").unwrap();
    let config = DataConfig {
        unit_ids_file: Some(keep.display().to_string()),
        ..DataConfig::default()
    };
    // Dataset order is kept; the line for another data key does not apply here.
    let p = prepare(&root, &config).unwrap();
    assert_eq!(p.dataset.neurons.unit_ids, vec![5, 7, 8]);
    let both = DataConfig {
        exclude_unit_ids_file: Some(drop.display().to_string()),
        areas: vec!["V1".into(), "LM".into()],
        ..config.clone()
    };
    assert_eq!(
        prepare(&root, &both).unwrap().dataset.neurons.unit_ids,
        vec![5, 8]
    );
    // Selection comes before the random subset: neuron_n draws from the selected neurons.
    let sub = DataConfig {
        neuron_n: Some(2),
        ..config.clone()
    };
    let ids = prepare(&root, &sub).unwrap().dataset.neurons.unit_ids;
    assert!(
        ids.len() == 2 && ids.iter().all(|u| [5, 7, 8].contains(u)),
        "{ids:?}"
    );
    // Unknown ids: the file, the dataset and the ids are named.
    let unknown = d.path().join("unknown.txt");
    std::fs::write(&unknown, "5 41 42\n").unwrap();
    let bad = DataConfig {
        unit_ids_file: Some(unknown.display().to_string()),
        ..DataConfig::default()
    };
    let e = format!("{:#}", prepare(&root, &bad).unwrap_err());
    assert!(
        e.contains("unknown.txt") && e.contains("11111-2-3-0") && e.contains("41, 42"),
        "{e}"
    );
    // A missing list and an exclusion that leaves nothing are errors too.
    let gone = DataConfig {
        exclude_unit_ids_file: Some(d.path().join("nope.txt").display().to_string()),
        ..DataConfig::default()
    };
    let e = format!("{:#}", prepare(&root, &gone).unwrap_err());
    assert!(e.contains("nope.txt"), "{e}");
    let all_out = d.path().join("all.txt");
    std::fs::write(&all_out, "5 6 7 8").unwrap();
    let empty = DataConfig {
        exclude_unit_ids_file: Some(all_out.display().to_string()),
        ..DataConfig::default()
    };
    let e = format!("{:#}", prepare(&root, &empty).unwrap_err());
    assert!(e.contains("leave no neuron"), "{e}");
}

#[test]
fn behavior_mean_subtraction_centres_behaviour() {
    // The small tree's behaviour statistics: mean 1, std 2 for every variable.
    let (_d, root) = tree();
    let plain = prepare(&root, &DataConfig::default()).unwrap();
    let config = DataConfig {
        subtract_behavior_mean: true,
        ..DataConfig::default()
    };
    let centred = prepare(&root, &config).unwrap();
    let (b0, b1) = (plain.behavior.unwrap(), centred.behavior.unwrap());
    for (x, y) in b0.iter().zip(&b1) {
        // x = v / 2, y = (v − 1) / 2.
        assert!((x - y - 0.5).abs() < 1e-6, "{x} vs {y}");
    }
    // At the statistics' mean behaviour the modulator's input is zero.
    let at_mean = centred.normalizer.behavior(&[1.0, 1.0, 1.0]);
    assert_eq!(at_mean, vec![0.0; 3]);
    // It is part of normalization: asking for it without normalizing is an error naming the key.
    let bad = DataConfig {
        subtract_behavior_mean: true,
        normalize: false,
        ..DataConfig::default()
    };
    let e = format!("{:#}", prepare(&root, &bad).unwrap_err());
    assert!(e.contains("data.subtract_behavior_mean"), "{e}");
}
