//! A closed output pipe (`cortexfit info DIR | head -3`) ends every command quietly: exit 0 or
//! the usual SIGPIPE status, never a panic with "failed printing to stdout: Broken pipe" and a
//! backtrace. Included from `tests/cli.rs`.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{TINY, cortexfit, run_ok, simulate};

const SIGPIPE: i32 = 13;

/// The write end of a pipe whose read end is already closed: the first write to it fails.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("creating a pipe");
    drop(reader);
    writer.into()
}

/// Runs `cmd` with its stdout (and with `stderr_too` its stderr) going into a closed pipe, and
/// checks that it ended quietly.
fn survives_closed_pipe(what: &str, mut cmd: Command, stderr_too: bool) {
    cmd.stdin(Stdio::null()).stdout(closed_pipe());
    if stderr_too {
        cmd.stderr(closed_pipe());
    } else {
        cmd.stderr(Stdio::piped());
    }
    let out = cmd.output().expect("running cortexfit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || out.status.signal() == Some(SIGPIPE),
        "{what}: ended with {:?} (expected success or SIGPIPE)\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {stderr}"
    );
}

fn with(args: &[&str], paths: &[(&str, &Path)]) -> Command {
    let mut cmd = cortexfit();
    cmd.args(args);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    cmd
}

#[test]
fn every_printing_command_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());
    let run = dir.path().join("run");
    let mut train = with(
        &["train", "--preset", "lurz2020"],
        &[("--data", &data), ("--out", &run)],
    );
    train.args(TINY).args([
        "--set",
        "trainer.max_epochs=1",
        "--seed",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]);
    run_ok(&mut train);

    survives_closed_pipe("--help", with(&["--help"], &[]), false);
    survives_closed_pipe("--version", with(&["--version"], &[]), false);
    survives_closed_pipe("info --help", with(&["info", "--help"], &[]), false);
    let mut info = with(&["info"], &[]);
    info.arg(&data);
    survives_closed_pipe("info", info, false);
    survives_closed_pipe(
        "config",
        with(&["config", "--preset", "lurz2020"], &[]),
        false,
    );
    let sim2 = dir.path().join("sim2");
    let mut sim = with(&["simulate"], &[("--out", &sim2)]);
    sim.args([
        "--neurons",
        "5",
        "--train-images",
        "20",
        "--validation-images",
        "5",
    ])
    .args(["--test-images", "2", "--repeats", "2"]);
    survives_closed_pipe("simulate", sim, false);
    for extra in [&[][..], &["--json"][..]] {
        let mut eval = with(&["evaluate"], &[("--run", &run), ("--data", &data)]);
        eval.args(["--tier", "test", "--threads", "1"]).args(extra);
        survives_closed_pipe("evaluate", eval, false);
    }
    let mut predict = with(
        &["predict"],
        &[
            ("--run", &run),
            ("--data", &data),
            ("--out", &dir.path().join("pred.npy")),
        ],
    );
    predict.args(["--threads", "1"]);
    survives_closed_pipe("predict", predict, false);
    let mut bench = with(
        &["bench", "--batch", "2", "--neurons", "4", "--steps", "1"],
        &[],
    );
    bench
        .args(["--warmup", "0", "--threads", "1"])
        .args(["--preset", "lurz2020"]);
    survives_closed_pipe("bench", bench, false);

    // Commands that report on stderr: `2>&1 | head` closes that too.
    let mut train = with(
        &["train", "--preset", "lurz2020"],
        &[("--data", &data), ("--out", &dir.path().join("run2"))],
    );
    train.args(TINY).args(["--seed", "1", "--threads", "1"]);
    survives_closed_pipe("train", train, true);
    let mut transfer = with(
        &["transfer"],
        &[
            ("--core", &run),
            ("--data", &data),
            ("--out", &dir.path().join("transferred")),
        ],
    );
    transfer.args(TINY).args(["--seed", "1", "--threads", "1"]);
    survives_closed_pipe("transfer", transfer, true);
    let mut experiment = with(
        &["experiment", "data-efficiency", "--config", "lurz2020"],
        &[("--data", &data), ("--out", &dir.path().join("exp"))],
    );
    experiment
        .args([
            "--images",
            "50",
            "--conditions",
            "direct",
            "--seeds",
            "1",
            "--threads",
            "1",
        ])
        .args(TINY);
    survives_closed_pipe("experiment", experiment, true);
}
