"""The compiled decoder's link layers and tunnels against tshark, frame by frame.

The captures of captures/encap/ (scripts/make_encaps.py) use layers the Python reference
decoder lacks (802.11 and its radio headers, NFLOG, IPNET, Cisco HDLC, PPPoE, RFC 1483 ATM, OpenBSD
enc and pflog, Apple PKTAP link types, PBB,
VN-Tag, FabricPath, ERSPAN, Aruba GRE, GRE in UDP, AYIYA, GTP-U on 2123, Teredo and AYIYA by
content, GTP-U in a fragmented outer IPv4). tshark is their oracle: it runs here, in the test,
with the public corpus's fields (``tshark -T fields``, the columns of NAME.tshark-packets.tsv)
and frame.protocols, and every per-packet field of the innermost layer must equal portlens's
(tests/test_conformance_tshark.expected_vs_got, the comparison the corpus uses). The tunnel
kinds portlens records must be those tshark's protocol stack shows, and tshark's malformed
marks those of portlens.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from portlens.decode import decode_capture
from portlens.decode.fields import SUB_CARRIER, SUB_FRAME, SUB_MSDU, addr_text
from portlens.decode.packets import PacketBatch
from portlens.decode.tunnels import tunnel_layers
from tests.corpus import TsharkFrame, malformed_disagreements
from tests.test_conformance_tshark import expected_vs_got

REPO = Path(__file__).resolve().parent.parent
ENCAP = REPO / "captures" / "encap"
sys.path.insert(0, str(REPO / "scripts"))
from make_encaps import TSHARK_OPTIONS  # noqa: E402

if importlib.util.find_spec("portlens._core") is None:
    pytest.skip("portlens._core is not built: these layers are the compiled decoder's",
                allow_module_level=True)
if shutil.which("tshark") is None:
    pytest.skip("tshark is not installed: it is the oracle of these captures",
                allow_module_level=True)

FIELDS = {
    # the columns of the corpus's NAME.tshark-packets.tsv and the tshark fields they hold
    "frame": "frame.number", "ts_epoch": "frame.time_epoch", "frame_len": "frame.len",
    "cap_len": "frame.cap_len", "ip_src": "ip.src", "ip_dst": "ip.dst", "ip_proto": "ip.proto",
    "ipv6_src": "ipv6.src", "ipv6_dst": "ipv6.dst", "ipv6_nxt": "ipv6.nxt",
    "tcp_srcport": "tcp.srcport", "tcp_dstport": "tcp.dstport", "tcp_flags": "tcp.flags",
    "tcp_seq_raw": "tcp.seq_raw", "tcp_ack_raw": "tcp.ack_raw",
    "tcp_window": "tcp.window_size_value", "tcp_len": "tcp.len",
    "tcp_mss": "tcp.options.mss_val", "tcp_wscale_shift": "tcp.options.wscale.shift",
    "tcp_sack_perm": "tcp.options.sack_perm", "tcp_tsval": "tcp.options.timestamp.tsval",
    "tcp_option_kinds": "tcp.option_kind", "udp_srcport": "udp.srcport",
    "udp_dstport": "udp.dstport", "udp_length": "udp.length", "icmp_type": "icmp.type",
    "icmp_code": "icmp.code", "icmpv6_type": "icmpv6.type", "icmpv6_code": "icmpv6.code",
    "malformed": "_ws.malformed",
}
TUNNEL_PROTOCOLS = {"erspan": "erspan", "ayiya": "ayiya", "gtp": "gtpu", "teredo": "teredo",
                    "vxlan": "vxlan", "geneve": "geneve"}
"""tshark protocol -> portlens tunnel name, where one names the other."""

CAPTURES = sorted(ENCAP.glob("*.pcap"))


def tshark_frames(capture: Path) -> list[TsharkFrame]:
    cmd = ["tshark", "-n", "-r", str(capture), "-o", "tcp.analyze_sequence_numbers:FALSE",
           "-o", "tcp.relative_sequence_numbers:FALSE", *TSHARK_OPTIONS.get(capture.name, []),
           "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
           "-e", "frame.protocols"]
    for field in FIELDS.values():
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    frames = []
    for line in out.splitlines():
        cells = line.split("\t")
        values = {name: cell.split(",") for name, cell in zip(FIELDS, cells[1:], strict=True)
                  if cell != ""}
        if "tcp_option_kinds" in values:
            values["tcp_option_kinds"] = [",".join(values["tcp_option_kinds"])]
        frames.append(TsharkFrame(values, cells[0].split(":")))
    return frames


def expected_tunnels(t: TsharkFrame) -> list[str]:
    """The tunnels tshark's stack shows, outermost first, in portlens's names."""
    stack = t.protocols or []
    out = []
    for k, proto in enumerate(stack):
        after = stack[k + 1] if k + 1 < len(stack) else ""
        if proto in TUNNEL_PROTOCOLS:
            out.append(TUNNEL_PROTOCOLS[proto])
        elif proto == "gre" and after not in ("erspan", "wlan"):
            out.append("gre-udp" if stack[k - 1] == "udp" else "gre")
        elif proto == "gre" and after == "wlan":
            out.append("aruba")
    return out


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_every_frame_matches_tshark(capture: Path) -> None:
    frames = tshark_frames(capture)
    rows = PacketBatch.concat(list(decode_capture(capture)))
    b = rows.take(rows.sub == SUB_FRAME)  # the innermost packet, tshark's last layer
    assert len(b) == len(frames) > 0
    several = set(rows.frame_index()[rows.sub >= SUB_MSDU].tolist())
    failures = []
    for i, t in enumerate(frames):
        if i in several:
            continue  # an A-MSDU of several packets: test_every_layer_matches_tshark
        diffs = expected_vs_got(t, b, i)
        got_tunnels = tunnel_layers(int(b.tunnel[i]), int(b.tunnel_depth[i]))
        if got_tunnels != expected_tunnels(t):
            diffs.append(("tunnels", expected_tunnels(t), got_tunnels))
        if diffs:
            failures.append(f"frame {i + 1} ({':'.join(t.protocols or [])}): " + "; ".join(
                f"{name}: tshark {want!r} portlens {got!r}" for name, want, got in diffs))
    assert not failures, "\n".join(failures)
    assert malformed_disagreements(frames, b.malformed.tolist()) == []


LAYER_FIELDS = {"ip_src": "ip.src", "ip_dst": "ip.dst", "ip_len": "ip.len",
                "ipv6_src": "ipv6.src", "ipv6_dst": "ipv6.dst", "tcp_srcport": "tcp.srcport",
                "tcp_dstport": "tcp.dstport", "tcp_seq_raw": "tcp.seq_raw",
                "tcp_flags": "tcp.flags", "tcp_len": "tcp.len", "udp_srcport": "udp.srcport",
                "udp_dstport": "udp.dstport"}


def portlens_layers(b: PacketBatch, rows: list[int]) -> dict[str, list[str]]:
    """Every IP layer of one frame's rows, outermost first, as tshark lists the fields of
    each occurrence: per packet row, its carriers (out_*, the middle carriers' rows, car_*;
    an A-MSDU subframe's shared ones only once), then its own layer."""
    out: dict[str, list[str]] = {name: [] for name in LAYER_FIELDS}

    def layer(src: object, dst: object, ip_len: int, proto: int, ports: tuple[int, int],
              row: int | None) -> None:
        text = addr_text(bytes(src))  # type: ignore[call-overload]
        v4 = ":" not in text
        out["ip_src" if v4 else "ipv6_src"].append(text)
        out["ip_dst" if v4 else "ipv6_dst"].append(addr_text(bytes(dst)))  # type: ignore[call-overload]
        if v4:
            out["ip_len"].append(str(ip_len))
        if proto == 17:
            out["udp_srcport"].append(str(ports[0]))
            out["udp_dstport"].append(str(ports[1]))
        elif proto == 6 and row is not None:
            out["tcp_srcport"].append(str(ports[0]))
            out["tcp_dstport"].append(str(ports[1]))
            out["tcp_seq_raw"].append(str(int(b.seq[row])))
            out["tcp_flags"].append(f"0x{int(b.tcp_flags[row]):04x}")
            out["tcp_len"].append(str(int(b.payload[row])))

    for k, i in enumerate(rows):
        if b.sub[i] == SUB_CARRIER:
            continue
        depth = int(b.tunnel_depth[i])
        shared = int(b.sub[i]) - SUB_MSDU if b.sub[i] >= SUB_MSDU else 0
        middle = []
        for j in rows[k + 1:]:
            if b.sub[j] != SUB_CARRIER:
                break
            middle.append(j)
        levels: list[tuple[object, ...]] = []
        if depth:
            levels.append((b.out_src[i], b.out_dst[i], int(b.out_ip_len[i]), int(b.out_proto[i]),
                           (int(b.out_sport[i]), int(b.out_dport[i])), None))
        levels += [(b.src[j], b.dst[j], int(b.ip_len[j]), int(b.proto[j]),
                    (int(b.sport[j]), int(b.dport[j])), None) for j in middle]
        if depth > 1:
            levels.append((b.car_src[i], b.car_dst[i], int(b.car_ip_len[i]), int(b.car_proto[i]),
                           (int(b.car_sport[i]), int(b.car_dport[i])), None))
        levels.append((b.src[i], b.dst[i], int(b.ip_len[i]), int(b.l4[i]),
                       (int(b.sport[i]), int(b.dport[i])), i))
        for level in levels[shared:]:
            layer(*level)  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("name", ["encap-amsdu.pcap", "encap-amsdu-vxlan.pcap",
                                  "encap-nested3.pcap"])
def test_every_layer_matches_tshark(name: str) -> None:
    """Frames that give more than one row (an A-MSDU's subframes, three tunnels deep): every
    occurrence of tshark's IP, TCP and UDP fields, in order, is one of portlens's rows'."""
    capture = ENCAP / name
    cmd = ["tshark", "-n", "-r", str(capture), "-o", "tcp.analyze_sequence_numbers:FALSE",
           "-o", "tcp.relative_sequence_numbers:FALSE", "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in LAYER_FIELDS.values():
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    b = PacketBatch.concat(list(decode_capture(capture)))
    frame_of = b.frame_index()
    lines = out.splitlines()
    assert len(lines) == int(frame_of[-1]) + 1
    assert (b.sub != SUB_FRAME).any()  # the capture gives rows beyond its frames'
    for f, line in enumerate(lines):
        want = {name: cell.split(",") if cell else []
                for name, cell in zip(LAYER_FIELDS, line.split("\t"), strict=True)}
        got = portlens_layers(b, np.flatnonzero(frame_of == f).tolist())
        assert got == want, f"frame {f + 1}"


def test_every_capture_decodes_ip_somewhere() -> None:
    """Each capture exercises its layer: some frame has IP inside it (not all 'not IP')."""
    assert len(CAPTURES) == 22
    for capture in CAPTURES:
        b = PacketBatch.concat(list(decode_capture(capture)))
        assert (b.ip_version > 0).any(), capture.name


def test_fragmented_gtp_is_descended_after_reassembly() -> None:
    """The frame completing the outer datagram carries the inner TCP segment and its carriers
    (a GTP-U connection and the inner one, as Zeek logs them)."""
    b = PacketBatch.concat(list(decode_capture(ENCAP / "encap-gtp-fragmented.pcap")))
    assert b.frag.tolist() == [1, 1, 2, 0]
    assert b.tunnel_depth.tolist() == [0, 0, 1, 1]
    assert (int(b.l4[2]), int(b.sport[2]), int(b.dport[2]), int(b.payload[2])) == (
        6, 42000, 8080, 300)
    assert (int(b.out_proto[2]), int(b.out_sport[2]), int(b.out_dport[2])) == (17, 2152, 2152)
    assert int(b.out_ip_len[2]) == int(b.out_ip_len[3])


def test_make_encaps_is_deterministic_and_small(tmp_path: Path) -> None:
    """Re-running the script reproduces the checked-in captures (and README) exactly."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_encaps.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True, timeout=300)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in ENCAP.iterdir())
    for name in made:
        assert (tmp_path / name).read_bytes() == (ENCAP / name).read_bytes(), name
    assert sum(p.stat().st_size for p in ENCAP.iterdir()) < 20_000


def test_fragmented_gtp_over_ipv6_is_descended_after_reassembly() -> None:
    b = PacketBatch.concat(list(decode_capture(ENCAP / "encap-gtp-fragmented-v6.pcap")))
    assert b.frag.tolist() == [1, 2]
    assert b.tunnel_depth.tolist() == [0, 1]
    assert (int(b.ip_version[1]), int(b.l4[1]), int(b.sport[1]), int(b.payload[1])) == (
        4, 6, 42000, 300)
    assert (int(b.out_proto[1]), int(b.out_dport[1])) == (17, 2152)


def test_fragment_counters_count_the_descent() -> None:
    from portlens.decode import Decoder
    from portlens.sources.files import open_capture

    decoder = Decoder()
    with open_capture(ENCAP / "encap-gtp-fragmented.pcap") as reader:
        for frames in reader:
            decoder.decode(frames)
    counters = decoder.fragment_counters
    assert (counters["completed"], counters["descended"], counters["bytes_dropped"],
            counters["held_datagrams"]) == (1, 1, 0, 0)
