"""Zeek's connection-level rules that no public baseline exercises, on captures crafted by
scripts/make_zeek_rules.py, with the conn.log rows Zeek writes for them derived from Zeek's
source (the rule and the Zeek file and function are in docs/zeek-rules.md: §11 other IP
protocols, §3.4-3.5 DNS and NTP flips, §1 and §8.2 TSO frames).

Each expected row is the conn.log columns id.orig_h id.orig_p id.resp_h id.resp_p proto
duration orig_bytes resp_bytes conn_state missed_bytes history orig_pkts orig_ip_bytes
resp_pkts resp_ip_bytes ip_proto tunnel_parents, as Zeek prints them (``-`` for unset). The
Python tracker is checked on both of its paths and the Rust tracker (when built) directly; they
are also compared field by field on these captures by tests/test_rust_tracker.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from portlens.decode import decode_capture
from portlens.track.tracker import Tracker, TrackerConfig
from tests.corpus import corpus_dir

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"

# The inner OSPF's parent is the GRE tunnel, which is no connection (Zeek keeps an IP tunnel
# record, §12): "tunnel" stands for any parent uid that is not a logged row.
UNKNOWN_TRANSPORT_ROWS = """
10.1.0.1 0 224.0.0.5 0 unknown_transport 20.000000 0 0 OTH 0 - 3 192 0 0 89 -
10.1.0.2 0 224.0.0.18 0 unknown_transport - - - OTH 0 - 1 32 0 0 112 -
10.1.0.10 0 10.1.0.20 0 unknown_transport 0.000500 0 0 OTH 0 - 1 52 1 52 132 -
fe80::1 0 ff02::d 0 unknown_transport - - - OTH 0 - 1 50 0 0 103 -
10.1.0.70 0 10.1.0.80 0 unknown_transport 1.000000 0 0 OTH 0 - 2 100 1 50 99 -
10.1.0.70 0 10.1.0.80 0 unknown_transport - - - OTH 0 - 1 50 0 0 99 -
10.1.0.90 0 10.1.0.91 0 unknown_transport - - - OTH 0 - 1 3020 0 0 99 -
192.168.5.1 0 224.0.0.5 0 unknown_transport - - - OTH 0 - 1 64 0 0 89 tunnel
"""
"""UnknownIPTransportAnalyzer (UnknownIPTransport.cc): key (src, 0, dst, 0, proto), so both
directions of the SCTP INIT/INIT-ACK are one row with ports 0; the first sender is the
originator (no WantConnection flip); only ConnSize counts (orig_bytes/resp_bytes 0 when the
duration is positive, unset otherwise, set_conn); no history; conn_state OTH (conn_state()
has no case for it); unknown_ip_inactivity_timeout 60 s splits protocol 99 after 69 s of
silence; the fragmented datagram counts once with its reassembled length 3020. ESP (IP.cc
stops at it) and GRE of protocol type 0x88b5 (the GRE analyzer forwards it nowhere) make no
row."""

DNS_ROWS = """
10.2.0.10 40001 10.2.0.53 53 udp 0.001000 29 45 SF 0 Dd 1 57 1 73 17 -
10.2.0.11 40002 10.2.0.53 53 udp - - - SHR 0 ^d 0 0 1 73 17 -
10.2.0.55 53 10.2.0.54 53 udp 0.002000 74 45 SF 0 D^d 2 130 1 73 17 -
10.2.0.56 53 10.2.0.57 53 udp 0.001000 29 45 SF 0 Dd 1 57 1 73 17 -
10.2.0.60 5353 224.0.0.251 5353 udp - - - S0 0 D 1 73 0 0 17 -
10.2.0.71 137 10.2.0.70 137 udp - - - S0 0 D^ 1 90 0 0 17 -
10.2.0.81 53 10.2.0.80 53 udp 0.001000 49 0 S0 0 D^ 1 73 1 32 17 -
"""
"""DNS_Interpreter::ParseMessage: the first DNS message, a response (QR) delivered as the
originator's, flips unless the responder is multicast. The query (29 bytes of DNS) and the
response (45 bytes) from port 53 to an ephemeral port were flipped at creation by the likely
server port (UDP WantConnection), so the response comes from the responder: ``^d``. 53 to 53
and NBNS 137 to 137 are not flipped at creation (both ports likely), so the DNS analyzer
flips: ``D^`` (the D was recorded before the analyzers saw the packet). After the flip the
UDP adapter's byte counts and activity stay with the role (it has no FlipRoles): the first
response's 45 bytes are the new originator's, so 10.2.0.55 has 45 + 29 = 74 orig_bytes;
ConnSize swaps its counts and then counts the flipping packet for the role it was handed as,
the originator: 2 packets (73 + 57 IP bytes) for 10.2.0.55. The 4-byte datagram before a
response (no DNS header: no message, first_message stays set) is counted before the flip for
the old originator and so ends as resp_pkts 1, 32 IP bytes, while its 4 bytes and the
response's 45 stay orig_bytes 49 and the responder is never active: S0. The mDNS response to
224.0.0.251 is not flipped."""

NTP_ROWS = """
10.3.0.10 40123 10.3.0.123 123 udp 0.001000 48 48 SF 0 Dd 1 76 1 76 17 -
10.3.0.11 40124 10.3.0.123 123 udp - - - SHR 0 ^d 0 0 1 76 17 -
10.3.0.12 123 10.3.0.124 123 udp 0.002000 96 48 SF 0 D^d 2 152 1 76 17 -
10.3.0.13 123 10.3.0.125 123 udp 0.001000 48 48 SF 0 Dd 1 76 1 76 17 -
10.3.0.126 123 10.3.0.14 123 udp - - - S0 0 D 1 68 0 0 17 -
"""
"""proc_ntp_message (ntp-analyzer.pac): a server-mode (4) message from the originator or a
client-mode (3) one from the responder flips, once per direction. ntpd to ntpd (123 to 123)
with the reply first: ``D^d``, the reply's 48 bytes and the client's 48 are orig_bytes 96 of
10.3.0.12, ConnSize 2 packets for it. A reply to an ephemeral port was flipped at creation
(``^d``) and comes from the responder: no second flip. A 40-byte server message does not
parse (NTP_std_msg needs 48 bytes): no flip."""

TSO_ROW_KEEP = "10.4.0.10 41000 10.4.0.80 80 tcp 0.006000 1400 0 SF 0 ShADaFf 5 160 3 120 6 -"
"""Zeek with -C (portlens's default): IPAnalyzer::AnalyzePacket analyses the TSO frame with
the captured length, but ConnSize adds ip->TotalLen(), the header's 0: 5 packets, 160 IP bytes
(4 x 40 + 0), the 1400 bytes counted by sequence numbers."""
TSO_ROW_DROP = "10.4.0.10 41000 10.4.0.80 80 tcp 0.006000 1400 0 SF 1400 ShAaGFf 4 160 3 120 6 -"
"""Zeek without -C: the frame is dropped before any connection sees it (ip_hdr_len_zero), so
the server's ACK of the 1400 bytes reveals a content gap: G, missed_bytes 1400."""

COLUMNS = ("orig_h", "orig_p", "resp_h", "resp_p", "proto", "duration", "orig_bytes",
           "resp_bytes", "conn_state", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
           "resp_pkts", "resp_ip_bytes", "ip_proto", "tunnel_parents")


def expected(text: str) -> Counter[tuple[str, ...]]:
    return Counter(tuple(line.split()) for line in text.strip().splitlines())


def zeek_cells(rec: dict[str, Any], uids: set[str]) -> tuple[str, ...]:
    """A record (tests/test_rust_tracker.py's shape) as conn.log prints it."""
    d = rec["duration_ns"] > 0
    us = rec["duration_ns"] // 1000
    parents = ["tunnel" if u not in uids else u for u in rec["tunnel_parents"]]
    return (rec["orig_h"], str(rec["orig_p"]), rec["resp_h"], str(rec["resp_p"]), rec["proto"],
            f"{us // 1_000_000}.{us % 1_000_000:06d}" if d else "-",
            str(rec["orig_bytes"]) if d else "-", str(rec["resp_bytes"]) if d else "-",
            rec["conn_state"], str(rec["missed_bytes"]), rec["history"] or "-",
            str(rec["orig_pkts"]), str(rec["orig_ip_bytes"]), str(rec["resp_pkts"]),
            str(rec["resp_ip_bytes"]), str(rec["ip_proto"]), ",".join(parents) or "-")


def python_records(path: Path, config: TrackerConfig) -> list[dict[str, Any]]:
    from tests.test_rust_tracker import py_record

    tracker = Tracker(config)
    out = [py_record(c) for b in decode_capture(path) for c in tracker.feed(b)]
    return out + [py_record(c) for c in tracker.finish()]


def rust_records(path: Path, config: TrackerConfig) -> list[dict[str, Any]]:
    pytest.importorskip("portlens._core", reason="the Rust core is not built")
    from tests.test_rust_tracker import run_rust

    return run_rust(path, config)[0]


RUNS = {
    "python-reference": lambda p, c: python_records(p, dataclasses.replace(c, fast_paths=False)),
    "python-fast": python_records,
    "rust": rust_records,
}

CASES = {
    "unknown-transport": ("conn-unknown-transport.pcap", TrackerConfig(), UNKNOWN_TRANSPORT_ROWS),
    "dns-flip": ("conn-dns-flip.pcap", TrackerConfig(), DNS_ROWS),
    "ntp-flip": ("conn-ntp-flip.pcap", TrackerConfig(), NTP_ROWS),
    "tso-keep": ("conn-tso-zero.pcap", TrackerConfig(), TSO_ROW_KEEP),
    "tso-drop": ("conn-tso-zero.pcap", TrackerConfig(drop_bad_checksums=True), TSO_ROW_DROP),
}


@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_conn_rows_are_zeeks(case: str, run: str) -> None:
    name, config, rows = CASES[case]
    records = RUNS[run](CAPTURES / name, config)
    uids = {r["uid"] for r in records}
    assert Counter(zeek_cells(r, uids) for r in records) == expected(rows)


def test_without_the_analyzers_nothing_flips() -> None:
    """The flips are the DNS and NTP analyzers' (loaded by default, and in bare mode only
    with their scripts): without them 53 to 53 and 123 to 123 keep the first sender."""
    config = TrackerConfig(dns_timeout=False, ntp_analyzer=False, fast_paths=False)
    for name, flipped in (("conn-dns-flip.pcap", ("10.2.0.54", "10.2.0.70", "10.2.0.80")),
                          ("conn-ntp-flip.pcap", ("10.3.0.124",))):
        records = python_records(CAPTURES / name, config)
        assert all("^" not in r["history"][1:] for r in records)
        assert {r["orig_h"] for r in records} >= set(flipped)


def test_unknown_ip_inactivity_is_a_timeout() -> None:
    """--timeout unknown_ip_inactivity: 0 turns it off, so protocol 99 stays one row."""
    config = TrackerConfig(timeouts=TrackerConfig().timeouts.with_seconds(
        unknown_ip_inactivity=0))
    rows = [r for r in python_records(CAPTURES / "conn-unknown-transport.pcap", config)
            if r["orig_h"] == "10.1.0.70"]
    assert [(r["orig_pkts"], r["resp_pkts"], r["duration_ns"]) for r in rows] == [
        (3, 1, 70_000_000_000)]


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields",
                          *(a for f in fields for a in ("-e", f))],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_dns_and_ntp_hints_equal_tsharks() -> None:
    """The decoder's dns_qr and ntp_mode columns against tshark's own decode of the same
    frames (dns.flags.response / nbns.flags.response, ntp.flags.mode); a 4-byte datagram
    is no DNS message and a 40-byte one no NTP message for Zeek, whatever tshark makes of
    them."""
    dns = tshark_fields(CAPTURES / "conn-dns-flip.pcap", "dns.flags.response",
                        "nbns.flags.response", "udp.length")
    batch = next(decode_capture(CAPTURES / "conn-dns-flip.pcap"))
    qr = batch.dns_qr.tolist()
    want = [int(d or n) if int(ulen) - 8 >= 12 else -1 for d, n, ulen in dns]
    assert qr == want
    ntp = tshark_fields(CAPTURES / "conn-ntp-flip.pcap", "ntp.flags.mode", "udp.length")
    batch = next(decode_capture(CAPTURES / "conn-ntp-flip.pcap"))
    want = [int(mode) if int(ulen) - 8 >= 48 else -1 for mode, ulen in ntp]
    assert batch.ntp_mode.tolist() == want


def cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "portlens", *args], capture_output=True,
                         text=True, check=True, cwd=REPO)
    return out.stdout


def test_reports_show_unknown_transport() -> None:
    path = str(CAPTURES / "conn-unknown-transport.pcap")
    ports = [json.loads(line) for line in cli("ports", "--json", path).splitlines()]
    rows = {(r["proto"], r["ip_proto"]): r for r in ports if r.get("type") != "summary"}
    assert {k: (r["service"], r["conns"], r["pkts_c2s"], r["pkts_s2c"], r["completed"],
                r["one_way"]) for k, r in rows.items()} == {
        ("ip", 89): ("ospf", 2, 4, 0, 0, 2), ("ip", 112): ("vrrp", 1, 1, 0, 0, 1),
        ("ip", 132): ("sctp", 1, 1, 1, 1, 0), ("ip", 103): ("pim", 1, 1, 0, 0, 1),
        ("ip", 99): (None, 3, 4, 1, 1, 2)}
    table = cli("ports", path)
    assert "ip 89   ospf" in table and "ip 132  sctp" in table
    zeek = [line.split("\t") for line in cli("conns", "--format", "zeek", path).splitlines()
            if not line.startswith("#")]
    assert sorted((r[2], r[4], r[6], r[21]) for r in zeek) == sorted(
        (r[0], r[2], r[4], r[15]) for r in expected(UNKNOWN_TRANSPORT_ROWS).elements())
    conns = [json.loads(line) for line in cli("conns", "--json", path).splitlines()]
    assert Counter((c["proto"], c["ip_proto"]) for c in conns if "uid" in c) == Counter(
        {("unknown_transport", 89): 2, ("unknown_transport", 99): 3,
         ("unknown_transport", 112): 1, ("unknown_transport", 132): 1,
         ("unknown_transport", 103): 1})
    table = cli("conns", "-t", "--proto", "unknown_transport", path)
    assert "224.0.0.5 (ospf)" in table and "10.1.0.20 (sctp)" in table


