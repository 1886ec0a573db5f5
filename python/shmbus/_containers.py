"""Dict and List: shared containers holding Python values.

Values are encoded into bytes by this module (not pickle): None, bool, int,
float, str, bytes, and tuples, lists and dicts of those, nested. The C
library stores the bytes in the bus heap under its robust lock, so every
single operation is atomic across processes, and a process killed in the
middle of one leaves the container consistent.

``d[k] += v`` and ``lst[i] += v`` on numbers are one atomic operation: the
number read by ``d[k]`` remembers where it came from, and the assignment
that follows applies ``v`` with one atomic add in shared memory (see
containers.c). Any other read-modify-write can be made atomic with
``apply(key, fn)``.

Keys of a Dict are compared by their encoding: 1, 1.0 and True are three
different keys.
"""
import struct
from collections.abc import MutableMapping, MutableSequence

from . import _shmbus

_loaded = _shmbus._loaded
_take_pending = _shmbus._take_pending
_LOADED = (type(_loaded(1, None, None)), type(_loaded(1.0, None, None)))
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_MIN, _MAX = -(1 << 63), (1 << 63) - 1

__all__ = ["Dict", "List", "encode", "decode"]


def encode(v):
    """Encode a value into bytes (see the module's docstring for the kinds)."""
    t = type(v)
    if v is None:
        return b"N"
    if t is bool:
        return b"T" if v else b"F"
    if isinstance(v, int) and t is not bool:
        v = int(v)
        if _MIN <= v <= _MAX:
            return b"i" + _I64.pack(v)
        return b"I" + str(v).encode()
    if isinstance(v, float):
        return b"f" + _F64.pack(float(v))
    if isinstance(v, str):
        return b"s" + v.encode("utf-8", "surrogatepass")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return b"b" + bytes(v)
    if isinstance(v, (tuple, list)):
        parts = [b"t" if isinstance(v, tuple) else b"l", _U32.pack(len(v))]
        for x in v:
            e = encode(x)
            parts.append(_U32.pack(len(e)))
            parts.append(e)
        return b"".join(parts)
    if isinstance(v, dict):
        parts = [b"d", _U32.pack(len(v))]
        for k, x in v.items():
            for e in (encode(k), encode(x)):
                parts.append(_U32.pack(len(e)))
                parts.append(e)
        return b"".join(parts)
    raise _shmbus._error(_shmbus.ETYPE, "shared containers hold None, bool, int, float, str, "
                         "bytes and tuples/lists/dicts of them, not %s" % t.__name__)


def _corrupt(msg):
    return _shmbus._error(_shmbus.ECORRUPT, msg)


def _items(b, pos, n):
    out = []
    for _ in range(n):
        (ln,) = _U32.unpack_from(b, pos)
        pos += 4
        if pos + ln > len(b):
            raise _corrupt("a container value is truncated")
        out.append(decode(b[pos:pos + ln]))
        pos += ln
    if pos != len(b):
        raise _corrupt("trailing bytes in a container value")
    return out


def decode(b):
    """Decode bytes made by encode()."""
    if not b:
        raise _corrupt("empty container value")
    tag = b[0:1]
    try:
        if tag == b"i":
            return _I64.unpack(b[1:])[0]
        if tag == b"f":
            return _F64.unpack(b[1:])[0]
        if tag == b"s":
            return b[1:].decode("utf-8", "surrogatepass")
        if tag == b"b":
            return bytes(b[1:])
        if tag == b"N":
            return None
        if tag == b"T":
            return True
        if tag == b"F":
            return False
        if tag == b"I":
            return int(b[1:])
        if tag in (b"t", b"l", b"d"):
            (n,) = _U32.unpack_from(b, 1)
            if n > len(b):
                raise _corrupt("container value claims %d items" % n)
            items = _items(b, 5, 2 * n if tag == b"d" else n)
            if tag == b"t":
                return tuple(items)
            if tag == b"l":
                return items
            return dict(zip(items[0::2], items[1::2]))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise _corrupt("undecodable container value (%s)" % e) from None
    raise _corrupt("unknown container value tag %r" % tag)


def _number_delta(delta):
    return isinstance(delta, (int, float)) and not isinstance(delta, bool)


