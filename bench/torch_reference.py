#!/usr/bin/env python3
"""PyTorch / neuralpredictors reference timings for the lurz2020 model, for side-by-side
comparison with `cortexfit bench` and `cargo bench --bench kernels` (see bench/README.md).

Set-up (PyPI only; the CPU-only wheel index may be unreachable, the default wheel runs on CPU):
    pip install torch neuralpredictors torchvision pillow
neuralpredictors 0.3.0 still imports `collections.Iterable` (removed in Python 3.10); this
script restores those aliases before importing it.

Usage:
    python3 bench/torch_reference.py step    [--threads 2] [--layout default|channels_last] [--reps 5]
    python3 bench/torch_reference.py kernels [--threads 2]
Each prints JSON lines with median milliseconds.
"""
import argparse
import collections
import collections.abc
import json
import statistics
import time

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence"):
    setattr(collections, _name, getattr(collections.abc, _name))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

BATCH, CHANNELS, NEURONS = 64, 64, 5335


def median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def lurz2020_core():
    """REFERENCE.md 3.1: the paper's SE2dCore."""
    from neuralpredictors.layers.cores import SE2dCore

    return SE2dCore(
        input_channels=1, hidden_channels=CHANNELS, input_kern=15, hidden_kern=13, layers=4,
        gamma_input=1.0, skip=0, final_nonlinearity=True, bias=False, momentum=0.9,
        pad_input=False, batch_norm=True, hidden_dilation=1, laplace_padding=None,
        input_regularizer="LaplaceL2norm", stack=-1, se_reduction=32, n_se_blocks=0,
        depth_separable=True, linear=False,
    )


def build_lurz2020(layout):
    """REFERENCE.md 3.1: SE2dCore (paper config) + FullGaussian2d with a cortex grid predictor."""
    from neuralpredictors.layers.readouts import FullGaussian2d

    core = lurz2020_core()
    generator = torch.Generator().manual_seed(0)
    cortex = torch.rand(NEURONS, 2, generator=generator) * 2 - 1
    readout = FullGaussian2d(
        in_shape=(CHANNELS, 22, 50), outdims=NEURONS, bias=True, init_mu_range=0.55,
        init_sigma=0.4, gauss_type="full", gamma_readout=2.439,
        grid_mean_predictor={"hidden_layers": 0,
                             "hidden_features": 0, "final_tanh": False},
        source_grid=cortex.numpy(),
    )
    model = torch.nn.ModuleDict({"core": core, "readout": readout})
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return model


def predict(model, images):
    features = model["core"](images)
    return F.elu(model["readout"](features)) + 1


def time_step(args):
    torch.manual_seed(0)
    model = build_lurz2020(args.layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    images = torch.randn(BATCH, 1, 36, 64)
    if args.layout == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    responses = torch.poisson(torch.full((BATCH, NEURONS), 0.5))

    def train_step():
        model.train()
        optimizer.zero_grad()
        output = predict(model, images)
        loss = (output - responses * torch.log(output + 1e-12)).sum()  # Poisson loss, summed
        loss = loss + model["core"].regularizer() + model["readout"].regularizer()
        loss.backward()
        optimizer.step()

    def eval_batch():
        model.eval()
        with torch.no_grad():
            predict(model, images)

    result = {
        "impl": "pytorch-neuralpredictors", "torch": torch.__version__,
        "layout": args.layout, "threads": torch.get_num_threads(), "batch": BATCH,
        "train_step_ms": median_ms(train_step, args.reps),
        "eval_batch_ms": median_ms(eval_batch, args.reps),
    }
    print(json.dumps(result), flush=True)


def time_kernels(args):
    """The same ops as benches/kernels.rs: forward, and forward + backward (grad of the sum)."""
    torch.manual_seed(0)

    def conv(padding, groups):
        return lambda x, w: F.conv2d(x, w, padding=padding, groups=groups)

    def bn_elu(x, w):
        gamma = w.reshape(CHANNELS)
        return F.elu(F.batch_norm(x, None, None, gamma, torch.zeros_like(gamma), training=True))

    ops = [
        ("input conv 1→64 15×15 valid (36×64)", (BATCH, 1, 36, 64), (CHANNELS, 1, 15, 15), False, conv(0, 1)),
        ("pointwise 1×1 64→64 (22×50)", (BATCH, CHANNELS, 22, 50), (CHANNELS, CHANNELS, 1, 1), True, conv(0, 1)),
        ("depthwise 13×13 pad 6 (22×50)", (BATCH, CHANNELS, 22, 50), (CHANNELS, 1, 13, 13), True, conv(6, CHANNELS)),
        ("batch norm (train) + ELU (64×22×50)", (BATCH, CHANNELS, 22, 50), (1, 1, 1, CHANNELS), True, bn_elu),
    ]
    for layout in ("default", "channels_last"):
        for name, x_shape, w_shape, input_grad, fn in ops:
            x = torch.randn(x_shape)
            w = torch.randn(w_shape) * 0.1
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
                w = w.contiguous(memory_format=torch.channels_last)

            def forward():
                with torch.no_grad():
                    fn(x, w).sum().item()

            def training():
                xg = x.detach().requires_grad_(input_grad)
                wg = w.detach().requires_grad_(True)
                fn(xg, wg).sum().backward()
                wg.grad.sum().item()

            print(json.dumps({
                "op": name, "layout": layout, "threads": torch.get_num_threads(),
                "forward_ms": median_ms(forward, args.reps),
                "forward_backward_ms": median_ms(training, args.reps),
            }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["step", "kernels"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=["default", "channels_last"], default="default")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    time_step(args) if args.what == "step" else time_kernels(args)


if __name__ == "__main__":
    main()
