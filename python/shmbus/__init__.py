"""shmbus -- shared-memory channels between independent processes.

A *bus* is one named shared-memory segment ("name" in /dev/shm, or
"file:/path" for one that persists); inside it live named, typed channels:

* ``bus.state(name, dtype=..., shape=...)`` -- the latest value of a fixed-size
  array: one writer, any number of readers, never torn (:class:`State`).
* ``bus.queue(name, slots=..., max_msg=...)`` -- a lossless bounded message
  stream with consumer groups (:class:`Queue`).
* ``bus.lock/event/semaphore/turn(name)`` -- crash-robust synchronisation.
* ``bus.array(name, dtype, length)``, ``bus.dict(name)``, ``bus.list(name)``
  -- shared containers; ``c[k] += v`` is atomic across processes.

Errors are :class:`Error` subclasses, one per SHMBUS_E* code of the
library, carrying its message, ``.code`` (one of the ``E*`` constants here)
and ``.errname`` ("SHMBUS_ETIMEDOUT"): :class:`Timeout`, :class:`Closed`,
:class:`NotFound`, :class:`Exists`, :class:`TypeMismatch`, :class:`Corrupt`,
:class:`PermissionDenied`, and more (``ERRORS`` maps every code to its name,
:func:`errname` names one).

Blocking calls release the GIL and wake on Ctrl+C. :class:`WaitSet` and
:func:`wait` wait on many channels at once; every blocking call has an
asyncio form (``await q.get_async()``, ``async for m in q``, ...) that uses
no thread per call. numpy is optional: with it,
reads return numpy arrays; without it, bytes.
"""
from ._shmbus import (  # noqa: F401
    ERRORS,
    FOREVER,
    Bus,
    Busy,
    Closed,
    Corrupt,
    Error,
    Exists,
    Interrupted,
    InvalidArgument,
    Lapped,
    NoData,
    NoSpace,
    NotFound,
    NotRecoverable,
    OutOfMemory,
    OutOfOrder,
    OwnerDead,
    PermissionDenied,
    Queue,
    State,
    SystemCallFailed,
    Timeout,
    TooBig,
    TypeMismatch,
    VersionMismatch,
    WouldBlock,
    errname,
    library_version,
    list_buses,
    unlink,
)
from ._shmbus import Array, Event, Lock, Semaphore, Turn, WaitSet  # noqa: F401
from ._shmbus import (  # noqa: F401  -- the SHMBUS_E* codes, as Error.code
    EAGAIN, EBUSY, ECLOSED, ECORRUPT, EEXIST, EINTR, EINVAL, ELAPPED, ENODATA, ENOENT,
    ENOMEM, ENOSPC, ENOTRECOVERABLE, EOWNERDEAD, EPERM, ESTATE, ESYS, ETIMEDOUT, ETOOBIG,
    ETYPE, EVERSION,
)
from ._shmbus import Bus as _CBus
from ._containers import Dict, List, decode, encode  # noqa: F401
from ._transport import SharedMemoryTransport  # noqa: F401
import weakref as _weakref


class Bus(_CBus):
    __doc__ = _CBus.__doc__

    @classmethod
    def create(cls, name, **kw):
        """Bus.create(name, size=0, mode=0o600, ..., unlink=False): a new bus (Exists if taken)."""
        return cls(name, create=True, **kw)

    @classmethod
    def open(cls, name, wait=None, **kw):
        """Bus.open(name, wait=None): an existing bus (NotFound; or wait up to `wait` seconds)."""
        return cls(name, create=False, wait=wait, **kw)

    @classmethod
    def open_or_create(cls, name, **kw):
        """Bus.open_or_create(name, size=0, ...): open it, creating it if missing (race-free)."""
        return cls(name, create=None, **kw)

    def dict(self, name, create=True, area_bytes=0):
        """dict(name, create=True, area_bytes=0) -> Dict

        A dict shared between processes, holding None, bool, int, float, str,
        bytes and nested tuples/lists/dicts. area_bytes reserves its room in
        the bus heap (0: the library default, 1 MiB or, on a bus with less
        room, half of the heap still free)."""
        return Dict(self._raw_dict(name, create, area_bytes), name)

    def list(self, name, create=True, area_bytes=0):
        """list(name, create=True, area_bytes=0) -> List

        A list shared between processes (values as for Bus.dict)."""
        return List(self._raw_list(name, create, area_bytes), name)


_turns = _weakref.WeakKeyDictionary()


def turn(bus, name, max_parties=0):
    """The Turn `name` of `bus` for this process, registered once.

    ``with shmbus.turn(bus, "t"):`` waits for this process's turn and hands
    it on at the end of the block; processes take turns in the order they
    first called turn() for that name."""
    per_bus = _turns.setdefault(bus, {})
    t = per_bus.get(name)
    if t is None or t.closed:
        t = per_bus[name] = bus.turn(name, max_parties=max_parties)
    return t

def wait(objs, timeout=None):
    """wait(objs, timeout=None) -> list: the members of objs that are ready.

    objs holds State, Queue, Lock, Event, Semaphore and Turn handles, or
    (handle, cond) pairs (cond as for WaitSet.add: a queue's "message",
    "space" or "end"). Waits until at least one is ready and returns those
    (as given), or [] after `timeout` seconds. A State is ready when it holds
    a newer value than the handle last read or waited for (its last_seq).
    Nothing is consumed: make the call (timeout=0) yourself. One temporary
    WaitSet per call; keep a WaitSet to wait again and again."""
    with WaitSet() as ws:
        for o in objs:
            if isinstance(o, tuple):
                ws.add(o[0], o[1], tag=o)
            else:
                ws.add(o)
        return ws.wait(timeout)


# The version of the C library built into the extension: the VERSION file
# of the source tree, as include/shmbus.h carries it (setup.py names the
# distribution with the same number).
__version__ = library_version()

__all__ = [
    "Bus", "State", "Queue", "SharedMemoryTransport",
    "Lock", "Event", "Semaphore", "Turn", "turn", "WaitSet", "wait", "Array", "Dict", "List", "encode", "decode",
    "Error", "Timeout", "Closed", "NotFound", "Exists", "TypeMismatch", "Corrupt",
    "Busy", "NoSpace", "TooBig", "NoData", "OwnerDead", "InvalidArgument", "PermissionDenied",
    "VersionMismatch", "WouldBlock", "SystemCallFailed", "Interrupted", "OutOfMemory",
    "OutOfOrder", "NotRecoverable", "Lapped", "ERRORS", "errname",
    "EAGAIN", "EBUSY", "ECLOSED", "ECORRUPT", "EEXIST", "EINTR", "EINVAL", "ELAPPED", "ENODATA",
    "ENOENT", "ENOMEM", "ENOSPC", "ENOTRECOVERABLE", "EOWNERDEAD", "EPERM", "ESTATE", "ESYS",
    "ETIMEDOUT", "ETOOBIG", "ETYPE", "EVERSION",
    "unlink", "list_buses", "library_version", "FOREVER",
]
