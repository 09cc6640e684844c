"""The connection columns as the page stores them: one binary blob and a JSON header, read
back by page.js ``unpackColumns`` (and by :func:`unpack_columns`, for ``read_payload``).

The page of the 2 M-packet benchmark capture holds 75,000 connections, and what they take is
most of the page. Every transformation here is exact (the page's values are `conns --json`'s),
and each was kept because it makes the gzip stream smaller by a measured amount there:

- Each numeric column is stored as value + 1 (0: null) in the narrowest little-endian type,
  its bytes shuffled (every value's first byte, then every second byte...) as blosc does, so
  that gzip finds the runs of zero high bytes; divided by the gcd of its values where that is
  more than 1 (durations are whole microseconds in most captures).
- The text and small-number columns that describe what happened (protocol, service,
  conn_state, history, final states, end reason, outcome, tunnel, ICMP type and code) are
  one column of codes into a dictionary of their combinations: 525 combinations on the
  benchmark capture, 55 kB where eleven columns took 157 kB.
- A client's ephemeral ports mostly count up: ``id.orig_p`` is stored as the difference from
  the same client's previous connection (88 kB instead of 140 kB).
- IP bytes are payload bytes plus headers: ``orig_ip_bytes`` is stored as what is left after
  ``orig_bytes`` and 40 bytes a packet (128 kB instead of 240 kB, both directions).
- The uids, 18 random characters each (1.1 MB, a fifth of the page, incompressible), are
  made again by the page from what they are made of: a Zeek-style uid is the BLAKE2b-104
  digest of the connection's serial number, first timestamp and 5-tuple (track/tracker.py
  ``_uid``, the compiled tracker's ``flow_uid``), and the serial is the connection's rank
  by start time, give or take a few. Each uid is checked here, with the tracker's own
  function; the few that cannot be made again (ICMP, VLANs, other protocols, a rank too far
  off) are stored as text.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from portlens.decode.fields import addr_bytes
from portlens.track.tracker import _B62, _uid

WIDTHS = (("u8", np.uint8, 0xFF), ("u16", np.uint16, 0xFFFF), ("u32", np.uint32, 0xFFFFFFFF),
          ("f64", np.float64, 2**53 - 1))
"""Column types: the narrowest that holds value + 1 (float64 holds integers exactly up to
2^53)."""

KINDS = ("proto", "port_service", "conn_state", "history", "orig_state", "resp_state",
         "end_reason", "outcome", "tunnel_parents", "icmp_type", "icmp_code")
"""Columns stored together as one code into the dictionary of their combinations."""
DELTA_BY = {"id.orig_p": "id.orig_h"}
"""Column -> the text column whose previous row of the same value it is stored against."""
HEADER_BYTES = 40
OVER = {"orig_ip_bytes": ("orig_bytes", "orig_pkts"), "resp_ip_bytes": ("resp_bytes", "resp_pkts")}
"""Column -> (bytes, packets): stored as column - bytes (null: 0) - HEADER_BYTES * packets."""
L4 = {"tcp": 6, "udp": 17}
UID_WINDOW = 8
"""How far from its rank by start time a connection's serial is looked for (while few are not
found: with --workers each worker counts its own serials, and none would be)."""


def _zigzag(a: np.ndarray) -> np.ndarray:
    return np.where(a >= 0, 2 * a, -2 * a - 1)


def _unzigzag(a: np.ndarray) -> np.ndarray:
    return np.where(a % 2 == 0, a // 2, -(a + 1) // 2)


def _store(values: np.ndarray, blob: bytearray) -> dict[str, Any] | None:
    """Append values (0 = null, else value + 1; all >= 0) shuffled in the narrowest type;
    its header, or None when they do not fit."""
    n = len(values)
    top = int(values.max()) if n else 0
    if n and (int(values.min()) < 0 or top > WIDTHS[-1][2]):
        return None
    kind, dtype, _ = next(w for w in WIDTHS if top <= w[2])
    raw = values.astype(dtype).astype(np.dtype(dtype).newbyteorder("<"))
    meta = {"type": kind, "offset": len(blob)}
    blob += raw.view(np.uint8).reshape(n, raw.dtype.itemsize).T.tobytes()
    return meta


def _load(meta: dict[str, Any], blob: bytes, n: int) -> np.ndarray:
    types = {kind: dtype for kind, dtype, _ in WIDTHS}
    dtype = np.dtype(types[meta["type"]]).newbyteorder("<")
    width = dtype.itemsize
    raw = np.frombuffer(blob, dtype=np.uint8, count=n * width, offset=meta["offset"])
    values: np.ndarray = raw.reshape(width, n).T.copy().view(dtype).ravel().astype(np.int64)
    return values


Ints = tuple[np.ndarray, np.ndarray]
"""A numeric column as data.conn_columns makes it: (int64 values, null mask); a row's value
is null where the mask is true (0 in the values)."""


def _numbers(col: Ints | list[int | None]) -> Ints:
    """(values with null as 0, null mask)."""
    if isinstance(col, tuple):
        return col
    if None not in col:
        return np.array(col, dtype=np.int64), np.zeros(len(col), dtype=bool)
    null = np.fromiter((v is None for v in col), dtype=bool, count=len(col))
    values = np.fromiter((0 if v is None else v for v in col), dtype=np.int64, count=len(col))
    return values, null


def _ints(col: Ints | list[int | None]) -> list[int | None]:
    """A number column's values as Python ints (null: None)."""
    values, null = _numbers(col)
    if not null.any():
        return values.tolist()  # type: ignore[no-any-return]
    return [None if n else v for v, n in zip(values.tolist(), null.tolist(), strict=True)]


