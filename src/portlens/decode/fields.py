"""Byte-level access to a batch buffer: unaligned big-endian gathers and Internet checksums.

The fast decoder reads every header field of every frame with one numpy gather per field. That
works on unaligned offsets because the views here have a stride of one byte: element *i* of
``be32`` is the big-endian 32-bit value starting at byte *i*, whatever its alignment.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class ByteViews:
    """Stride-1 views over one buffer, for gathering fields at arbitrary byte offsets.

    Callers must check bounds first (the decoder's ``need``): a gather at ``p`` reads bytes
    ``p .. p+width-1``, which must lie inside the buffer.
    """

    __slots__ = ("be16", "be32", "le32", "le64", "n", "u8")

    def __init__(self, data: npt.NDArray[np.uint8]) -> None:
        self.u8 = data
        n = data.shape[0]
        self.n = n
        self.be16 = _strided(data, ">u2", n - 1)
        self.be32 = _strided(data, ">u4", n - 3)
        self.le32 = _strided(data, "<u4", n - 3)
        self.le64 = _strided(data, "<u8", n - 7)

    def window(self, pos: I64, nbytes: int) -> npt.NDArray[np.uint8]:
        """The first ``nbytes`` (rounded up to 8) at each position, as a (len(pos), W) array.

        Gathering 8 bytes per element is about four times cheaper per byte than gathering
        single fields, so a fixed header is read as one window and its fields sliced out.
        Rows whose window would run past the buffer get the buffer's last byte repeated there;
        callers only use bytes they checked were captured.
        """
        k = (nbytes + 7) // 8
        out = np.empty((pos.shape[0], 8 * k), dtype=np.uint8)
        if pos.shape[0] == 0:
            return out
        words = out.view("<u8")
        last = self.n - 8
        if last < 0:
            out[:] = self.u8[np.minimum(pos[:, None] + np.arange(8 * k), self.n - 1)]
            return out
        for j in range(k):
            words[:, j] = self.le64[np.minimum(pos + 8 * j, last)]
        late = np.flatnonzero(pos + 8 * k > self.n)
        if late.size:
            idx = np.minimum(pos[late, None] + np.arange(8 * k), self.n - 1)
            out[late] = self.u8[idx]
        return out

    def bytes_at(self, pos: I64, width: int) -> npt.NDArray[np.uint8]:
        """A (len(pos), width) array of the bytes at each position."""
        out: npt.NDArray[np.uint8] = self.u8[pos[:, None] + np.arange(width, dtype=np.int64)]
        return out


def w16(win: npt.NDArray[np.uint8], off: int) -> npt.NDArray[np.uint16]:
    """Big-endian 16-bit field at byte ``off`` of every row of a window."""
    out = (win[:, off].astype(np.uint16) << 8) | win[:, off + 1]
    return cast("npt.NDArray[np.uint16]", out)  # numpy's stubs widen the shift to signed


def w32(win: npt.NDArray[np.uint8], off: int) -> npt.NDArray[np.uint32]:
    """Big-endian 32-bit field at byte ``off`` of every row of a window."""
    out = ((win[:, off].astype(np.uint32) << 24) | (win[:, off + 1].astype(np.uint32) << 16)
           | (win[:, off + 2].astype(np.uint32) << 8) | win[:, off + 3])
    return cast("npt.NDArray[np.uint32]", out)


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

    One pass of numpy's reduceat over the aligned little-endian 32-bit words of the span the
    ranges cover, the ranges sorted so that it walks the span once (measured with numpy 2.4:
    half the time of a prefix sum, which writes 8 bytes per word). The one's-complement sum
    does not depend on byte order or word width (RFC 1071 §2), since 2**16 == 1 modulo 0xffff:
    a byte at an even address counts 1, at an odd address 256, in the little-endian sum. A range
    starting at an even address has its big-endian high bytes at even addresses, so its sum is
    byte-swapped at the end; one starting at an odd address is not. Bytes outside the range
    that share a word with its ends are subtracted. Ranges must lie inside ``data``.
    """
    m = start.shape[0]
    out = np.zeros(m, dtype=np.uint64)
    if m == 0:
        return out
    n = data.shape[0]
    words = data[: n - (n & 3)].view("<u4")
    nw = words.shape[0]
    start = start.astype(np.int64)
    end = start + length.astype(np.int64)
    w0 = start >> 2
    w1 = (end + 3) >> 2  # first word not touched by the range
    # Ranges reaching the buffer's last word (reduceat needs one word past every range) or
    # its unaligned last bytes are summed in Python: at most a packet or two per buffer.
    tail = (w1 >= nw) | (end <= start)
    body = ~tail
    if body.any():
        b_start, b_end, b_w0, b_w1 = start[body], end[body], w0[body], w1[body]
        lo, hi = int(b_w0.min()), int(b_w1.max())
        # reduceat sums words[bounds[j]:bounds[j+1]] for each j: with the ranges' (first,
        # past-last) words interleaved, the even results are the ranges' sums (the odd ones,
        # the gaps between them, are discarded).
        order = np.argsort(b_w0, kind="stable")
        bounds = np.empty(2 * order.size, dtype=np.int64)
        bounds[0::2] = b_w0[order] - lo
        bounds[1::2] = b_w1[order] - lo
        s = np.empty(order.size, dtype=np.uint64)
        s[order] = np.add.reduceat(words[lo:hi + 1], bounds, dtype=np.uint64)[0::2]
        s += 0xFFFF * 8  # == 0 in one's complement; keeps the subtractions below non-negative
        for k in range(3):
            a = 4 * b_w0 + k
            before = a < b_start
            s -= np.where(before, data[a].astype(np.uint64) << (8 * (a & 1)).astype(np.uint64), 0)
            z = b_end + k
            after = z < 4 * b_w1
            zc = np.minimum(z, n - 1)
            s -= np.where(after, data[zc].astype(np.uint64) << (8 * (zc & 1)).astype(np.uint64),
                          0)
        s = fold16(s)
        swapped = ((s & 0xFF) << 8) | (s >> 8)
        out[body] = np.where((b_start & 1) == 1, s, swapped)
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


def word_sum(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Sum (unfolded) of the big-endian 16-bit words of each row of an even-width byte array:
    addresses for a pseudo-header, a fixed header for its checksum."""
    w = rows.reshape(rows.shape[0], rows.shape[1] // 2, 2).astype(np.uint64)
    out: npt.NDArray[np.uint64] = (w[:, :, 0] * 256 + w[:, :, 1]).sum(axis=1)
    return out
