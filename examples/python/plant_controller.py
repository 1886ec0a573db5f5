#!/usr/bin/env python3
"""Plant and PI controller in two processes over shmbus state channels.

The plant (this process) steps y[k+1] = 0.9 y[k] + 0.1 u[k] at 20 Hz and
publishes y; the controller (a second process) runs a PI law at 40 Hz,
u = Kp e + Ki integral(e), e = 5 - y, Kp = 3, Ki = 0.5, dt = 0.025, and
publishes u. Each side reads the other's latest value: never torn, never
blocking the writer. Both use SharedMemoryTransport, the named-arrays facade.

Exit 0 when y converged toward the setpoint (the error shrank and is small).
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

import numpy as np

import shmbus

SETPOINT = 5.0
CHANNELS = {"y": ("float64", (1,)), "u": ("float64", (1,)), "done": ("int64", (1,))}


def controller(bus_name, kp=3.0, ki=0.5, dt=0.025):
    with shmbus.SharedMemoryTransport(bus_name, CHANNELS, create=False, timeout=10) as t:
        integral, ticks = 0.0, 0
        u = np.zeros(1)
        y = np.zeros(1)
        next_t = time.monotonic()
        while t.seq("done") == 0:
            t.read("y", out=y)
            e = SETPOINT - y[0]
            integral += e * dt
            u[0] = kp * e + ki * integral
            t.write("u", u)
            ticks += 1
            next_t += dt
            time.sleep(max(0.0, next_t - time.monotonic()))
        print("controller: %d ticks, last y = %.4f, u = %.4f" % (ticks, y[0], u[0]), flush=True)


def plant(bus_name, steps):
    with shmbus.SharedMemoryTransport(bus_name, CHANNELS, create=True) as t:
        ctx = mp.get_context("spawn")
        ctl = ctx.Process(target=controller, args=(bus_name,))
        ctl.start()
        y = 0.0
        t.write("y", np.array([y]))
        try:
            t.wait("u", newer_than=0, timeout=10)   # the controller's first command
        except shmbus.Timeout:
            print("plant: no controller within 10 s", file=sys.stderr)
            ctl.terminate()
            return 1
        err_mid = None
        next_t = time.monotonic()
        for k in range(steps):
            u = t.read("u")[0]
            y = 0.9 * y + 0.1 * u
            t.write("y", np.array([y]))
            if k % 20 == 19:
                print("plant: step %3d  u = %7.4f  y = %7.4f" % (k + 1, u, y), flush=True)
            if k == steps // 2:
                err_mid = SETPOINT - y
            next_t += 0.05
            time.sleep(max(0.0, next_t - time.monotonic()))
        t.write("done", np.array([1]))
        ctl.join(10)
        if ctl.exitcode != 0:
            print("plant: controller exited with %s" % ctl.exitcode, file=sys.stderr)
            return 1
    err = SETPOINT - y
    print("plant: final y = %.4f (setpoint %.1f), error at step %d %.4f, at the end %.4f"
          % (y, SETPOINT, steps // 2, err_mid, err))
    # Kp=3, Ki=0.5: the integral mode is slow, y is still rising toward 5 at the end.
    if not (err < err_mid and -0.1 < err < 0.5 + 2.0 * (200 - min(steps, 200)) / 200):
        print("plant: did not converge toward the setpoint", file=sys.stderr)
        return 1
    print("plant: converging toward %.1f: ok" % SETPOINT)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bus", default="demo_py_plant_%d" % os.getpid())
    ap.add_argument("--steps", type=int, default=200, help="plant steps at 20 Hz (default 200)")
    a = ap.parse_args()
    return plant(a.bus, a.steps)


if __name__ == "__main__":
    sys.exit(main())
