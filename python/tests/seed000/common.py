"""What seed 000's plant and controller share but the seed does not spell out.

Seed 000 ("Distributed Simulation via Shared Memory",
shared/seeds/000_538d0e9acd7cab94.txt) shows the body of plant.py and
controller.py, written against ``SharedMemoryTransport``; the names they use
(BUS_NAME, CHANNELS, N_STEPS, DT, the PID) are defined here from the seed's
text: plant at ~20 Hz for 200 steps (~10 s), controller at 40 Hz, PI
with Kp=3.0, Ki=0.5, dt=0.025, setpoint 5.0. The bus name comes from
SEED000_BUS so that tests can run side by side.
"""
import os

from shmbus import SharedMemoryTransport  # noqa: F401  (the seed's facade)

BUS_NAME = os.environ.get("SEED000_BUS", "seed000")
CHANNELS = {"y": ("float64", (1,)), "u": ("float64", (1,))}
N_STEPS = 200          # "The plant runs for 200 steps (~10 s)"
DT_PLANT = 0.05        # "Plant at 20 Hz"
DT_CONTROLLER = 0.025  # "controller at 40 Hz", "dt=0.025"


class PID:
    """The seed's controller: "Kp=3.0, Ki=0.5, dt=0.025"."""

    def __init__(self, kp=3.0, ki=0.5, kd=0.0, dt=DT_CONTROLLER):
        self.kp, self.ki, self.kd, self.dt = kp, ki, kd, dt
        self.integral = 0.0
        self.prev = None

    def compute(self, setpoint, measurement):
        e = setpoint - measurement
        self.integral += e * self.dt
        d = 0.0 if self.prev is None else (e - self.prev) / self.dt
        self.prev = e
        return self.kp * e + self.ki * self.integral + self.kd * d