def _text(col: dict[str, Any]) -> list[Any]:
    return [None if c < 0 else col["dict"][c] for c in col["codes"]]


def _previous_delta(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each value minus the previous value of its group (row order; the first: minus 0)."""
    order = np.argsort(group, kind="stable")
    v, g = values[order], group[order]
    delta = np.diff(v, prepend=0)
    if len(v):
        first = np.r_[True, g[1:] != g[:-1]]
        delta[first] = v[first]
    out = np.empty_like(delta)
    out[order] = delta
    return out


def _undo_previous_delta(delta: np.ndarray, group: np.ndarray) -> np.ndarray:
    out = np.empty_like(delta)
    last: dict[int, int] = {}
    for i, (d, g) in enumerate(zip(delta.tolist(), group.tolist(), strict=True)):
        out[i] = last[g] = last.get(g, 0) + d
    return out


def uid_key(ts_ns: int, proto: str | None, orig: tuple[bytes, int], resp: tuple[bytes, int]
            ) -> tuple[Any, ...] | None:
    """What a TCP or UDP connection's uid hashes besides its serial (``_uid``'s arguments),
    without a VLAN; None for other protocols."""
    l4 = L4.get(proto or "")
    if l4 is None:
        return None
    a, b = orig, resp
    return ts_ns, (l4, None, *(a + b if a <= b else b + a))


def start_ranks(ts: np.ndarray) -> np.ndarray:
    """Each row's rank by (start time, row): the serial it is first tried with, less one."""
    ranks = np.empty(len(ts), dtype=np.int64)
    ranks[np.lexsort((np.arange(len(ts)), ts))] = np.arange(len(ts))
    return ranks


def _uid_inputs(conns: dict[str, Any], ts: np.ndarray) -> list[tuple[Any, ...] | None]:
    cols = conns["cols"]
    base = int(conns["base_ns"])
    protos = _text(cols["proto"])
    hosts = []
    for name in ("id.orig_h", "id.resp_h"):
        raw = [addr_bytes(h) for h in cols[name]["dict"]]  # parsed once per address
        hosts.append([None if c < 0 else raw[c] for c in cols[name]["codes"]])
    out: list[tuple[Any, ...] | None] = []
    for t, proto, oh, op, rh, rp in zip(ts.tolist(), protos, hosts[0], _ints(cols["id.orig_p"]),
                                        hosts[1], _ints(cols["id.resp_p"]), strict=True):
        if oh is None or rh is None or op is None or rp is None:
            out.append(None)
        else:
            out.append(uid_key(base + t, proto, (oh, op), (rh, rp)))
    return out


