#!/usr/bin/env bash
# The device check: on a machine with a real GPU, within 9 minutes, checks and measures what
# the README claims for GPUs, and prints one summary.
#
#   scripts/device-check.sh pack [DATA]   # here: builds, packs binaries and data into .device/
#   scripts/device-check.sh [run]         # there: runs the check (cargo is used if present)
#
# Run there, it: runs the kernel and graph tests against the GPU; `fer bench peak`;
# `fer bench matmul --sizes 2048`; the study's cnn training step in fer and in PyTorch CUDA
# (TF32 off) in the same run (scripts/pytorch_step.py); `fer bench infer` (latency at batch 1,
# images/s at 64 and 256); `fer bench step` of each study model at batch 64; `fer profile` of
# googlenet (col2im's share by patch layout); and `fer train --recipe best` on
# FER2013 for as many epochs as the time left allows (stopped with SIGINT, which makes fer
# finish its step and write its results). A machine without cargo or without the dataset
# (a device machine that reaches nothing) uses what `pack` put in .device/: stripped release
# binaries (xz) and the dataset (tar.gz), under the 64 MiB a device call carries.
#
# Environment: FER_CHECK_SECONDS (the budget, default 540), FER_DATA (the dataset, default
# .device/fer2013 unpacked, else ../shared/data/fer2013), OUT (where the summary and the run's
# results are written, default /tmp/fer-device-check).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pack_dir=$root/.device

pack() {
  local data=${1:-../shared/data/fer2013}
  mkdir -p "$pack_dir/bin"
  grep -qsx '/.device/' .git/info/exclude || echo '/.device/' >> .git/info/exclude
  cargo build --release --quiet
  cp target/release/fer "$pack_dir/bin/fer"
  # The test binaries cargo builds for these two targets, found from its JSON messages.
  cargo test --release --no-run --test kernels --test graph --message-format=json 2>/dev/null \
    | python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], sys.argv[1] + "/" + m["target"]["name"])
