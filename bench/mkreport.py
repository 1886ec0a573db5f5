#!/usr/bin/python3
"""mkreport.py -- the benchmark report from one run of scripts/bench.sh.

Reads ipcbench.json, statebench.json and queuebench.json from the results
directory, prints the targets (met / not met) and, with --doc, rewrites
the generated part of docs/benchmarks.md: everything between the lines

    <!-- BEGIN GENERATED (bench/mkreport.py) -->
    <!-- END GENERATED -->

The hand-written text around them (how to run, method, discussion) stays.
Every ratio compares figures taken in the same run.

    /usr/bin/python3 bench/mkreport.py [--results DIR] [--doc FILE]
"""
import argparse
import json
import os
import sys

BEGIN = "<!-- BEGIN GENERATED (bench/mkreport.py) -->"
END = "<!-- END GENERATED -->"

ORDER = ["shmbus", "shmbus-spin", "shmbus-cells", "shmbus-state", "rawring", "rawline", "futex",
         "pipe", "unix", "mq", "zmq", "iceoryx"]
WHAT = {
    "shmbus": "shmbus queue, spin-then-park (default)",
    "shmbus-spin": "shmbus queue, busy-spin policy",
    "shmbus-cells": "shmbus queue of 64-byte cells, spin-then-park",
    "shmbus-state": "shmbus state channels",
    "rawring": "raw SPSC ring (ceiling)",
    "rawline": "raw cache line (latency ceiling)",
    "futex": "futex mailbox, always sleeps",
    "pipe": "pipe",
    "unix": "Unix socket",
    "mq": "POSIX mq",
    "zmq": "ZeroMQ ipc://",
    "iceoryx": "iceoryx 2.0, busy-polling subscriber",
}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def size_name(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def num(v):
    """3 significant digits with K/M suffix."""
    if v is None:
        return "-"
    for lo, div, suf in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "K")):
        if v >= lo:
            v /= div
            return (f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}") + suf
    return f"{v:.0f}"


def ns(v):
    return "-" if v is None else f"{v:,.0f}"


def ratio(x):
    if x is None:
        return "-"
    return f"{x:.0f}×" if x >= 100 else f"{x:.3g}×"


class Run:
    def __init__(self, ipc):
        self.ipc = ipc
        self.res = {}
        for r in ipc["results"] if ipc else []:
            if r["status"] == "ok":
                self.res[(r["transport"], r["test"], r["size"])] = r

    def get(self, t, test, size):
        return self.res.get((t, test, size))

    def rate(self, t, test, size):
        r = self.get(t, test, size)
        return r["msgs_per_s"] if r else None

    def p50(self, t, size):
        r = self.get(t, "pingpong", size)
        return r["rtt_ns"]["p50"] if r else None

    def transports(self, test, size):
        names = {k[0] for k in self.res if k[1] == test and k[2] == size}
        return [t for t in ORDER if t in names] + sorted(names - set(ORDER))


def div(a, b):
    return a / b if a is not None and b else None


def throughput_table(run, test, sizes, out):
    out.append("| size | transport | msgs/s | GB/s | shmbus ÷ this | spread |")
    out.append("|---|---|---:|---:|---:|---:|")
    for s in sizes:
        base = run.rate("shmbus", test, s)
        first = True
        for t in run.transports(test, s):
            r = run.get(t, test, s)
            spread = (r["msgs_per_s_max"] - r["msgs_per_s_min"]) / r["msgs_per_s"] if r["msgs_per_s"] else 0
            name = f"**{t}**" if t == "shmbus" else t
            out.append(f"| {size_name(s) if first else ''} | {name} | {num(r['msgs_per_s'])} | "
                       f"{r['gb_per_s']:.3g} | {ratio(div(base, r['msgs_per_s']))} | {spread * 100:.0f}% |")
            first = False


def latency_table(run, sizes, out):
    out.append("| size | transport | p50 | p99 | p99.9 | round trips | this ÷ shmbus (p50) |")
    out.append("|---|---|---:|---:|---:|---:|---:|")
    for s in sizes:
        base = run.p50("shmbus", s)
        first = True
        for t in run.transports("pingpong", s):
            r = run.get(t, "pingpong", s)
            q = r["rtt_ns"]
            name = f"**{t}**" if t == "shmbus" else t
            out.append(f"| {size_name(s) if first else ''} | {name} | {ns(q['p50'])} | {ns(q['p99'])} | "
                       f"{ns(q['p999'])} | {r['samples']:,} | {ratio(div(q['p50'], base))} |")
            first = False


def fanout_summary(fo, system, groups):
    for m in (fo or {}).get("summary", []):
        if m["system"] == system and m["groups"] == groups:
            return m
    return None


