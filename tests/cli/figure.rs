//! Checks the data-efficiency figure against `results.csv`: one marker per (condition, training
//! images) at the mean over seeds, an error bar of ± the standard deviation over seeds, ticks at
//! the image counts, axis labels, legend and the seed count in the caption. Included from
//! `tests/cli/transfer.rs`.

use std::collections::BTreeMap;
use std::path::Path;

/// Mean, sample standard deviation and number of seeds of one (condition, train_images) cell.
#[derive(Debug)]
struct Cell {
    mean: f64,
    std: f64,
    seeds: usize,
}

/// `results.csv` summarised per (condition, training images), computed here from the rows.
fn cells(csv_path: &Path) -> BTreeMap<(String, u64), Cell> {
    let mut reader = csv::Reader::from_path(csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (c, n, s) = (col("condition"), col("train_images"), col("score"));
    let mut scores: BTreeMap<(String, u64), Vec<f64>> = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        scores
            .entry((row[c].to_string(), row[n].parse().unwrap()))
            .or_default()
            .push(row[s].parse().unwrap());
    }
    scores
        .into_iter()
        .map(|(key, v)| {
            let k = v.len() as f64;
            let mean = v.iter().sum::<f64>() / k;
            let var = if v.len() > 1 {
                v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0)
            } else {
                0.0
            };
            let cell = Cell {
                mean,
                std: var.sqrt(),
                seeds: v.len(),
            };
            (key, cell)
        })
        .collect()
}

/// The value of attribute `name` in one SVG element's text.
fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}

/// Every `<tag .../>` element of the SVG.
fn elements<'a>(svg: &'a str, tag: &str) -> Vec<&'a str> {
    svg.match_indices(&format!("<{tag} "))
        .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()])
        .collect()
}

fn colour(condition: &str) -> &'static str {
    match condition {
        "direct" => "#282828",
        "transfer" => "#1F77B4",
        other => panic!("unexpected condition {other}"),
    }
}

fn label(condition: &str) -> &'static str {
    match condition {
        "direct" => "direct training",
        "transfer" => "transferred core",
        other => panic!("unexpected condition {other}"),
    }
}

/// Least-squares line y = a + b·x.
fn fit_line(points: &[(f64, f64)]) -> (f64, f64) {
    let k = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / k,
        points.iter().map(|p| p.1).sum::<f64>() / k,
    );
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let b = sxy / sxx;
    (my - b * mx, b)
}

/// Asserts that `<exp>/data_efficiency.svg` shows what `<exp>/results.csv` holds.
pub fn assert_figure_matches_results(exp: &Path) {
    let cells = cells(&exp.join("results.csv"));
    let svg = std::fs::read_to_string(exp.join("data_efficiency.svg")).unwrap();
    let texts: Vec<String> = svg
        .split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..];
            body[..body.find("</text>").unwrap()].trim().to_string()
        })
        .collect();
    let has_text = |s: &str| texts.iter().any(|t| t == s);

    // Axis labels, legend, ticks at the image counts, seed count in the caption.
    assert!(has_text("training images"), "{texts:?}");
    assert!(has_text("fraction oracle (test)"), "{texts:?}");
    let seeds = cells.values().map(|c| c.seeds).max().unwrap();
    let caption = format!(
        "mean ± sd over {seeds} seed{})",
        if seeds == 1 { "" } else { "s" }
    );
    assert!(
        texts.iter().any(|t| t.contains(&caption)),
        "caption with {caption:?}: {texts:?}"
    );
    for (condition, images) in cells.keys() {
        assert!(has_text(label(condition)), "legend {condition}: {texts:?}");
        assert!(has_text(&images.to_string()), "tick {images}: {texts:?}");
    }

    // One marker per cell, in the condition's colour.
    let circles: Vec<(String, f64, f64)> = elements(&svg, "circle")
        .into_iter()
        .map(|e| {
            let num = |n: &str| attr(e, n).unwrap().parse::<f64>().unwrap();
            (
                attr(e, "fill").unwrap().to_uppercase(),
                num("cx"),
                num("cy"),
            )
        })
        .collect();
    assert_eq!(circles.len(), cells.len(), "{circles:?} for {cells:?}");
    let mut marker = BTreeMap::new();
    for key in cells.keys() {
        let mine: Vec<&(String, f64, f64)> =
            circles.iter().filter(|c| c.0 == colour(&key.0)).collect();
        let per_condition = cells.keys().filter(|k| k.0 == key.0).count();
        assert_eq!(mine.len(), per_condition, "{key:?}: {circles:?}");
        // Markers of a condition go left to right with the image count.
        let rank = cells.keys().filter(|k| k.0 == key.0 && k.1 < key.1).count();
        let mut xs: Vec<(f64, f64)> = mine.iter().map(|c| (c.1, c.2)).collect();
        xs.sort_by(|a, b| a.0.total_cmp(&b.0));
        marker.insert(key.clone(), xs[rank]);
    }
    // The same image count is drawn at the same x for every condition.
    for (a, pa) in &marker {
        for (b, pb) in &marker {
            if a.1 == b.1 {
                assert!((pa.0 - pb.0).abs() <= 1.0, "{a:?} {pa:?} vs {b:?} {pb:?}");
            } else if a.1 < b.1 {
                assert!(pa.0 < pb.0, "{a:?} {pa:?} vs {b:?} {pb:?}");
            }
        }
    }
    // Heights: one linear map from score to pixels fits every marker (to the pixel rounding).
    let pairs: Vec<(f64, f64)> = cells
        .iter()
        .map(|(key, cell)| (cell.mean, marker[key].1))
        .collect();
    let (a, b) = fit_line(&pairs);
    assert!(b < 0.0, "higher scores must be drawn higher: {pairs:?}");
    for (mean, y) in &pairs {
        assert!(
            (a + b * mean - y).abs() <= 1.5,
            "marker at {y} for mean {mean}: {pairs:?}"
        );
    }

    // Error bars: a vertical line through each marker from mean − sd to mean + sd.
    let lines: Vec<Vec<(f64, f64)>> = elements(&svg, "polyline")
        .into_iter()
        .filter_map(|e| attr(e, "points"))
        .map(|pts| {
            pts.split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect();
    for (key, cell) in &cells {
        let (x, y) = marker[key];
        let half = -b * cell.std;
        let bar = lines.iter().find(|l| {
            l.len() == 2
                && l.iter().all(|p| (p.0 - x).abs() <= 1.0)
                && (l[0].1.max(l[1].1) - (y + half)).abs() <= 1.5
                && (l[0].1.min(l[1].1) - (y - half)).abs() <= 1.5
        });
        assert!(
            bar.is_some(),
            "{key:?}: no error bar of ±{half:.1} px at ({x}, {y}) (sd {})",
            cell.std
        );
    }
}
