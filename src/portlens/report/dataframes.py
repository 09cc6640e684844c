"""pandas DataFrames of every output, for notebooks (``portlens.open(...).ports().to_pandas()``).

The rules, the same for every table (docs/formats.md, "pandas"):

* Column names are the JSON names; nested objects become dotted columns
  (``handshake.server_rtt_ns``), as in the CSV outputs.
* Times are ``datetime64[ns, UTC]``: ``ts`` and every column ending in ``ts_ns`` or named
  ``first_ns``/``last_ns``/``syn_ns``/``syn_ack_ns``/``ack_ns``. Durations are
  ``timedelta64[ns]``: ``duration`` and every other column ending in ``_ns``. Both hold the
  exact nanoseconds of the JSON integers (``ts`` and ``duration`` keep Zeek's microseconds).
* Missing values are ``pd.NA`` (``NaT`` in time and duration columns): every other column has
  a nullable dtype (``Int64``, ``boolean``, ``string``, ``Float64``); lists and maps stay
  Python objects. Where JSON leaves a key out or writes null, the DataFrame has NA.

pandas is optional: it is imported here only, and a clear ImportError says how to get it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from portlens.decode.fields import CSUM_NAMES, CSUM_NONE, FRAG_COMPLETE, FRAG_PART
from portlens.decode.fields import addr_text as _addr_text
from portlens.decode.malformed import reason_label
from portlens.decode.packets import PacketBatch
from portlens.decode.tunnels import tunnel_layers
from portlens.services import proto_name

TIME_NAMES = frozenset({"ts", "first_ns", "last_ns", "syn_ns", "syn_ack_ns", "ack_ns"})


def pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_pandas needs pandas: pip install pandas "
                          "(or pip install 'portlens[pandas]')") from exc
    return pd


def is_time(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf in TIME_NAMES or leaf.endswith("ts_ns")


def is_duration(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "duration" or (leaf.endswith("_ns") and not is_time(name))


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (``handshake.server_rtt_ns``); lists stay values. A
    null where an object could be leaves its keys out (they become NA)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value and not _is_count_map(key):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


COUNT_MAPS = frozenset({"conn_states", "peer_addrs", "not_counted", "mss", "wscale",
                        "fingerprints", "linktypes", "protocols", "tunnels", "malformed"})
"""Objects whose keys are data (a state, an address, an MSS), kept whole as dicts."""


def _is_count_map(key: str) -> bool:
    return key in COUNT_MAPS


def from_records(records: Iterable[dict[str, Any]], columns: Iterable[str] = (),
                 drop: Iterable[str] = ()) -> Any:
    """A DataFrame of JSON records by the rules above; ``columns`` are there even when no
    record has them (an empty result still has its columns)."""
    pd = pandas()
    dropped = set(drop)
    rows = [{k: v for k, v in flatten(r).items() if k not in dropped} for r in records]
    names: dict[str, None] = dict.fromkeys(columns)
    for r in rows:
        names.update(dict.fromkeys(r))
    # An object that was null in some rows and flattened in others: its dotted columns say
    # all (NA where it was null).
    parents = {n.rsplit(".", 1)[0] for n in names if "." in n}
    names = {n: None for n in names if n not in parents}
    data = {name: pd.Series([r.get(name) for r in rows], dtype=object) for name in names}
    return typed(pd.DataFrame(data, index=pd.RangeIndex(len(rows))))


def typed(frame: Any) -> Any:
    """Times, durations and nullable dtypes, in place of what json_normalize guessed."""
    pd = pandas()
    out = {}
    for name in frame.columns:
        values = frame[name].tolist()
        if is_time(name) or is_duration(name):
            ns = np.array([_nanoseconds(name, v) for v in values], dtype=np.int64)
            kind = "M8[ns]" if is_time(name) else "m8[ns]"
            series = pd.Series(ns.view(kind), index=frame.index, name=name)
            out[name] = series.dt.tz_localize("UTC") if is_time(name) else series
        elif any(isinstance(v, (list, dict)) for v in values):
            out[name] = pd.Series([v if isinstance(v, (list, dict)) else None for v in values],
                                  index=frame.index, dtype=object, name=name)
        elif all(v is None for v in values):  # nothing to infer a dtype from
            dtype = "Int64" if name.rsplit(".", 1)[-1] in INTEGER_NAMES else "string"
            out[name] = pd.Series([pd.NA] * len(values), index=frame.index, dtype=dtype,
                                  name=name)
        else:
            out[name] = pd.Series(values, index=frame.index, dtype=object,
                                  name=name).convert_dtypes()
    return pd.DataFrame(out, index=frame.index)


INTEGER_NAMES = frozenset({
    "vlan", "port", "id.orig_p", "id.resp_p", "orig_p", "resp_p", "local_port", "peer_port",
    "orig_bytes", "resp_bytes", "conns", "peers", "mss", "wscale", "frame", "seq", "ack"})
"""Integer columns that may be null in every row (the rest, then, are text)."""


_NAT = np.iinfo(np.int64).min
"""numpy's NaT as an int64."""


