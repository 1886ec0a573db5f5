"""Python sequences written into a typed state channel: the conversion rule.

State.write() copies buffers (numpy arrays, bytes, memoryview,
array.array) byte for byte, so their element type must be the channel's;
numbers go through the C element packer. Everything else -- lists,
tuples, nested sequences -- comes here and is converted by value under the
same rule as single numbers (see sbpy_pack in src/module.c): a value is
stored as it is or refused, never wrapped, truncated or invented.
Integer dtypes take integers within range; bool takes booleans and 0/1;
float dtypes take integers and floats (rounded to the nearest value of the
dtype; a finite value beyond float32's range is refused).
"""
import numpy as np

from . import _shmbus


def _type_error(msg):
    return _shmbus._error(_shmbus.ETYPE, msg)


def _range_error(msg):
    return _shmbus._error(_shmbus.EINVAL, msg)


def to_array(value, dtype_name):
    """A C-contiguous numpy array of dtype_name holding exactly `value`."""
    dt = np.dtype(dtype_name)
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise _type_error("cannot store %s in a %s channel (%s)"
                          % (type(value).__name__, dt.name, e)) from None
    k = a.dtype.kind
    if k == "O":
        # Elements numpy could not type (None, ints beyond 64 bits, mixed):
        # each one through the C packer, which applies the rule.
        raw = b"".join(_shmbus._pack(dt.name, x) for x in a.ravel())
        return np.frombuffer(raw, dtype=dt).reshape(a.shape)
    if k not in "biuf":
        raise _type_error("cannot store %s values in a %s channel" % (a.dtype, dt.name))
    tk = dt.kind
    if tk in "iub":
        if k == "f":
            raise _type_error("cannot store floats in a %s channel (no truncation)" % dt.name)
        if a.size and k in "iu":
            lo, hi = (0, 1) if tk == "b" else (int(np.iinfo(dt).min), int(np.iinfo(dt).max))
            amin, amax = int(a.min()), int(a.max())
            if amin < lo or amax > hi:
                raise _range_error("%d does not fit in %s" % (amin if amin < lo else amax, dt.name))
        return np.ascontiguousarray(a, dtype=dt)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=dt)
    if a.size and np.any(np.isinf(out) & ~np.isinf(a)):
        raise _range_error("a value beyond %s's range" % dt.name)
    return out
