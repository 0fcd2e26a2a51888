#!/usr/bin/env python3
"""A 6-class 222×222 RGB class folder from FER2013, for keras_cnn (the Keras study read a
6-class face folder at 222×222 RGB, MODELS.md C).

    python3 scripts/fer2013_six_class.py ../shared/data/fer2013 /tmp/fer2013-six-class

FER2013 without `disgust` (the class with 436 training faces), each 48×48 grey face upscaled
to 222×222 bilinearly (Keras's resize) and stored as RGB PNG with three equal channels (lossless,
so the upscale is the only change). A seeded sample of each class: by default 200 train and 50
val images per class (1,200 / 300). That size is what a software adapter affords: one
keras_cnn training image costs 3 × 0.77 GFLOP at full width (its 222×222 layers shrink least
with the width), and at an eighth of the width an epoch of 1,200 took 135–225 s on lavapipe
(2 cores shared with other builds); equal counts make chance 1/6, and 300 val images put one
run's accuracy within about ±3 points (one standard error at 50%).
"""
import argparse
import random
from pathlib import Path

from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="FER2013 with train/<class>/ and val/<class>/")
    parser.add_argument("out", type=Path, help="new folder (must not exist)")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--drop", default="disgust", help="the class left out")
    parser.add_argument("--size", type=int, default=222)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; remove it or name a new folder")
    rng = random.Random(args.seed)
    for split, count in (("train", args.train_per_class), ("val", args.val_per_class)):
        classes = sorted(p for p in (args.source / split).iterdir() if p.is_dir())
        kept = [c for c in classes if c.name != args.drop]
        if len(kept) == len(classes):
            parser.error(f"{args.source / split} has no class folder named {args.drop!r}")
        for class_dir in kept:
            images = sorted(class_dir.iterdir())
            if len(images) < count:
                parser.error(f"{class_dir} has {len(images)} images, fewer than {count}")
            target = args.out / split / class_dir.name
            target.mkdir(parents=True)
            for image in rng.sample(images, count):
                with Image.open(image) as face:
                    big = face.convert("L").resize((args.size, args.size), Image.BILINEAR)
                big.convert("RGB").save(target / (image.stem + ".png"))
        print(f"{split}: {len(kept)} classes × {count} images at {args.size}×{args.size} RGB")


if __name__ == "__main__":
    main()
