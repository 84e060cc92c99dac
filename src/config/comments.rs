//! Comments for `cortexfit config`: a short explanation above every key of a run config.
//!
//! The explanations are looked up by dotted key path (`trainer.lr`, `model.core.hidden_channels`);
//! entries of arrays of tables are looked up without an index. Keys without an entry get none
//! (the test in `config::tests` checks that every key of every preset has one).

use toml_edit::{DocumentMut, Item, Table};

/// Explanations by dotted key path. Section paths (e.g. `model.core`) explain the section.
const DOCS: &[(&str, &str)] = &[
    (
        "seed",
        "Seed of every random choice: initialisation, shuffling, readout position sampling.",
    ),
    (
        "kernels",
        "Which code computes the hot operations: \"fused\" (cortexfit's CPU kernels) or \"burn\" (burn's own ops; slower, same numbers up to rounding).",
    ),
    // [data]
    ("data", "Recordings and their preparation."),
    (
        "data.paths",
        "Datasets (FileTree folders or Sensorium .zip files), one readout each; `--data` replaces this list.",
    ),
    (
        "data.normalize",
        "Normalize like neuralpredictors' NeuroNormalizer: responses / per-neuron std (precision floor 1% of the mean std), behaviour / std, pupil position z-scored.",
    ),
    (
        "data.exclude_images",
        "Leave images as stored instead of z-scoring them (Lurz 2020: true).",
    ),
    (
        "data.subtract_behavior_mean",
        "Also subtract the behaviour mean (z-score behaviour), so a modulator sees zero at average behaviour; the reference only divides by the std.",
    ),
    (
        "data.image_scale",
        "Rescale images by this factor while loading, as the Sensorium starter kit's ScaleInputs (bilinear, no anti-aliasing): 0.25 takes the 144x256 zips to 36x64.",
    ),
    (
        "data.image_size",
        "Rescale images to this [height, width] while loading, by the one factor that does it (144x256 -> [36, 64] is 0.25); data already that size is kept as stored. Not with image_scale.",
    ),
    (
        "data.areas",
        "Keep only neurons in these brain areas (meta/neurons/area), e.g. [\"V1\"] (absent: all).",
    ),
    (
        "data.layers",
        "Keep only neurons in these layers (meta/neurons/layer), e.g. [\"L2/3\"] (absent: all).",
    ),
    (
        "data.unit_ids_file",
        "Text file of unit ids to keep: ids separated by spaces, commas or lines; a line starting with a data key applies to that dataset only; # comments.",
    ),
    (
        "data.exclude_unit_ids_file",
        "Text file of unit ids to leave out (same format as unit_ids_file).",
    ),
    (
        "data.neuron_n",
        "Train on a seeded random subset of this many neurons per dataset (absent: all).",
    ),
    (
        "data.image_n",
        "Train on a seeded random subset of this many unique training images (absent: all).",
    ),
    (
        "data.neuron_split",
        "Train on one half of the neurons (seeded permutation): new neurons of the same animal for transfer.",
    ),
    (
        "data.neuron_split.half",
        "`a` = the first half of the permutation, `b` = the other.",
    ),
    (
        "data.neuron_split.seed",
        "Seed of the permutation (fixed across fits that must see the same halves).",
    ),
    (
        "data.subset_seed",
        "Seed of the neuron / image subsets, separate from the run seed.",
    ),
    // [model.goal_directed_core]
    (
        "model.goal_directed_core",
        "A goal-directed core instead of `model.core`: the first modules of a network pretrained on an image task (e.g. torchvision VGG16), frozen, + batch norm + ReLU.",
    ),
    (
        "model.goal_directed_core.weights",
        "Safetensors file with the pretrained network's PyTorch state_dict (`features.0.weight`, ...).",
    ),
    (
        "model.goal_directed_core.network",
        "Module sequence of the pretrained network: vgg11, vgg13, vgg16, vgg19 or custom (`modules`).",
    ),
    (
        "model.goal_directed_core.modules",
        "With network = \"custom\": the module list (conv, relu, max_pool).",
    ),
    (
        "model.goal_directed_core.prefix",
        "Name prefix of the pretrained modules in the weights file (torchvision VGG: `features.`).",
    ),
    (
        "model.goal_directed_core.layers",
        "Keep the first `layers` modules (conv, ReLU and pool count one each, as `features[:layers]`; Lurz 2020: 4).",
    ),
    (
        "model.goal_directed_core.final_batch_norm",
        "Batch norm (learnable scale and shift) on the pretrained features.",
    ),
    (
        "model.goal_directed_core.final_nonlinearity",
        "ReLU after everything.",
    ),
    (
        "model.goal_directed_core.momentum",
        "Batch-norm momentum in PyTorch's convention (the reference uses 0.1 here).",
    ),
    ("model.goal_directed_core.eps", "Batch-norm epsilon."),
    (
        "model.goal_directed_core.fine_tune",
        "Train the pretrained weights too (default: frozen).",
    ),
    // [transfer]
    (
        "transfer",
        "Start from a transferred core (written by `cortexfit transfer`).",
    ),
    (
        "transfer.core",
        "Safetensors state_dict whose `core.*` weights replace the initial core.",
    ),
    (
        "transfer.model",
        "Checkpoint of the same model to start from entirely (fine-tuning after a readout fit).",
    ),
    ("transfer.source_run", "The run the core comes from."),
    // [trainer]
    (
        "trainer",
        "Optimisation: Adam, early stopping on the mean validation single-trial correlation, LR decay with best-state restore.",
    ),
    (
        "trainer.lr",
        "Initial Adam learning rate (Lurz 2020: 0.005, Sensorium 2022: 0.009).",
    ),
    (
        "trainer.batch_size",
        "Trials per training and evaluation batch.",
    ),
    (
        "trainer.max_epochs",
        "Maximum number of training epochs over all LR-decay rounds.",
    ),
    (
        "trainer.patience",
        "Evaluations without improvement before a round ends (also the LR scheduler's patience).",
    ),
    (
        "trainer.tolerance",
        "Absolute improvement of the validation correlation that counts as better.",
    ),
    (
        "trainer.lr_decay_steps",
        "Early-stopping rounds; the best state is restored between rounds and the LR cut once per round.",
    ),
    (
        "trainer.lr_decay_factor",
        "Factor of each LR cut (ReduceLROnPlateau).",
    ),
    ("trainer.min_lr", "The LR is never cut below this."),
    (
        "trainer.max_minutes",
        "Wall-clock budget: stop after the epoch that crosses it and restore the best state.",
    ),
    (
        "trainer.loss_accum_batch_n",
        "Batches per optimizer step (gradient accumulation); absent: one batch of every dataset per step.",
    ),
    (
        "trainer.scale_loss",
        "Scale the summed Poisson loss by sqrt(M/B), M = trials of all tiers of the dataset (reference behaviour).",
    ),
    (
        "trainer.init_bias_from_first_batch",
        "Set each readout bias to the mean response of its first training batch (Lurz 2020).",
    ),
    (
        "trainer.adam_epsilon",
        "Adam epsilon (PyTorch default 1e-8).",
    ),
    // [model]
    (
        "model",
        "The model: a convolutional core shared by all neurons, one readout per dataset, output ELU(x + offset) + 1.",
    ),
];

