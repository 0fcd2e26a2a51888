"""Runs an ONNX file fer exported in ONNX Runtime and compares its class probabilities with
`fer eval --predictions` on the same images.

    fer export --model resnet --checkpoint results/resnet/model.safetensors --onnx resnet.onnx
    fer eval --model resnet --checkpoint results/resnet/model.safetensors --data DATA \
        --split val --predictions predictions.csv
    python3 scripts/onnx_check.py resnet.onnx predictions.csv DATA --split val

The images must already be at the model's size and lossless (PNG; scripts/png_subset.py makes
such a folder), so both read the same pixels. Exits 1 when any probability differs by more
than --tolerance.
"""

import argparse
import csv
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image


def images_in_fer_order(root):
    """Class folders sorted by name, files sorted within each: the order fer evaluates."""
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [
        path
        for class_dir in classes
        for path in sorted(p for p in class_dir.iterdir() if not p.name.startswith("."))
    ]


def pixels(path, channels, height, width):
    """The image as fer reads it at the model's spec: grey, or RGB with a grey image's one
    channel three times; values 0..255 as float32, [channels, height, width]."""
    image = Image.open(path)
    if image.size != (width, height):
        raise SystemExit(f"{path} is {image.size[0]}x{image.size[1]}; the model reads {width}x{height}")
    if channels == 1:
        array = np.asarray(image.convert("L"), dtype=np.float32)[None]
    elif image.mode in ("L", "LA", "I", "I;16"):
        array = np.repeat(np.asarray(image.convert("L"), dtype=np.float32)[None], 3, axis=0)
    else:
        array = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    return array


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("predictions", type=Path, help="fer eval --predictions CSV")
    parser.add_argument("data", type=Path, help="the dataset root fer eval read")
    parser.add_argument("--split", default="val")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    session = onnxruntime.InferenceSession(str(args.onnx), providers=["CPUExecutionProvider"])
    _, channels, height, width = session.get_inputs()[0].shape
    paths = images_in_fer_order(args.data / args.split)
    with open(args.predictions) as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(paths):
        raise SystemExit(f"{args.predictions} has {len(rows)} rows; {args.data / args.split} has {len(paths)} images")
    columns = [c for c in rows[0] if c.startswith("p_")]
    fer_probabilities = np.array([[float(row[c]) for c in columns] for row in rows])

    outputs = []
    for start in range(0, len(paths), args.batch):
        batch = np.stack([pixels(p, channels, height, width) for p in paths[start : start + args.batch]])
        outputs.append(session.run(["probabilities"], {"pixels": batch})[0])
    onnx_probabilities = np.concatenate(outputs)

    difference = np.abs(onnx_probabilities - fer_probabilities)
    same = (onnx_probabilities.argmax(1) == fer_probabilities.argmax(1)).mean()
    print(
        f"{args.onnx.name}: {len(paths)} images, max |dp| {difference.max():.2e}, "
        f"same prediction {same:.2%} (fer's CSV rounds to 1e-6)"
    )
    if difference.max() > args.tolerance:
        worst = int(difference.max(1).argmax())
        raise SystemExit(f"{paths[worst]}: |dp| {difference[worst].max():.2e} > {args.tolerance}")


if __name__ == "__main__":
    main()
