//! `cortexfit convert`: write an older static HDF5 set (neuralpredictors' `StaticImageSet`) as a
//! FileTree folder, the layout every other command also reads from a `.zip`.

use std::path::PathBuf;

use anyhow::Context;

use crate::data::{Dataset, LoadOptions, write_filetree};

/// Arguments of `cortexfit convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The HDF5 static image set (`static*.h5`).
    #[arg(long)]
    pub h5: PathBuf,
    /// The FileTree folder to write (must not exist; written completely or not at all).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dataset = Dataset::load(&args.h5, &LoadOptions::default())
        .with_context(|| format!("reading {}", args.h5.display()))?;
    write_filetree(&dataset, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} ({} trials, {} neurons, images {:?}); data key from the folder name: {}",
        args.out.display(),
        dataset.n_trials(),
        dataset.n_neurons(),
        dataset.image_shape,
        crate::data::data_key_from_path(&args.out)
    );
    Ok(())
}