def uid_texts(conns: dict[str, Any], ts: np.ndarray) -> list[str | None]:
    """What ``_uid`` hashes of each row after the serial: ``repr((serial, *key))`` is
    ``"(" + str(serial) + text`` for ``_uid_inputs``' key (None where it is None). Written
    from each address's repr, made once, and ports: a tuple per row, and its repr per
    candidate serial, took 0.25 CPU s of the benchmark capture's report."""
    cols = conns["cols"]
    base = int(conns["base_ns"])
    protos = _text(cols["proto"])
    raw = {name: [addr_bytes(h) for h in cols[name]["dict"]] for name in ("id.orig_h",
                                                                          "id.resp_h")}
    order = {a: i for i, a in enumerate(sorted({*raw["id.orig_h"], *raw["id.resp_h"]}))}
    hosts = []
    for name in ("id.orig_h", "id.resp_h"):
        known = [(order[a], repr(a)) for a in raw[name]]
        hosts.append([None if c < 0 else known[c] for c in cols[name]["codes"]])
    out: list[str | None] = []
    for t, proto, oh, op, rh, rp in zip(ts.tolist(), protos, hosts[0], _ints(cols["id.orig_p"]),
                                        hosts[1], _ints(cols["id.resp_p"]), strict=True):
        l4 = L4.get(proto or "")
        if oh is None or rh is None or op is None or rp is None or l4 is None:
            out.append(None)
        elif (oh[0], op) <= (rh[0], rp):
            out.append(f", {base + t}, ({l4}, None, {oh[1]}, {op}, {rh[1]}, {rp}))")
        else:
            out.append(f", {base + t}, ({l4}, None, {rh[1]}, {rp}, {oh[1]}, {op}))")
    return out


def _uid_numbers(uids: list[str]) -> tuple[list[int], list[int]]:
    """Each uid's number (its 17 base-62 digits, least significant first) as (the part above
    62^9, the part below): the digests the uids were written from, less what 17 digits drop."""
    digits = np.full(256, -1, dtype=np.int64)
    digits[np.frombuffer(_B62.encode(), dtype=np.uint8)] = np.arange(62)
    chars = np.frombuffer("".join(u[1:] if len(u) == 18 else "~" * 17 for u in uids).encode(),
                          dtype=np.uint8).reshape(len(uids), 17)
    d = digits[chars]
    powers = 62 ** np.arange(9, dtype=np.int64)
    lo = np.where((d < 0).any(axis=1), -1, d[:, :9] @ powers)
    hi = d[:, 9:] @ powers[:8]
    return hi.tolist(), lo.tolist()


_LOW, _HIGH = 62 ** 9, 62 ** 8


def pack_uids(conns: dict[str, Any], blob: bytearray) -> dict[str, Any]:
    """The uid column: a serial offset per row (serial = rank + 1 + offset) and the uids that
    cannot be made again, by row (``uid_serials``)."""
    offsets, explicit = uid_serials(conns)
    meta = _store(_zigzag(offsets) + 1, blob)
    assert meta is not None
    return {"codec": "uid", "offset_col": meta, "explicit": explicit}


def uid_serials(conns: dict[str, Any]) -> tuple[np.ndarray, dict[str, str]]:
    """Each row's serial offset, and the uids no serial near their rank makes, by row (in
    rank order), as ``uid_serials_reference`` finds them, found by the core
    (crates/core/src/uid_serials.rs: a tenth of the benchmark capture's report in Python)."""
    import portlens._core as core

    cols = conns["cols"]
    n = conns["n"]
    uids = _text(cols["uid"])
    ts = _numbers(cols["ts_ns"])[0] + int(conns["base_ns"])
    proto = _codes(cols["proto"], [L4.get(t or "", 0) for t in cols["proto"]["dict"]])
    keyed = proto > 0
    ends = []
    for host, port in (("id.orig_h", "id.orig_p"), ("id.resp_h", "id.resp_p")):
        raw = np.frombuffer(b"".join(addr_bytes(h) for h in cols[host]["dict"]) or b"\0" * 16,
                            dtype=np.uint8).reshape(-1, 16)
        codes = np.asarray(cols[host]["codes"], dtype=np.int64).reshape(n)
        values, null = _numbers(cols[port])
        keyed &= (codes >= 0) & ~null
        ends += [np.ascontiguousarray(raw[np.maximum(codes, 0)]),
                 values.astype(np.uint16)]
    offsets, rows = core.uid_offsets(start_ranks(ts), uids, keyed, ts,
                                     proto.astype(np.uint8), *ends, UID_WINDOW)
    return offsets, {str(i): uids[i] for i in rows}


