"""The tracker users get (``new_tracker()``, the Rust one) against Zeek's own conn.log
baselines (NAME.zeek-conn.log) in the corpus; test_rust_tracker.py holds it equal to the Python
reference on the same captures.

Each capture runs with the Zeek options its baseline was made with, read from its
NAME.zeek-source.txt: without `-C`, bad checksums are dropped; bare mode (-b) loads only some
protocol scripts, which decides Zeek's likely_server_ports and so which connections it flips
(docs/zeek-rules.md §3.1, §15.0). Rows are matched on the id columns the baseline has, in
order, and must agree on every compared column it has: conn_state, history, packets, IP bytes,
payload bytes, missed_bytes and duration. A zeek-cut subset without any id column is compared
as one multiset of rows (MANIFEST.md, "Reading the baselines").
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from portlens.decode import decode_capture
from portlens.pipeline import new_tracker
from portlens.report.zeek import has_duration
from portlens.track.config import DEFAULT_LIKELY_SERVER_PORTS
from portlens.track.model import Connection
from portlens.track.tracker import TrackerConfig
from tests.corpus import corpus_dir

HTTP = (80, 81, 631, 1080, 3128, 8000, 8080, 8888)
SSL = (443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223)
TUNNEL_UDP = (4789, 3544, 5072, 6081, 2152, 2123)
"""Tunnel packet-protocol scripts register these even in bare mode."""


def ports(tcp: tuple[int, ...] = (), udp: tuple[int, ...] = ()) -> frozenset[tuple[str, int]]:
    return frozenset([("tcp", p) for p in tcp] + [("udp", p) for p in (*udp, *TUNNEL_UDP)])


DEFAULT = DEFAULT_LIKELY_SERVER_PORTS

SCRIPT_PORTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    # script -> (tcp, udp) ports it adds to likely_server_ports in bare mode (§3.1); each
    # protocol's main.zeek `redef likely_server_ports += { ports }` or register_for_ports.
    "base/protocols/http": (HTTP, ()),
    "base/protocols/ftp": ((21, 2811), ()),
    "base/protocols/pop3": ((110,), ()),
    "base/protocols/dhcp": ((), (67,)),
    "base/protocols/ssl": (SSL, (443,)),
    "base/protocols/irc": ((6666, 6667, 6668, 6669), ()),
    "base/protocols/ssh": ((22,), ()),
    "base/protocols/dns": ((53,), (53, 137, 5353, 5355)),
    "base/protocols/ntp": ((), (123,)),
    "base/protocols/smtp": ((25, 587), ()),
    "base/protocols/modbus": ((502,), ()),
    "base/protocols/ldap": ((389, 3268), (389,)),
    "base/protocols/postgresql": ((5432,), ()),
    "base/protocols/syslog": ((), (514,)),
    # These register no server port: WebSocket is attached by the HTTP upgrade, tunnels
    # (HTTP CONNECT) by the HTTP analyzer, files/zip by the file framework; the rest only log.
    "base/protocols/websocket": ((), ()),
    "base/protocols/tunnels": ((), ()),
    "base/protocols/conn": ((), ()),
    "base/frameworks/tunnels": ((), ()),
    "base/frameworks/notice/weird": ((), ()),
    "base/files/zip": ((), ()),
    "policy/files/zip/register": ((), ()),
    "frameworks/analyzer/debug-logging": ((), ()),
    "protocols/conn/mac-logging": ((), ()),
    "protocols/conn/speculative-service": ((), ()),
}

REDEFS: dict[str, dict[str, object]] = {
    # Zeek redef (as written in the test) -> TrackerConfig options. Every other redef in the
    # corpus touches a protocol log, weird.log or the `service` column only.
    "report_gaps_for_partial = T": {"report_gaps_for_partial": True},
}

VARIANTS = {"ignore_checksums_nets": {"ignore_checksum_nets": ("192.168.0.0/16",)}}
"""Baselines made by a second command line in the same test; the source note's `Zeek options`
line describes the main baseline only, so the variant's extra redef is written here:
zeek-localhost-bad-chksum's `"ignore_checksums_nets += {192.168.0.0/16}"`."""


class ZeekOptions:
    """What a baseline's source note says about how Zeek ran."""

    def __init__(self, text: str) -> None:
        flags = re.search(r"^(?:Zeek options|Command-line flags)\s*:\s*(.*)$", text, re.M)
        assert flags, "source note without a Zeek options / Command-line flags line"
        letters = "".join(t[1:] for t in flags.group(1).split("[")[0].split()
                          if t.startswith("-"))
        self.checksums_ignored = "C" in letters
        self.bare = "b" in letters
        self.scripts: list[str] = []
        for line in re.findall(r"^(?:@load lines|Scripts on cmdline)\s*:\s*(.*)$", text, re.M):
            self.scripts += [s.strip().removeprefix("@load ").removesuffix(".zeek")
                             for s in line.split(";") if s.strip() and s.strip() != "(none)"]
        for line in re.findall(r"^    zeek (.*)$", text, re.M):
            # Scripts named on the first-batch command lines (e.g. `base/protocols/conn`).
            for token in shlex.split(re.split(r"\s(?:>|\||&&|2>)", line)[0]):
                if re.fullmatch(r"(base|policy|frameworks|protocols)/[\w/.-]+", token):
                    self.scripts.append(token.removesuffix(".zeek"))
        self.scripts = [s for s in self.scripts if s != "output"]  # a `> output` redirection
        self.redefs = [r for r in REDEFS if r in text]

    def likely_server_ports(self) -> frozenset[tuple[str, int]]:
        if not self.bare:
            return DEFAULT
        tcp: list[int] = []
        udp: list[int] = []
        for script in self.scripts:
            assert script in SCRIPT_PORTS, f"bare-mode script {script} not in SCRIPT_PORTS"
            tcp += SCRIPT_PORTS[script][0]
            udp += SCRIPT_PORTS[script][1]
        return ports(tuple(tcp), tuple(udp))


