"""Seed 000's plant.py. The `with` block below is the seed's code verbatim
(shared/seeds/000_538d0e9acd7cab94.txt, section "Plant (plant.py)"); only the
imports and the names from common.py are added around it."""
import time

import numpy as np

from common import BUS_NAME, CHANNELS, N_STEPS, SharedMemoryTransport
from common import DT_PLANT as DT

with SharedMemoryTransport(BUS_NAME, CHANNELS, create=True) as bus:
    bus.write("y", np.array([0.0]))
    bus.write("u", np.array([0.0]))
    time.sleep(2.0) # wait for controller to connect
    for k in range(N_STEPS):
        u = bus.read("u")[0]
        y = bus.read("y")[0]
        y_next = 0.9 * y + 0.1 * u # discrete first-order dynamics
        bus.write("y", np.array([y_next]))
        time.sleep(DT)
