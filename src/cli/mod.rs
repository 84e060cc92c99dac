//! The `cortexfit` command line: one file per subcommand, each with its `Args` and `run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod config;
mod convert;
mod demo;
mod ensemble;
mod evaluate;
mod experiment;
mod export;
mod import;
mod info;
mod insilico;
mod predict;
mod progress;
mod results;
mod simulate;
mod sweep;
mod train;
mod transfer;

#[derive(Parser, Debug)]
#[command(
    name = "cortexfit",
    version = crate::backend::VERSION,
    about = "Fit data-driven deep-network models of mouse visual cortex to neural population responses",
    long_about = "Fit data-driven deep-network models of mouse visual cortex (Lurz et al. 2020) to \
recorded neural population responses: a convolutional core shared by all neurons, one readout per \
recording, Poisson loss, early stopping on validation correlation; evaluation against the \
repeat-based oracle."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate a mouse-V1 population with known ground truth and write it as a FileTree dataset.
    Simulate(simulate::Args),
    /// Summarize a dataset: trials per tier, neurons, image size, repeats, oracle.
    Info(info::Args),
    /// Print a complete, commented run configuration for a preset.
    Config(config::Args),
    /// Write an older static HDF5 set (`static*.h5`) as a FileTree folder.
    Convert(convert::Args),
    /// Train a model on one or more datasets.
    Train(train::Args),
    /// Evaluate a trained run on a tier of a dataset (per-neuron metrics, oracle, fraction oracle).
    Evaluate(evaluate::Args),
    /// Write a trained run's predictions for a tier (.npy and a Sensorium submission CSV).
    Predict(predict::Args),
    /// Simulate, train, evaluate and compare with the simulator's ground truth.
    Demo(demo::Args),
    /// Time training and evaluation steps of a preset on synthetic input.
    Bench(bench::Args),
    /// Group finished runs of one configuration (different seeds) into an ensemble.
    Ensemble(ensemble::Args),
    /// Freeze a trained core and fit new readouts on new neurons or a new animal.
    Transfer(transfer::Args),
    /// Make a run from a model trained in PyTorch (a neuralpredictors `torch.save` checkpoint).
    Import(import::Args),
    /// Write a run's weights under neuralpredictors' state-dict names for PyTorch.
    Export(export::Args),
    /// In-silico experiments on a run or ensemble: most exciting inputs, tuning, receptive fields.
    #[command(subcommand)]
    Insilico(insilico::Command),
    /// Run a family of fits (e.g. a data-efficiency curve) and plot the results.
    #[command(subcommand)]
    Experiment(experiment::Command),
    /// Many fits from a sweep spec (axes of overrides), content-addressed and run once, on this
    /// machine or on SLURM, recorded in a results database.
    #[command(subcommand)]
    Sweep(sweep::Command),
    /// Query the results database of sweeps: filter, group, table/CSV/JSON, plot; or rebuild it.
    Results(results::Args),
}

/// Runs the command line; errors are printed as one message (with its causes), exit code 1.
pub fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Info(args) => info::run(args),
        Command::Config(args) => config::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Train(args) => train::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Ensemble(args) => ensemble::run(args),
        Command::Transfer(args) => transfer::run(args),
        Command::Import(args) => import::run(args),
        Command::Export(args) => export::run(args),
        Command::Insilico(cmd) => insilico::run(cmd),
        Command::Experiment(cmd) => experiment::run(cmd),
        Command::Sweep(cmd) => sweep::run(cmd),
        Command::Results(args) => results::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed output pipe end the program quietly, as it ends any Unix filter
/// (`cortexfit info DIR | head -3`). The Rust runtime ignores SIGPIPE, so every write to a closed
/// pipe fails with `BrokenPipe` and `println!` panics with a backtrace; with the default action
/// the kernel ends the process at that write instead (exit status 128 + SIGPIPE in a shell).
/// Nothing is lost: every file cortexfit writes is written atomically, and a killed training
/// run resumes from its last checkpoint.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; `signal` with
    // `SIG_DFL` only resets the disposition of SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
