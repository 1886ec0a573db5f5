"""Seed 000's controller.py. The `with` block below is the seed's code
verbatim (shared/seeds/000_538d0e9acd7cab94.txt, section "Controller
(controller.py)"); only the imports, the names from common.py and the PID
object are added around it. It runs until interrupted, as in the seed."""
import time

import numpy as np

from common import BUS_NAME, CHANNELS, PID, SharedMemoryTransport
from common import DT_CONTROLLER as DT

pid = PID(kp=3.0, ki=0.5)

with SharedMemoryTransport(BUS_NAME, CHANNELS, create=False) as bus:
    while True:
        y = bus.read("y")[0]
        u = pid.compute(setpoint=5.0, measurement=y)
        bus.write("u", np.array([u]))
        time.sleep(DT) # 40 Hz
