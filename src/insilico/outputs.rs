//! Files for Python and people: `.npy` arrays (numpy's format, via `npyz`), per-neuron CSV
//! tables and PNG / SVG figures ([`super::figures`]), each written atomically.
//!
//! - MEIs: `mei.npy` (N × C × H × W, float32, dataset image units), `mei.csv`, `mei.png`.
//! - Tuning: `tuning.csv`, `tuning_responses.npy` (N × orientations × frequencies × phases,
//!   float32, model units) with `tuning_grid.json` (the grid), `tuning.png` / `tuning.svg`.
//! - RFs: `rf_energy.npy` (N × H × W), `rf_linear.npy` (N × C × H × W), `rf.csv`, `rf.png`.
//!
//! Responses in the CSVs are in the dataset's response units when the input context has a
//! `response_scale`, in model units otherwise; ratios do not depend on it.

use std::path::Path;

use anyhow::Context;

use super::context::InputContext;
use super::figures::{Marker, Mosaic, Tile, TileScale, tuning_figure};
use super::mei::MeiResult;
use super::rf::RfResult;
use super::tuning::TuningResult;

/// Writes a float32 `.npy` of `shape` atomically.
pub fn write_npy(path: &Path, shape: &[usize], values: &[f32]) -> anyhow::Result<()> {
    let bytes = crate::sim::writer::npy_bytes(shape, values)
        .with_context(|| format!("encoding {}", path.display()))?;
    crate::io::atomic_write(path, &bytes)
}

/// Writes a CSV (header + rows) atomically.
fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for row in rows {
        w.write_record(row)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("encoding {}: {e}", path.display()))?;
    crate::io::atomic_write(path, &bytes)
}

fn unit_of(unit_ids: &[i64], neuron: usize) -> anyhow::Result<i64> {
    unit_ids.get(neuron).copied().with_context(|| {
        format!(
            "neuron index {neuron} has no unit id ({} unit ids given)",
            unit_ids.len()
        )
    })
}

fn scaled(context: &InputContext, neuron: usize, value: f64) -> f64 {
    match &context.response_scale {
        Some(s) => value * s.get(neuron).copied().unwrap_or(1.0),
        None => value,
    }
}

fn f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        String::new()
    }
}

/// `mei.npy`, `mei.csv` and `mei.png` in `dir`. `unit_ids` are the readout's unit ids.
pub fn write_meis(
    dir: &Path,
    result: &MeiResult,
    unit_ids: &[i64],
    context: &InputContext,
) -> anyhow::Result<()> {
    let [c, h, w] = result.image_shape;
    let n = result.neurons.len();
    write_npy(&dir.join("mei.npy"), &[n, c, h, w], &result.images)?;
    let ratio = result.ratio();
    let mut rows = Vec::with_capacity(n);
    for (i, &neuron) in result.neurons.iter().enumerate() {
        rows.push(vec![
            unit_of(unit_ids, neuron)?.to_string(),
            neuron.to_string(),
            f(scaled(context, neuron, result.mei_response[i])),
            f(scaled(context, neuron, result.natural_response[i])),
            f(ratio[i]),
            if result.natural_index[i] == usize::MAX {
                String::new()
            } else {
                result.natural_index[i].to_string()
            },
            result.steps[i].to_string(),
        ]);
    }
    write_csv(
        &dir.join("mei.csv"),
        &[
            "unit_id",
            "readout_index",
            "mei_response",
            "natural_response",
            "ratio",
            "natural_image",
            "steps",
        ],
        &rows,
    )?;
    let len = c * h * w;
    let tiles: Vec<Tile> = result
        .neurons
        .iter()
        .enumerate()
        .map(|(i, &neuron)| Tile {
            label: format!("{}", unit_ids.get(neuron).copied().unwrap_or(-1)),
            values: result.images[i * len..i * len + h * w].to_vec(),
            markers: vec![],
        })
        .collect();
    Mosaic {
        tiles,
        height: h,
        width: w,
        scale: TileScale::Symmetric {
            centre: context.grey,
        },
    }
    .write_png(&dir.join("mei.png"))
}

