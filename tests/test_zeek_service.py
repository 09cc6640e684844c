"""Zeek's ``service`` means "a protocol analyzer confirmed it"; portlens analyzes no
application protocol, so its conn.log leaves it unset and gives the port's name as
``port_service`` in JSON and CSV instead."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.corpus import require_corpus

REPO = Path(__file__).resolve().parent.parent
HTTPS = str(REPO / "captures" / "scenario-close-client-first.pcap")
"""One TLS-sized exchange on port 443."""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    from portlens.cli import main

    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def zeek_rows(text: str) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in text.splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return rows


def test_service_unset_and_port_service_beside_it(capsys: pytest.CaptureFixture[str]) -> None:
    rows = zeek_rows(run(capsys, "conns", "--format", "zeek", HTTPS))
    assert [(r["id.resp_p"], r["service"]) for r in rows] == [("443", "-")]
    rec = json.loads(run(capsys, "conns", "--json", HTTPS))
    assert (rec["service"], rec["port_service"]) == (None, "https")
    row = next(csv.DictReader(io.StringIO(run(capsys, "conns", "--csv", HTTPS))))
    assert (row["service"], row["port_service"]) == ("", "https")


@pytest.mark.corpus
def test_no_service_where_zeek_confirmed_none(capsys: pytest.CaptureFixture[str]) -> None:
    """Wherever Zeek's baseline says ``-`` (no analyzer confirmed a protocol: a TLS client on
    Modbus's port 502, an HTTP request to an SSH server...), portlens says ``-`` too; and it
    never names a service, so it never contradicts one Zeek confirmed."""
    root = require_corpus()
    checked = 0
    for name in ("zeek-modbus-p502-rst", "zeek-http-to-ssh-rstr", "zeek-https-to-http-rsto",
                 "zeek-gre-tunnel", "zeek-localhost-bad-chksum"):
        capture = next(root.glob(name + ".pcap*"))
        ours = zeek_rows(run(capsys, "conns", "--format", "zeek", str(capture)))
        zeek = zeek_rows((root / f"{name}.zeek-conn.log").read_text())
        assert {r["service"] for r in ours} == {"-"}, name
        checked += sum(r["service"] == "-" for r in zeek)
    assert checked >= 10