def _codes(col: dict[str, Any], values: list[int]) -> np.ndarray:
    """A text column's codes made numbers, ``values`` one a text (0 for a null)."""
    table = np.array([*values, 0], dtype=np.int64)  # code -1: the last
    return table[np.asarray(col["codes"], dtype=np.int64)]


def uid_serials_reference(conns: dict[str, Any]) -> tuple[np.ndarray, dict[str, str]]:
    """``uid_serials`` in Python, the reference the core's is tested against: each candidate
    serial is checked by its digest, as ``_uid`` hashes it, against the uid's number."""
    n = conns["n"]
    uids = _text(conns["cols"]["uid"])
    ts = _numbers(conns["cols"]["ts_ns"])[0]
    ranks = start_ranks(ts).tolist()
    inputs = uid_texts(conns, ts)
    high, low = _uid_numbers(uids)
    offsets = np.zeros(n, dtype=np.int64)
    explicit: dict[str, str] = {}
    guess = 0

    def matches(i: int, serial: int, key: str) -> bool:
        digest = hashlib.blake2b(f"({serial}{key}".encode(), digest_size=13).digest()
        q, r = divmod(int.from_bytes(digest, "big"), _LOW)
        return r == low[i] and q % _HIGH == high[i]

    misses = 0
    for seen, i in enumerate(sorted(range(n), key=ranks.__getitem__)):  # a shift stays for
        key = inputs[i]                                                  # the rows after it
        found = None
        if key is not None and low[i] >= 0:
            if matches(i, ranks[i] + 1 + guess, key):
                found = guess
            elif misses <= 64 + seen // 16:  # not where serials are another count's (workers)
                found = next((d for k in range(1, UID_WINDOW + 1) for d in (guess + k, guess - k)
                              if ranks[i] + 1 + d > 0 and matches(i, ranks[i] + 1 + d, key)),
                             None)
                misses += found is None
        if found is None:
            explicit[str(i)] = uids[i]
        else:
            offsets[i] = guess = found
    return offsets, explicit


def unpack_uids(meta: dict[str, Any], blob: bytes, conns: dict[str, Any]) -> list[str]:
    n = conns["n"]
    offsets = _unzigzag(_load(meta["offset_col"], blob, n) - 1)
    ts = np.asarray(conns["cols"]["ts_ns"], dtype=np.int64)
    ranks = start_ranks(ts)
    inputs = _uid_inputs(conns, ts)
    out = []
    for i in range(n):
        text = meta["explicit"].get(str(i))
        if text is None:
            key = inputs[i]
            assert key is not None
            text = _uid(int(ranks[i]) + 1 + int(offsets[i]), key[0], key[1])
        out.append(text)
    return out