/// `tuning.csv`, `tuning_responses.npy`, `tuning_grid.json` and the figure of the first
/// `figure_neurons` neurons (`tuning.png` / `.svg`) in `dir`.
pub fn write_tuning(
    dir: &Path,
    result: &TuningResult,
    unit_ids: &[i64],
    context: &InputContext,
    figure_neurons: usize,
) -> anyhow::Result<()> {
    let n = result.neurons.len();
    let (no, nf, np) = (
        result.orientations.len(),
        result.config.frequencies.len(),
        result.phases.len(),
    );
    write_npy(
        &dir.join("tuning_responses.npy"),
        &[n, no, nf, np],
        &result.responses,
    )?;
    let grid = serde_json::json!({
        "orientations_rad": result.orientations,
        "frequencies_cycles_per_pixel": result.config.frequencies,
        "phases_rad": result.phases,
        "amplitude": result.amplitude,
        "neurons": result.neurons.iter().map(|t| t.neuron).collect::<Vec<_>>(),
    });
    crate::io::atomic_write(
        &dir.join("tuning_grid.json"),
        serde_json::to_string_pretty(&grid)?.as_bytes(),
    )?;
    let mut rows = Vec::with_capacity(n);
    for t in &result.neurons {
        rows.push(vec![
            unit_of(unit_ids, t.neuron)?.to_string(),
            t.neuron.to_string(),
            f(t.orientation.to_degrees()),
            f(t.frequency),
            f(t.osi),
            f(t.f1_f0),
            (if t.f1_f0 > 1.0 { "simple" } else { "complex" }).to_string(),
            f(t.phase.to_degrees()),
            f(scaled(context, t.neuron, t.peak_response)),
            f(scaled(context, t.neuron, t.grey_response)),
        ]);
    }
    write_csv(
        &dir.join("tuning.csv"),
        &[
            "unit_id",
            "readout_index",
            "preferred_orientation_deg",
            "preferred_frequency_cpp",
            "osi",
            "f1_f0",
            "class",
            "preferred_phase_deg",
            "peak_response",
            "grey_response",
        ],
        &rows,
    )?;
    let shown: Vec<usize> = (0..n.min(figure_neurons)).collect();
    let labels: Vec<String> = shown
        .iter()
        .map(|&i| {
            format!(
                "unit {}",
                unit_ids
                    .get(result.neurons[i].neuron)
                    .copied()
                    .unwrap_or(-1)
            )
        })
        .collect();
    tuning_figure(result, &shown, &labels, dir, "tuning")
}

/// `rf_energy.npy`, `rf_linear.npy`, `rf.csv` and `rf.png` (energy maps, the RF centre as a
/// circle and, when given, the readout position as a cross) in `dir`.
pub fn write_rfs(
    dir: &Path,
    result: &RfResult,
    unit_ids: &[i64],
    readout_px: Option<&[[f64; 2]]>,
) -> anyhow::Result<()> {
    let [c, h, w] = result.image_shape;
    let n = result.neurons.len();
    write_npy(&dir.join("rf_energy.npy"), &[n, h, w], &result.energy)?;
    write_npy(&dir.join("rf_linear.npy"), &[n, c, h, w], &result.linear)?;
    let mut rows = Vec::with_capacity(n);
    for (i, &neuron) in result.neurons.iter().enumerate() {
        let readout = readout_px.and_then(|p| p.get(neuron));
        rows.push(vec![
            unit_of(unit_ids, neuron)?.to_string(),
            neuron.to_string(),
            f(result.centres[i][0]),
            f(result.centres[i][1]),
            f(result.extents[i]),
            readout.map_or(String::new(), |p| f(p[0])),
            readout.map_or(String::new(), |p| f(p[1])),
        ]);
    }
    write_csv(
        &dir.join("rf.csv"),
        &[
            "unit_id",
            "readout_index",
            "centre_row_px",
            "centre_col_px",
            "extent_px",
            "readout_row_px",
            "readout_col_px",
        ],
        &rows,
    )?;
    let tiles: Vec<Tile> = result
        .neurons
        .iter()
        .enumerate()
        .map(|(i, &neuron)| {
            let mut markers = vec![Marker::Circle(result.centres[i])];
            if let Some(p) = readout_px.and_then(|p| p.get(neuron)) {
                markers.push(Marker::Cross(*p));
            }
            Tile {
                label: format!("{}", unit_ids.get(neuron).copied().unwrap_or(-1)),
                values: result.energy[i * h * w..(i + 1) * h * w].to_vec(),
                markers,
            }
        })
        .collect();
    Mosaic {
        tiles,
        height: h,
        width: w,
        scale: TileScale::FromZero,
    }
    .write_png(&dir.join("rf.png"))
}
