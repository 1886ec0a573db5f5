#!/usr/bin/env python3
"""A bus that survives its processes: a file-backed ("file:/path") bus.

Process 1 creates the bus in a file, writes a state value (a numpy array)
and queues messages for a durable group, then exits. Process 2 -- a new
process, started after the first one is gone -- opens the same file and
reads everything back. Exit 0 when all of it came back intact; the file is
removed at the end.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

import shmbus

N_MSG = 100


def expected():
    return np.arange(12, dtype=np.float64).reshape(3, 4) * 1.5


def write(path):
    with shmbus.Bus("file:" + path, create=True, size=1 << 20) as bus:
        bus.state("calibration", dtype="float64", shape=(3, 4)).write(expected())
        q = bus.queue("log", slots=128, max_msg=64)
        q.join("archiver", earliest=True, durable=True)  # keeps the messages for later
        for i in range(N_MSG):
            q.put(b"entry %d" % i)
    print("writer (pid %d): wrote calibration and %d log entries to %s" % (os.getpid(), N_MSG, path))
    return 0


def read(path):
    with shmbus.Bus("file:" + path) as bus:
        value, seq = bus.state("calibration", dtype="float64", shape=(3, 4)).read_with_seq()
        q = bus.queue("log", create=False, group="archiver")
        entries = []
        while True:
            try:
                entries.append(q.get(timeout=0))
            except shmbus.Timeout:
                break
    ok = np.array_equal(value, expected()) and seq == 1 and \
        entries == [b"entry %d" % i for i in range(N_MSG)]
    print("reader (pid %d): calibration seq %d %s, %d log entries back: %s"
          % (os.getpid(), seq, "intact" if np.array_equal(value, expected()) else "WRONG",
             len(entries), "ok" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=["write", "read"])
    ap.add_argument("--path")
    a = ap.parse_args()
    if a.role == "write":
        return write(a.path)
    if a.role == "read":
        return read(a.path)
    path = os.path.join(tempfile.mkdtemp(prefix="shmbus-persist-"), "bus.shm")
    try:
        for role in ("write", "read"):
            rc = subprocess.call([sys.executable, os.path.abspath(__file__), "--role", role,
                                  "--path", path])
            if rc != 0:
                print("%s process failed (exit %d)" % (role, rc), file=sys.stderr)
                return 1
        return 0
    finally:
        try:
            shmbus.unlink("file:" + path)
        except shmbus.Error:
            pass
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(os.path.dirname(path))


if __name__ == "__main__":
    sys.exit(main())
