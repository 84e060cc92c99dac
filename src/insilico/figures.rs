//! Figures of in-silico experiments: image mosaics with unit ids (MEIs, RF maps with markers)
//! as PNG, and tuning curves as PNG + SVG. Drawn with `plotters` (text in the embedded DejaVu
//! Sans subset, as `experiment::plot`), PNGs encoded by the `png` crate.

use std::path::Path;
use std::sync::Once;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::tuning::TuningResult;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Part of the binary; failing to read it is a build defect, and text is then missing.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A point drawn on a tile, in image pixels (row, column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Marker {
    /// A red cross (e.g. the readout position).
    Cross([f64; 2]),
    /// A cyan circle (e.g. the RF centre).
    Circle([f64; 2]),
}

/// One image of a mosaic.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub label: String,
    /// One plane, H·W.
    pub values: Vec<f32>,
    pub markers: Vec<Marker>,
}

/// How a tile's values map to grey levels (each tile scaled on its own).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TileScale {
    /// `centre` is mid-grey; ± the largest deviation is black / white.
    Symmetric { centre: f64 },
    /// 0 is black, the maximum white.
    FromZero,
}

/// A grid of labelled tiles.
pub struct Mosaic {
    pub tiles: Vec<Tile>,
    pub height: usize,
    pub width: usize,
    pub scale: TileScale,
}

const LABEL_PX: u32 = 18;
const GAP_PX: u32 = 6;

impl Mosaic {
    fn geometry(&self) -> (u32, u32, u32, u32) {
        let zoom = (160 / self.height.max(self.width).max(1)).clamp(2, 8) as u32;
        let n = self.tiles.len().max(1) as u32;
        let cols = (n as f64).sqrt().ceil() as u32;
        let rows = n.div_ceil(cols);
        (zoom, cols, rows, 0)
    }

    /// Writes the mosaic as a PNG.
    pub fn write_png(&self, path: &Path) -> anyhow::Result<()> {
        register_font();
        let (zoom, cols, rows, _) = self.geometry();
        let (tw, th) = (self.width as u32 * zoom, self.height as u32 * zoom);
        let size = (
            cols * (tw + GAP_PX) + GAP_PX,
            rows * (th + LABEL_PX + GAP_PX) + GAP_PX,
        );
        let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
        let origin = |i: usize| {
            let (c, r) = (i as u32 % cols, i as u32 / cols);
            (
                GAP_PX + c * (tw + GAP_PX),
                GAP_PX + r * (th + LABEL_PX + GAP_PX) + LABEL_PX,
            )
        };
        for (i, tile) in self.tiles.iter().enumerate() {
            let (x0, y0) = origin(i);
            let grey = self.grey_levels(&tile.values);
            for r in 0..self.height {
                for c in 0..self.width {
                    let g = grey[r * self.width + c];
                    for dy in 0..zoom {
                        for dx in 0..zoom {
                            let x = x0 + c as u32 * zoom + dx;
                            let y = y0 + r as u32 * zoom + dy;
                            let at = ((y * size.0 + x) * 3) as usize;
                            rgb[at..at + 3].copy_from_slice(&[g, g, g]);
                        }
                    }
                }
            }
        }
        {
            let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
            let err = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing the mosaic: {e}");
            let pixel = |x0: u32, y0: u32, [r, c]: [f64; 2]| {
                (
                    (x0 as f64 + (c + 0.5) * zoom as f64) as i32,
                    (y0 as f64 + (r + 0.5) * zoom as f64) as i32,
                )
            };
            for (i, tile) in self.tiles.iter().enumerate() {
                let (x0, y0) = origin(i);
                root.draw_text(
                    &tile.label,
                    &(FAMILY, 14).into_font().color(&BLACK),
                    (x0 as i32, (y0 - LABEL_PX + 2) as i32),
                )
                .map_err(err)?;
                for marker in &tile.markers {
                    match *marker {
                        Marker::Cross(p) => root
                            .draw(&Cross::new(
                                pixel(x0, y0, p),
                                (zoom + 1).max(3) as i32,
                                RED.stroke_width(1),
                            ))
                            .map_err(err)?,
                        Marker::Circle(p) => root
                            .draw(&Circle::new(
                                pixel(x0, y0, p),
                                (zoom * 2).max(4) as i32,
                                CYAN.stroke_width(1),
                            ))
                            .map_err(err)?,
                    }
                }
            }
            root.present().map_err(err)?;
        }
        write_png(path, &rgb, size)
    }