/// Optional keys that are absent from a default config: shown as commented-out examples at the
/// end of their section, so the printed config lists every setting. (section, key, example).
pub(super) const OPTIONAL: &[(&str, &str, &str)] = &[
    ("data", "areas", "[\"V1\"]"),
    ("data", "layers", "[\"L2/3\"]"),
    ("data", "unit_ids_file", "\"unit_ids.txt\""),
    ("data", "exclude_unit_ids_file", "\"bad_units.txt\""),
    ("data", "neuron_n", "1000"),
    ("data", "image_n", "2000"),
    ("trainer", "max_minutes", "95.0"),
    ("trainer", "loss_accum_batch_n", "2"),
    (
        "model",
        "shifter",
        "{ hidden_channels = 5, shift_layers = 3, gamma_shifter = 0.0 }",
    ),
    (
        "model",
        "modulator",
        "{ hidden_features = 5, layers = 2, gamma_modulator = 0.0 }",
    ),
    ("model.core", "hidden_padding", "6"),
    ("model.core", "laplace_padding", "1"),
];

fn doc(path: &str) -> Option<&'static str> {
    DOCS.iter()
        .find(|(p, _)| *p == path)
        .map(|(_, d)| *d)
        .or_else(|| super::model_docs::doc(path))
}

#[cfg(test)]
/// Keys of `toml_text` (dotted paths) that have no explanation; used by tests.
pub fn undocumented_keys(toml_text: &str) -> Vec<String> {
    let doc_mut: DocumentMut = toml_text.parse().expect("valid TOML");
    let mut missing = Vec::new();
    collect_missing(doc_mut.as_table(), "", &mut missing);
    missing
}

