#!/usr/bin/env python3
"""The PyTorch side of the time-to-accuracy benchmark (issue #17 item 3): the lurz2020 model fitted
to a static FileTree dataset (e.g. the real scan in ../shared/data) with neuralpredictors' own
pieces — FileTreeDataset + NeuroNormalizer (images excluded), SE2dCore + FullGaussian2d with the
cortex grid predictor, PoissonLoss with the √(M/B) scale, Adam, `early_stopping` driving a
`ReduceLROnPlateau` (REFERENCE.md §1.7, §3.1, §3.5, §4) — printing one JSON line per epoch with
the wall time since the start, so the time to reach a validation correlation can be read off and
compared with `cortexfit train --preset lurz2020` (its log.jsonl) on the same machine.

Set-up as for torch_reference.py (`pip install torch neuralpredictors torchvision pillow`).

Usage:
    python3 bench/torch_fit.py --data ../shared/data/lurz2020_static20457-5-9 --threads 2 \
        [--seed 1] [--max-epochs 200] [--max-minutes M] [--target 0.2949] \
        [--layout channels_last|default] > torch_fit.jsonl

`--target C` stops at the first epoch whose validation correlation reaches C (the time to
accuracy); without it the fit runs to early stopping like the reference trainer. Differences from
the paper's code (neuralpredictors v0.0.1), stated: this is neuralpredictors 0.3.0 (Gaussian
features start at 1/c, PoissonLoss ε 1e-8); the readout bias starts at the mean response of the
first training batch as the Lurz builder does.
"""
import argparse
import collections
import collections.abc
import json
import time

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence"):
    setattr(collections, _name, getattr(collections.abc, _name))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data.sampler import SubsetRandomSampler  # noqa: E402

from torch_reference import lurz2020_core  # noqa: E402


def loaders(path, batch_size, seed):
    from neuralpredictors.data.datasets import FileTreeDataset
    from neuralpredictors.data.samplers import SubsetSequentialSampler
    from neuralpredictors.data.transforms import NeuroNormalizer, ToTensor

    dataset = FileTreeDataset(path, "images", "responses")
    dataset.transforms.extend([NeuroNormalizer(dataset, exclude=["images"]), ToTensor(False)])
    tiers = dataset.trial_info.tiers
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(
        dataset,
        sampler=SubsetRandomSampler(np.where(tiers == "train")[0], generator=generator),
        batch_size=batch_size,
    )
    validation = DataLoader(
        dataset,
        sampler=SubsetSequentialSampler(np.where(tiers == "validation")[0]),
        batch_size=batch_size,
    )
    return dataset, train, validation


def build(dataset, first_batch_responses):
    """REFERENCE.md 3.1, the paper's configuration, on the dataset's neurons."""
    from neuralpredictors.layers.readouts import FullGaussian2d

    core = lurz2020_core()
    grid = dataset.neurons.cell_motor_coordinates[:, :2].astype(np.float32)
    grid = grid - grid.mean(axis=0)
    grid = grid / np.abs(grid).max()
    shape = core(torch.zeros(1, 1, *dataset[0].images.shape[-2:])).shape[1:]
    readout = FullGaussian2d(
        in_shape=tuple(shape), outdims=grid.shape[0], bias=True, init_mu_range=0.55,
        init_sigma=0.4, gauss_type="full", gamma_readout=2.439,
        grid_mean_predictor={"hidden_layers": 0, "hidden_features": 0, "final_tanh": False},
        source_grid=grid,
    )
    readout.bias.data = first_batch_responses.mean(0)
    return torch.nn.ModuleDict({"core": core, "readout": readout})


MEMORY_FORMAT = torch.contiguous_format


def forward(model, images):
    images = images.contiguous(memory_format=MEMORY_FORMAT)
    return F.elu(model["readout"](model["core"](images))) + 1


def correlation(model, loader):
    """Mean over neurons of the single-trial correlation (the early-stopping objective)."""
    with torch.no_grad():
        pred, resp = [], []
        for images, responses in loader:
            pred.append(forward(model, images))
            resp.append(responses)
    p, r = torch.cat(pred).double(), torch.cat(resp).double()
    p, r = p - p.mean(0), r - r.mean(0)
    c = (p * r).sum(0) / (p.norm(dim=0) * r.norm(dim=0) + 1e-16)
    return float(torch.nan_to_num(c).mean())


def main():
    from neuralpredictors.measures.modules import PoissonLoss
    from neuralpredictors.training import early_stopping

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--target", type=float)
    ap.add_argument("--layout", choices=["default", "channels_last"], default="channels_last",
                    help="activation layout (channels_last: PyTorch's faster one for this model's "
                    "training step on CPU, see bench/compare.py)")
    args = ap.parse_args()
    global MEMORY_FORMAT
    if args.layout == "channels_last":
        MEMORY_FORMAT = torch.channels_last
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    start = time.perf_counter()
    dataset, train, validation = loaders(args.data, 64, args.seed)
    model = build(dataset, next(iter(train))[1]).to(memory_format=MEMORY_FORMAT)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.3, patience=5, threshold=1e-6, threshold_mode="abs",
        min_lr=1e-4,
    )
    criterion = PoissonLoss(avg=False)
    trials = len(dataset)
    print(json.dumps({"epoch": 0, "seconds": round(time.perf_counter() - start, 2),
                      "validation_correlation": correlation(model.eval(), validation)}), flush=True)
    model.train()
    stopper = early_stopping(
        model, lambda m: correlation(m, validation), interval=1, patience=5,
        max_iter=args.max_epochs, maximize=True, tolerance=1e-6, restore_best=True,
        scheduler=scheduler, lr_decay_steps=3,
    )
    for epoch, objective in stopper:
        if epoch > 1:
            line = {"epoch": epoch - 1, "seconds": round(time.perf_counter() - start, 2),
                    "validation_correlation": objective, "lr": optimizer.param_groups[0]["lr"]}
            print(json.dumps(line), flush=True)
            if args.target is not None and objective >= args.target:
                return
        if args.max_minutes is not None and time.perf_counter() - start > 60 * args.max_minutes:
            return
        optimizer.zero_grad()
        for images, responses in train:
            scale = (trials / images.shape[0]) ** 0.5
            loss = scale * criterion(forward(model, images), responses)
            loss = loss + model["core"].regularizer() + model["readout"].regularizer()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    final = correlation(model.eval(), validation)
    print(json.dumps({"final": True, "seconds": round(time.perf_counter() - start, 2),
                      "best_validation_correlation": final}), flush=True)


if __name__ == "__main__":
    main()