' "$pack_dir/bin"
  strip "$pack_dir"/bin/*
  tar -C "$pack_dir" -cJf "$pack_dir/bin.tar.xz" bin
  rm -r "$pack_dir/bin"
  if [ -d "$data" ]; then
    tar -C "$data" -czf "$pack_dir/fer2013.tar.gz" .
  else
    echo "no dataset at $data: the check will train on synthetic faces" >&2
  fi
  du -ch "$pack_dir"/* | tail -1
  echo "carry .device (and .gl if the machine lacks the Vulkan loader) and run scripts/device-check.sh"
}

run() {
  local budget=${FER_CHECK_SECONDS:-540}
  local out=${OUT:-/tmp/fer-device-check}
  local started=$SECONDS
  mkdir -p "$out"
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
  # A device machine may lack the Vulkan loader: the README of the device tool says how to
  # carry it as .gl/*.deb.
  if ! ldconfig -p | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
    for deb in .gl/*.deb; do dpkg -x "$deb" /; done
    ldconfig
  fi
  local nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -f "$nvidia_icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
    export VK_DRIVER_FILES=$nvidia_icd
  fi

  local bin tests=()
  if [ -f "$pack_dir/bin.tar.xz" ]; then
    bin=/tmp/fer-device-bin
    mkdir -p "$bin" && tar -C "$bin" --strip-components=1 -xJf "$pack_dir/bin.tar.xz"
    tests=("$bin/kernels" "$bin/graph")
  elif command -v cargo >/dev/null; then
    cargo build --release --quiet
    bin=$root/target/release
  else
    echo "no cargo and no .device/bin.tar.xz: run scripts/device-check.sh pack first" >&2
    exit 1
  fi
  local fer=$bin/fer
  local data=${FER_DATA:-}
  if [ -z "$data" ] && [ -f "$pack_dir/fer2013.tar.gz" ]; then
    data=/tmp/fer-device-data
    mkdir -p "$data" && tar -C "$data" -xzf "$pack_dir/fer2013.tar.gz"
  fi
  data=${data:-../shared/data/fer2013}

  "$fer" info | tee "$out/info.txt"

  left() { echo $((budget - (SECONDS - started))); }

  # Tests: the GPU kernels against their CPU twins, and each model's step against the CPU graph.
  local tests_result
  if [ ${#tests[@]} -gt 0 ]; then
    tests_result=passed
    for test in "${tests[@]}"; do
      local name rc=0
      name=$(basename "$test")
      (cd "$root" && timeout 150 "$test" --test-threads 4 >"$out/$name.log" 2>&1) || rc=$?
      case $rc in
        0) ;;
        124) tests_result="timed out ($name, 150 s: see $out/$name.log)" ;;
        *) tests_result="failed ($name: see $out/$name.log)" ;;
      esac
    done
  else
    tests_result=passed
    timeout 240 cargo test --release --test kernels --test graph >"$out/tests.log" 2>&1 \
      || tests_result="failed (see $out/tests.log)"
  fi
  echo "tests: $tests_result"

  timeout 60 "$fer" bench peak --json >"$out/peak.json" 2>/dev/null || true
  timeout 90 "$fer" bench matmul --sizes 2048 --no-model-shapes --json >"$out/matmul.json" \
    2>/dev/null || true
  timeout 120 python3 scripts/pytorch_step.py --model cnn --full --fer "$fer" \
    >"$out/cnn-step.txt" 2>"$out/cnn-step.json" || true
  # Inference (issue #13's targets) and the training step of the studies' models.
  timeout 90 "$fer" bench infer --models cnn,realtime_cnn,resnet,keras_cnn --json \
    >"$out/infer.json" 2>/dev/null || true
  local model
  for model in basic_cnn resnet googlenet unet newnet roglenet realtime_cnn keras_cnn; do
    timeout 45 "$fer" bench step --model "$model" --batch 64 --steps 10 --json \
      >"$out/step-$model.json" 2>/dev/null || true
  done

  # Where googlenet's step goes: col2im by patch layout (the tap-major schedule's reason).
  timeout 60 "$fer" profile --model googlenet --steps 3 --json >"$out/profile-googlenet.json" \
    2>/dev/null || true

  # Training: the time left, less a minute for the last epoch's evaluation and the results.
  local seconds=$(( $(left) - 60 ))
  local train_result="not run: no time left"
  if [ "$seconds" -gt 30 ]; then
    local source=(--data "$data")
    [ -d "$data" ] || source=(--synthetic-train 2800)
    timeout -s INT -k 60 "$seconds" "$fer" train --model cnn --recipe best "${source[@]}" \
      --results "$out/results" --quiet >"$out/train.log" 2>&1 || true
    train_result=$(python3 - "$out/results/cnn/metrics.json" <<'EOF' || echo "no results written"
import json, sys
m = json.load(open(sys.argv[1]))
h = m["history"]
best = max(h, key=lambda e: e["val_acc"])
print(f"{len(h)} epochs in {sum(e['seconds'] for e in h):.0f} s, "
      f"last val acc {h[-1]['val_acc']:.4f}, best {best['val_acc']:.4f} (epoch {best['epoch']})")
EOF
)
  fi

  python3 - "$out" "$tests_result" "$train_result" "$((SECONDS - started))" <<'EOF' | tee "$out/summary.txt"
import json, os, sys
out, tests, train, seconds = sys.argv[1:]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
peak, matmul, step = load("peak.json"), load("matmul.json"), load("cnn-step.json")
infer = load("infer.json")
adapter = (peak or matmul or infer or {}).get("adapter", {})
print(f"fer device check, {seconds} s")
print(f"  adapter  {adapter.get('name', '?')} ({adapter.get('backend', '?')}, "
      f"{adapter.get('driver_info', '?')})")
print(f"  tests    {tests}")
missing = "not measured (timed out or failed: see {} in " + out + ")"
if peak:
    p = peak["peak"]
    print(f"  peak     {p['gflops']:.0f} GFLOP/s f32 FMA, copy {p['copy_gbs']:.0f} GB/s, "
          f"read {p['read_gbs']:.0f} GB/s")
else:
    print("  peak     " + missing.format("peak.json"))
if matmul:
    rows = [m for m in matmul["measurements"] if m["m"] == 2048]
    for m in sorted(rows, key=lambda m: -m["gflops"])[:3]:
        print(f"  matmul   2048³ {m['variant']:<10} {m['gflops']:8.0f} GFLOP/s")
else:
    print("  matmul   " + missing.format("matmul.json"))
if step:
    print(f"  cnn step fer {step['fer_ms']:.2f} ms, PyTorch {step['pytorch_ms']:.2f} ms "
          f"({step['pytorch_device']}): fer / PyTorch = {step['ratio']:.2f}")
else:
    print("  cnn step " + missing.format("cnn-step.txt"))
if infer:
    for m in infer["models"]:
        batch1 = next((t for t in m["throughput"] if t["batch"] == 1), None)
        best = max(m["throughput"], key=lambda t: t["images_per_s"])
        print(f"  infer    {m['model']:<12} batch 1 {batch1['ms'] if batch1 else float('nan'):7.2f} ms, "
              f"{best['images_per_s']:8.0f} images/s at batch {best['batch']}")
else:
    print("  infer    " + missing.format("infer.json"))
for name in sorted(f for f in os.listdir(out) if f.startswith("step-")):
    report = load(name)
    if report:
        row = report["measurements"][0]
        print(f"  step     {report['model']:<12} batch {row['batch']}: {row['step_ms']:7.2f} ms, "
              f"{row['train_images_per_s']:8.0f} images/s")
    else:
        print("  step     " + missing.format(name))
profile = load("profile-googlenet.json")
if profile:
    kernels = profile["kernels"]
    def col2im(tap_major):
        return 100 * sum(k["share"] for k in kernels if k["label"].startswith("lowering::col2im")
                         and f"TAP_MAJOR={tap_major}" in k["label"])
    print(f"  profile  googlenet batch {profile['batch']}: {profile['step']['gpu_ms']:.2f} ms GPU; "
          f"col2im {col2im(0):.1f}% pixel-major, {col2im(1):.1f}% tap-major; "
          f"top {kernels[0]['label']} {100 * kernels[0]['share']:.1f}%")
else:
    print("  profile  " + missing.format("profile-googlenet.json"))
print(f"  train    cnn --recipe best: {train}")
EOF
}

case "${1:-run}" in
  pack) shift; pack "$@" ;;
  run) run ;;
  *) echo "usage: scripts/device-check.sh [pack [DATA] | run]" >&2; exit 2 ;;
esac
