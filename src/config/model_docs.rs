//! Explanations of the `[model]` keys for `cortexfit config` (see `comments.rs`).

const DOCS: &[(&str, &str)] = &[];

/// The explanation of a `model.*` key path, if there is one.
pub fn doc(path: &str) -> Option<&'static str> {
    DOCS.iter().find(|(p, _)| *p == path).map(|(_, d)| *d)
}