def zeek_options(name: str) -> ZeekOptions:
    root = corpus_dir()
    assert root is not None
    return ZeekOptions((root / f"{name}.zeek-source.txt").read_text())


COMPARED = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "duration",
            "orig_bytes", "resp_bytes", "conn_state", "missed_bytes", "history", "orig_pkts",
            "orig_ip_bytes", "resp_pkts", "resp_ip_bytes")

KNOWN_DIFFERENCES: dict[tuple[str, int], tuple[str, str, str, str]] = {
    ("zeek-http-deeply-nested-mime", 0): (
        "history", "ShADaXdfr", "ShADadfr",
        "X is Zeek's 'analysis limit reached' letter (HIST_ANALYZER_LIMIT_REACHED, PRs #5699 "
        "and #5759): the MIME analyzer under HTTP stops at 100 nested entities of the POST "
        "body and marks the connection; portlens decodes no HTTP or MIME, so it cannot see "
        "the nesting. Every other letter agrees."),
}
"""(baseline, row) -> (column, Zeek's value, portlens's value, why): the one column in which
that row differs, exactly. Any other difference in the row still fails."""


def load_baseline(path: Path) -> list[dict[str, str]]:
    rows, fields = [], None
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if line.startswith("#") or not line.strip():
            continue
        if fields is None:
            fields = line.split("\t")
            continue
        rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


def zeek_view(c: Connection) -> dict[str, str]:
    d = has_duration(c)
    us = c.duration_ns // 1000
    return {
        "id.orig_h": c.orig_h, "id.orig_p": str(c.orig_p), "id.resp_h": c.resp_h,
        "id.resp_p": str(c.resp_p), "proto": c.proto,
        "duration": f"{us // 1_000_000}.{us % 1_000_000:06d}" if d else "-",
        "orig_bytes": str(c.orig_bytes) if d else "-",
        "resp_bytes": str(c.resp_bytes) if d else "-", "conn_state": c.conn_state,
        "missed_bytes": str(c.missed_bytes), "history": c.history or "-",
        "orig_pkts": str(c.orig_pkts), "orig_ip_bytes": str(c.orig_ip_bytes),
        "resp_pkts": str(c.resp_pkts), "resp_ip_bytes": str(c.resp_ip_bytes),
    }


def _norm(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


def baselines() -> list[object]:
    root = corpus_dir()
    if root is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason="public capture corpus not found: set PORTLENS_CORPUS or provide "
                   "../shared/captures/public"))]
    out = []
    for log in sorted(root.glob("*.zeek-conn*.log")):
        name = log.name.split(".")[0]
        variant = log.name.split(".")[2] if log.name.count(".") > 2 else ""
        out.append(pytest.param(name, variant, id=f"{name}{'.' + variant if variant else ''}"))
    return out


def zeek_config(name: str, variant: str = "") -> TrackerConfig:
    """The tracker set up as Zeek was for this baseline (its options and loaded scripts)."""
    zo = zeek_options(name)
    options: dict[str, object] = {}
    for redef in zo.redefs:
        options.update(REDEFS[redef])
    if variant:
        options.update(VARIANTS[variant])
    # Zeek's DNS and NTP analyzers (timeouts and flips, §3.4) run only where their scripts
    # are loaded: always without -b, in bare mode when the test loads them.
    analyzers = {"dns_timeout": not zo.bare or "base/protocols/dns" in zo.scripts,
                 "ntp_analyzer": not zo.bare or "base/protocols/ntp" in zo.scripts}
    return TrackerConfig(drop_bad_checksums=not zo.checksums_ignored,
                         likely_server_ports=zo.likely_server_ports(),
                         **analyzers, **options)  # type: ignore[arg-type]


ID_COLUMNS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
PARENT_KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")


def parents_view(uids: list[str], by_uid: dict[str, dict[str, str]]) -> str:
    """tunnel_parents with each uid replaced by its conn's 5-tuple (uids differ between Zeek
    and portlens); a parent with no conn row is an IP tunnel (GRE, IP-in-IP) record."""
    named = sorted(" ".join(by_uid[u][k] for k in PARENT_KEY) if u in by_uid else "ip-tunnel"
                   for u in uids)
    return ",".join(named) or "-"