def _nanoseconds(name: str, value: Any) -> int:
    """Exact ns from the JSON value: integers as they are, ``ts``/``duration`` seconds (with
    microseconds, as Zeek writes them) rounded to the microsecond; NaT for null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return int(_NAT)
    if name.rsplit(".", 1)[-1] in ("ts", "duration"):
        return round(float(value) * 1e6) * 1000
    return int(value)


# --- packets ---------------------------------------------------------------------------------

def packets_frame(batches: Iterable[PacketBatch]) -> Any:
    """One row per packet, the columns of `portlens packets --json` (flattened), built from
    whole columns rather than per-frame objects: an A-MSDU's subframes are rows of their own,
    a middle tunnel carrier's row is left out (as `packets` lists them)."""
    pd = pandas()
    parts = [_packet_columns(b.packet_rows()) for b in batches if len(b)]
    if not parts:
        parts = [_packet_columns(PacketBatch.allocate(0))]
    frame = pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True)
    frame["ts_ns"] = pd.to_datetime(frame["ts_ns"].astype("int64"), unit="ns", utc=True)
    return frame


def _na(pd: Any, values: np.ndarray, present: np.ndarray, dtype: str) -> Any:
    arr = pd.array(values.astype("int64") if dtype == "Int64" else values, dtype=dtype)
    arr[~present] = pd.NA
    return arr


def _texts(pd: Any, texts: list[str | None]) -> Any:
    return pd.array(texts, dtype="string")


