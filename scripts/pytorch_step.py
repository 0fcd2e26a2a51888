#!/usr/bin/env python3
"""Times one training step of a model in fer and in PyTorch in the same run, at the same batch
size and architecture, and prints the ratio.

    cargo build --release
    python3 scripts/pytorch_step.py --model mlp            # PyTorch on CUDA if present, else CPU
    python3 scripts/pytorch_step.py --model cnn --full     # the study's cnn, not the scaled one

fer's figure comes from `fer bench step --json` (wall time of one submitted step); PyTorch's
from the same recipe (Adam, or SGD for softmax), fp32 with TF32 off, timed after warm-up with
the device synchronised.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

from fer_models import cnn_model, mlp_model, softmax_model


def fer_step(binary, model, batch, steps, full):
    command = [binary, "bench", "step", "--model", model, "--batch", str(batch),
               "--steps", str(steps), "--json"]
    if full:
        command.append("--full")
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    row = next(m for m in report["measurements"] if m["batch"] == batch)
    return report, row["step_ms"]


def torch_step_ms(model_name, architecture, batch, device, steps):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if model_name == "softmax":
        model = softmax_model()
    elif model_name == "mlp":
        model = mlp_model(architecture["mlp_hidden"], architecture["mlp_dropout"])
    else:
        model = cnn_model(architecture["cnn_channels"], architecture["cnn_hidden"],
                          architecture["cnn_dropout"])
    model = model.to(device).train()
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.01) if model_name == "softmax"
                 else torch.optim.Adam(model.parameters(), lr=1e-3))
    x = torch.randn(batch, 1, 48, 48, device=device)
    y = torch.randint(0, 7, (batch,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["softmax", "mlp", "cnn"], required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps, on both sides")
    parser.add_argument("--full", action="store_true", help="the study's cnn, even on a CPU adapter")
    parser.add_argument("--fer", default=os.path.join("target", "release", "fer"))
    args = parser.parse_args()

    report, fer_ms = fer_step(args.fer, args.model, args.batch, args.steps, args.full)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch_ms = torch_step_ms(args.model, report["architecture"], args.batch, device, args.steps)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    if report.get("scaled"):
        print(f"note: {report['scaled']}")
    print(f"{args.model} training step, batch {args.batch}")
    print(f"  fer      {fer_ms:9.2f} ms   ({report['adapter']['name']}, {report['adapter']['backend']})")
    print(f"  pytorch  {torch_ms:9.2f} ms   (torch {torch.__version__}, {where})")
    print(f"  fer / pytorch = {fer_ms / torch_ms:.2f}")
    json.dump({"model": args.model, "batch": args.batch, "fer_ms": fer_ms, "pytorch_ms": torch_ms,
               "fer_adapter": report["adapter"]["name"], "pytorch_device": where,
               "ratio": fer_ms / torch_ms}, sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
