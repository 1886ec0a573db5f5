"""The other process of test_waitset.py and test_asyncio.py: opens the bus
named by argv[1] and carries out one command per stdin line, answering
"ok <command>" on stdout once it is done:

  put [data]    put one message on queue "q"      shut    end queue "q"
  get           take one message of "q" (group "g2") and answer it
  write N       write N to state "s"              set     set event "e"
  lock/unlock   take/release lock "L"             post    post semaphore "S"
  turn          take and hand on turn "T" (this process registers second)
  produce N Q   put messages 0..N-1 (4-byte numbers) on queue Q, quickly
"""
import struct
import sys

import shmbus

bus = shmbus.Bus(sys.argv[1])
q = bus.queue("q")
g2 = bus.queue("q", group="g2")
st = bus.state("s", dtype="int64")
ev = bus.event("e")
lk = bus.lock("L")
sem = bus.semaphore("S")
turn = bus.turn("T")
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    reply = ""
    if cmd[0] == "put":
        q.put(cmd[1].encode() if len(cmd) > 1 else b"x", timeout=30)
    elif cmd[0] == "shut":
        q.shut()
    elif cmd[0] == "get":
        reply = g2.get(timeout=30).decode()
    elif cmd[0] == "write":
        st.write(int(cmd[1]))
    elif cmd[0] == "set":
        ev.set()
    elif cmd[0] == "lock":
        lk.acquire()
    elif cmd[0] == "unlock":
        lk.release()
    elif cmd[0] == "post":
        sem.release()
    elif cmd[0] == "turn":
        turn.acquire(timeout=30)
        turn.release()
    elif cmd[0] == "produce":
        with bus.queue(cmd[2], create=False) as out:
            for i in range(int(cmd[1])):
                out.put(struct.pack("<I", i), timeout=60)
    elif cmd[0] == "exit":
        break
    print("ok", cmd[0], reply, flush=True)
bus.close()
