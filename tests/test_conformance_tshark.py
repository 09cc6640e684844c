"""Both decoders against tshark 4.0's per-frame fields (NAME.tshark-packets.tsv), frame by
frame: the compiled one the commands use and the Python reference (portlens.reference).

The innermost layer is compared: the last value of each multi-layer column. Documented
differences (docs/decoding.md), asserted as such rather than skipped:
- part fragments: tshark shows transport fields only on the frame that completes reassembly;
  portlens attributes the ports to every fragment of the datagram;
- ICMP errors: tshark's TCP/UDP/IP columns end with the *quoted* packet, which portlens keeps
  in the q_* columns (the innermost real layer is the ICMP message);
- where the corpus has NAME.tshark-protocols.tsv, the innermost transport is what follows the
  last IP header there: a UDP column may belong only to a tunnel carrier (Teredo bubbles);
- `malformed`: portlens flags a frame exactly when tshark marks it, except tshark's marks from
  application dissectors (SSH) and TCP reassembly, layers portlens does not decode, and an IPv4
  total length beyond the frame, which tshark notes without marking (zeek-quic-fuzz-malformed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from portlens.decode import decode_capture
from portlens.decode.fields import FRAG_PART, addr_text
from portlens.decode.malformed import Malformed
from portlens.decode.packets import PacketBatch
from tests.corpus import (
    IPV4_TOTAL_LENGTH_INVALID,
    TsharkFrame,
    corpus_params,
    epoch_ns,
    malformed_disagreements,
    tshark_frames,
)

ICMP4_ERRORS = {3, 4, 5, 11, 12}
ICMP6_ERRORS = {1, 2, 3, 4}


def decoded(capture: Path, *, reference: bool = False) -> PacketBatch:
    return PacketBatch.concat(list(decode_capture(capture, reference=reference)))


def expected_vs_got(t: TsharkFrame, b: PacketBatch, i: int) -> list[tuple[str, object, object]]:
    """(field, tshark, portlens) for every field that differs in frame i."""
    diffs: list[tuple[str, object, object]] = []

    def check(name: str, want: object, got: object) -> None:
        if want != got:
            diffs.append((name, want, got))

    check("ts_ns", epoch_ns(t.last("ts_epoch") or "0"), int(b.ts_ns[i]))
    check("frame_len", t.int_last("frame_len"), int(b.wirelen[i]))
    check("cap_len", t.int_last("cap_len"), int(b.caplen[i]))

    icmp_type = t.int_last("icmp_type")
    icmp6_type = t.int_last("icmpv6_type")
    is_error = (icmp_type in ICMP4_ERRORS) or (icmp6_type in ICMP6_ERRORS)
    has_tcp = t.last("tcp_srcport") is not None
    has_udp = t.last("udp_srcport") is not None
    carried_by_udp = has_udp
    inner = t.innermost()
    if inner is not None and not is_error:
        # The protocols file says what follows the innermost IP header: a UDP column may
        # belong to a tunnel carrier only (a Teredo bubble is IPv6 with no transport).
        has_tcp, has_udp = "tcp" in inner, "udp" in inner

    if is_error:
        check("l4", 1 if icmp_type is not None else 58, int(b.l4[i]))
        check("icmp_type", icmp_type if icmp_type is not None else icmp6_type,
              int(b.icmp_type[i]))
        code = t.int_last("icmp_code") if icmp_type is not None else t.int_last("icmpv6_code")
        check("icmp_code", code, int(b.icmp_code[i]))
        quoted_src = t.last("ipv6_src") if b.q_src[i][:12].any() and (
            bytes(b.q_src[i][:12]) != bytes(10) + b"\xff\xff") else t.last("ip_src")
        if quoted_src is not None:
            check("quoted src", quoted_src, addr_text(b.q_src[i]))
        if has_tcp or has_udp:
            col = "tcp" if has_tcp else "udp"
            check("quoted sport", t.int_last(f"{col}_srcport"), int(b.q_sport[i]))
            check("quoted dport", t.int_last(f"{col}_dstport"), int(b.q_dport[i]))
        return diffs

    if b.frag[i] == FRAG_PART:
        # Documented difference: nothing to compare but the absence of transport in tshark.
        check("tshark transport on part fragment", False, has_tcp or has_udp)
        return diffs

    if b.ip_version[i] == 4:
        check("ip_src", t.last("ip_src"), addr_text(b.src[i]))
        check("ip_dst", t.last("ip_dst"), addr_text(b.dst[i]))
    elif b.ip_version[i] == 6:
        check("ipv6_src", t.last("ipv6_src"), addr_text(b.src[i]))
        check("ipv6_dst", t.last("ipv6_dst"), addr_text(b.dst[i]))
    else:
        check("ip", None, None if t.last("ip_src") is None and t.last("ipv6_src") is None
              else "ip")

    if icmp_type is not None or icmp6_type is not None:
        # Not an error: the ICMP message is innermost (a UDP column, if any, is its carrier).
        check("l4", 1 if icmp_type is not None else 58, int(b.l4[i]))
        check("icmp_type", icmp_type if icmp_type is not None else icmp6_type,
              int(b.icmp_type[i]))
        code = t.int_last("icmp_code") if icmp_type is not None else t.int_last("icmpv6_code")
        check("icmp_code", code, int(b.icmp_code[i]))
        if carried_by_udp:
            check("carrier udp sport", int(t.all("udp_srcport")[0]), int(b.out_sport[i]))
    elif has_tcp:
        check("l4", 6, int(b.l4[i]))
        check("sport", t.int_last("tcp_srcport"), int(b.sport[i]))
        check("dport", t.int_last("tcp_dstport"), int(b.dport[i]))
        check("flags", t.int_last("tcp_flags", 16), int(b.tcp_flags[i]))
        check("seq", t.int_last("tcp_seq_raw"), int(b.seq[i]))
        check("ack", t.int_last("tcp_ack_raw"), int(b.ack[i]))
        check("win", t.int_last("tcp_window"), int(b.win[i]))
        check("tcp_len", t.int_last("tcp_len"), int(b.payload[i]))
        mss = t.int_last("tcp_mss")
        check("mss", -1 if mss is None else mss, int(b.mss[i]))
        ws = t.int_last("tcp_wscale_shift")
        check("wscale", -1 if ws is None else ws, int(b.wscale[i]))
        check("sack_perm", t.last("tcp_sack_perm") is not None, bool(b.sack_perm[i]))
        tsval = t.int_last("tcp_tsval")
        check("tsval", tsval, int(b.tsval[i]) if b.has_ts[i] else None)
        kinds = t.last("tcp_option_kinds")
        got = ",".join(str(k) for k in b.opt_kinds[i][: b.opt_count[i]])
        check("option kinds", kinds or "", got)
    elif has_udp:
        check("l4", 17, int(b.l4[i]))
        check("sport", t.int_last("udp_srcport"), int(b.sport[i]))
        check("dport", t.int_last("udp_dstport"), int(b.dport[i]))
        check("udp_length", t.int_last("udp_length"), int(b.udp_len[i]))
    else:
        check("l4", 0, int(b.l4[i]))
    if b.tunnel_depth[i] >= 2 and b.car_proto[i] == 17:
        # The innermost tunnel's UDP carrier: the last UDP layer before the inner packet's.
        carriers = t.all("udp_srcport")[: len(t.all("udp_srcport")) - has_udp]
        check("innermost carrier udp sport", int(carriers[-1]) if carriers else None,
              int(b.car_sport[i]))
    return diffs


@pytest.mark.corpus
@pytest.mark.parametrize("decoder", ["rust", "reference"])
@pytest.mark.parametrize("capture", corpus_params())
def test_every_frame_matches_tshark(capture: Path, decoder: str) -> None:
    frames = tshark_frames(capture)
    b = decoded(capture, reference=decoder == "reference")
    assert len(b) == len(frames)
    failures = []
    for i, t in enumerate(frames):
        diffs = expected_vs_got(t, b, i)
        if diffs:
            failures.append(f"frame {i + 1}: " + "; ".join(
                f"{name}: tshark {want!r} portlens {got!r}" for name, want, got in diffs))
    assert not failures, f"{len(failures)} of {len(frames)} frames differ:\n" + "\n".join(
        failures[:20])
    # The frames tshark marks malformed are those portlens does, but for the documented
    # exceptions (corpus.malformed_disagreements).
    assert malformed_disagreements(frames, b.malformed.tolist()) == []


def test_malformed_reasons_agree_with_tshark() -> None:
    assert Malformed.IPV4_TOTAL_LENGTH_INVALID == IPV4_TOTAL_LENGTH_INVALID
