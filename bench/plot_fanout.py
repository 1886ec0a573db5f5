#!/usr/bin/python3
"""plot_fanout.py -- draw one bench/fanout run: shmbus and iceoryx by groups.

Reads the JSON that `fanout --json FILE` wrote and draws two panels, each
system a line of its medians over rounds with bars from min to max:

  left   the producer's CPU time per message (ns, log y) vs consumer groups;
         a flat line means one more group costs the producer nothing;
  right  messages delivered per second (N x G / elapsed) vs groups.

The x axis is the number of groups (log 2). A system that was skipped or
failed is left out; the title says so.

    /usr/bin/python3 bench/plot_fanout.py FANOUT.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

PANELS = [
    ("producer_cpu_ns_per_put", "producer CPU per message (ns)", 1.0),
    ("delivered_msgs_per_s", "delivered messages/s (millions)", 1e-6),
]
STYLE = {"shmbus": dict(marker="o", color="tab:blue"), "iceoryx": dict(marker="s", color="tab:orange")}


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        run = json.load(f)
    systems = []
    for row in run["summary"]:
        if row["system"] not in systems:
            systems.append(row["system"])
    if not systems:
        print("plot_fanout: %s holds no completed run" % sys.argv[1], file=sys.stderr)
        return 1

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label, scale) in zip(axes, PANELS):
        for name in systems:
            rows = sorted((r for r in run["summary"] if r["system"] == name), key=lambda r: r["groups"])
            g = [r["groups"] for r in rows]
            med = [r[key]["median"] * scale for r in rows]
            lo = [(r[key]["median"] - r[key]["min"]) * scale for r in rows]
            hi = [(r[key]["max"] - r[key]["median"]) * scale for r in rows]
            ax.errorbar(g, med, yerr=[lo, hi], capsize=3, label=name, **STYLE.get(name, {}))
        ax.set_xscale("log", base=2)
        ax.set_xticks(run["groups"])
        ax.set_xticklabels([str(g) for g in run["groups"]])
        if key == "producer_cpu_ns_per_put":
            ax.set_yscale("log")
        ax.set_xlabel("broadcast consumer groups (one member process each)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    notes = ["%s skipped: %s" % kv for kv in run.get("skipped", {}).items()]
    if run.get("status") != "ok":
        notes.append("the run FAILED part way")
    fig.suptitle("fan-out: 1 producer, %d-byte messages, N = %d, %d CPUs, median of %d round%s [min..max]%s"
                 % (run["size"], run["n"], run["cpus"], run["runs"], "" if run["runs"] == 1 else "s",
                    "\n" + "; ".join(notes) if notes else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print("wrote %s" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
