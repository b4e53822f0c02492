#!/usr/bin/env python3
"""Turns criterion results and normflows' bench.py JSON into the tables of benches/README.md.

Usage:
  python3 benches/report.py --native target/native/criterion --default target/criterion \
      --peer peer-1.json [--peer peer-2.json ...] [--peak 272.7]

Every lwflow figure is criterion's median time per iteration (`new/estimates.json`); every
normflows figure the median of bench.py's repeats (DiagGaussian base, as docs/TASKS.md),
averaged over the --peer runs given (each run interleaved with the lwflow runs). FLOPs per
sample follow the cost model of docs/TASKS.md: 2 × multiply-adds of the MLPs per log_prob / sample,
6 × per training step (forward, input gradient, weight gradient).
"""
import argparse
import json
import os
import statistics

MACS = {"D2H64": 34_304, "D2H128": 8 * (128 + 128 * 128 + 128 * 2), "D6H64": 8 * (3 * 64 + 64 * 64 + 64 * 6)}


def median_ns(root, *parts):
    path = os.path.join(root, *parts, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def peer_value(peers, op, key):
    vals = []
    for p in peers:
        t = p["timings"]["DiagGaussian(2)"]
        if op == "train_step":
            vals.append(t["train_step"][key]["median_s"])
        else:
            vals.append(t[key]["median_s"])
    return statistics.mean(vals) if vals else None


def fmt_time(s):
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--native", required=True)
    ap.add_argument("--default", required=True)
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--peak", type=float, default=272.7, help="one core's f32 FMA peak, GFLOP/s")
    a = ap.parse_args()
    peers = [json.load(open(p)) for p in a.peer]

    rows = [
        ("train step, B = 256", "train_step", "D2H64", "256", "256", 6),
        ("train step, B = 1024", "train_step", "D2H64", "1024", "1024", 6),
        ("train step, B = 4096", "train_step", "D2H64", "4096", "4096", 6),
        ("log_prob, batch 4096", "log_prob", "D2H64", "4096", "log_prob_batch", 2),
        ("log_prob, 1 sample", "log_prob", "D2H64", "1", "log_prob_single", 2),
        ("sample 4096", "sample", "D2H64", "4096", "sample_batch", 2),
    ]
    print("| operation | normflows | lwflow f32 native | ratio | lwflow f32 default | ratio | "
          "lwflow f64 native | ratio | f32 native GFLOP/s (% of peak) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, group, shape, n, peer_key, flop_factor in rows:
        peer = peer_value(peers, group, peer_key) if peers else None
        cells = []
        for root, ty in ((a.native, "f32"), (a.default, "f32"), (a.native, "f64")):
            ns = median_ns(root, f"{group}_{ty}", shape, n)
            s = ns * 1e-9 if ns is not None else None
            ratio = f"{peer / s:.1f}×" if (peer and s) else "—"
            cells.append((s, ratio))
        s_native = cells[0][0]
        batch = int(n)
        gflops = flop_factor * MACS[shape] * batch / s_native / 1e9 if s_native else None
        g = f"{gflops:.0f} ({100 * gflops / a.peak:.0f} %)" if gflops else "—"
        print(f"| {label} | {fmt_time(peer)} | " + " | ".join(
            f"{fmt_time(s)} | {r}" for s, r in cells) + f" | {g} |")

    print()
    print("| variant | operation | lwflow f32 native | f32 default | f64 native | "
          "f32 native GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for shape in ("D2H64", "D2H128", "D6H64"):
        for label, group, n, flop_factor in (
            ("train step, B = 1024", "train_step", "1024", 6),
            ("log_prob, batch 4096", "log_prob", "4096", 2),
            ("log_prob, 1 sample", "log_prob", "1", 2),
            ("sample 4096", "sample", "4096", 2),
        ):
            times = [median_ns(r, f"{group}_{ty}", shape, n) for r, ty in
                     ((a.native, "f32"), (a.default, "f32"), (a.native, "f64"))]
            s = times[0] * 1e-9 if times[0] else None
            g = f"{flop_factor * MACS[shape] * int(n) / s / 1e9:.0f}" if s else "—"
            print(f"| {shape} | {label} | " + " | ".join(
                fmt_time(t * 1e-9 if t else None) for t in times) + f" | {g} |")

    print()
    print("| recompute mode (peer shape) | stored f32 native | recompute f32 native | cost |")
    print("|---|---:|---:|---:|")
    for n in ("256", "4096"):
        st = median_ns(a.native, "train_step_f32", "D2H64", n)
        re = median_ns(a.native, "train_step_f32", "D2H64-recompute", n)
        cost = f"+{100 * (re / st - 1):.0f} %" if (st and re) else "—"
        print(f"| train step, B = {n} | {fmt_time(st * 1e-9 if st else None)} | "
              f"{fmt_time(re * 1e-9 if re else None)} | {cost} |")

    print()
    for root, name in ((a.native, "native"), (a.default, "default")):
        for ty in ("f32", "f64"):
            ns = median_ns(root, "fit_2d2", ty)
            print(f"fit 2D2 to KL ≤ 0.01, {ty} {name}: {fmt_time(ns * 1e-9 if ns else None)}")


if __name__ == "__main__":
    main()