def test_to_pandas_has_ip_proto() -> None:
    pytest.importorskip("pandas")
    import portlens

    df = portlens.open(str(CAPTURES / "conn-unknown-transport.pcap")).connections().to_pandas()
    assert sorted(zip(df["proto"], df["ip_proto"], strict=True)) == sorted(
        [("unknown_transport", 89)] * 2 + [("unknown_transport", 99)] * 3
        + [("unknown_transport", p) for p in (103, 112, 132)])


def test_tso_frame_in_the_public_capture() -> None:
    """zeek-ldap-missing-krbtgt-pcapng frame 8 (MANIFEST.md): the packet's own ip_len is the
    1885 bytes on the wire, flagged ip_len_zero; the connection adds Zeek's 0 (its conn.log
    row is compared whole by tests/test_conformance_zeek.py)."""
    root = corpus_dir()
    if root is None:
        pytest.skip("public capture corpus not found")
    batch = next(decode_capture(root / "zeek-ldap-missing-krbtgt-pcapng.pcapng"))
    zero = batch.ip_len_zero.nonzero()[0].tolist()
    assert zero == [7]
    assert int(batch.ip_len[7]) == 1885
    # Zeek's row: 14 packets, 1733 IP bytes = the 3618 of the IP lengths on the wire less
    # the TSO frame's 1885, which ConnSize adds as 0.
    records = python_records(root / "zeek-ldap-missing-krbtgt-pcapng.pcapng", TrackerConfig())
    assert [(r["orig_pkts"], r["orig_ip_bytes"]) for r in records] == [(14, 1733)]
    sent = batch.ip_len[batch.src[:, 15] == batch.src[0, 15]]
    assert int(sent.sum()) == 1733 + 1885


