//! State-dict export / import and checkpoint round trips on the reference weights.

use burn::tensor::{Device, Tensor};
use cortexfit::model::checkpoint::{self, StoredPrecision, read_state_dict, write_state_dict};
use cortexfit::model::{Encoder, StateDict};

use super::core::{fixture_core, state_dict, tensor, values};
use super::encoder::{fixture_encoder, fixture_facts, fixture_model_config, fixture_state};
use super::fixtures::{Fixture, assert_close};

#[test]
fn core_state_dict_import_then_export_is_identical_to_the_reference() {
    for (name, ds) in [("stacked2d_core_ds", true), ("stacked2d_core_conv", false)] {
        let f = Fixture::load(name);
        let core = fixture_core(&f, ds, &Device::flex());
        let mut exported = StateDict::default();
        core.export_state("", &mut exported);
        assert_eq!(exported, state_dict(&f, "sd__"), "{name}");
    }
}

#[test]
fn encoder_export_has_every_reference_core_name_and_shape() {
    let f = Fixture::load("encoder");
    let enc = fixture_encoder(&f, &Device::flex());
    let exported = enc.export_state();
    assert_eq!(exported, fixture_state(&f));
}

#[test]
fn checkpoint_save_load_gives_identical_weights_and_outputs() {
    let f = Fixture::load("encoder");
    let device = Device::flex();
    let enc = fixture_encoder(&f, &device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&enc, &path).unwrap();
    let loaded = checkpoint::load(&path, &device).unwrap();
    assert_eq!(loaded.export_state(), enc.export_state());
    assert_eq!(loaded.config, enc.config);
    let x: Tensor<4> = tensor(f.get("x"), &device);
    assert_eq!(
        values(loaded.forward_eval(x.clone(), 0, None, None)),
        values(enc.forward_eval(x, 0, None, None))
    );
}

#[test]
fn float32_checkpoint_round_trips_exactly() {
    let f = Fixture::load("encoder");
    let device = Device::flex();
    let enc = Encoder::init(&fixture_model_config(&f), &fixture_facts(), 3, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&enc, &path).unwrap();
    let loaded = checkpoint::load(&path, &device).unwrap();
    assert_eq!(loaded.export_state(), enc.export_state());
}

#[test]
fn loading_checks_the_format_version_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.safetensors");
    let mut sd = StateDict::default();
    sd.insert("core.x", vec![1], vec![1.0]);
    let meta = [("cortexfit_checkpoint_version".to_string(), "0".to_string())].into();
    write_state_dict(&path, &sd, StoredPrecision::F32, meta).unwrap();
    let err = format!(
        "{:#}",
        checkpoint::load(&path, &Device::flex()).unwrap_err()
    );
    assert!(
        err.contains("version 0") && err.contains("old.safetensors"),
        "{err}"
    );

    let plain = dir.path().join("plain.safetensors");
    write_state_dict(&plain, &sd, StoredPrecision::F32, Default::default()).unwrap();
    let err = format!(
        "{:#}",
        checkpoint::load(&plain, &Device::flex()).unwrap_err()
    );
    assert!(err.contains("not a cortexfit checkpoint"), "{err}");
}

#[test]
fn a_core_trained_elsewhere_is_imported_without_touching_the_readout() {
    let f = Fixture::load("encoder");
    let device = Device::flex();
    // A PyTorch-style state dict file (float64, num_batches_tracked as int64).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pytorch_core.safetensors");
    write_state_dict(
        &path,
        &fixture_state(&f),
        StoredPrecision::F64,
        Default::default(),
    )
    .unwrap();
    let (sd, _) = read_state_dict(&path).unwrap();

    let fresh = fixture_encoder(&f, &device);
    let readout_before = fresh.export_state().with_prefix("readout.");
    let other = Encoder::init(&fixture_model_config(&f), &fixture_facts(), 99, &device).unwrap();
    let other = cortexfit::model::cast_module(other, burn::tensor::DType::F64);
    let other_readout = other.export_state().with_prefix("readout.");
    let other = other.load_core_state(&sd).unwrap();
    assert_eq!(other.export_state().with_prefix("readout."), other_readout);
    assert_eq!(
        other.export_state().with_prefix("core."),
        fresh.export_state().with_prefix("core.")
    );
    assert_ne!(other_readout, readout_before);
    let x: Tensor<4> = tensor(f.get("x"), &device);
    assert_close(
        "core_out",
        &values(other.core.forward_eval(x)),
        &f.get("core_out").data,
        1e-10,
    );
}

