//! The data-efficiency figure: performance against training images (log axis), one line per
//! condition with mean ± standard deviation over seeds (shaded), as in Lurz et al. 2020 Figs. 4–5.
//!
//! Drawn with `plotters` into SVG and into an RGB buffer encoded as PNG by the `png` crate. Text
//! uses an embedded subset of DejaVu Sans (`assets/fonts`, Bitstream Vera licence + public
//! domain), so no system font or library is needed.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::results::{ScoreMetric, SummaryPoint};
use super::spec::Condition;

use crate::report::font::{FAMILY, register_font};

const SIZE: (u32, u32) = (900, 600);

fn color(condition: Condition) -> RGBColor {
    match condition {
        Condition::Direct => RGBColor(40, 40, 40),
        Condition::Transfer => RGBColor(31, 119, 180),
        Condition::GoalDirected => RGBColor(230, 120, 20),
    }
}

/// Writes `<out>/<stem>.png` and `<out>/<stem>.svg`.
pub fn plot_data_efficiency(
    points: &[SummaryPoint],
    metric: ScoreMetric,
    out: &Path,
    stem: &str,
) -> anyhow::Result<()> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, points, metric)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    crate::io::atomic_write(&out.join(format!("{stem}.svg")), svg.as_bytes())?;

    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root, points, metric)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, SIZE.0, SIZE.1);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("encoding the PNG")?;
        writer.write_image_data(&rgb).context("encoding the PNG")?;
    }
    crate::io::atomic_write(&out.join(format!("{stem}.png")), &png_bytes)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[SummaryPoint],
    metric: ScoreMetric,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing the figure: {e}");
    root.fill(&WHITE).map_err(err)?;
    let (x_lo, x_hi) = points.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p.train_images as f64), hi.max(p.train_images as f64))
    });
    let (y_lo, y_hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.mean - p.std), hi.max(p.mean + p.std))
        });
    let (x_lo, x_hi) = if points.is_empty() {
        (1.0, 10.0)
    } else {
        (x_lo / 1.25, x_hi * 1.25)
    };
    let (y_lo, y_hi) = if points.is_empty() || !y_lo.is_finite() || !y_hi.is_finite() {
        (0.0, 1.0)
    } else {
        let pad = ((y_hi - y_lo) * 0.1).max(0.02);
        let lo = if y_lo >= 0.0 {
            (y_lo - pad).max(0.0)
        } else {
            y_lo - pad
        };
        (lo, y_hi + pad)
    };
    // Ticks exactly at the image counts of the experiment.
    let mut ticks: Vec<f64> = points.iter().map(|p| p.train_images as f64).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let seeds = points.iter().map(|p| p.n_seeds).max().unwrap_or(0);
    let caption = format!(
        "Data efficiency (mean ± sd over {seeds} seed{})",
        if seeds == 1 { "" } else { "s" }
    );
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FAMILY, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75)
        .build_cartesian_2d((x_lo..x_hi).log_scale().with_key_points(ticks), y_lo..y_hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("training images")
        .y_desc(metric.label())
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    let mut conditions: Vec<Condition> = points.iter().map(|p| p.condition).collect();
    conditions.sort();
    conditions.dedup();
    for condition in conditions {
        let c = color(condition);
        let line: Vec<&SummaryPoint> = points.iter().filter(|p| p.condition == condition).collect();
        let mut band: Vec<(f64, f64)> = line
            .iter()
            .map(|p| (p.train_images as f64, p.mean + p.std))
            .collect();
        band.extend(
            line.iter()
                .rev()
                .map(|p| (p.train_images as f64, p.mean - p.std)),
        );
        if line.len() > 1 {
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled())))
                .map_err(err)?;
        }
        let xy: Vec<(f64, f64)> = line
            .iter()
            .map(|p| (p.train_images as f64, p.mean))
            .collect();
        chart
            .draw_series(LineSeries::new(xy.clone(), c.stroke_width(3)))
            .map_err(err)?
            .label(condition.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        // Error bars (± sd over seeds) and the means.
        for p in &line {
            let x = p.train_images as f64;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, p.mean - p.std), (x, p.mean + p.std)],
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_and_an_svg_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = |condition, n, mean, std| SummaryPoint {
            condition,
            train_images: n,
            mean,
            std,
            n_seeds: 3,
        };
        let points = vec![
            p(Condition::Direct, 250, 0.35, 0.04),
            p(Condition::Direct, 1000, 0.6, 0.03),
            p(Condition::Direct, 4472, 0.8, 0.02),
            p(Condition::Transfer, 250, 0.6, 0.03),
            p(Condition::Transfer, 1000, 0.72, 0.02),
            p(Condition::Transfer, 4472, 0.8, 0.01),
        ];
        plot_data_efficiency(&points, ScoreMetric::FractionOracleTest, dir.path(), "fig").unwrap();
        // For looking at the figure: CORTEXFIT_KEEP_PLOT=/tmp/fig.png cargo test … plot
        if let Ok(keep) = std::env::var("CORTEXFIT_KEEP_PLOT") {
            std::fs::copy(dir.path().join("fig.png"), keep).unwrap();
        }
        let svg = std::fs::read_to_string(dir.path().join("fig.svg")).unwrap();
        assert!(
            svg.contains("transferred core") && svg.contains("training images"),
            "legend/axis text"
        );
        let png = std::fs::read(dir.path().join("fig.png")).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), SIZE);
        // Something blue (the transfer line) and something dark (text, direct line) was drawn.
        let px: Vec<&[u8]> = buf.chunks(3).collect();
        assert!(
            px.iter().any(|p| p[0] < 60 && p[1] > 100 && p[2] > 160),
            "no transfer line"
        );
        assert!(
            px.iter()
                .filter(|p| p[0] < 80 && p[1] < 80 && p[2] < 80)
                .count()
                > 500,
            "no text"
        );
    }
}
