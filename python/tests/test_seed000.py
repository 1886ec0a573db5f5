"""Seed 000's own plant and controller, run as written, as two processes.

The code is in seed000/ (plant.py and controller.py hold the seed's code
verbatim; common.py the names the seed uses but does not define). Before
state channels could take several writers, the controller's first write of
u raised Busy (the plant had written u = 0 at start) and y stayed at 0.
Here y must rise from 0 and end near the setpoint 5.0: the seed's own model
reaches ~4.6 after its 200 steps (its PI controller is slow on the integral),
so the check is that y passes 4.0 and ends between 4.0 and 5.5, much closer
to 5 than at the start.
"""
import os
import signal
import subprocess
import sys
import time

import shmbus

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = os.path.join(HERE, "seed000")


def _spawn(script, env):
    return subprocess.Popen([sys.executable, os.path.join(SEED, script)], cwd=SEED, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_seed000_plant_and_controller(child_env):
    name = "t-py-seed000-%d" % os.getpid()
    env = dict(child_env, SEED000_BUS=name)
    plant = _spawn("plant.py", env)
    controller = None
    ys = []
    try:
        # "Terminal 2 -- connect controller (within 2 s)": once the bus is there.
        deadline = time.monotonic() + 30
        while not os.path.exists("/dev/shm/shmbus-" + name):
            assert plant.poll() is None, plant.communicate()[0]
            assert time.monotonic() < deadline, "the plant did not create its bus"
            time.sleep(0.02)
        controller = _spawn("controller.py", env)
        # Watch y from a third process while the plant runs (~12 s).
        with shmbus.Bus(name, create=False, wait=10) as bus:
            # The plant creates y after its bus: under load the watcher can
            # come in between, so it waits for y as it waited for the bus.
            while True:
                try:
                    y = bus.state("y", create=False)
                    break
                except shmbus.NotFound:
                    assert plant.poll() is None, plant.communicate()[0]
                    assert time.monotonic() < deadline, "the plant did not create y"
                    time.sleep(0.02)
            while plant.poll() is None:
                try:
                    ys.append(float(y.read()[0]))
                except shmbus.NoData:
                    pass
                assert controller.poll() is None, \
                    "the controller stopped:\n" + controller.communicate()[0]
                time.sleep(0.1)
        out = plant.communicate(timeout=60)[0]
        assert plant.returncode == 0, "the plant failed:\n" + out
    finally:
        for p in (controller, plant):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)   # "Press Ctrl+C to stop the controller"
                try:
                    p.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
        try:
            shmbus.unlink(name)
        except shmbus.NotFound:
            pass
    assert ys, "no value of y seen"
    assert max(ys) > 4.0, "y never passed 4.0 (max %.3f): the controller's u did not act" % max(ys)
    end = ys[-1]
    assert 4.0 < end < 5.5, "y ended at %.3f, not near the setpoint 5.0 (trace %s)" % (
        end, [round(v, 2) for v in ys[::10]])
    assert abs(5.0 - end) < abs(5.0 - ys[0]) / 2