def _packet_columns(b: PacketBatch) -> dict[str, Any]:
    from portlens.report.packets import flags_text

    pd = pandas()
    n = len(b)
    ip = b.ip_version > 0
    l4 = b.l4
    tcp = ip & (l4 == 6)
    icmp = ip & np.isin(l4, (1, 58))
    ports = ip & (np.isin(l4, (6, 17)) | ((b.frag == FRAG_PART) & ((b.sport > 0) | (b.dport > 0))))
    cols: dict[str, Any] = {
        "frame": pd.array(b.frame.astype(np.int64), dtype="Int64"),
        "ts_ns": b.ts_ns.astype(np.int64),
        "len": pd.array(b.wirelen.astype(np.int64), dtype="Int64"),
        "caplen": pd.array(b.caplen.astype(np.int64), dtype="Int64"),
        "linktype": pd.array(b.linktype.astype(np.int64), dtype="Int64"),
        "interface": pd.array(b.interface.astype(np.int64), dtype="Int64"),
        "vlan": _na(pd, b.vlan, b.vlan >= 0, "Int64"),
        "ipv": _na(pd, b.ip_version, ip, "Int64"),
    }
    protos = b.proto.tolist()
    # As in JSON: the name of the four portlens follows, else the IP protocol number (as text).
    cols["proto"] = _texts(pd, [(proto_name(p) if p in (6, 17, 1, 58) else str(p)) if v else None
                                for p, v in zip(protos, ip.tolist(), strict=True)])
    src_raw, dst_raw = b.src.tobytes(), b.dst.tobytes()
    versions = b.ip_version.tolist()
    cache: dict[tuple[bytes, int], str] = {}

    def text(raw: bytes, version: int) -> str:
        key = (raw, version)
        if key not in cache:
            cache[key] = _addr_text(raw, version)
        return cache[key]

    cols["src"] = _texts(pd, [text(src_raw[16 * i:16 * i + 16], v) if v else None
                              for i, v in enumerate(versions)])
    cols["dst"] = _texts(pd, [text(dst_raw[16 * i:16 * i + 16], v) if v else None
                              for i, v in enumerate(versions)])
    cols["ip_len"] = _na(pd, b.ip_len, ip, "Int64")
    cols["sport"] = _na(pd, b.sport, ports, "Int64")
    cols["dport"] = _na(pd, b.dport, ports, "Int64")
    cols["flags"] = _na(pd, b.tcp_flags, tcp, "Int64")
    cols["flags_text"] = _texts(pd, [flags_text(f) if t else None
                                     for f, t in zip(b.tcp_flags.tolist(), tcp.tolist(),
                                                     strict=True)])
    cols["seq"] = _na(pd, b.seq, tcp, "Int64")
    cols["ack"] = _na(pd, b.ack, tcp, "Int64")
    cols["win"] = _na(pd, b.win, tcp, "Int64")
    cols["mss"] = _na(pd, b.mss, tcp & (b.mss >= 0), "Int64")
    cols["wscale"] = _na(pd, b.wscale, tcp & (b.wscale >= 0), "Int64")
    cols["sack_perm"] = _na(pd, b.sack_perm.astype(bool), tcp, "boolean")
    cols["tsval"] = _na(pd, b.tsval, tcp & (b.has_ts > 0), "Int64")
    counts = b.opt_count.tolist()
    kinds = b.opt_kinds
    cols["opts"] = [kinds[i, :k].tolist() if t and k else None
                    for i, (k, t) in enumerate(zip(counts, tcp.tolist(), strict=True))]
    cols["payload"] = _na(pd, b.payload, ip & (l4 > 0) & (b.payload >= 0), "Int64")
    cols["icmp_type"] = _na(pd, b.icmp_type, icmp, "Int64")
    cols["icmp_code"] = _na(pd, b.icmp_code, icmp, "Int64")
    quoted = icmp & (b.q_valid > 0)
    cols["quoted.proto"] = _na(pd, b.q_proto, quoted, "Int64")
    cols["quoted.sport"] = _na(pd, b.q_sport, quoted, "Int64")
    cols["quoted.dport"] = _na(pd, b.q_dport, quoted, "Int64")
    depth = b.tunnel_depth.tolist()
    cols["tunnel"] = [tunnel_layers(t, d) if v and d else None
                      for t, d, v in zip(b.tunnel.tolist(), depth, ip.tolist(), strict=True)]
    frag = b.frag.tolist()
    cols["frag"] = _texts(pd, [("part" if f == FRAG_PART else "complete"
                                if f == FRAG_COMPLETE else None) if v else None
                               for f, v in zip(frag, ip.tolist(), strict=True)])
    ppp, eth = b.ppp_proto.tolist(), b.ethertype.tolist()
    cols["ppp_proto"] = _texts(pd, [f"0x{p:04x}" if not v and p else None
                                    for p, v in zip(ppp, ip.tolist(), strict=True)])
    cols["ethertype"] = _texts(pd, [f"0x{e:04x}" if not v and not p and e else None
                                    for e, p, v in zip(eth, ppp, ip.tolist(), strict=True)])
    cols["truncated"] = pd.array(b.truncated.astype(bool), dtype="boolean")
    ip_csum = b.ip_csum.tolist()
    cols["checksum.ip"] = _texts(pd, [CSUM_NAMES[c] if c != CSUM_NONE else None
                                      for c in ip_csum])
    l4_names = [proto_name(x) if x else proto_name(p) for x, p in zip(l4.tolist(), protos,
                                                                      strict=True)]
    l4_csum = b.l4_csum.tolist()
    for name in ("tcp", "udp", "icmp", "icmp6"):
        cols[f"checksum.{name}"] = _texts(pd, [
            CSUM_NAMES[c] if c != CSUM_NONE and ln == name else None
            for c, ln in zip(l4_csum, l4_names, strict=True)])
    cols["malformed"] = _texts(pd, [reason_label(m) if m else None
                                    for m in b.malformed.tolist()])
    assert all(len(v) == n for v in cols.values())
    return cols