#[test]
fn checkpoint_of_a_model_with_retinotopy_shifter_and_behaviour_channels_round_trips() {
    use cortexfit::model::ModelConfig;
    use cortexfit::model::core::PerLayer;
    use cortexfit::model::{DatasetFacts, DatasetReadoutFacts};

    let device = Device::flex();
    let mut config = ModelConfig::preset("sensorium2022_plus").unwrap();
    config.core.layers = 2;
    config.core.hidden_channels = PerLayer::All(4);
    let facts = DatasetFacts {
        in_shape: [1, 20, 24],
        n_behaviors: 3,
        datasets: vec![DatasetReadoutFacts {
            data_key: "17358-5-3".into(),
            n_neurons: 9,
            cell_motor_coordinates: Some(
                (0..9).map(|i| [i as f64, -(i as f64) * 3.0, 1.0]).collect(),
            ),
            match_ids: None,
            mean_activity: None,
            rf_centers_px: None,
        }],
    };
    let enc = Encoder::init(&config, &facts, 5, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/model.safetensors");
    checkpoint::save(&enc, &path).unwrap();
    let loaded = checkpoint::load(&path, &device).unwrap();
    assert_eq!(loaded.export_state(), enc.export_state());
    assert_eq!(loaded.facts, enc.facts);
    let x = Tensor::<4>::ones([2, 1, 20, 24], &device);
    let beh = Tensor::<2>::ones([2, 3], &device);
    let pupil = Tensor::<2>::zeros([2, 2], &device);
    assert_eq!(
        values(loaded.forward_eval(x.clone(), 0, Some(beh.clone()), Some(pupil.clone()))),
        values(enc.forward_eval(x, 0, Some(beh), Some(pupil)))
    );
}

#[test]
fn pytorch_export_uses_reference_names_float32_and_int64_counters() {
    let f = Fixture::load("encoder");
    let enc = fixture_encoder(&f, &Device::flex());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state_dict.safetensors");
    checkpoint::export_for_pytorch(&enc, &path, checkpoint::ExportFormat::Safetensors).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = st.names();
    names.sort();
    let expected = fixture_state(&f);
    assert_eq!(
        names,
        expected
            .entries
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    for (name, view) in st.iter() {
        let want = if name.ends_with("num_batches_tracked") {
            safetensors::Dtype::I64
        } else {
            safetensors::Dtype::F32
        };
        assert_eq!(view.dtype(), want, "{name}");
        assert_eq!(
            view.shape(),
            expected.entries[name].shape.as_slice(),
            "{name}"
        );
    }
    let (back, _) = read_state_dict(&path).unwrap();
    for (name, t) in &back.entries {
        let reference = &expected.entries[name].data;
        assert_close(name, &t.data, reference, 1e-6);
    }
}

/// The same weights and metadata give the same bytes, whatever order the metadata map iterates
/// in (resumed and uninterrupted runs are compared byte for byte), and the file still reads back.
#[test]
fn the_same_state_gives_the_same_bytes() {
    let f = Fixture::load("encoder");
    let sd = fixture_state(&f);
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..4 {
        // A fresh map each time: std's HashMap iterates in a different order per instance.
        let meta: std::collections::HashMap<String, String> = (0..12)
            .map(|k| (format!("key{k}"), format!("value {k}")))
            .collect();
        let path = dir.path().join(format!("{i}.safetensors"));
        write_state_dict(&path, &sd, StoredPrecision::F32, meta.clone()).unwrap();
        let (back, read_meta) = read_state_dict(&path).unwrap();
        assert_eq!(read_meta, meta);
        assert_eq!(back.entries.len(), sd.entries.len());
        files.push(std::fs::read(&path).unwrap());
    }
    for (i, bytes) in files.iter().enumerate() {
        assert!(*bytes == files[0], "file {i} differs from file 0");
    }
}