    fn grey_levels(&self, values: &[f32]) -> Vec<u8> {
        match self.scale {
            TileScale::Symmetric { centre } => {
                let spread = values
                    .iter()
                    .map(|&v| (v as f64 - centre).abs())
                    .fold(0.0, f64::max)
                    .max(1e-12);
                values
                    .iter()
                    .map(|&v| (127.5 + 127.5 * (v as f64 - centre) / spread).round() as u8)
                    .collect()
            }
            TileScale::FromZero => {
                let max = values
                    .iter()
                    .map(|&v| v as f64)
                    .fold(0.0, f64::max)
                    .max(1e-30);
                values
                    .iter()
                    .map(|&v| (255.0 * (v as f64 / max).clamp(0.0, 1.0)).round() as u8)
                    .collect()
            }
        }
    }
}

fn write_png(path: &Path, rgb: &[u8], (w, h): (u32, u32)) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .with_context(|| format!("encoding {}", path.display()))?;
        writer
            .write_image_data(rgb)
            .with_context(|| format!("encoding {}", path.display()))?;
    }
    crate::io::atomic_write(path, &bytes)
}

/// `<dir>/<stem>.png` and `.svg`: for each shown neuron (row), its orientation tuning at the
/// preferred spatial frequency (max over phase), its spatial-frequency tuning at the preferred
/// orientation, and its response over phase at the preferred grating.
pub fn tuning_figure(
    result: &TuningResult,
    shown: &[usize],
    labels: &[String],
    dir: &Path,
    stem: &str,
) -> anyhow::Result<()> {
    register_font();
    let size = (1050u32, (190 * shown.len().max(1) as u32) + 20);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_tuning(&root, result, shown, labels)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    crate::io::atomic_write(&dir.join(format!("{stem}.svg")), svg.as_bytes())?;
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw_tuning(&root, result, shown, labels)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    write_png(&dir.join(format!("{stem}.png")), &rgb, size)
}

fn draw_tuning<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    result: &TuningResult,
    shown: &[usize],
    labels: &[String],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err =
        |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing tuning curves: {e}");
    root.fill(&WHITE).map_err(err)?;
    if shown.is_empty() {
        return Ok(());
    }
    let rows = root.margin(10, 10, 10, 10).split_evenly((shown.len(), 3));
    let freqs = &result.config.frequencies;
    for (row, (&i, label)) in shown.iter().zip(labels).enumerate() {
        let t = &result.neurons[i];
        let [bo, bf] = t.grid_index;
        let ori: Vec<(f64, f64)> = (0..result.orientations.len())
            .map(|o| {
                (
                    result.orientations[o].to_degrees(),
                    result.phase_max(i, o, bf),
                )
            })
            .collect();
        let sf: Vec<(f64, f64)> = (0..freqs.len())
            .map(|f| (freqs[f], result.phase_max(i, bo, f)))
            .collect();
        let phase: Vec<(f64, f64)> = (0..result.phases.len())
            .map(|k| {
                (
                    result.phases[k].to_degrees(),
                    result.response(i, bo, bf, k) as f64,
                )
            })
            .collect();
        let y_hi = ori
            .iter()
            .chain(&sf)
            .chain(&phase)
            .map(|p| p.1)
            .fold(0.0, f64::max)
            * 1.1
            + 1e-6;
        let panels = [
            (
                format!("{label}: orientation (OSI {:.2})", t.osi),
                "orientation (deg)",
                ori,
            ),
            (
                format!("SF (pref {:.3} c/px)", t.frequency),
                "cycles / pixel",
                sf,
            ),
            (
                format!("phase (F1/F0 {:.2})", t.f1_f0),
                "phase (deg)",
                phase,
            ),
        ];
        for (col, (caption, x_desc, points)) in panels.into_iter().enumerate() {
            let area = &rows[row * 3 + col];
            let (x_lo, x_hi) = match col {
                0 => (0.0, 180.0),
                1 => (freqs[0] / 1.2, freqs[freqs.len() - 1] * 1.2),
                _ => (0.0, 360.0),
            };
            let builder = |area| {
                let mut b = ChartBuilder::on(area);
                b.caption(caption.clone(), (FAMILY, 14))
                    .margin(4)
                    .x_label_area_size(28)
                    .y_label_area_size(40);
                b
            };
            let style = BLUE.stroke_width(2);
            if col == 1 {
                let mut chart = builder(area)
                    .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_hi)
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .x_labels(4)
                    .y_labels(4)
                    .x_label_formatter(&|x| format!("{x:.2}"))
                    .label_style((FAMILY, 11))
                    .axis_desc_style((FAMILY, 11))
                    .draw()
                    .map_err(err)?;
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(err)?;
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
                    .map_err(err)?;
            } else {
                let mut chart = builder(area)
                    .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .x_labels(5)
                    .y_labels(4)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .label_style((FAMILY, 11))
                    .axis_desc_style((FAMILY, 11))
                    .draw()
                    .map_err(err)?;
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(err)?;
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}