def mix_contender(mx, name):
    for c in (mx or {}).get("contenders", []):
        if c["name"] == name and c.get("status") == "ok":
            return c
    return None


def mix_memory(mx, layout):
    for m in (mx or {}).get("memory", []):
        if m["layout"] == layout and m.get("status") == "ok":
            return m
    return None


def targets(run, sb, qb, fo=None, mx=None):
    """(what, target, measured, met) rows; met is True/False/None (not measured)."""
    rows = []

    def add(what, target, value, fmt, ok):
        rows.append((what, target, fmt(value) if value is not None else "not measured",
                     None if value is None else ok(value)))

    x = div(run.rate("shmbus", "oneway", 64), run.rate("rawring", "oneway", 64))
    add("64 B one-way, shmbus (copying) ÷ raw ring", "≥ 0.40", x, lambda v: f"{v:.2f}", lambda v: v >= 0.40)
    x = div(run.rate("shmbus", "oneway-zc", 64), run.rate("rawring", "oneway-zc", 64))
    add("64 B one-way, shmbus zero-copy ÷ raw ring zero-copy", "≥ 0.40", x, lambda v: f"{v:.2f}",
        lambda v: v >= 0.40)
    x = div(run.rate("shmbus", "oneway", 64), run.rate("zmq", "oneway", 64))
    ceil = div(run.rate("rawring", "oneway", 64), run.rate("zmq", "oneway", 64))
    add("64 B one-way, shmbus ÷ ZeroMQ ipc:// (in brackets: the minimal raw ring's own ratio "
        "in the same run)", "≥ 10×", x,
        lambda v: f"{v:.1f}× (raw ring: {ceil:.1f}×)" if ceil else f"{v:.1f}×", lambda v: v >= 10)
    x = div(run.p50("shmbus", 8), run.p50("rawline", 8))
    add("8 B round trip p50, shmbus (spin-then-park) ÷ raw cache line", "≤ 2×", x, lambda v: f"{v:.2f}×",
        lambda v: v <= 2)
    x = div(run.p50("iceoryx", 8), run.p50("shmbus", 8))
    ceil = div(run.p50("iceoryx", 8), run.p50("rawring", 8))
    add("8 B round trip p50, iceoryx (busy-polling) ÷ shmbus (in brackets: iceoryx ÷ the raw ring, "
        "a pair of one-way rings as shmbus uses)", "≥ 10×", x,
        lambda v: f"{v:.1f}× (raw ring: {ceil:.1f}×)" if ceil else f"{v:.1f}×", lambda v: v >= 10)
    # Queues at scale: one-way ratios to the raw ring, slots and cells.
    for t, label in (("shmbus", "slots"), ("shmbus-cells", "cells")):
        for size, want in ((8, 0.6), (64, 0.8), (4096, 0.9), (1 << 20, 0.9)):
            x = div(run.rate(t, "oneway", size), run.rate("rawring", "oneway", size))
            add(f"{size_name(size)} one-way, shmbus queue of {label} ÷ raw ring", f"≥ {want:.2f}", x,
                lambda v: f"{v:.2f}", lambda v, w=want: v >= w)
    for t, label in (("shmbus", "slots"), ("shmbus-cells", "cells")):
        x = div(run.p50(t, 8), run.p50("rawring", 8))
        add(f"8 B round trip p50, shmbus queue of {label} ÷ raw ring (a pair of one-way rings)", "≤ 1.3×", x,
            lambda v: f"{v:.2f}×", lambda v: v <= 1.3)
    c = mix_contender(mx, "cells")
    add("mixed stream (90% 64 B, 10% 64 KiB), 4 MiB queue of cells ÷ 4 MiB raw byte ring, messages/s "
        "(mixbench)", "-", c["msgs_over_rawring"] if c else None, lambda v: f"{v:.2f}", lambda v: None)
    mc, ms = mix_memory(mx, "cells"), mix_memory(mx, "slots")
    add("mixed stream: ring bytes per message in flight, queue of slots (64 KiB each) ÷ queue of cells "
        "(mixbench)", "-", ms["ring_bytes_per_msg"] / mc["ring_bytes_per_msg"] if mc and ms else None,
        lambda v: f"{v:.1f}× ({mc['ring_bytes_per_msg']:.0f} B vs {ms['ring_bytes_per_msg']:.0f} B)",
        lambda v: None)
    m = fanout_summary(fo, "shmbus", 64)
    add("fan-out: producer CPU per put at 64 broadcast groups ÷ at 1 group (fanout)", "≤ 2×",
        m["cpu_ratio"]["median"] if m and "cpu_ratio" in m else None, lambda v: f"{v:.2f}×", lambda v: v <= 2)
    mp = {m["name"]: m for m in (qb or {}).get("mpmc", []) if m.get("status") == "ok"}
    for name in ("2 producers, 2 groups", "2 producers, 2 groups, batches of 32"):
        m = mp.get(name)
        add(f"MPMC, {name}, 64 B, messages put/s", "≥ 5 M/s", m["put_msgs_per_s"] if m else None,
            lambda v: f"{v / 1e6:.2f} M/s", lambda v: v >= 5e6)
    w8 = {w["size"]: w["writes_per_s"] for w in (qb or {}).get("write", [])}.get(8 << 20)
    x = div(run.rate("shmbus", "oneway-zc", 8 << 20), run.rate("rawring", "oneway-zc", 8 << 20))
    add("8 MiB frames, shmbus zero-copy ÷ raw ring zero-copy (same writing, no copy)", "≥ 0.90",
        x, lambda v: f"{v:.2f}", lambda v: v >= 0.90)
    x = div(run.rate("shmbus", "oneway-zc", 8 << 20), w8)
    add("8 MiB frames, shmbus zero-copy ÷ producer's own writing in one process (reference: the raw "
        "ring's own ratio is the ceiling)", "-", x, lambda v: f"{v:.2f} (raw ring: "
        f"{div(run.rate('rawring', 'oneway-zc', 8 << 20), w8) or 0:.2f})", lambda v: None)
    x = div(run.rate("shmbus", "oneway-zc", 8 << 20), run.rate("shmbus", "oneway", 8 << 20))
    add("8 MiB frames, shmbus zero-copy ÷ shmbus copying (what the copy costs)", "-", x,
        lambda v: f"{v:.2f}", lambda v: None)
    if sb:
        add("state: spinning reader p50 ÷ raw cache line (statebench)", "≤ 1.5×", sb.get("spin_over_raw_p50"),
            lambda v: f"{v:.2f}×", lambda v: v <= 1.5)
        add("state: parked reader p50 ÷ bare futex (statebench)", "≤ 1.1×", sb.get("park_over_futex_p50"),
            lambda v: f"{v:.2f}×", lambda v: v <= 1.1)
        w, r = sb.get("write_ops", [None])[0], sb.get("read_ops", [None])[0]
        add("state: uncontended 8 B writes/s", "≥ 30 M/s", w, lambda v: f"{v / 1e6:.1f} M/s", lambda v: v >= 30e6)
        add("state: uncontended 8 B reads/s", "≥ 30 M/s", r, lambda v: f"{v / 1e6:.1f} M/s", lambda v: v >= 30e6)
        add("state: 16 MiB value written ÷ memcpy", "≥ 0.70", sb.get("big_write_over_memcpy"),
            lambda v: f"{v:.2f}", lambda v: v >= 0.70)
        add("state: 16 MiB value read ÷ memcpy", "≥ 0.70", sb.get("big_read_over_memcpy"),
            lambda v: f"{v:.2f}", lambda v: v >= 0.70)
    return rows