def test_payload_readers() -> None:
    """decode/app.py (the Rust decoder's app.rs has the same vectors): a DNS header needs 12
    bytes; an NTP standard message 48, then extension fields while more than 24 bytes
    remain, each within the payload."""
    from portlens.decode.app import dns_qr, ntp_mode

    assert dns_qr(bytes(11)) == -1
    assert dns_qr(bytes.fromhex("000081800000000000000000")) == 1
    ntp = bytes([0x24]) + bytes(47)
    assert ntp_mode(ntp) == 4
    assert ntp_mode(ntp[:47]) == -1
    assert ntp_mode(ntp + bytes(20)) == 4
    long = bytearray(25)
    long[17] = 100  # a value length past the end
    assert ntp_mode(ntp + bytes(long)) == -1
    field = bytearray(28)
    field[3] = 28
    assert ntp_mode(ntp + bytes(field)) == 4
    assert ntp_mode(bytes([0x26]) + bytes(47)) == -1  # mode 6: a control message


def test_ladder_of_an_unknown_transport_connection() -> None:
    """The SCTP INIT and INIT-ACK: one step each way, by address and IP protocol."""
    path = str(CAPTURES / "conn-unknown-transport.pcap")
    conns = [json.loads(line) for line in cli("conns", "--json", path).splitlines()]
    uid = next(c["uid"] for c in conns if c.get("ip_proto") == 132)
    steps = [line for line in cli("ladder", "--conn", uid, path).splitlines()
             if "SCTP" in line]
    assert len(steps) == 2
    assert "-->|" in steps[0] and "|<--" in steps[1]
    assert all("ip_len=52" in line for line in steps)


# --- rows a frame gives more than one of (docs/zeek-rules.md §12) ------------------------------

