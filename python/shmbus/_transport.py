"""SharedMemoryTransport -- a small dict-of-arrays facade over one bus.

A process pair written against the common "named arrays in shared memory"
style (``transport.write("u", arr)`` / ``transport.read("y")``) runs on
shmbus unchanged: each channel is a state channel made with
``writers="many"``, so a read is never torn and never blocks a writer, and
any process may write any channel (the plant that writes ``u = 0`` once at
start and the controller that writes ``u`` afterwards take turns; the last
write wins).
"""
from . import _shmbus
from ._shmbus import Bus, NoData

try:  # numpy is optional
    import numpy as _np
except ImportError:  # pragma: no cover - exercised only without numpy
    _np = None

__all__ = ["SharedMemoryTransport"]


def _spec(value):
    """(dtype, shape) from the forms a channel may be given in."""
    if isinstance(value, tuple) and len(value) == 2 and not all(isinstance(v, int) for v in value):
        dtype, shape = value
    elif isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        dtype, shape = "float64", tuple(value)
    elif isinstance(value, int):
        dtype, shape = "float64", (value,)
    elif isinstance(value, dict):
        dtype, shape = value.get("dtype", "float64"), value.get("shape", (1,))
    elif _np is not None and isinstance(value, _np.ndarray):
        dtype, shape = value.dtype, value.shape
    else:
        raise _shmbus._error(_shmbus.ETYPE, "channel spec must be (dtype, shape), a shape, "
                             "or a numpy array; got %r" % (value,))
    if isinstance(shape, int):
        shape = (shape,)
    return dtype, tuple(shape)


class SharedMemoryTransport:
    """Named fixed-size arrays shared between processes.

    ``SharedMemoryTransport(name, channels, create=False, size=0, timeout=10.0, mode=0,
    allow_foreign_owner=False)``

    *channels* maps a channel name to its type, in any of these forms::

        {"y": ("float64", (1,)),     # (dtype, shape)
         "u": (1,),                  # a shape: float64
         "img": np.zeros((480, 640), np.uint8)}   # a template array

    ``create=True`` makes the bus if it is missing (and removes it when this
    transport closes), with permission bits *mode* (0: 0o600); ``create=False``
    waits up to *timeout* seconds for another process to make it.
    ``allow_foreign_owner=True`` accepts a bus another user made (see Bus). Both sides must agree on the channels
    (``TypeMismatch`` otherwise).

    Every channel accepts writes from every process using the transport
    (``writers="many"``): each write is whole, the last one wins, ``seq``
    counts them all. An existing channel made with one writer is refused
    (``TypeMismatch``).

    ``write(channel, array)`` publishes a value; ``read(channel)`` returns a
    new array with the latest value (zeros before the first write);
    ``read(channel, out=arr)`` fills *arr* in place. ``seq(channel)`` is the
    number of writes so far. Use as a context manager, or call ``close()``.
    """

    def __init__(self, name, channels, create=False, size=0, timeout=10.0, mode=0,
                 allow_foreign_owner=False):
        if not channels:
            raise _shmbus._error(_shmbus.EINVAL, "SharedMemoryTransport needs at least one channel")
        self._specs = {str(k): _spec(v) for k, v in dict(channels).items()}
        if not size:
            total = 0
            for dtype, shape in self._specs.values():
                n = 1
                for d in shape:
                    n *= int(d)
                total += n * 8  # generous: 8 bytes per element
            size = max(1 << 20, 4 * total + (1 << 20))
        if create:
            self._bus = Bus(name, create=None, size=size, mode=mode, unlink=True,
                            allow_foreign_owner=allow_foreign_owner)
        else:
            self._bus = Bus(name, create=False, wait=timeout,
                            allow_foreign_owner=allow_foreign_owner)
        self._states = {}
        try:
            for ch, (dtype, shape) in self._specs.items():
                self._states[ch] = self._bus.state(ch, dtype=dtype, shape=shape,
                                                   writers="many")
        except BaseException:
            self._bus.close()
            raise
        self.name = name
        self.channels = tuple(self._specs)

    def _state(self, channel):
        try:
            return self._states[channel]
        except KeyError:
            raise KeyError("no channel %r in this transport (channels: %s)"
                           % (channel, ", ".join(self._specs))) from None

    def write(self, channel, value):
        """Publish *value* (array, buffer or number) on *channel*."""
        self._state(channel).write(value)

    def read(self, channel, out=None):
        """The latest value of *channel* (zeros if never written)."""
        st = self._state(channel)
        try:
            return st.read(out=out)
        except NoData:
            if out is not None:
                memoryview(out).cast("B")[:] = bytes(st.nbytes)
                return out
            if _np is None:
                return bytes(st.nbytes)
            dtype, shape = self._specs[channel]
            return _np.zeros(shape, dtype=dtype)

    def seq(self, channel):
        """How many values have been written to *channel*."""
        return self._state(channel).seq

    def wait(self, channel, newer_than=None, timeout=None):
        """Block until *channel* has a value newer than *newer_than*; returns its seq."""
        return self._state(channel).wait(newer_than=newer_than, timeout=timeout)

    def close(self):
        """Release the channels and the bus (the creator also removes it)."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<SharedMemoryTransport %r channels=%s>" % (self.name, list(self._specs))