#[cfg(test)]
fn collect_missing(table: &Table, prefix: &str, missing: &mut Vec<String>) {
    for (key, item) in table.iter() {
        let path = join(prefix, key);
        if doc(&path).is_none() {
            missing.push(path.clone());
        }
        match item {
            Item::Table(t) => collect_missing(t, &path, missing),
            Item::ArrayOfTables(a) => a.iter().for_each(|t| collect_missing(t, &path, missing)),
            Item::Value(toml_edit::Value::InlineTable(t)) => {
                for (k, _) in t.iter() {
                    let p = join(&path, k);
                    if doc(&p).is_none() {
                        missing.push(p);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Returns `toml_text` with `header` (as comment lines) at the top and a comment above each key.
pub fn annotate(toml_text: &str, header: &str) -> String {
    let mut document: DocumentMut = toml_text.parse().expect("valid TOML");
    annotate_table(document.as_table_mut(), "");
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    if !header.is_empty() {
        out.push('\n');
    }
    out.push_str(&add_optional_examples(&document.to_string()));
    out
}

/// Inserts the commented-out [`OPTIONAL`] keys missing from each section at the section's end.
fn add_optional_examples(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    // Section boundaries: each header line, moved back over its comment block and one blank line.
    let mut sections: Vec<(usize, String)> = vec![(0, String::new())];
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            let name = t.trim_matches(|c| c == '[' || c == ']').to_string();
            let mut start = i;
            while start > 0 && lines[start - 1].starts_with('#') {
                start -= 1;
            }
            if start > 0 && lines[start - 1].trim().is_empty() {
                start -= 1;
            }
            sections.push((start, name));
        }
    }
    let mut out = String::new();
    for (n, (start, name)) in sections.iter().enumerate() {
        let end = sections.get(n + 1).map_or(lines.len(), |s| s.0);
        let body = &lines[*start..end];
        for line in body {
            out.push_str(line);
            out.push('\n');
        }
        for (section, key, example) in OPTIONAL.iter().filter(|(s, _, _)| s == name) {
            let present = body
                .iter()
                .any(|l| l.split('=').next().is_some_and(|k| k.trim() == *key))
                || sections
                    .iter()
                    .any(|(_, h)| *h == format!("{section}.{key}"));
            if present {
                continue;
            }
            let path = format!("{section}.{key}");
            if let Some(text) = doc(&path) {
                out.push_str(&comment_block(text, false));
            }
            out.push_str(&format!("# {key} = {example}\n"));
        }
    }
    out
}

fn comment_block(text: &str, leading_blank: bool) -> String {
    let mut s = String::new();
    if leading_blank {
        s.push('\n');
    }
    for line in wrap(text, 96) {
        s.push_str("# ");
        s.push_str(&line);
        s.push('\n');
    }
    s
}

fn annotate_table(table: &mut Table, prefix: &str) {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_string()).collect();
    for key in keys {
        let path = join(prefix, &key);
        let text = doc(&path);
        let is_section = matches!(
            table.get(&key),
            Some(Item::Table(_)) | Some(Item::ArrayOfTables(_))
        );
        if is_section {
            match table.get_mut(&key) {
                Some(Item::Table(t)) => {
                    if let Some(text) = text {
                        t.decor_mut().set_prefix(comment_block(text, true));
                    }
                    annotate_table(t, &path);
                }
                Some(Item::ArrayOfTables(a)) => {
                    for (i, t) in a.iter_mut().enumerate() {
                        if i == 0
                            && let Some(text) = text
                        {
                            t.decor_mut().set_prefix(comment_block(text, true));
                        }
                        annotate_table(t, &path);
                    }
                }
                _ => {}
            }
        } else if let Some(text) = text
            && let Some(mut k) = table.key_mut(&key)
        {
            k.leaf_decor_mut().set_prefix(comment_block(text, false));
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Greedy word wrap.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
