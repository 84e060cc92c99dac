"""Overhead of predicting through Python against `cortexfit predict` (issue #13, item 6).

    python python/bench/predict_overhead.py --run RUN --data DATASET [--tier validation]
        [--threads 1] [--repeats 3] [--cli target/release/cortexfit]

Times, alternating and taking each one's best of --repeats:
  cli:    `cortexfit predict --run RUN --data DATASET --tier T --out F.npy` (whole process:
          open the run, load and normalize the data, predict, write .npy and .csv);
  python: a fresh interpreter doing `load_run(RUN).predict_tier(DATASET, T)` + `np.save`
          (the same work through the package, import included, no .csv);
and, inside one process, `Run.predict` on arrays (prediction alone) against `Run.predict_tier`.
Checks that the predictions are equal bit for bit. A benchmark: run it on an idle machine and
state the machine and load with the numbers.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

PY_JOB = """
import sys, numpy as np, cortexfit
cortexfit.set_threads(int(sys.argv[4]))
run = cortexfit.load_run(sys.argv[1])
pred, _ = run.predict_tier(sys.argv[2], sys.argv[3])
np.save(sys.argv[5], pred)
"""


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--tier", default="validation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cli", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "cortexfit"))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    cli_npy, py_npy = os.path.join(tmp, "cli.npy"), os.path.join(tmp, "py.npy")
    cli_cmd = [args.cli, "predict", "--run", args.run, "--data", args.data, "--tier", args.tier,
               "--out", cli_npy, "--threads", str(args.threads)]
    py_cmd = [sys.executable, "-c", PY_JOB, args.run, args.data, args.tier, str(args.threads), py_npy]
    cli_times, py_times = [], []
    for _ in range(args.repeats):
        cli_times.append(timed(cli_cmd))
        py_times.append(timed(py_cmd))
    same = np.load(cli_npy).tobytes() == np.load(py_npy).tobytes()
    shape = np.load(cli_npy).shape

    import cortexfit

    cortexfit.set_threads(args.threads)
    run = cortexfit.load_run(args.run)
    x = run.inputs(args.data, args.tier)
    arrays, tier = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        a = run.predict(x["images"], x["behavior"], x["pupil_center"])
        arrays.append(time.perf_counter() - t)
        t = time.perf_counter()
        run.predict_tier(args.data, args.tier)
        tier.append(time.perf_counter() - t)
    same_arrays = a.tobytes() == np.load(cli_npy).tobytes()
    print(f"{shape[0]} trials × {shape[1]} neurons ({args.tier} tier), {args.threads} thread(s), best of {args.repeats}")
    print(f"cortexfit predict (process)        {min(cli_times):7.2f} s   all {['%.2f' % t for t in cli_times]}")
    print(f"python load_run+predict_tier       {min(py_times):7.2f} s   all {['%.2f' % t for t in py_times]}"
          f"   ratio {min(py_times) / min(cli_times):.3f}")
    print(f"in-process Run.predict(arrays)     {min(arrays):7.2f} s   Run.predict_tier {min(tier):7.2f} s")
    print(f"bit-for-bit equal to the CLI's .npy: predict_tier {same}, predict(arrays) {same_arrays}")


if __name__ == "__main__":
    main()
