#!/usr/bin/env python3
"""How close a training run comes to the time its FLOPs cost at the adapter's best matmul rate:
a whole `fer train` run (10 epochs by default) against FLOPs / rate, for the Linear-only models.

    cargo build --release
    python3 scripts/train_ratio.py --data ../shared/data/fer2013            # the mlp, 10 epochs
    python3 scripts/train_ratio.py --data ../shared/data/fer2013 --model softmax --runs 3

The best rate is `fer bench matmul`'s (as scripts/kernel_share.py measures it), taken right
before and right after the run, the higher of the two counting: a software adapter sharing its
cores swings by more than the ratio's margin, so the rate is measured around the run it judges.
The same swings slow whole epochs, so each run also reports its quietest reading: the run with
every epoch as fast as its fastest one (as kernel_share.py's quietest step), the adapter's own
figure once what else shares the cores is taken out.

FLOPs come from the architecture fer records in metrics.json: per training image, each Linear
layer's forward product and weight gradient (2·in·out each) and the input gradient of every
layer but the first (fer never computes the first one); per validation image, the forward
products. Batch norm, dropout, the loss and the optimizer count as overhead: they are what the
ratio is there to expose.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from kernel_share import best_matmul_rate

PIXELS = 48 * 48
CLASSES = 7


def linear_layers(model, architecture):
    """(inputs, outputs) of each Linear layer, first to last."""
    if model == "softmax":
        widths = [PIXELS, CLASSES]
    else:
        widths = [PIXELS, *architecture["mlp_hidden"], CLASSES]
    return list(zip(widths, widths[1:]))


def flops(layers, train_images, val_images, epochs):
    forward = sum(2 * i * o for i, o in layers)
    input_gradients = sum(2 * i * o for i, o in layers[1:])
    per_train_image = 2 * forward + input_gradients
    return epochs * (train_images * per_train_image + val_images * forward)


def quietest_seconds(wall, history):
    """The run's wall time with every epoch as fast as its fastest."""
    epochs = [epoch["seconds"] for epoch in history]
    return wall - sum(epochs) + len(epochs) * min(epochs)


def measure(args):
    before = best_matmul_rate(args.binary)
    with tempfile.TemporaryDirectory() as results:
        command = [args.binary, "train", "--model", args.model, "--data", args.data,
                   "--epochs", str(args.epochs), "--quiet", "--results", results]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        with open(os.path.join(results, args.model, "metrics.json")) as f:
            metrics = json.load(f)
    after = best_matmul_rate(args.binary)
    rate, case, variant = max(before, after)
    run = metrics["run"]
    total = flops(linear_layers(args.model, run["settings"]["architecture"]),
                  run["train_images"], run["val_images"], args.epochs)
    flop_seconds = total / (rate * 1e9)
    return {
        "gflop": total / 1e9,
        "best_gflops": rate,
        "best_case": f"{case}, {variant}",
        "rates_before_after": [before[0], after[0]],
        "flop_seconds": flop_seconds,
        "run_seconds": wall,
        "epoch_seconds": sum(epoch["seconds"] for epoch in metrics["history"]),
        "ratio": wall / flop_seconds,
        "quietest_ratio": quietest_seconds(wall, metrics["history"]) / flop_seconds,
        "accuracy": metrics["accuracy"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the dataset fer train reads")
    parser.add_argument("--model", default="mlp", choices=["softmax", "mlp"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--binary", default="target/release/fer")
    parser.add_argument("--json", action="store_true", help="one JSON line per run")
    args = parser.parse_args()

    runs = []
    for _ in range(args.runs):
        run = measure(args)
        runs.append(run)
        if args.json:
            json.dump({"model": args.model, "epochs": args.epochs, **run}, sys.stdout)
            print()
            continue
        print(f"{args.model}, {args.epochs} epochs: {run['gflop']:.0f} GFLOP at the best "
              f"{run['best_gflops']:.2f} GFLOP/s ({run['best_case']}; "
              f"{run['rates_before_after'][0]:.2f} before, {run['rates_before_after'][1]:.2f} "
              f"after) = {run['flop_seconds']:.1f} s; the run took {run['run_seconds']:.1f} s "
              f"({run['epoch_seconds']:.1f} s in epochs): {run['ratio']:.2f}× "
              f"(quietest {run['quietest_ratio']:.2f}×), accuracy {run['accuracy']:.4f}")
    if len(runs) > 1 and not args.json:
        ratios = sorted(run["ratio"] for run in runs)
        print(f"{len(runs)} runs: {ratios[0]:.2f}× to {ratios[-1]:.2f}×, "
              f"median {statistics.median(ratios):.2f}×")


if __name__ == "__main__":
    main()
