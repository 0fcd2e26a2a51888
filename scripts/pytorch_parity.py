#!/usr/bin/env python3
"""Loads a fer checkpoint into the equivalent PyTorch module and checks that both predict the
same class probabilities for every image of a split.

    fer eval --model mlp --checkpoint results/mlp/model.safetensors --data DIR \
             --split val --predictions fer.csv
    python3 scripts/pytorch_parity.py --model mlp --checkpoint results/mlp/model.safetensors \
             --data DIR --split val --predictions fer.csv

Needs torch, safetensors, pillow and numpy. Reads class folders (DIR/<split>/<class>/*); the
order of images must match fer's (sorted by class, then file name). The model's input spec
(channels, size, per-channel mean and std) is the one `fer models --show MODEL` prints, so the
images reach both sides alike (grey → three equal channels for the RGB models).
"""
import argparse
import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from fer_models import TWINS


def input_spec(fer, model):
    """The input a fer model reads, from the model file fer prints for it."""
    shown = subprocess.run([fer, "models", "--show", model], check=True, capture_output=True,
                           text=True).stdout
    return json.loads(shown)["input"]


def load_split(root, split, spec, classes):
    """The split's images in fer's order (class by class, files by name) with their labels."""
    mode = "L" if spec["channels"] == 1 else "RGB"
    size = (spec["width"], spec["height"])
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = next((d for d in (root / split).iterdir() if d.name.lower() == name.lower()),
                      None)
        for path in sorted(folder.iterdir(), key=lambda p: p.name) if folder else []:
            image = Image.open(path).convert(mode).resize(size, Image.BILINEAR)
            images.append(np.asarray(image, dtype=np.float32).reshape(size[1], size[0], -1))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"]).view(1, -1, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TWINS), required=True)
    parser.add_argument("--fer", default="target/release/fer",
                        help="the fer binary that prints the model's input spec")
    parser.add_argument("--checkpoint", type=pathlib.Path, required=True)
    parser.add_argument("--data", type=pathlib.Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--predictions", type=pathlib.Path, required=True,
                        help="the CSV written by `fer eval --predictions`")
    args = parser.parse_args()

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model = TWINS[args.model].build()
    state = load_file(str(args.checkpoint))
    # strict: fer writes every tensor of the state_dict, num_batches_tracked included.
    model.load_state_dict(state, strict=True)
    model.eval()

    with open(args.predictions) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    # The checkpoint's classes, in its output order: the CSV's p_<class> columns.
    classes = [column[2:] for column in reader.fieldnames if column.startswith("p_")]
    x, labels = load_split(args.data, args.split, input_spec(args.fer, args.model), classes)
    with torch.no_grad():
        probabilities = torch.cat([torch.softmax(model(b), 1) for b in x.split(256)])
    fer_probabilities = torch.tensor([[float(r[f"p_{c}"]) for c in classes] for r in rows])
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
