//! `cargo bench --bench load`: time loading the real Lurz 2020 scan into memory (~20 000 .npy
//! files) on a 2-thread rayon pool. Prints a table; skips with a reason when `../shared` is absent.

use cortexfit::data::{Dataset, LoadOptions, NormalizeOptions, PreparedDataset};
use std::path::Path;
use std::time::Instant;

fn main() {
    // `../shared` next to the repository; `CORTEXFIT_SHARED` overrides it (e.g. in git worktrees).
    let shared = std::env::var("CORTEXFIT_SHARED")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared").to_string());
    let root_buf = Path::new(&shared).join("data/lurz2020_static20457-5-9");
    let root = root_buf.as_path();
    if !root.exists() {
        println!("skipping: {} is absent", root.display());
        return;
    }
    let threads = 2;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let options = LoadOptions::default();
    let time_load = || {
        let t = Instant::now();
        let ds = pool
            .install(|| Dataset::load(root, &options))
            .expect("load");
        (t.elapsed().as_secs_f64(), ds)
    };
    let (first, ds) = time_load();
    let mut warm: Vec<f64> = (0..5).map(|_| time_load().0).collect();
    warm.sort_by(f64::total_cmp);
    let t = Instant::now();
    let prepared = PreparedDataset::new(ds, &NormalizeOptions::default()).expect("normalize");
    let normalize = t.elapsed().as_secs_f64();
    let ds = &prepared.dataset;
    println!(
        "dataset {} ({} trials, {} neurons, {:?}), rayon threads {threads}",
        ds.data_key,
        ds.n_trials(),
        ds.n_neurons(),
        ds.image_shape
    );
    println!("| step                       | seconds |");
    println!("|----------------------------|---------|");
    println!("| load, first run (cold-ish) | {first:7.3} |");
    println!("| load, warm median of 5     | {:7.3} |", warm[2]);
    println!(
        "| load, warm min / max       | {:.3} / {:.3} |",
        warm[0], warm[4]
    );
    println!("| normalize (PreparedDataset)| {normalize:7.3} |");
}
