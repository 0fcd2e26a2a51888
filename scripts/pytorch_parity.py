#!/usr/bin/env python3
"""Loads a fer checkpoint into the equivalent PyTorch module and checks that both predict the
same class probabilities for every image of a split.

    fer eval --model mlp --checkpoint results/mlp/model.safetensors --data DIR \
             --split val --predictions fer.csv
    python3 scripts/pytorch_parity.py --model mlp --checkpoint results/mlp/model.safetensors \
             --data DIR --split val --predictions fer.csv

Needs torch, safetensors, pillow and numpy. Reads class folders (DIR/<split>/<class>/*); the
order of images must match fer's (sorted by class, then file name).
"""
import argparse
import csv
import pathlib
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from fer_models import CLASSES, cnn_model, mlp_model, softmax_model


def load_split(root, split):
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        folder = next((d for d in (root / split).iterdir() if d.name.lower() == name), None)
        for path in sorted(folder.iterdir(), key=lambda p: p.name) if folder else []:
            image = Image.open(path).convert("L").resize((48, 48), Image.BILINEAR)
            images.append(np.asarray(image, dtype=np.float32))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).unsqueeze(1) / 255.0
    return (x - 0.5) / 0.5, torch.tensor(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["softmax", "mlp", "cnn"], required=True)
    parser.add_argument("--checkpoint", type=pathlib.Path, required=True)
    parser.add_argument("--data", type=pathlib.Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--predictions", type=pathlib.Path, required=True,
                        help="the CSV written by `fer eval --predictions`")
    args = parser.parse_args()

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model = {"softmax": softmax_model, "mlp": mlp_model, "cnn": cnn_model}[args.model]()
    state = load_file(str(args.checkpoint))
    # strict: fer writes every tensor of the state_dict, num_batches_tracked included.
    model.load_state_dict(state, strict=True)
    model.eval()

    x, labels = load_split(args.data, args.split)
    with torch.no_grad():
        probabilities = torch.cat([torch.softmax(model(b), 1) for b in x.split(256)])
    with open(args.predictions) as f:
        rows = list(csv.DictReader(f))
    fer_probabilities = torch.tensor([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    if len(rows) != len(x):
        sys.exit(f"fer predicted {len(rows)} images, the split has {len(x)}")
    difference = (probabilities - fer_probabilities).abs().max().item()
    torch_accuracy = (probabilities.argmax(1) == labels).float().mean().item()
    agree = (probabilities.argmax(1) == fer_probabilities.argmax(1)).float().mean().item()
    print(f"images {len(x)}  pytorch accuracy {torch_accuracy:.4f}  "
          f"same prediction {agree:.4f}  max |Δp| {difference:.2e}")
    # The two JPEG decoders (image crate, Pillow) may differ by a grey level here and there.
    sys.exit(0 if difference < 1e-2 and agree > 0.999 else 1)


if __name__ == "__main__":
    main()
