"""The learning rates PyTorch's schedulers give, as Rust constants for tests/schedules.rs.

Run once with torch installed: `python3 scripts/schedule_reference.py`; paste its output into
tests/schedules.rs. Each sequence is the lr of the optimizer before every `scheduler.step()`:
per epoch for step, multistep, exponential and plateau, per training step for cosine-with-warmup
and one-cycle (as fer applies them).
"""

import torch
from torch.optim import SGD
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)


def optimizer(lr):
    return SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def sequence(opt, scheduler, count, metrics=None):
    lrs = []
    for i in range(count):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[i])
    return lrs


def emit(name, lrs, comment):
    print(f"/// {comment}")
    values = ", ".join(repr(float(x)) for x in lrs)
    print(f"const {name}: [f64; {len(lrs)}] = [{values}];")


opt = optimizer(0.1)
emit("STEP", sequence(opt, StepLR(opt, step_size=3, gamma=0.5), 10),
     "StepLR(step_size=3, gamma=0.5), lr 0.1, 10 epochs.")

opt = optimizer(0.1)
emit("MULTISTEP", sequence(opt, MultiStepLR(opt, milestones=[2, 5, 6], gamma=0.1), 9),
     "MultiStepLR(milestones=[2, 5, 6], gamma=0.1), lr 0.1, 9 epochs.")

opt = optimizer(0.01)
emit("EXPONENTIAL", sequence(opt, ExponentialLR(opt, gamma=0.9), 10),
     "ExponentialLR(gamma=0.9), lr 0.01, 10 epochs.")

# Cosine with warmup: 4 epochs of 3 steps, 1 epoch (3 steps) of LinearLR warmup, then cosine
# over the remaining 9 steps down to eta_min.
opt = optimizer(0.01)
warmup = LinearLR(opt, start_factor=1 / 3, total_iters=3)
cosine = CosineAnnealingLR(opt, T_max=9, eta_min=1e-4)
emit("COSINE_WARMUP", sequence(opt, SequentialLR(opt, [warmup, cosine], milestones=[3]), 12),
     "SequentialLR([LinearLR(start_factor=1/3, total_iters=3), CosineAnnealingLR(T_max=9, "
     "eta_min=1e-4)], milestones=[3]), lr 0.01, per step: 4 epochs of 3 steps, warmup 1 epoch.")

opt = optimizer(0.01)
emit("COSINE", sequence(opt, CosineAnnealingLR(opt, T_max=10), 10),
     "CosineAnnealingLR(T_max=10), lr 0.01, per step: 5 epochs of 2 steps, no warmup.")

opt = optimizer(0.01)
emit("ONE_CYCLE", sequence(opt, OneCycleLR(opt, max_lr=0.01, total_steps=25, cycle_momentum=False), 25),
     "OneCycleLR(max_lr=0.01, total_steps=25, cycle_momentum=False), its other defaults: "
     "5 epochs of 5 steps.")

opt = optimizer(0.01)
emit("ONE_CYCLE_THREE_PHASE_LINEAR",
     sequence(opt, OneCycleLR(opt, max_lr=0.1, total_steps=20, pct_start=0.25, div_factor=10,
                              final_div_factor=100, three_phase=True, anneal_strategy="linear",
                              cycle_momentum=False), 20),
     "OneCycleLR(max_lr=0.1, total_steps=20, pct_start=0.25, div_factor=10, "
     "final_div_factor=100, three_phase=True, anneal_strategy='linear', cycle_momentum=False).")

PLATEAU_LOSSES = [1.0, 0.9, 0.8995, 0.899, 0.9, 0.85, 0.86, 0.87, 0.88, 0.84, 0.845, 0.85,
                  0.86, 0.87, 0.88, 0.89, 0.9, 0.91]
print(f"/// The validation losses fed to the plateau schedules, one per epoch.")
print(f"const PLATEAU_LOSSES: [f64; {len(PLATEAU_LOSSES)}] = {PLATEAU_LOSSES!r};")
opt = optimizer(0.1)
emit("PLATEAU_MIN_REL",
     sequence(opt, ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.01, cooldown=1,
                                     min_lr=0.02), len(PLATEAU_LOSSES), PLATEAU_LOSSES),
     "ReduceLROnPlateau(factor=0.5, patience=2, threshold=0.01, cooldown=1, min_lr=0.02), "
     "lr 0.1, on PLATEAU_LOSSES.")

PLATEAU_ACCURACIES = [0.2, 0.3, 0.35, 0.36, 0.3, 0.31, 0.5, 0.5, 0.5, 0.55, 0.4, 0.4, 0.4, 0.4]
print(f"/// The validation accuracies fed to the max-mode plateau schedule, one per epoch.")
print(f"const PLATEAU_ACCURACIES: [f64; {len(PLATEAU_ACCURACIES)}] = {PLATEAU_ACCURACIES!r};")
opt = optimizer(0.1)
emit("PLATEAU_MAX_ABS",
     sequence(opt, ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=1, threshold=0.02,
                                     threshold_mode="abs"),
              len(PLATEAU_ACCURACIES), PLATEAU_ACCURACIES),
     "ReduceLROnPlateau(mode='max', factor=0.1, patience=1, threshold=0.02, "
     "threshold_mode='abs'), lr 0.1, on PLATEAU_ACCURACIES.")
