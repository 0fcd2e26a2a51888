#!/usr/bin/env python3
"""How much of a training step runs at matmul speed: the share of the step's GPU time spent in
kernel calls that reach a fraction (default 70%) of the best matmul rate on the same adapter.

    cargo build --release
    python3 scripts/kernel_share.py --model mlp
    python3 scripts/kernel_share.py --model cnn --fraction 0.7
    python3 scripts/kernel_share.py --model mlp --runs 5   # on a machine whose speed swings

In one run it measures the best rate with `fer bench matmul --json` (square sizes and the
models' own products, every variant but the naive one), records a step with `fer profile
--trace`, takes each call's median GPU time over the profiled steps, and counts each call of
that typical step (GFLOP/s = its FLOPs / its GPU time) against the bar. Calls below the bar are listed, largest first, so the next kernel to speed up is named.
With --runs N the pair is measured N times, each share against its own run's rate, and the
spread is reported: a software adapter sharing its cores can swing by more than the bar's width.
It also reports the quietest reading, the adapter's own figure: the fastest of the N profiled
steps against the highest of the N rates, each the least disturbed measurement of its kind.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict


def fer(binary, *args):
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout


def best_matmul_rate(binary):
    report = json.loads(fer(binary, "bench", "matmul", "--json", "--sizes", "1024,2048",
                            "--variants", "register,strip,workgroup", "--seconds", "0.5"))
    best = max(report["measurements"], key=lambda m: m["gflops"])
    return best["gflops"], best["case"], best["variant"]


def typical_step(binary, model, batch, steps):
    """The kernel calls of one step, each with its median GPU time over `steps` profiled steps
    (every step records the same dispatches in the same order). A median, as fer bench matmul
    reports: a spike from whatever else shares the cores is not charged to a kernel."""
    with tempfile.TemporaryDirectory() as folder:
        trace = os.path.join(folder, "trace.json")
        fer(binary, "profile", "--model", model, "--batch", str(batch), "--steps", str(steps),
            "--trace", trace)
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
    by_step = defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("cat") == "kernel":
            by_step[e["args"]["step"]].append(e)
    recorded = list(by_step.values())
    return [{**calls[0], "dur": statistics.median(step[i]["dur"] for step in recorded)}
            for i, calls in enumerate(zip(*recorded))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=["softmax", "mlp", "cnn"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10,
                        help="profiled steps; each call's median over them counts")
    parser.add_argument("--fraction", type=float, default=0.7)
    parser.add_argument("--binary", default="target/release/fer")
    parser.add_argument("--runs", type=int, default=1,
                        help="measure this many (rate, step) pairs and report the spread")
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of text (one line per run)")
    args = parser.parse_args()

    runs = [measure(args) for _ in range(args.runs)]
    if args.json:
        for run in runs:
            json.dump({"model": args.model, "batch": args.batch, **run["summary"]}, sys.stdout)
            print()
        return
    for run in runs:
        report(args, run)
    if len(runs) > 1:
        shares = sorted(run["summary"]["share_at_bar"] for run in runs)
        print(f"{args.model}, {len(runs)} runs: share at the bar {shares[0]:.1%} to "
              f"{shares[-1]:.1%}, median {statistics.median(shares):.1%}")
        best = max(run["best"] for run in runs)
        fastest = min(runs, key=lambda run: run["total_us"])
        quietest = share(args, fastest["calls"], best)
        print(f"quietest: the fastest step ({fastest['total_us'] / 1e3:.1f} ms) "
              f"against the highest rate ({best[0]:.2f} GFLOP/s): "
              f"{quietest['summary']['share_at_bar']:.1%} at the bar")


def measure(args):
    """One best-rate measurement and one profiled step, and the share of the step at the bar."""
    rate, case, variant = best_matmul_rate(args.binary)
    calls = typical_step(args.binary, args.model, args.batch, args.steps)
    return share(args, calls, (rate, case, variant))


def share(args, calls, best):
    """The share of `calls`' GPU time at or above args.fraction of the `best` matmul rate."""
    rate, case, variant = best
    bar = args.fraction * rate
    total_us = sum(e["dur"] for e in calls)
    fast_us = 0.0
    slow = defaultdict(lambda: [0.0, 0.0, 0])  # kernel → [µs, FLOPs, calls]
    for e in calls:
        gflops = e["args"]["flops"] / (e["dur"] * 1e3) if e["dur"] > 0 else 0.0
        if gflops >= bar:
            fast_us += e["dur"]
        else:
            entry = slow[e["name"]]
            entry[0] += e["dur"]
            entry[1] += e["args"]["flops"]
            entry[2] += 1
    summary = {"best_matmul_gflops": rate, "best_matmul_case": case,
               "best_matmul_variant": variant, "fraction": args.fraction,
               "share_at_bar": fast_us / total_us}
    return {"summary": summary, "total_us": total_us, "slow": slow, "calls": calls,
            "best": best}


def report(args, run):
    summary, total_us = run["summary"], run["total_us"]
    rate, bar = summary["best_matmul_gflops"], args.fraction * summary["best_matmul_gflops"]
    print(f"best matmul rate: {rate:.2f} GFLOP/s ({summary['best_matmul_case']}, "
          f"{summary['best_matmul_variant']}); bar {args.fraction:.0%} of it = {bar:.2f} GFLOP/s")
    print(f"{args.model}, batch {args.batch}: {summary['share_at_bar']:.1%} of "
          f"{total_us / 1e3:.1f} ms GPU time per step (each call's median over {args.steps} "
          f"steps) is in kernel calls at or above the bar")
    print("below the bar, by time per step:")
    for name, (us, flops, count) in sorted(run["slow"].items(), key=lambda kv: -kv[1][0]):
        print(f"  {us / 1e3:8.2f} ms  {us / total_us:6.1%}  "
              f"{flops / (us * 1e3):6.2f} GFLOP/s  {count:3d} calls  {name}")


if __name__ == "__main__":
    main()