AMSDU_ROWS = """
10.5.0.1 40300 10.5.0.9 7777 udp 1.001000 5 7 SF 0 Dd 1 33 1 35 17 -
2001:db8:5::1 40400 2001:db8:5::2 9999 udp - - - S0 0 D 1 51 0 0 17 -
10.5.0.1 40200 10.5.0.2 80 tcp 2.002000 0 0 S1 0 ShA 2 92 1 44 6 -
"""
"""IEEE802_11Analyzer::AnalyzePacket forwards every A-MSDU subframe's packet (each MSDU's LLC
to the IP analyzer), so each is a packet of its own flow: the UDP exchange, the IPv6
datagram and the TCP SYN travel in A-MSDUs with other flows' packets, the SYN-ACK in the
third subframe of frame 2 after the IPv6 one, the ACK alone (tests encap-amsdu.pcap)."""

NESTED_ROWS = """
192.0.2.1 2152 192.0.2.2 2152 udp 1.001000 160 148 SF 0 Dd 1 188 1 176 17 -
172.20.0.1 50040 172.20.0.2 6081 udp - - - S0 0 D 1 152 0 0 17 192.0.2.1:2152
172.20.0.2 50042 172.20.0.1 6081 udp - - - S0 0 D 1 140 0 0 17 192.0.2.1:2152
172.21.0.1 50041 172.21.0.2 4789 udp - - - S0 0 D 1 102 0 0 17 172.20.0.1:50040
172.21.0.2 50043 172.21.0.1 4789 udp - - - S0 0 D 1 90 0 0 17 172.20.0.2:50042
10.6.0.1 40500 10.6.0.2 443 tcp 1.001000 0 0 S1 0 Sh 1 52 1 40 6 172.21.0.1:50041,172.21.0.2:50043
192.0.2.5 50050 192.0.2.6 6081 udp - - - S0 0 D 1 176 0 0 17 -
172.22.0.1 50051 172.22.0.2 4789 udp - - - S0 0 D 1 126 0 0 17 192.0.2.5:50050
10.7.0.1 40600 10.7.0.2 22 tcp - - - S0 0 S 1 52 0 0 6 tunnel
"""
"""Every carrier level is a connection (encap-nested3.pcap): GTP-U on 2152 carrying Geneve
carrying VXLAN carrying TCP, the answer through other Geneve and VXLAN flows (so two of
each, one-way: VXLAN and Geneve decapsulate by destination port), and Geneve carrying VXLAN
carrying GRE carrying TCP. Each UDP carrier's tunnel_parents is the carrier around it, the
inner connection's the innermost carrier (EncapsulationStack::Last when Conn::Conn and
Conn::CheckEncapsulation run; tunnel_changed adds the answer's VXLAN flow), a GRE carrier
is an IP tunnel record, no row ("tunnel")."""

AMSDU_VXLAN_ROWS = """
192.0.2.9 50060 192.0.2.10 4789 udp - - - S0 0 D 1 230 0 0 17 -
10.11.0.1 40700 10.11.0.2 7777 udp - - - S0 0 D 1 31 0 0 17 tunnel
10.11.0.1 40800 10.11.0.2 80 tcp - - - S0 0 S 1 52 0 0 6 tunnel
"""
"""An A-MSDU in Aruba GRE (GREAnalyzer hands 0x8200 to the 802.11 analyzer) in VXLAN
(encap-amsdu-vxlan.pcap): the VXLAN conn counts the frame once, its packet counted before the
subframes are forwarded (each subframe's packet goes on with the stack popped back to the
802.11 level); both inner packets' parent is the GRE tunnel record."""

MULTI_ROW_CASES = {"amsdu": ("encap/encap-amsdu.pcap", AMSDU_ROWS),
                   "nested3": ("encap/encap-nested3.pcap", NESTED_ROWS),
                   "amsdu-vxlan": ("encap/encap-amsdu-vxlan.pcap", AMSDU_VXLAN_ROWS)}


def labelled_cells(rec: dict[str, Any], by_uid: dict[str, str]) -> tuple[str, ...]:
    """zeek_cells with each parent named by its row's originator (host:port), or
    ``tunnel`` for an IP tunnel record."""
    cells = zeek_cells(rec, set(by_uid))
    parents = ",".join(sorted(by_uid.get(u, "tunnel") for u in rec["tunnel_parents"]))
    return (*cells[:-1], parents or "-")


@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("case", sorted(MULTI_ROW_CASES))
def test_every_subframe_and_carrier_level_is_a_connection(case: str, run: str) -> None:
    name, rows = MULTI_ROW_CASES[case]
    records = RUNS[run](CAPTURES / name, TrackerConfig())
    by_uid = {r["uid"]: f"{r['orig_h']}:{r['orig_p']}" for r in records}
    assert Counter(labelled_cells(r, by_uid) for r in records) == expected(rows)
