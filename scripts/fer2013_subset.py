#!/usr/bin/env python3
"""A stratified subset of a class-folder dataset as symlinks, for measuring runs that fit a
software adapter: every Nth image of each class (sorted by file name) from each split.

    python3 scripts/fer2013_subset.py ../shared/data/fer2013 /tmp/fer2013-tenth --train-every 10

keeps a tenth of train/ (2,871 of FER2013's 28,709 images, each class's share unchanged) and,
with --val-every 1 (the default), all of val/, so accuracies compare with full-data runs.
Links, not copies: the data stay where they are, and nothing lands in the repository.
"""
import argparse
import os
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with train/<class>/ and val/<class>/")
    parser.add_argument("out", type=Path, help="new folder (must not exist)")
    parser.add_argument("--train-every", type=int, default=10, help="keep every Nth train image")
    parser.add_argument("--val-every", type=int, default=1, help="keep every Nth val image")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; remove it or name a new folder")
    for split, every in (("train", args.train_every), ("val", args.val_every)):
        total = 0
        for class_dir in sorted(p for p in (args.source / split).iterdir() if p.is_dir()):
            kept = sorted(class_dir.iterdir())[::every]
            target = args.out / split / class_dir.name
            target.mkdir(parents=True)
            for image in kept:
                os.symlink(image.resolve(), target / image.name)
            total += len(kept)
            print(f"{split}/{class_dir.name}: {len(kept)}")
        print(f"{split}: {total} images")


if __name__ == "__main__":
    main()