def pack_columns(conns: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The connection columns (data.conn_columns) as one binary blob and its header."""
    n = conns["n"]
    src = conns["cols"]
    header = {k: v for k, v in conns.items() if k != "cols"}
    cols: dict[str, Any] = {}
    blob = bytearray()
    numbers = {name: _numbers(col) for name, col in src.items() if not isinstance(col, dict)}
    # the combinations of KINDS
    members = [_text(src[k]) if isinstance(src[k], dict) else src[k] for k in KINDS]
    combos: dict[tuple[Any, ...], int] = {}
    codes = np.fromiter((combos.setdefault(t, len(combos)) for t in zip(*members, strict=True)),
                        dtype=np.int64, count=n)
    kinds = _store(codes + 1, blob)
    assert kinds is not None
    cols["kinds"] = dict(kinds, group=list(KINDS), dict=[list(t) for t in combos],
                         text=[k for k in KINDS if isinstance(src[k], dict)])
    for name, col in src.items():
        if name in KINDS or name == "uid":
            continue
        if isinstance(col, dict):
            meta = _store(np.asarray(col["codes"], dtype=np.int64).reshape(n) + 1, blob)
            assert meta is not None  # codes are below n
            cols[name] = dict(meta, dict=col["dict"])
            continue
        values, null = numbers[name]
        codec: dict[str, Any] = {}
        if name in DELTA_BY and not null.any():
            group = np.asarray(src[DELTA_BY[name]]["codes"], dtype=np.int64).reshape(n)
            stored = _zigzag(_previous_delta(values, group)) + 1
            codec = {"codec": "delta", "by": DELTA_BY[name]}
        elif name in OVER and not null.any():
            payload, packets = OVER[name]
            rest = values - numbers[payload][0] - HEADER_BYTES * numbers[packets][0]
            stored = _zigzag(rest) + 1
            codec = {"codec": "over", "bytes": payload, "pkts": packets, "per": HEADER_BYTES}
        else:
            scale = int(np.gcd.reduce(values[~null])) if (~null).any() else 0
            if scale > 1 and int(values.min()) >= 0:
                values = values // scale
                codec = {"scale": scale}
            stored = np.where(null, 0, values + 1)
        meta = _store(stored, blob)
        if meta is None:  # beyond a double's integers: the values as JSON numbers
            shown = numbers[name]
            cols[name] = {"type": "json", "values": [
                None if n else v for v, n in zip(shown[0].tolist(), shown[1].tolist(),
                                                 strict=True)]}
        else:
            cols[name] = dict(meta, **codec)
    cols["uid"] = pack_uids(conns, blob)
    header["cols"] = cols
    return header, bytes(blob)


def unpack_columns(header: dict[str, Any], blob: bytes) -> dict[str, Any]:
    """pack_columns' inverse: text columns as ``{"codes", "dict"}``, numbers as lists."""
    n = header["n"]
    out = {k: v for k, v in header.items() if k != "cols"}
    metas = header["cols"]
    raw: dict[str, np.ndarray] = {}
    cols: dict[str, Any] = {}

    def text(values: list[Any]) -> dict[str, Any]:
        index: dict[Any, int] = {}
        codes = [-1 if v is None else index.setdefault(v, len(index)) for v in values]
        return {"codes": codes, "dict": list(index)}

    for name, meta in metas.items():  # plain columns first: the others are made from them
        if name in ("kinds", "uid") or meta.get("codec"):
            continue
        if meta["type"] == "json":
            cols[name] = meta["values"]
            continue
        values = _load(meta, blob, n) - 1
        if "dict" in meta:
            cols[name] = {"codes": values.tolist(), "dict": meta["dict"]}
            continue
        scaled = values * meta.get("scale", 1)
        raw[name] = np.where(values < 0, 0, scaled)
        cols[name] = [None if v < 0 else s for v, s in zip(values.tolist(), scaled.tolist(),
                                                           strict=True)]
    for name, meta in metas.items():
        if meta.get("codec") == "delta":
            group = np.asarray(cols[meta["by"]]["codes"], dtype=np.int64)
            cols[name] = _undo_previous_delta(_unzigzag(_load(meta, blob, n) - 1),
                                              group).tolist()
        elif meta.get("codec") == "over":
            rest = _unzigzag(_load(meta, blob, n) - 1)
            cols[name] = (rest + raw[meta["bytes"]] + meta["per"] * raw[meta["pkts"]]).tolist()
    kinds = metas["kinds"]
    codes = (_load(kinds, blob, n) - 1).tolist()
    for j, name in enumerate(kinds["group"]):
        member = [kinds["dict"][c][j] for c in codes]
        cols[name] = text(member) if name in kinds["text"] else member
    out["cols"] = cols
    cols["uid"] = text(unpack_uids(metas["uid"], blob, out))
    out["cols"] = {name: cols[name] for name in header["fields"]}
    return out
