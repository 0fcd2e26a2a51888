#!/usr/bin/env python3
"""Prints, as JSON, the shape of every fer model's PyTorch twin (scripts/fer_models.py): the
figures the Rust tests hold fer's built-in models against. Regenerate the fixture with

    python3 scripts/model_specs.py > tests/fixtures/model_specs.json

For each model, at its study's defaults:
- `input`: [channels, height, width] of one image; `classes`;
- `state_dict`: every entry in PyTorch's order, with its shape, dtype and kind: `trainable`
  for a parameter, `buffer` for a batch norm's running statistics and `num_batches_tracked`;
- `parameters`: the trainable count (what the studies report), checked against MODELS.md;
- `flops`: forward FLOPs for one image, 2 × the multiply-adds of every Conv2d, ConvTranspose2d
  and Linear the output depends on, and `flops_by_layer`, the same per module. Bias additions,
  batch norm, activations, pooling, dropout, concatenation and residual adds are not counted;
- `unused`: the modules that hold parameters (so checkpoints carry them) but that the output
  does not depend on, so the twin never runs them and they count no FLOPs: GoogleNet's and
  NewNet's branch1x1, NewNet's `enc_dc.fc`, RogleNet's `final_cnn`.

Counting parameters needs no forward pass; the FLOPs come from forward hooks on one image in
eval mode (seconds on a CPU).
"""
import json
import sys

import torch
from torch import nn

from fer_models import TWINS

# Trainable parameters as MODELS.md gives them; softmax, mlp and cnn as fer reports them.
EXPECTED_PARAMETERS = {
    "softmax": 16_135,
    "mlp": 304_135,
    "cnn": 4_344_711,
    "basic_cnn": 1_187_399,
    "resnet": 2_792_199,
    "googlenet": 100_759,
    "unet": 7_752_535,
    "newnet": 7_880_958,
    "roglenet": 76_833_383,
    "keras_cnn": 1_281_670,
    # MODELS.md gives no figure; worked out by hand for the twin's reading: per block
    # 9·c_in·c_out + c_out + 9·c_out² + c_out + 4·c_out (two convs, two batch norms' γ and β),
    # 9,696 + 55,680 + 221,952 + 886,272, then fc1 32,896 and fc2 903.
    "realtime_cnn": 1_207_399,
}


def multiply_adds(module, inputs, output):
    """Multiply-adds of one call of a Conv2d, ConvTranspose2d or Linear; None for others."""
    if isinstance(module, nn.Conv2d):
        per_output = module.in_channels // module.groups * module.weight[0, 0].numel()
        return output.numel() * per_output
    if isinstance(module, nn.ConvTranspose2d):
        # Every input value is scattered into out_channels × kernel outputs.
        per_input = module.out_channels // module.groups * module.weight[0, 0].numel()
        return inputs[0].numel() * per_input
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return None


def holds_parameters(module):
    return next(module.parameters(recurse=False), None) is not None


def forward_counts(model, input_shape):
    """FLOPs per module on one image, and the parameter-holding modules the forward runs."""
    names = {module: name for name, module in model.named_modules()}
    flops, ran = {}, set()

    def hook(module, inputs, output):
        ran.add(module)
        count = multiply_adds(module, inputs, output)
        if count is not None:
            flops[names[module]] = flops.get(names[module], 0) + 2 * count

    handles = [m.register_forward_hook(hook) for m in model.modules() if holds_parameters(m)]
    with torch.no_grad():
        output = model.eval()(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    in_module_order = {name: flops[name] for name in names.values() if name in flops}
    return output, in_module_order, ran


def unused_modules(model, ran):
    """The outermost modules whose parameter-holding members never ran."""
    unused = []
    for name, module in model.named_modules():
        if any(name.startswith(outer + ".") for outer in unused):
            continue
        members = [m for m in module.modules() if holds_parameters(m)]
        if members and not any(m in ran for m in members):
            unused.append(name)
    return unused


def spec(name, twin):
    model = twin.build()
    trainable = {name for name, _ in model.named_parameters()}
    state_dict = [
        {"name": key, "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."),
         "kind": "trainable" if key in trainable else "buffer"}
        for key, value in model.state_dict().items()
    ]
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert parameters == EXPECTED_PARAMETERS[name], \
        f"{name}: {parameters:,} parameters, MODELS.md says {EXPECTED_PARAMETERS[name]:,}"
    output, flops, ran = forward_counts(model, twin.input_shape)
    assert output.shape == (1, twin.classes), f"{name}: output {tuple(output.shape)}"
    return {
        "input": list(twin.input_shape),
        "classes": twin.classes,
        "parameters": parameters,
        "flops": sum(flops.values()),
        "flops_by_layer": flops,
        "unused": unused_modules(model, ran),
        "state_dict": state_dict,
    }


def dumps(value, indent=0, lead=0, width=100):
    """JSON with an object or list on one line where it fits in `width` (after `lead`
    characters, before a comma), else one member a line, a list's members always flat: each
    state_dict entry reads as one line."""
    flat = json.dumps(value)
    if lead + len(flat) < width or not value or not isinstance(value, (dict, list)):
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        lines = [pad + json.dumps(member) for member in value]
    else:
        keys = [f"{pad}{json.dumps(key)}: " for key in value]
        lines = [key + dumps(member, indent + 2, len(key), width)
                 for key, member in zip(keys, value.values())]
    brackets = "[]" if isinstance(value, list) else "{}"
    return brackets[0] + "\n" + ",\n".join(lines) + "\n" + " " * indent + brackets[1]


def main():
    torch.set_num_threads(1)
    specs = {name: spec(name, twin) for name, twin in TWINS.items()}
    sys.stdout.write(dumps({"models": specs}) + "\n")


if __name__ == "__main__":
    main()