def compare(name: str, variant: str) -> tuple[int, list[str]]:
    """(rows agreeing in every compared column, failures); a known difference's row is not
    counted as agreeing."""
    root = corpus_dir()
    assert root is not None
    config = zeek_config(name, variant)
    capture = next(p for p in root.glob(name + ".pcap*"))
    tracker = new_tracker(config)  # what the CLI and the API track with (Rust)
    conns = [*(c for b in decode_capture(capture) for c in tracker.feed(b)), *tracker.finish()]
    got = [zeek_view(c) for c in conns]
    suffix = f".{variant}" if variant else ""
    expected = load_baseline(root / f"{name}.zeek-conn{suffix}.log")
    for e in expected:
        for k in ("id.orig_h", "id.resp_h"):
            if k in e:
                e[k] = _norm(e[k])
    failures = []
    columns = [f for f in COMPARED if expected and f in expected[0]]
    if expected and "tunnel_parents" in expected[0]:
        columns.append("tunnel_parents")
        zeek_uids = {e["uid"]: e for e in expected}
        ours = {c.uid: g for c, g in zip(conns, got, strict=True)}
        for e in expected:
            e["tunnel_parents"] = parents_view(
                [u for u in e["tunnel_parents"].split(",") if u != "-"], zeek_uids)
        for c, g in zip(conns, got, strict=True):
            g["tunnel_parents"] = parents_view(list(c.tunnel_parents), ours)
    known = 0
    for i, e in enumerate(expected):
        if (name, i) in KNOWN_DIFFERENCES:
            column, zeek_value, ours_value, _why = KNOWN_DIFFERENCES[(name, i)]
            if e.get(column) != zeek_value:
                failures.append(f"row {i}: known difference is stale: zeek {column} is "
                                f"{e.get(column)}, not {zeek_value}")
            e[column] = ours_value  # every other column must still agree
            known += 1
    ids = [k for k in ID_COLUMNS if expected and k in expected[0]]
    ok = 0
    if not ids:
        # No id column: the rows are one multiset of the compared columns.
        have = Counter(tuple(g[f] for f in columns) for g in got)
        for i, e in enumerate(expected):
            row = tuple(e[f] for f in columns)
            if have[row] > 0:
                have[row] -= 1
                ok += 1
            else:
                shown = dict(zip(columns, row, strict=True))
                failures.append(f"row {i}: no portlens row with {shown}")
        if +have:
            failures.append(f"portlens rows not in zeek's: {dict(+have)}")
    else:
        pool: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
        for g in got:
            pool[tuple(g[k] for k in ids)].append(g)
        for i, e in enumerate(expected):
            key = tuple(e[k] for k in ids)
            candidates = pool.get(key)
            if not candidates:
                failures.append(f"row {i}: missing {key}")
                continue
            row_got = candidates.pop(0)
            diffs = [f"{f}: zeek {e[f]} portlens {row_got[f]}" for f in columns
                     if e[f] != row_got[f]]
            if diffs:
                failures.append(f"row {i} {key}: " + "; ".join(diffs))
            else:
                ok += 1
    if len(got) != len(expected):
        failures.append(f"zeek logged {len(expected)} connections, portlens {len(got)}")
    return ok - known, failures


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "variant"), baselines())
def test_conn_log_matches_zeek(name: str, variant: str) -> None:
    _ok, failures = compare(name, variant)
    assert not failures, "\n".join(failures)


FIRST_BATCH_OPTIONS = {
    # capture -> (checksums dropped, likely server ports): the table of docs/zeek-rules.md
    # §15.0, written by hand from the first batch's source notes before they were parsed.
    "zeek-http-get": (True, ports(HTTP)),
    "zeek-tcp-missing-syn": (False, ports(HTTP)),
    "zeek-ftp-ipv6": (True, ports((21, 2811))),
    "zeek-dhcp-broadcast": (True, ports((), (67,))),
    "zeek-irc-starttls-sll": (False, ports((*SSL, 6666, 6667, 6668, 6669), (443,))),
    "zeek-gre-tunnel": (True, ports((22, 53), (53, 137, 5353, 5355, 123))),
    "zeek-http-connect-null-ipv6": (False, ports((*HTTP, *SSL), (443,))),
    "zeek-tcp-one-sided": (False, ports()),
    "zeek-vlan-qinq": (True, ports()),
    "zeek-tcp-retransmit-fast009": (False, DEFAULT),
    "zeek-wikipedia": (True, DEFAULT),
}


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(FIRST_BATCH_OPTIONS))
def test_options_read_from_source_notes(name: str) -> None:
    if corpus_dir() is None:
        pytest.skip("public capture corpus not found")
    config = zeek_config(name)
    assert (config.drop_bad_checksums, config.likely_server_ports) == FIRST_BATCH_OPTIONS[name]
    assert config.report_gaps_for_partial is False


@pytest.mark.corpus
def test_redef_read_from_source_note() -> None:
    if corpus_dir() is None:
        pytest.skip("public capture corpus not found")
    assert zeek_config("zeek-tcp-miss-end-data").report_gaps_for_partial is True
