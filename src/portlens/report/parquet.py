"""Connections as a Parquet dataset (``conns --parquet DIR``), partitioned by day and protocol.

The columns are the fields of ``conns --json`` under the same names; a field whose value is a
list or an object (tunnel_parents, icmp_errors, handshake, analysis) is stored as its JSON
text, so a row reads back as the JSON row it stands for. The dataset is hive-partitioned,
``DIR/day=2024-05-14/proto=tcp/part-N-0.parquet`` (day: the UTC date of the connection's
start), so ``pandas.read_parquet(DIR)`` and ``dask.dataframe.read_parquet(DIR)`` read it
whole and filters on day or proto read only the files they need. Rows are written in chunks
as they come, so memory stays bounded on long runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any, Final

from portlens.report.conns import record as conn_record
from portlens.track.model import Connection

CHUNK_ROWS: Final = 100_000
"""Rows gathered before a chunk is written (one file per day and protocol per chunk)."""

FLOATS: Final = frozenset({"ts", "duration"})
INTS: Final = frozenset({
    "ts_ns", "id.orig_p", "id.resp_p", "duration_ns", "orig_bytes", "resp_bytes",
    "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "ip_version",
    "vlan", "completeness", "first_frame", "last_frame", "icmp_type", "icmp_code", "ip_proto"})
JSON_FIELDS: Final = frozenset({"tunnel_parents", "icmp_errors", "handshake", "analysis"})
"""Fields stored as JSON text (lists and objects)."""
PARTITIONS: Final = ("day", "proto")


class ParquetError(ValueError):
    """The dataset cannot be written (one line)."""


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ParquetError("--parquet needs pyarrow: pip install 'portlens[cluster]'") from None
    return pyarrow


def day_of(ts_ns: int) -> str:
    """The UTC date of a time, as the day partition names it."""
    return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, dt.timezone.utc).date().isoformat()


class ParquetWriter:
    """Connections in, a Parquet dataset out: ``add`` each, then ``close``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.pa = _pyarrow()
        self.root = os.fspath(root)
        if os.path.exists(self.root) and (not os.path.isdir(self.root)
                                          or os.listdir(self.root)):
            raise ParquetError(f"--parquet {self.root}: exists and is not an empty directory "
                               "(a dataset is written into a new one)")
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] | None = None
        self.written = 0
        self.chunks = 0

    def add(self, c: Connection) -> None:
        rec = conn_record(c)
        rec.pop("transitions", None)  # the transition stream is `events`' (and --json's)
        row = {k: json.dumps(v) if k in JSON_FIELDS and v is not None else v
               for k, v in rec.items()}
        row["day"] = day_of(c.ts_ns)
        if self.columns is None:
            self.columns = list(row)
        self.rows.append(row)
        if len(self.rows) >= CHUNK_ROWS:
            self._flush()

    def _schema(self) -> Any:
        pa = self.pa
        assert self.columns is not None
        fields = []
        for name in self.columns:
            kind = (pa.float64() if name in FLOATS else pa.int64() if name in INTS
                    else pa.string())
            if name not in FLOATS | INTS | JSON_FIELDS:  # a field added to --json since
                seen = next((r[name] for r in self.rows if r.get(name) is not None), None)
                if isinstance(seen, bool):
                    kind = pa.bool_()
                elif isinstance(seen, int):
                    kind = pa.int64()
                elif isinstance(seen, float):
                    kind = pa.float64()
            fields.append(pa.field(name, kind))
        return pa.schema(fields)

    def _flush(self) -> None:
        if not self.rows:
            return
        import pyarrow.parquet as pq

        schema = self._schema()
        table = self.pa.Table.from_pylist(self.rows, schema=schema)
        pq.write_to_dataset(table, root_path=self.root, partition_cols=list(PARTITIONS),
                            basename_template=f"part-{self.chunks}-{{i}}.parquet",
                            existing_data_behavior="overwrite_or_ignore")
        self.written += len(self.rows)
        self.chunks += 1
        self.rows = []

    def close(self) -> None:
        self._flush()
        os.makedirs(self.root, exist_ok=True)  # no rows: still an (empty) dataset directory


def read_rows(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The dataset's rows as the JSON rows they were written from (sorted by ts_ns, uid):
    JSON text columns parsed, missing values None, partitions as plain text."""
    import pandas as pd

    frame = pd.read_parquet(os.fspath(root))
    out = []
    for row in frame.to_dict(orient="records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if k == "day":
                continue
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                rec[k] = None
            elif k in INTS:
                rec[k] = int(v)
            elif k in FLOATS:
                rec[k] = float(v)
            else:
                rec[k] = json.loads(str(v)) if k in JSON_FIELDS else str(v)
        out.append(rec)
    out.sort(key=lambda r: (r["ts_ns"], r["uid"]))
    return out
