#!/usr/bin/env python3
"""How busy each thread of a `cortexfit bench` training run is: the serial share of a step.

Samples the run with `perf record` (every thread, at 999 Hz), then cuts the steady part (the last
70 % of the samples, after loading and warm-up) into 10 ms slices and counts, per slice, how many
of the rayon worker threads were busy (a thread counts as busy in a slice when it has at least 40 %
of the samples a fully busy thread would have). A slice where fewer workers than `--threads` are
busy is time the step ran (partly) serially: the main thread building the autodiff graph,
allocating, or a kernel that does not split its work evenly. Idle rayon workers spin for a while
before they sleep, so short serial stretches on the main thread (burn ops between kernels) leave
both workers looking busy: the main thread's share is the better measure of those.

    python3 bench/thread_profile.py [--threads 2] [--steps 10] [--cortexfit target/release/cortexfit]

Needs `perf` (apt-get install linux-perf). Run it on an otherwise idle machine: another process
on the same cores shows up as idle workers.
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
HZ = 999
SLICE_S = 0.010


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_bin = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "target"))
    parser.add_argument("--cortexfit", default=os.path.join(default_bin, "release", "cortexfit"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--preset", default="lurz2020")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        cmd = ["perf", "record", "-q", "-F", str(HZ), "-o", data, args.cortexfit, "bench",
               "--preset", args.preset, "--threads", str(args.threads), "--steps", str(args.steps)]
        print("$", " ".join(cmd), file=sys.stderr, flush=True)
        bench = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        script = subprocess.run(["perf", "script", "-i", data, "-F", "pid,tid,time"], check=True,
                                capture_output=True, text=True).stdout
    samples = []
    for line in script.splitlines():
        parts = line.replace("/", " ").split()
        if len(parts) < 3:
            continue
        pid, tid, time = int(parts[0]), int(parts[1]), float(parts[2].rstrip(":"))
        samples.append((pid, tid, time))
    if not samples:
        sys.exit("perf recorded no samples")
    main_tid = samples[0][0]
    per_thread = collections.Counter(tid for _, tid, _ in samples)
    workers = [tid for tid, _ in per_thread.most_common() if tid != main_tid][: args.threads]
    times = sorted(t for _, _, t in samples)
    start = times[int(0.3 * len(times))]
    slices = collections.defaultdict(collections.Counter)
    for _, tid, t in samples:
        if t >= start:
            slices[int((t - start) / SLICE_S)][tid] += 1
    busy_min = 0.4 * HZ * SLICE_S
    n = max(slices) + 1 if slices else 0
    busy_count = collections.Counter()
    main_busy = 0
    for k in range(n):
        c = slices.get(k, collections.Counter())
        busy_count[sum(1 for w in workers if c[w] >= busy_min)] += 1
        main_busy += c[main_tid] >= busy_min
    total = sum(per_thread.values())
    print(f"bench: {bench.strip().splitlines()[-1] if bench.strip() else '(no output)'}")
    print(f"threads by share of all {total} samples: " + ", ".join(
        f"{'main' if tid == main_tid else 'worker' if tid in workers else 'other'} {100 * c / total:.1f}%"
        for tid, c in per_thread.most_common(args.threads + 2)))
    print(f"steady part: {n} slices of {SLICE_S * 1e3:.0f} ms")
    for k in range(args.threads, -1, -1):
        print(f"  {k} of {args.threads} workers busy: {100 * busy_count[k] / max(n, 1):5.1f}% of the time")
    print(f"  main thread busy: {100 * main_busy / max(n, 1):5.1f}% of the time")


if __name__ == "__main__":
    main()
