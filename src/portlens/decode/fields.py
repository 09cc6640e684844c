"""Byte-level access to a batch buffer: unaligned big-endian gathers and Internet checksums.

The fast decoder reads every header field of every frame with one numpy gather per field. That
works on unaligned offsets because the views here have a stride of one byte: element *i* of
``be32`` is the big-endian 32-bit value starting at byte *i*, whatever its alignment.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class ByteViews:
    """Stride-1 views over one buffer, for gathering fields at arbitrary byte offsets.

    Callers must check bounds first (the decoder's ``need``): a gather at ``p`` reads bytes
    ``p .. p+width-1``, which must lie inside the buffer.
    """

    __slots__ = ("be16", "be32", "le32", "u8")

    def __init__(self, data: npt.NDArray[np.uint8]) -> None:
        self.u8 = data
        n = data.shape[0]
        self.be16 = _strided(data, ">u2", n - 1)
        self.be32 = _strided(data, ">u4", n - 3)
        self.le32 = _strided(data, "<u4", n - 3)

    def bytes_at(self, pos: I64, width: int) -> npt.NDArray[np.uint8]:
        """A (len(pos), width) array of the bytes at each position."""
        out: npt.NDArray[np.uint8] = self.u8[pos[:, None] + np.arange(width, dtype=np.int64)]
        return out


def _strided(data: npt.NDArray[np.uint8], dtype: str, count: int) -> npt.NDArray[Any]:
    if count <= 0:
        return np.zeros(0, dtype=dtype)
    view: npt.NDArray[Any] = np.ndarray(shape=(count,), dtype=dtype, buffer=data, offset=0,
                                        strides=(1,))
    return view


def fold16(total: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Fold a one's-complement sum to 16 bits (end-around carry)."""
    t = total.astype(np.uint64, copy=True)
    for _ in range(4):
        t = (t & 0xFFFF) + (t >> 16)
    return t


def ones_sum(data: npt.NDArray[np.uint8], start: I64, length: I64) -> npt.NDArray[np.uint64]:
    """One's-complement sums (folded to 16 bits, big-endian word order) of data[s : s+len].

    One pass over the buffer with ``np.add.reduceat`` on the even-aligned little-endian words:
    the one's-complement sum does not depend on byte order (RFC 1071 §2(B)), so a range that
    starts at an odd offset is summed on the even-aligned words and byte-swapped afterwards.
    Bytes outside the range that share a word with its first or last byte are subtracted.
    """
    m = start.shape[0]
    out = np.zeros(m, dtype=np.uint64)
    if m == 0:
        return out
    n = data.shape[0]
    words = data[: n - (n & 1)].view("<u2")
    nw = words.shape[0]
    start = start.astype(np.int64)
    end = start + length.astype(np.int64)
    odd = (start & 1).astype(bool)
    w0 = start >> 1
    w1 = (end + 1) >> 1  # first word not touched by the range
    # Python fallback for ranges reaching the very end of the buffer (reduceat's indices must be
    # < len) or empty ones; at most a frame or two per batch.
    tail = (w1 >= nw) | (w1 <= w0)
    body = ~tail
    if body.any():
        idx = np.empty(2 * int(body.sum()), dtype=np.int64)
        idx[0::2] = w0[body]
        idx[1::2] = w1[body]
        sums = np.add.reduceat(words, idx, dtype=np.uint64)[0::2]
        # In little-endian words, the byte at an even address is the low byte.
        s = sums
        # Remove the byte before an odd start (it is the low byte of word w0).
        pre = np.where(odd[body], data[np.maximum(start[body] - 1, 0)].astype(np.uint64), 0)
        # Remove the byte after the range when the range ends inside a word.
        end_b = end[body]
        post_mask = (end_b & 1).astype(bool)
        post = np.where(post_mask, data[np.minimum(end_b, n - 1)].astype(np.uint64) << 8, 0)
        s = s + 0xFFFF * 4 - pre - post  # add multiples of 0xffff (== 0) to stay non-negative
        s = fold16(s)
        swapped = ((s & 0xFF) << 8) | (s >> 8)  # LE-domain sum -> BE-domain sum
        # A range starting at an odd address was summed with its bytes in swapped roles.
        out[body] = np.where(odd[body], s, swapped)
    for i in np.flatnonzero(tail):
        out[i] = _ones_sum_py(data, int(start[i]), int(length[i]))
    return out


def _ones_sum_py(data: npt.NDArray[np.uint8], start: int, length: int) -> int:
    b = data[start : start + length].tobytes()
    if len(b) & 1:
        b += b"\0"
    total = sum(int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def addr_sum(addr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Sum of the 8 big-endian 16-bit words of 16-byte address rows (unfolded)."""
    w = addr.reshape(-1, 8, 2).astype(np.uint64)
    out: npt.NDArray[np.uint64] = (w[:, :, 0] * 256 + w[:, :, 1]).sum(axis=1)
    return out