def disturbed(ipc):
    return any(n.startswith("DISTURBED") for n in (ipc or {}).get("notes", []))


def verdict(ok, dist=False, measured=True):
    if ok is None:
        return "(for reference)" if measured else "not measured"
    v = "**met**" if ok else "**not met**"
    return v + " (disturbed run)" if dist else v


def generate(resdir):
    ipc = load(os.path.join(resdir, "ipcbench.json"))
    sb = load(os.path.join(resdir, "statebench.json"))
    qb = load(os.path.join(resdir, "queuebench.json"))
    fo = load(os.path.join(resdir, "fanout.json"))
    mx = load(os.path.join(resdir, "mixbench.json"))
    run = Run(ipc)
    out = []
    if ipc:
        h, c = ipc["host"], ipc["config"]
        lr = ipc["line_rtt_ns"]
        out.append(f"Run of {ipc['date']} on {h['cpu']}, {h['online_cpus']} CPUs, Linux {h['kernel']}; "
                   f"ipcbench: {c['runs']} runs of {c['run_seconds']} s per figure"
                   f"{' (QUICK: smoke test, not a measurement)' if c['quick'] else ''}, roles pinned to "
                   f"CPUs {c['cpus'][0]} and {c['cpus'][1]}. Cache-line round trip between the two CPUs "
                   f"(spinning, no clock reads; median of blocks, mean in brackets): "
                   f"{lr['before']:.0f} ({lr.get('before_mean', float('nan')):.0f}) ns before the run, "
                   f"{lr['after']:.0f} ({lr.get('after_mean', float('nan')):.0f}) ns after.")
        out.append("")
        if disturbed(ipc):
            out.append("**This run was disturbed** (see the notes): other processes ran on the two CPUs, "
                       "which hurts the transports that spin far more than those that sleep. Its figures "
                       "are not a measurement of the transports; the targets below are not judged on it.")
            out.append("")
        for n in ipc.get("notes", []):
            out.append(f"- note: {n}")
        failed = [r for r in ipc["results"] if r["status"] != "ok"]
        for r in failed:
            out.append(f"- {r['transport']} {r['test']} {size_name(r['size'])}: {r['status']}: {r.get('note', '')}")
        out.append("")
    rows = targets(run, sb, qb, fo, mx)
    out.append("### Targets")
    out.append("")
    out.append("| target | wanted | measured | |")
    out.append("|---|---:|---:|---|")
    for what, want, got, ok in rows:
        dist = disturbed(ipc) and not what.startswith(("state:", "MPMC", "fan-out", "mixed"))
        out.append(f"| {what} | {want} | {got} | {verdict(ok, dist, got != 'not measured')} |")
    out.append("")
    if ipc:
        sizes = ipc["config"]["sizes"]
        out.append("### One-way throughput, copy in and copy out")
        out.append("")
        out.append("Median over runs. *shmbus ÷ this*: how many times more messages per second the "
                   "shmbus queue (default policy) moved than this transport, in the same run.")
        out.append("")
        throughput_table(run, "oneway", sizes, out)
        out.append("")
        out.append("### One-way throughput, zero-copy (reserve/commit, peek/release)")
        out.append("")
        out.append("The producer writes each message in place, the consumer reads every word of it "
                   "in place. Sizes over 1 MiB are frames, measured here only.")
        out.append("")
        throughput_table(run, "oneway-zc", sizes, out)
        out.append("")
        out.append("### Round trip (ping-pong)")
        out.append("")
        out.append("Nanoseconds, one clock read on each side of every round trip, all runs pooled. "
                   "*this ÷ shmbus*: how many times longer this transport's median round trip was.")
        out.append("")
        latency_table(run, [s for s in sizes if s <= 1 << 20], out)
        out.append("")
        out.append("![round-trip distributions, 8 B](benchmarks-latency.png)")
        out.append("")
    if qb:
        out.append("### Many producers and consumer groups (queuebench)")
        out.append("")
        out.append(f"{qb['size']}-byte messages, median of {qb['runs']} runs; *delivered* counts each "
                   "message once per group.")
        out.append("")
        out.append("| configuration | messages put/s | delivered/s | spread |")
        out.append("|---|---:|---:|---:|")
        for m in qb["mpmc"]:
            if m.get("status") == "ok":
                out.append(f"| {m['name']} | {num(m['put_msgs_per_s'])} | {num(m['delivered_msgs_per_s'])} | "
                           f"{m['spread'] * 100:.0f}% |")
            else:
                out.append(f"| {m['name']} | failed | | |")
        out.append("")
        out.append("The producer's own writing, one process (memcpy into 8 rotating buffers), the bound "
                   "for a zero-copy stream:")
        out.append("")
        out.append("| size | writes/s | GB/s |")
        out.append("|---|---:|---:|")
        for w in qb["write"]:
            out.append(f"| {size_name(w['size'])} | {num(w['writes_per_s'])} | "
                       f"{w['writes_per_s'] * w['size'] / 1e9:.3g} |")
        out.append("")
    if mx and mx.get("contenders"):
        st = mx["stream"]
        out.append("### A mixed stream in 4 MiB (mixbench)")
        out.append("")
        out.append(f"Every {st['large_every']}th message {size_name(st['large'])}, the others "
                   f"{size_name(st['small'])}; two processes, median of {mx['runs']} runs of {mx['time_s']} s; "
                   "*÷ raw ring*: messages per second over those of a 4 MiB byte ring of the same run "
                   "(both sides spinning, one copy in and one out).")
        out.append("")
        out.append("| contender | ring | messages/s | MB/s | ÷ raw ring | spread |")
        out.append("|---|---|---:|---:|---:|---:|")
        for c in mx["contenders"]:
            if c.get("status") == "ok":
                out.append(f"| {c['name']} | {c['ring']} | {num(c['median_msgs_per_s'])} | "
                           f"{c['median_mb_per_s']:.0f} | {c['msgs_over_rawring']:.2f} | {c['spread'] * 100:.0f}% |")
            else:
                out.append(f"| {c['name']} | {c.get('ring', '')} | failed | | | |")
        out.append("")
        out.append("What a ring holds of the same stream (one group joined, nobody reading, put until full):")
        out.append("")
        out.append("| layout | ring bytes | messages held | ring bytes per message | a slot ring holding as many |")
        out.append("|---|---:|---:|---:|---:|")
        for m in mx.get("memory", []):
            if m.get("status") == "ok":
                out.append(f"| {m['layout']} | {m['ring_bytes']:,} | {m['held']} | {m['ring_bytes_per_msg']:,.0f} | "
                           f"{m['slot_ring_bytes']:,} B ({m['slot_ring_slots']} slots) |")
        out.append("")
    if fo and fo.get("summary"):
        out.append("### Fan-out to many consumer groups (fanout)")
        out.append("")
        out.append(f"One producer, {fo['size']}-byte messages, {num(fo['n'])} per run, G broadcast groups of "
                   f"one member process each; median over {fo['runs']} rounds [min..max]. *CPU ratio*: the "
                   "producer's CPU per message at G ÷ at the smallest G of the same round.")
        if fo.get("skipped"):
            for k, v in fo["skipped"].items():
                out.append(f"(skipped: {k}: {v})")
        out.append("")
        out.append("| system | groups | producer CPU ns/message | producer wall ns/message | delivered/s | CPU ratio |")
        out.append("|---|---:|---:|---:|---:|---:|")

        def cell(m, k, f):
            v = m.get(k)
            return f"{f(v['median'])} [{f(v['min'])}..{f(v['max'])}]" if v else "-"
        for m in fo["summary"]:
            out.append(f"| {m['system']} | {m['groups']} | {cell(m, 'producer_cpu_ns_per_put', lambda v: f'{v:.0f}')} | "
                       f"{cell(m, 'producer_wall_ns_per_put', lambda v: f'{v:.0f}')} | "
                       f"{cell(m, 'delivered_msgs_per_s', num)} | {cell(m, 'cpu_ratio', lambda v: f'{v:.2f}×')} |")
        out.append("")
        out.append("![fan-out: producer CPU per message and messages delivered per second against groups]"
                   "(benchmarks-fanout.png)")
        out.append("")
    if sb:
        out.append("### State channels (statebench)")
        out.append("")
        out.append("One way = round trip ÷ 2, nanoseconds.")
        out.append("")
        out.append("| | p50 | p99 | p99.9 |")
        out.append("|---|---:|---:|---:|")
        for key, what in (("raw_oneway_ns", "raw cache line, spinning"),
                          ("raw2_oneway_ns", "raw, one line per direction"),
                          ("state_spin_oneway_ns", "state channel, spinning reader"),
                          ("futex_oneway_ns", "bare futex, both sleep"),
                          ("state_park_oneway_ns", "state channel, parked reader")):
            v = sb.get(key)
            if v:
                out.append(f"| {what} | {ns(v[0])} | {ns(v[1])} | {ns(v[2])} |")
        out.append("")
        out.append("| value size | writes/s | reads/s |")
        out.append("|---|---:|---:|")
        for s, w, r in zip((8, 4096, 1 << 20), sb.get("write_ops", []), sb.get("read_ops", [])):
            out.append(f"| {size_name(s)} | {num(w)} | {num(r)} |")
        out.append("")
        out.append(f"16 MiB value: written at {sb.get('big_write_over_memcpy', 0):.2f}× and read at "
                   f"{sb.get('big_read_over_memcpy', 0):.2f}× the speed of a memcpy "
                   f"({sb.get('memcpy_16MiB_GBps', 0):.1f} GB/s).")
        out.append("")
    return out, rows


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.path.join(here, "results"))
    ap.add_argument("--doc", help="markdown file whose generated part to rewrite")
    args = ap.parse_args()
    out, rows = generate(args.results)
    dist = disturbed(load(os.path.join(args.results, "ipcbench.json")))
    print("Targets (ratios within this run)" + (", ipcbench run DISTURBED: not a measurement:" if dist else ":"))
    for what, want, got, ok in rows:
        mark = ("n/a" if got == "not measured" else "info") if ok is None else "met" if ok else "NOT MET"
        print(f"  {mark:8s} {what}: {got} (wanted {want})")
    if args.doc:
        with open(args.doc) as f:
            text = f.read()
        a, b = text.find(BEGIN), text.find(END)
        if a < 0 or b < a:
            sys.exit(f"mkreport.py: {args.doc} lacks the {BEGIN} ... {END} lines")
        text = text[:a + len(BEGIN)] + "\n\n" + "\n".join(out) + "\n" + text[b:]
        with open(args.doc, "w") as f:
            f.write(text)
        print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
