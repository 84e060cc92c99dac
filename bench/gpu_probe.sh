#!/usr/bin/env bash
# GPU probe, parity and timing, in two halves (docs/gpu.md):
#
#   bench/gpu_probe.sh build   here, with the Rust toolchain: builds `cortexfit --features gpu` and
#                              the CPU-vs-GPU parity test binary into bench/gpu-bundle/ (git-ignored;
#                              carry it to the GPU machine).
#   bench/gpu_probe.sh run [DATA]
#                              on the GPU machine, which has no internet and no Rust: records what
#                              the machine offers (driver, libcuda, cuBLAS / cuDNN / NVRTC, Vulkan
#                              ICDs, what wgpu enumerates), runs the parity test on the GPU, times
#                              the lurz2020 training step on GPU and CPU and one epoch on the real
#                              dataset DATA (default shared/data/lurz2020_static20457-5-9; skipped,
#                              saying so, where it is absent). Everything goes to $OUT (or
#                              bench/gpu-results/) as probe.txt plus one log per step.
#
# Each step runs under `timeout` and a failing step does not stop the others: the point is to
# record what works and what does not.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=bench/gpu-bundle

build() {
  set -e
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
  mkdir -p "$BUNDLE"
  cargo build --release --locked --features gpu --bin cortexfit
  cp "$CARGO_TARGET_DIR/release/cortexfit" "$BUNDLE/cortexfit"
  # The parity test binary: cargo prints its path as JSON.
  local test_bin
  test_bin=$(cargo test --release --locked --features gpu --test gpu --no-run \
    --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  [ -n "$test_bin" ] || { echo "could not find the gpu test binary" >&2; exit 1; }
  cp "$test_bin" "$BUNDLE/gpu-parity"
  strip "$BUNDLE/cortexfit" "$BUNDLE/gpu-parity" 2>/dev/null || true
  ls -l "$BUNDLE"
  du -sh "$BUNDLE"
}

run() {
  local data="${1:-shared/data/lurz2020_static20457-5-9}"
  local out="${OUT:-bench/gpu-results}"
  mkdir -p "$out"
  local report="$out/probe.txt"
  : >"$report"
  say() { echo "$*" | tee -a "$report"; }
  # step NAME SECONDS COMMAND...: runs it, log in $out/NAME.log, exit status and time in the report.
  step() {
    local name=$1 limit=$2
    shift 2
    say "== $name: $*"
    local start end rc
    start=$(date +%s.%N)
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    say "   exit $rc after $(echo "$end - $start" | bc 2>/dev/null || echo '?') s (log: $name.log)"
    tail -n 40 "$out/$name.log" | sed 's/^/   | /' >>"$report"
    return 0
  }
  [ -x "$BUNDLE/cortexfit" ] && [ -x "$BUNDLE/gpu-parity" ] ||
    { say "no $BUNDLE: run 'bench/gpu_probe.sh build' where the toolchain is, and carry it"; exit 1; }

  say "# cortexfit GPU probe, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm)"
  say "cortexfit --version: $("$BUNDLE/cortexfit" --version 2>&1)"
  say "CPUs: $(nproc); NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES-unset}" \
    "NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES-unset}"

  # What the machine offers.
  step nvidia-smi 60 nvidia-smi
  step nvidia-smi-query 60 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  step libraries 60 bash -c 'ldconfig -p | grep -E "libcuda\.so|libcublas|libcublasLt|libcudnn|libnvrtc|libnvidia-ptxjitcompiler|libvulkan|libnvidia-glcore|libnvidia-gpucomp|libGLX_nvidia|libEGL_nvidia" || echo "none of them in the ldconfig cache"; ls /usr/local/cuda*/lib64 2>/dev/null | head -50; command -v nvcc && nvcc --version'
  step vulkan-icds 60 bash -c 'for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do echo "$d:"; ls -l "$d" 2>&1; for f in "$d"/*.json; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; done; echo "VK_ICD_FILENAMES=${VK_ICD_FILENAMES-unset} VK_DRIVER_FILES=${VK_DRIVER_FILES-unset}"'
  step vulkaninfo 60 bash -c 'command -v vulkaninfo >/dev/null && vulkaninfo --summary || echo "vulkaninfo not installed"'
  step wgpu-adapters 120 "$BUNDLE/gpu-parity" list_wgpu_adapters --nocapture --test-threads=1

  # Parity (fails instead of skipping where no adapter is found).
  step parity 600 env CORTEXFIT_REQUIRE_GPU=1 "$BUNDLE/gpu-parity" --nocapture --test-threads=1

  # Timing: the lurz2020 training step at the real shapes, GPU then CPU.
  step bench-gpu 600 "$BUNDLE/cortexfit" bench --preset lurz2020 --batch 64 --neurons 5335 --steps 10 --device gpu
  step bench-cpu 600 "$BUNDLE/cortexfit" bench --preset lurz2020 --batch 64 --neurons 5335 --steps 10 --device cpu

  # One epoch on the real dataset.
  if [ -e "$data" ]; then
    rm -rf "$out/epoch-gpu"
    step epoch-gpu 900 "$BUNDLE/cortexfit" train --preset lurz2020 --data "$data" \
      --set trainer.max_epochs=1 --device gpu --out "$out/epoch-gpu"
  else
    say "== epoch-gpu: SKIPPED, no dataset at $data (pass its path: bench/gpu_probe.sh run DATA)"
  fi
  say "done; results in $out"
}

case "${1:-}" in
  build) build ;;
  run) shift; run "$@" ;;
  *) echo "usage: bench/gpu_probe.sh build | run [DATA]" >&2; exit 2 ;;
esac
