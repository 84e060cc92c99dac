//! `cortexfit info`: a quick look at a recording before fitting anything.

use crate::data::{Dataset, LoadOptions, NormalizeOptions, PreparedDataset, Tier};
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `cortexfit info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset folder or `.zip` archive in the FileTree layout.
    pub path: PathBuf,
    /// Data key to use instead of the one parsed from the folder / zip name.
    #[arg(long)]
    pub data_key: Option<String>,
    /// Rescale the images while loading, as `data.image_scale` (0.25: Sensorium's 144×256 →
    /// 36×64).
    #[arg(long)]
    pub image_scale: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    if let Some(scale) = args.image_scale {
        anyhow::ensure!(
            scale.is_finite() && scale > 0.0,
            "--image-scale must be a finite number > 0, got {scale}"
        );
    }
    let options = LoadOptions {
        data_key: args.data_key,
        image_scale: args.image_scale,
        ..LoadOptions::default()
    };
    let ds = Dataset::load(&args.path, &options)
        .with_context(|| format!("loading {}", args.path.display()))?;
    let elapsed = start.elapsed().as_secs_f64();
    let [c, h, w] = ds.image_shape;
    println!("data key      {}", ds.data_key);
    println!(
        "source        {}  (loaded in {elapsed:.2} s)",
        ds.source.display()
    );
    println!("trials        {}", ds.n_trials());
    for tier in Tier::ALL {
        let n = ds.tier_indices(tier).len();
        if n > 0 {
            println!("  {:<11} {n}", tier.as_str());
        }
    }
    println!("neurons       {}", ds.n_neurons());
    println!("image size    {c}×{h}×{w} (C×H×W)");
    println!(
        "behavior      {}",
        if ds.behavior.is_some() {
            "present"
        } else {
            "absent"
        }
    );
    println!(
        "pupil_center  {}",
        if ds.pupil_center.is_some() {
            "present"
        } else {
            "absent"
        }
    );
    for tier in [Tier::Test, Tier::FinalTest] {
        let groups = ds.repeat_groups(tier);
        if groups.is_empty() {
            continue;
        }
        let mut reps: Vec<usize> = groups.iter().map(|(_, g)| g.len()).collect();
        reps.sort_unstable();
        let median = if reps.len() % 2 == 1 {
            reps[reps.len() / 2] as f64
        } else {
            (reps[reps.len() / 2 - 1] + reps[reps.len() / 2]) as f64 / 2.0
        };
        println!(
            "{:<13} {} unique images, repeats min {} / median {median} / max {}",
            tier.as_str(),
            groups.len(),
            reps[0],
            reps[reps.len() - 1]
        );
    }
    let test = ds.tier_indices(Tier::Test);
    if !test.is_empty() {
        let n = ds.n_neurons();
        let prepared = PreparedDataset::new(ds, &NormalizeOptions::default())?;
        let responses: Vec<f64> = test
            .iter()
            .flat_map(|&i| {
                prepared.responses[i * n..(i + 1) * n]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect();
        let ids: Vec<i64> = test
            .iter()
            .map(|&i| prepared.dataset.trials.frame_image_id[i])
            .collect();
        let oracle = crate::metrics::oracle_jackknife(&responses, n, &ids);
        let mean = oracle
            .iter()
            .map(|v| if v.is_nan() { 0.0 } else { *v })
            .sum::<f64>()
            / oracle.len().max(1) as f64;
        println!("oracle (jackknife, test) mean over neurons {mean:.4}");
    }
    Ok(())
}
