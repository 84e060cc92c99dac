//! `cortexfit results --plot`: a metric against a numeric config key, one line per group (mean
//! ± standard deviation over the group's fits at each x), as PNG or SVG (by the file's
//! extension). Drawn with `plotters` and the embedded font of [`crate::report`].

use std::path::Path;

use anyhow::{Context, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::font::{FAMILY, register_font};

/// One line of the figure: its legend and its points `(x, mean, std)`, sorted by x.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

const SIZE: (u32, u32) = (900, 600);

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(230, 120, 20),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(40, 40, 40),
];

/// Writes the figure to `path` (`.png` or `.svg`).
pub fn plot_lines(
    lines: &[Line],
    x_label: &str,
    y_label: &str,
    log_x: bool,
    path: &Path,
) -> anyhow::Result<()> {
    register_font();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if lines.iter().all(|l| l.points.is_empty()) {
        bail!("--plot {}: no finished fit has this metric", path.display());
    }
    if log_x && lines.iter().flat_map(|l| &l.points).any(|p| p.0 <= 0.0) {
        bail!("--log-x: {x_label} has values ≤ 0");
    }
    match ext.as_str() {
        "svg" => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
                draw(&root, lines, x_label, y_label, log_x)?;
                root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            crate::io::atomic_write(path, svg.as_bytes())
        }
        "png" => {
            let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
                draw(&root, lines, x_label, y_label, log_x)?;
                root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let mut bytes = Vec::new();
            {
                let mut encoder = png::Encoder::new(&mut bytes, SIZE.0, SIZE.1);
                encoder.set_color(png::ColorType::Rgb);
                encoder.set_depth(png::BitDepth::Eight);
                let mut writer = encoder.write_header().context("encoding the PNG")?;
                writer.write_image_data(&rgb).context("encoding the PNG")?;
            }
            crate::io::atomic_write(path, &bytes)
        }
        _ => bail!(
            "--plot {}: expected a file ending in .png or .svg",
            path.display()
        ),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    lines: &[Line],
    x_label: &str,
    y_label: &str,
    log_x: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing the figure: {e}");
    root.fill(&WHITE).map_err(err)?;
    let all: Vec<&(f64, f64, f64)> = lines.iter().flat_map(|l| &l.points).collect();
    let fold = |f: fn(&(f64, f64, f64)) -> f64| {
        all.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(f(p)), hi.max(f(p)))
            })
    };
    let (x_lo, x_hi) = fold(|p| p.0);
    let (y_lo, _) = fold(|p| p.1 - p.2);
    let (_, y_hi) = fold(|p| p.1 + p.2);
    let y_pad = ((y_hi - y_lo) * 0.1).max(0.01);
    let (y_lo, y_hi) = (y_lo - y_pad, y_hi + y_pad);
    let mut ticks: Vec<f64> = all.iter().map(|p| p.0).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let caption = format!("{y_label} against {x_label}");
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, (FAMILY, 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75);
    let label_style = (FAMILY, 15);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&|x| format!("{x}"))
                .y_label_formatter(&|y| format!("{y:.3}"))
                .label_style(label_style)
                .axis_desc_style((FAMILY, 18))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(err)?;
            for (i, line) in lines.iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                let xy: Vec<(f64, f64)> = line.points.iter().map(|p| (p.0, p.1)).collect();
                chart
                    .draw_series(LineSeries::new(xy.clone(), c.stroke_width(3)))
                    .map_err(err)?
                    .label(line.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                    });
                for p in &line.points {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(p.0, p.1 - p.2), (p.0, p.1 + p.2)],
                            c.stroke_width(2),
                        )))
                        .map_err(err)?;
                }
                chart
                    .draw_series(
                        xy.into_iter()
                            .map(|(x, y)| Circle::new((x, y), 5, c.filled())),
                    )
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font((FAMILY, 16))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(err)?;
        }};
    }
    if log_x {
        let range = (x_lo / 1.25)..(x_hi * 1.25);
        finish!(
            builder
                .build_cartesian_2d(range.log_scale().with_key_points(ticks), y_lo..y_hi)
                .map_err(err)?
        );
    } else {
        let pad = ((x_hi - x_lo) * 0.05).max(1e-9);
        finish!(
            builder
                .build_cartesian_2d((x_lo - pad)..(x_hi + pad), y_lo..y_hi)
                .map_err(err)?
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg_with_legend_and_rejects_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let lines = vec![
            Line {
                label: "seed=1".into(),
                points: vec![(0.001, 0.3, 0.0), (0.01, 0.5, 0.1)],
            },
            Line {
                label: "seed=2".into(),
                points: vec![(0.001, 0.35, 0.0), (0.01, 0.45, 0.0)],
            },
        ];
        let svg = dir.path().join("f.svg");
        plot_lines(&lines, "trainer.lr", "test.fraction_oracle", true, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("seed=2") && text.contains("trainer.lr"));
        let png = dir.path().join("f.png");
        plot_lines(&lines, "trainer.lr", "m", false, &png).unwrap();
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        let e = plot_lines(&lines, "x", "y", false, &dir.path().join("f.jpg")).unwrap_err();
        assert!(e.to_string().contains(".png or .svg"), "{e}");
    }
}
