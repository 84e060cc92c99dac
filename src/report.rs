//! Plain-text tables for the terminal; the figures' embedded font ([`font`]).

/// The font of every figure: an embedded subset of DejaVu Sans (`assets/fonts`, Bitstream Vera
/// licence + public domain), so no system font or library is needed.
pub(crate) mod font {
    use std::sync::Once;

    const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-subset.ttf");
    /// The family name the figures' text styles use.
    pub(crate) const FAMILY: &str = "sans-serif";

    /// Registers the font with `plotters` (once per process).
    pub(crate) fn register_font() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // The font is part of the binary and checked by the tests; failure here is a build
            // defect.
            let style = plotters::style::FontStyle::Normal;
            if plotters::style::register_font(FAMILY, style, FONT).is_err() {
                eprintln!("warning: the embedded plot font could not be read; text may be missing");
            }
        });
    }
}

/// A table with a header row, right-aligned numeric columns and a left-aligned first column.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with two spaces between columns.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let line = |row: &Vec<String>| {
            let mut s = String::new();
            for (i, w) in width.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let pad = w - cell.chars().count();
                if i == 0 {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str("  ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
            }
            s.trim_end().to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push_str(&"-".repeat(width.iter().sum::<usize>() + 2 * (cols.saturating_sub(1))));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

/// A metric with 3 decimals, or "–" when absent / not finite.
pub fn fmt3(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.3}"),
        _ => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["key", "corr"]);
        t.row(vec!["20457-5-9".into(), fmt3(Some(0.28512))]);
        t.row(vec!["a".into(), fmt3(None)]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[2], "20457-5-9  0.285");
        assert_eq!(lines[3], "a              –");
    }
}
