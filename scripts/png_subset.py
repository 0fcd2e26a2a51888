"""Copies the first N images per class of a class-folder dataset's splits as PNG files.

PNG is lossless, so fer and a Python reader (PIL, for ONNX Runtime or PyTorch) see the same
pixels; two JPEG decoders may differ by one level.

    python3 scripts/png_subset.py ../shared/data/fer2013 /tmp/fer-png --per-class 20
"""

import argparse
from pathlib import Path

from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a dataset root with split/class/image files")
    parser.add_argument("target", type=Path)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--splits", default="train,val")
    args = parser.parse_args()
    for split in args.splits.split(","):
        for class_dir in sorted((args.source / split).iterdir()):
            if not class_dir.is_dir():
                continue
            out = args.target / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for path in sorted(class_dir.iterdir())[: args.per_class]:
                Image.open(path).save(out / (path.stem + ".png"))
    print(f"wrote {args.target}")


if __name__ == "__main__":
    main()
