#!/usr/bin/env python3
"""Read a large matrix, streamed frame by frame from a C process, into numpy
without copying it.

Spawns the C example writer (build/examples/matrix_stream/matrix_writer),
which publishes a rows x cols float64 matrix on state channel "frame" every
frame, m[i][j] = frame + 0.001 * ((i + j) % 1000). Each frame is looked at
in place (State.peek(): a read-only numpy array over shared memory), every
element is checked, and the frame counts as seen only if the writer did not
overwrite it meanwhile (latest value wins; a fast writer makes us skip
frames, never see a torn one). Exit 0 when every frame looked at was right.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

import shmbus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writer", default=os.path.join(ROOT, "build/examples/matrix_stream/matrix_writer"))
    ap.add_argument("--bus", default="demo_py_matrix_%d" % os.getpid())
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--cols", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--hz", type=float, default=60)
    a = ap.parse_args()
    writer = subprocess.Popen([a.writer, "--bus", a.bus, "--rows", str(a.rows), "--cols",
                               str(a.cols), "--frames", str(a.frames), "--hz", str(a.hz),
                               "--wait-reader", "10"])
    seen = torn = wrong = 0
    try:
        with shmbus.Bus(a.bus, wait=10) as bus:
            frame = None
            while frame is None:
                try:
                    frame = bus.state("frame", create=False)
                except shmbus.NotFound:
                    if writer.poll() is not None:
                        raise
            done = bus.state("done", dtype="int64")
            ready = bus.state("ready", dtype="int64")
            rows, cols = frame.shape
            i, j = np.indices((rows, cols))
            pattern = 0.001 * ((i + j) % 1000)
            del i, j
            ready.write(1)
            last = 0
            while True:
                try:
                    frame.wait(newer_than=last, timeout=0.2)
                except shmbus.Timeout:
                    if done.seq and done.read() <= last or writer.poll() is not None:
                        break
                    continue
                p = frame.peek()
                with p as m:  # m: the frame in shared memory, no copy
                    f = m[0, 0]
                    ok = f == float(p.seq) and np.abs(m - pattern - f).max() < 1e-9
                if not p.valid:
                    torn += 1  # overwritten while we looked: take the newer one
                    continue
                if not ok:
                    wrong += 1
                    print("frame %d: wrong contents" % p.seq, file=sys.stderr)
                seen += 1
                last = p.seq
            total = done.read() if done.seq else last
    finally:
        rc = writer.wait(30)
    print("matrix_reader.py: %d of %d frames (%dx%d float64) checked in place, %d skipped "
          "(writer faster), %d retried, %d wrong; writer exit %d"
          % (seen, total, rows, cols, total - seen, torn, wrong, rc))
    return 0 if rc == 0 and wrong == 0 and seen > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