class Dict(MutableMapping):
    """A dict shared between processes (``Bus.dict(name)``).

    Supports ``d[k]``, ``d[k] = v``, ``del d[k]``, ``len``, ``in``,
    iteration, ``get``, ``items``, ``keys``, ``values``, ``pop``,
    ``setdefault``, ``update``, ``clear``. Each single operation is atomic;
    ``d[k] += v`` on a number is atomic too, and ``apply(k, fn)`` stores
    ``fn(old)`` atomically. Iteration works on a snapshot of the keys.
    """

    def __init__(self, raw, name):
        self._raw = raw
        self.name = name

    def __getitem__(self, key):
        try:
            b = self._raw.get(encode(key))
        except KeyError:
            raise KeyError(key) from None
        v = decode(b)
        if type(v) is int or type(v) is float:
            return _loaded(v, self, key)
        return v

    def __setitem__(self, key, value):
        kb = encode(key)
        if type(value) in _LOADED:
            delta = _take_pending(self, key, value)
            if delta is not None:
                if not self._raw.add(kb, delta):
                    self._apply_raw(kb, lambda old: old + delta, missing=KeyError(key))
                return
        self._raw.set(kb, encode(value))

    def __delitem__(self, key):
        try:
            self._raw.delete(encode(key))
        except KeyError:
            raise KeyError(key) from None

    def __len__(self):
        return self._raw.len()

    def __iter__(self):
        return iter([decode(k) for k, _ in self._raw.items()])

    def __contains__(self, key):
        try:
            self._raw.get(encode(key))
            return True
        except KeyError:
            return False

    def items(self):
        """A list of (key, value) pairs: one consistent snapshot per pair."""
        return [(decode(k), decode(v)) for k, v in self._raw.items()]

    def values(self):
        return [decode(v) for _, v in self._raw.items()]

    def keys(self):
        return [decode(k) for k, _ in self._raw.items()]

    def to_dict(self):
        """A plain dict copy."""
        return dict(self.items())

    def _apply_raw(self, kb, fn, missing=None):
        def upd(old):
            if old is None:
                if missing is not None:
                    raise missing
                new = fn(None)
            else:
                new = fn(decode(old))
            return encode(new)
        self._raw.update(kb, upd)

    def apply(self, key, fn):
        """Atomically replace d[key] by fn(d[key]) (fn gets None if absent).

        fn runs while the container's lock is held: keep it short, and do
        not touch this container from inside it."""
        self._apply_raw(encode(key), fn)

    def add(self, key, delta):
        """Atomically add a number to d[key] (KeyError if absent)."""
        if not _number_delta(delta):
            raise _shmbus._error(_shmbus.ETYPE, "add() needs an int or float delta")
        kb = encode(key)
        if not self._raw.add(kb, delta):
            self._apply_raw(kb, lambda old: old + delta, missing=KeyError(key))

    def setdefault(self, key, default=None):
        kb = encode(key)
        box = []

        def upd(old):
            if old is None:
                box.append(default)
                return encode(default)
            box.append(decode(old))
            return old
        self._raw.update(kb, upd)
        return box[-1]

    def pop(self, key, *default):
        kb = encode(key)
        box = []

        def upd(old):
            if old is not None:
                box.append(decode(old))
            return None  # delete
        try:
            self._raw.update(kb, upd)
        except KeyError:
            pass
        if box:
            return box[-1]
        if default:
            return default[0]
        raise KeyError(key)

    def clear(self):
        for k, _ in self._raw.items():
            try:
                self._raw.delete(k)
            except KeyError:
                pass

    def close(self):
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<shmbus.Dict %r %r>" % (self.name, self.to_dict())


class List(MutableSequence):
    """A list shared between processes (``Bus.list(name)``).

    Supports indexing (negative too), slices (read: a snapshot), item
    assignment, ``del``, ``len``, ``in``, iteration, ``append``,
    ``insert``, ``pop``, ``extend``, ``clear``. Each single operation is
    atomic; ``lst[i] += v`` on a number is atomic, and ``apply(i, fn)``
    stores ``fn(old)`` atomically.
    """

    def __init__(self, raw, name):
        self._raw = raw
        self.name = name

    def __len__(self):
        return self._raw.len()

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [decode(self._raw.get(j)) for j in range(*i.indices(len(self)))]
        v = decode(self._raw.get(i))
        if type(v) is int or type(v) is float:
            return _loaded(v, self, i)
        return v

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            idx = range(*i.indices(len(self)))
            value = list(value)
            if len(idx) != len(value):
                raise _shmbus._error(_shmbus.EINVAL, "slice assignment must keep the length "
                                     "(%d values for %d slots)" % (len(value), len(idx)))
            for j, v in zip(idx, value):
                self._raw.set(j, encode(v))
            return
        if type(value) in _LOADED:
            delta = _take_pending(self, i, value)
            if delta is not None:
                if not self._raw.add(i, delta):
                    self.apply(i, lambda old: old + delta)
                return
        self._raw.set(i, encode(value))

    def __delitem__(self, i):
        if isinstance(i, slice):
            for j in sorted(range(*i.indices(len(self))), reverse=True):
                self._raw.pop(j)
            return
        self._raw.pop(i)

    def __iter__(self):
        i = 0
        while True:
            try:
                yield decode(self._raw.get(i))
            except IndexError:
                return
            i += 1

    def insert(self, index, value):
        self._raw.insert(index, encode(value))

    def append(self, value):
        self._raw.append(encode(value))

    def pop(self, index=-1):
        return decode(self._raw.pop(index))

    def clear(self):
        self._raw.clear()

    def apply(self, index, fn):
        """Atomically replace lst[index] by fn(lst[index]).

        fn runs while the container's lock is held: keep it short, and do
        not touch this container from inside it."""
        self._raw.update(index, lambda old: encode(fn(decode(old))))

    def add(self, index, delta):
        """Atomically add a number to lst[index]."""
        if not _number_delta(delta):
            raise _shmbus._error(_shmbus.ETYPE, "add() needs an int or float delta")
        if not self._raw.add(index, delta):
            self.apply(index, lambda old: old + delta)

    def tolist(self):
        """A plain list copy."""
        return list(self)

    def close(self):
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<shmbus.List %r %r>" % (self.name, self.tolist())
