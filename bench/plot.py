#!/usr/bin/python3
"""plot.py -- draw the round-trip latency distributions of one ipcbench run.

Reads the JSON that ipcbench wrote (default: results/ipcbench.json next to
this script), takes the ping-pong figures of one message size (default 8
bytes), loads the CDF file each of them points to, and draws:

  left   the CDF of the round trip, log x axis: where the bulk lies;
  right  the same as a tail plot, 1 - CDF on a log y axis: how rare the
         slow round trips are (p99 at 1e-2, p99.9 at 1e-3).

Only files named in the JSON are read, so leftovers from earlier runs with
other transports never sneak into the picture.

    /usr/bin/python3 bench/plot.py [--json FILE] [--size 8] [--out FILE]
"""
import argparse
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def load_cdf(path):
    q, ns = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            q.append(float(row["quantile"]))
            ns.append(float(row["rtt_ns"]))
    return q, ns


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=os.path.join(here, "results", "ipcbench.json"))
    ap.add_argument("--size", type=int, default=8, help="message size in bytes (default 8)")
    ap.add_argument("--out", help="PNG to write (default: latency.png beside the JSON)")
    args = ap.parse_args()

    with open(args.json) as f:
        run = json.load(f)
    resdir = os.path.dirname(os.path.abspath(args.json))
    out = args.out or os.path.join(resdir, "latency.png")

    figs = [r for r in run["results"]
            if r["test"] == "pingpong" and r["size"] == args.size
            and r["status"] == "ok" and r.get("cdf_csv")]
    if not figs:
        sys.exit(f"plot.py: no ping-pong figures of {args.size} bytes in {args.json}")
    # Fastest first, so the legend reads in the order of the curves.
    figs.sort(key=lambda r: r["rtt_ns"]["p50"])

    fig, (ax_cdf, ax_tail) = plt.subplots(1, 2, figsize=(13, 5.5))
    for r in figs:
        q, ns = load_cdf(os.path.join(resdir, r["cdf_csv"]))
        label = f'{r["transport"]}  (p50 {r["rtt_ns"]["p50"]:,.0f} ns)'
        line, = ax_cdf.plot(ns, q, drawstyle="steps-post", label=label)
        # 1 - CDF is 0 at the last sample: stop one short so log y can show it.
        tail = [(x, 1.0 - y) for x, y in zip(ns, q) if y < 1.0]
        if tail:
            ax_tail.plot([t[0] for t in tail], [t[1] for t in tail],
                         drawstyle="steps-post", color=line.get_color(), label=r["transport"])

    when = run.get("date", "")
    cpu = run.get("host", {}).get("cpu", "")
    title = f"Round trip, {args.size} B ping-pong between two pinned processes"
    ax_cdf.set_xscale("log")
    ax_cdf.set_xlabel("round trip (ns, log)")
    ax_cdf.set_ylabel("fraction of round trips ≤ x")
    ax_cdf.set_ylim(0, 1.0)
    ax_cdf.grid(True, which="both", alpha=0.3)
    ax_cdf.legend(fontsize=8, loc="lower right")
    ax_cdf.set_title("CDF")

    ax_tail.set_xscale("log")
    ax_tail.set_yscale("log")
    ax_tail.set_xlabel("round trip (ns, log)")
    ax_tail.set_ylabel("fraction of round trips > x (log)")
    for p, lbl in ((1e-2, "p99"), (1e-3, "p99.9")):
        ax_tail.axhline(p, color="grey", lw=0.6, ls=":")
        ax_tail.text(ax_tail.get_xlim()[0], p, f" {lbl}", va="bottom", fontsize=7, color="grey")
    ax_tail.grid(True, which="both", alpha=0.3)
    ax_tail.set_title("tail")

    fig.suptitle(f"{title}\n{cpu}, {when}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
