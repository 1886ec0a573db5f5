"""shmbus -- shared-memory channels between independent processes.

A *bus* is one named shared-memory segment ("name" in /dev/shm, or
"file:/path" for one that persists); inside it live named, typed channels:

* ``bus.state(name, dtype=..., shape=...)`` -- the latest value of a fixed-size
  array: one writer, any number of readers, never torn (:class:`State`).
* ``bus.queue(name, slots=..., max_msg=...)`` -- a lossless bounded message
  stream with consumer groups (:class:`Queue`).

Errors are :class:`Error` subclasses carrying the library's message:
:class:`Timeout`, :class:`Closed`, :class:`NotFound`, :class:`Exists`,
:class:`TypeMismatch`, :class:`Corrupt`, and a few more.

Blocking calls release the GIL and wake on Ctrl+C. numpy is optional: with it,
reads return numpy arrays; without it, bytes.
"""
from ._shmbus import (  # noqa: F401
    FOREVER,
    Bus,
    Busy,
    Closed,
    Corrupt,
    Error,
    Exists,
    InvalidArgument,
    NoData,
    NoSpace,
    NotFound,
    OwnerDead,
    Queue,
    State,
    Timeout,
    TooBig,
    TypeMismatch,
    library_version,
    list_buses,
    unlink,
)
from ._transport import SharedMemoryTransport  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "Bus", "State", "Queue", "SharedMemoryTransport",
    "Error", "Timeout", "Closed", "NotFound", "Exists", "TypeMismatch", "Corrupt",
    "Busy", "NoSpace", "TooBig", "NoData", "OwnerDead", "InvalidArgument",
    "unlink", "list_buses", "library_version", "FOREVER",
]
