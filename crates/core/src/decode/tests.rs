//! Crafted frames through the whole decoder. The exhaustive judge is the differential test
//! against the Python reference (tests/test_rust_decoder.py); these pin a few rules in Rust.

use super::columns::{CSUM_BAD, CSUM_GOOD, CSUM_NONE, CSUM_UNVERIFIED, FRAG_COMPLETE, FRAG_PART};
use super::*;
use crate::frames::FrameBatch;
use crate::wire::checksum::ones_sum;
use crate::wire::{linktype as lt, v4_mapped};

const SRC: [u8; 4] = [192, 0, 2, 1];
const DST: [u8; 4] = [198, 51, 100, 7];

fn put_checksum(bytes: &mut [u8], at: usize, pseudo: &[u8]) {
    bytes[at] = 0;
    bytes[at + 1] = 0;
    let mut all = pseudo.to_vec();
    all.extend_from_slice(bytes);
    let sum = !ones_sum(&all, 0);
    bytes[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

fn ipv4(proto: u8, payload: &[u8], ident: u16, frag: u16) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&ident.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&SRC);
    h.extend_from_slice(&DST);
    put_checksum(&mut h, 10, &[]);
    h.extend_from_slice(payload);
    h
}

fn pseudo4(proto: u8, len: usize) -> Vec<u8> {
    let mut p = SRC.to_vec();
    p.extend_from_slice(&DST);
    p.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

fn tcp(options: &[u8], payload: &[u8]) -> Vec<u8> {
    let doff = u8::try_from((20 + options.len()) / 4).unwrap();
    let mut t = vec![
        0x30,
        0x39,
        0x01,
        0xBB,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        doff << 4,
        0x02,
    ];
    t.extend_from_slice(&[0xFA, 0xF0, 0, 0, 0, 0]);
    t.extend_from_slice(options);
    t.extend_from_slice(payload);
    let pseudo = pseudo4(6, t.len());
    put_checksum(&mut t, 16, &pseudo);
    t
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut u = Vec::new();
    for v in [sport, dport, len, 0] {
        u.extend_from_slice(&v.to_be_bytes());
    }
    u.extend_from_slice(payload);
    u
}

/// A VXLAN header (flags: VNI present, VNI 1) and the Ethernet frame it carries.
fn vxlan(frame: Vec<u8>) -> Vec<u8> {
    let mut v = vec![8, 0, 0, 0, 0, 0, 1, 0];
    v.extend_from_slice(&frame);
    v
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut e = vec![2; 6];
    e.extend_from_slice(&[4; 6]);
    e.extend_from_slice(&ethertype.to_be_bytes());
    e.extend_from_slice(payload);
    e
}

fn batch(frames: &[Vec<u8>], wirelen: Option<&[u32]>, linktype: u16) -> FrameBatch {
    let mut b = FrameBatch::default();
    for (i, f) in frames.iter().enumerate() {
        b.offset.push(i64::try_from(b.data.len()).unwrap());
        b.data.extend_from_slice(f);
        let caplen = u32::try_from(f.len()).unwrap();
        b.caplen.push(caplen);
        b.wirelen.push(wirelen.map_or(caplen, |w| w[i]));
        b.ts_ns.push(1_000_000_000 * i64::try_from(i).unwrap());
        b.linktype.push(linktype);
        b.interface.push(0);
        b.frame.push(i64::try_from(i).unwrap() + 1);
    }
    b
}

fn decode(frames: &[Vec<u8>], checksums: bool) -> Columns {
    let b = batch(frames, None, lt::ETHERNET);
    Decoder::default().decode(b.as_ref(), DecodeOptions { checksums })
}

const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];

#[test]
fn ethernet_ipv4_tcp_syn_with_options() {
    let frame = ethernet(0x0800, &ipv4(6, &tcp(&SYN_OPTIONS, b""), 7, 0x4000));
    let cols = decode(&[frame], true);
    let r = cols.row(0).unwrap();
    assert_eq!(
        (r.ethertype, r.ip_version, r.proto, r.l4),
        (0x0800, 4, 6, 6)
    );
    assert_eq!((r.src, r.dst), (v4_mapped(SRC), v4_mapped(DST)));
    assert_eq!((r.ip_len, r.ip_hlen, r.ttl, r.ip_id), (60, 20, 64, 7));
    assert_eq!(
        (r.sport, r.dport, r.seq, r.tcp_flags, r.win),
        (12345, 443, 1, 0x002, 0xFAF0)
    );
    assert_eq!((r.tcp_hlen, r.payload), (40, 0));
    assert_eq!(
        (r.mss, r.wscale, r.sack_perm, r.has_ts, r.tsval),
        (1460, 7, true, true, 1)
    );
    assert_eq!(&r.opt_kinds[..usize::from(r.opt_count)], &[2, 4, 8, 1, 3]);
    assert_eq!(
        (r.ip_csum, r.l4_csum, r.malformed),
        (CSUM_GOOD, CSUM_GOOD, 0)
    );
}

#[test]
fn checksums_not_asked_are_none() {
    let mut frame = ethernet(0x0800, &ipv4(6, &tcp(&[], b"hello"), 1, 0));
    let last = frame.len() - 1;
    frame[last] ^= 0xFF; // a bad TCP checksum
    let asked = decode(std::slice::from_ref(&frame), true).row(0).unwrap();
    assert_eq!((asked.ip_csum, asked.l4_csum), (CSUM_GOOD, CSUM_BAD));
    let plain = decode(&[frame], false).row(0).unwrap();
    assert_eq!((plain.ip_csum, plain.l4_csum), (CSUM_NONE, CSUM_NONE));
    assert_eq!(
        Row {
            ip_csum: asked.ip_csum,
            l4_csum: asked.l4_csum,
            ..plain
        },
        asked
    );
}

#[test]
fn vlan_tags_and_snaplen() {
    let ip = ipv4(17, &udp(5353, 53, &[0; 40]), 1, 0);
    let mut tagged = vec![0x20, 0x07, 0x81, 0x00, 0x00, 0x09, 0x08, 0x00];
    tagged.extend_from_slice(&ip);
    let frame = ethernet(0x88A8, &tagged);
    let cut = frame[..50].to_vec();
    let wire = u32::try_from(frame.len()).unwrap();
    let b = batch(&[frame, cut], Some(&[wire, wire]), lt::ETHERNET);
    let cols = Decoder::default().decode(b.as_ref(), DecodeOptions::default());
    let whole = cols.row(0).unwrap();
    assert_eq!(
        (whole.vlan, whole.vlan_count, whole.ethertype),
        (7, 2, 0x0800)
    );
    assert_eq!(
        (whole.udp_len, whole.payload, whole.l4_csum),
        (48, 40, CSUM_UNVERIFIED)
    );
    let short = cols.row(1).unwrap();
    assert!(short.truncated);
    assert_eq!((short.sport, short.payload, short.malformed), (5353, 40, 0));
}

#[test]
fn malformed_reasons_keep_what_came_before() {
    let mut bad_offset = tcp(&[], b"");
    bad_offset[12] = 0x30; // data offset 12 bytes
    let frames = [
        ethernet(0x0800, &ipv4(6, &bad_offset, 1, 0)),
        ethernet(0x0800, &[0x45, 0, 0]),
        ethernet(0x8100, &[0, 1]),
        vec![0; 5],
    ];
    let cols = decode(&frames, true);
    let r = cols.row(0).unwrap();
    assert_eq!(
        (r.malformed, r.sport, r.tcp_hlen, r.payload),
        (malformed::TCP_OFFSET_INVALID, 12345, 12, -1)
    );
    assert_eq!(
        cols.malformed[1..],
        [
            malformed::IPV4_HEADER_SHORT,
            malformed::VLAN_TAG_SHORT,
            malformed::LINK_HEADER_SHORT
        ]
    );
    assert_eq!(cols.ip_version[1..], [0, 0, 0]);
}

#[test]
fn gre_tunnel_moves_the_carrier_to_out_columns() {
    let inner = ipv4(17, &udp(1, 2, b"xy"), 3, 0);
    let mut gre = vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 42]; // key present
    gre.extend_from_slice(&inner);
    let outer = ipv4(47, &gre, 4, 0);
    let cols = decode(&[ethernet(0x0800, &outer)], true);
    let r = cols.row(0).unwrap();
    assert_eq!((r.tunnel_depth, r.tunnel, r.out_proto), (1, 1, 47));
    assert_eq!(r.out_ip_len, u32::try_from(outer.len()).unwrap());
    assert_eq!(
        (r.proto, r.sport, r.dport, r.payload, r.ip_id),
        (17, 1, 2, 2, 3)
    );
}

#[test]
fn three_tunnels_give_a_row_to_the_middle_carrier() {
    // VXLAN (UDP 4789) in VXLAN in IPv4 GRE: out_* the GRE carrier, the outer VXLAN's
    // datagram a row of its own after the packet's, car_* the inner VXLAN's.
    let inner = ipv4(6, &tcp(&[], b""), 1, 0);
    let level3 = ipv4(17, &udp(7001, 4789, &vxlan(ethernet(0x0800, &inner))), 2, 0);
    let level2 = ipv4(
        17,
        &udp(7000, 4789, &vxlan(ethernet(0x0800, &level3))),
        3,
        0,
    );
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&level2);
    let frames = [
        ethernet(0x0800, &ipv4(47, &gre, 4, 0)),
        ethernet(0x0800, &inner),
    ];
    let cols = decode(&frames, true);
    assert_eq!(cols.len(), 3);
    assert_eq!(cols.sub, [SUB_FRAME, SUB_CARRIER, SUB_FRAME]);
    assert_eq!(cols.frame, [1, 1, 2]);
    let (r, middle) = (cols.row(0).unwrap(), cols.row(1).unwrap());
    assert_eq!(
        (r.tunnel_depth, r.l4, r.out_proto, r.car_proto),
        (3, 6, 47, 17)
    );
    assert_eq!((r.car_sport, r.car_dport), (7001, 4789));
    assert_eq!(r.car_ip_len, u32::try_from(level3.len()).unwrap());
    assert_eq!(
        (
            middle.tunnel_depth,
            middle.proto,
            middle.sport,
            middle.dport
        ),
        (1, 17, 7000, 4789)
    );
    assert_eq!(middle.ip_len, u32::try_from(level2.len()).unwrap());
    assert_eq!(middle.out_proto, 47);
}

#[test]
fn a_reassembled_datagram_gives_its_middle_carriers_rows() {
    // VXLAN in VXLAN in VXLAN in an outer IPv4 datagram cut into two fragments: the
    // completing fragment's row is the inner TCP packet, its middle carrier a row after it.
    let inner = ipv4(6, &tcp(&[], b""), 1, 0);
    let level3 = ipv4(17, &udp(7002, 4789, &vxlan(ethernet(0x0800, &inner))), 2, 0);
    let level2 = ipv4(
        17,
        &udp(7001, 4789, &vxlan(ethernet(0x0800, &level3))),
        3,
        0,
    );
    let data = udp(7000, 4789, &vxlan(ethernet(0x0800, &level2)));
    let whole = ipv4(17, &data, 77, 0);
    let body = &whole[20..];
    let cut = 64; // a multiple of 8
    let frames = [
        ethernet(0x0800, &ipv4(17, &body[..cut], 77, 0x2000)),
        ethernet(
            0x0800,
            &ipv4(17, &body[cut..], 77, u16::try_from(cut / 8).unwrap()),
        ),
    ];
    let cols = decode(&frames, true);
    assert_eq!(cols.sub, [SUB_FRAME, SUB_FRAME, SUB_CARRIER]);
    assert_eq!(cols.frame, [1, 2, 2]);
    assert_eq!(cols.frag, [FRAG_PART, FRAG_COMPLETE, 0]);
    assert_eq!((cols.tunnel_depth[1], cols.l4[1]), (3, 6));
    assert_eq!((cols.out_sport[1], cols.car_sport[1]), (7000, 7002));
    assert_eq!(
        (cols.sport[2], cols.proto[2], cols.tunnel_depth[2]),
        (7001, 17, 1)
    );
    assert_eq!(cols.ip_len[2], u32::try_from(level2.len()).unwrap());
}

#[test]
fn every_amsdu_subframe_is_a_row() {
    // 802.11 QoS data, A-MSDU bit set: three subframes, padded to 4 bytes but the last.
    let packets = [
        ipv4(17, &udp(1, 2, b"abc"), 1, 0),
        ipv4(6, &tcp(&[], b""), 2, 0),
        ipv4(17, &udp(3, 4, b""), 3, 0),
    ];
    let mut frame = vec![0x88, 0x02, 0, 0];
    frame.extend_from_slice(&[0; 18]); // three addresses
    frame.extend_from_slice(&[0x10, 0, 0x80, 0]); // sequence control, QoS: A-MSDU
    let body = frame.len();
    for (k, p) in packets.iter().enumerate() {
        let mut msdu = vec![0xAA, 0xAA, 3, 0, 0, 0, 8, 0];
        msdu.extend_from_slice(p);
        frame.extend_from_slice(&[1; 12]);
        frame.extend_from_slice(&u16::try_from(msdu.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&msdu);
        while k < 2 && (frame.len() - body) % 4 != 0 {
            frame.push(0);
        }
    }
    let b = batch(&[frame], None, lt::IEEE802_11);
    let cols = Decoder::default().decode(b.as_ref(), DecodeOptions { checksums: true });
    assert_eq!(cols.sub, [SUB_FRAME, SUB_MSDU, SUB_MSDU]);
    assert_eq!(cols.l4, [17, 6, 17]);
    assert_eq!(cols.sport, [1, 12345, 3]);
    assert_eq!(cols.payload, [3, 0, 0]);
    assert_eq!(cols.frame, [1, 1, 1]);
    assert_eq!(cols.malformed, [0, 0, 0]);
}

#[test]
fn fragments_reassemble_across_batches() {
    let payload = udp(9, 53, &[7; 40]);
    let whole = ipv4(17, &payload, 99, 0);
    let data = &whole[20..];
    let first = ipv4(17, &data[..24], 99, 0x2000);
    let second = ipv4(17, &data[24..], 99, 3);
    let mut decoder = Decoder::default();
    let b1 = batch(&[ethernet(0x0800, &second)], None, lt::ETHERNET);
    let c1 = decoder.decode(b1.as_ref(), DecodeOptions::default());
    assert_eq!(
        (c1.frag[0], c1.l4[0], c1.payload[0], c1.sport[0]),
        (FRAG_PART, 0, -1, 0)
    );
    assert_eq!(decoder.reassembler.len(), 1);
    let b2 = batch(&[ethernet(0x0800, &first)], None, lt::ETHERNET);
    let c2 = decoder.decode(b2.as_ref(), DecodeOptions::default());
    let r = c2.row(0).unwrap();
    assert_eq!((r.frag, r.frag_count, r.ip_len), (FRAG_COMPLETE, 2, 68));
    assert_eq!(
        (r.l4, r.sport, r.dport, r.udp_len, r.payload),
        (17, 9, 53, 48, 40)
    );
    assert_eq!(r.l4_csum, CSUM_UNVERIFIED);
    assert!(decoder.reassembler.is_empty());
    assert_eq!(decoder.reassembler.counters.completed, 1);
}

#[test]
fn never_panics_on_prefixes_and_flips_of_crafted_frames() {
    let frames = [
        ethernet(0x0800, &ipv4(6, &tcp(&SYN_OPTIONS, b"data"), 1, 0)),
        ethernet(
            0x0800,
            &ipv4(
                17,
                &udp(
                    1,
                    4789,
                    &ethernet(0x0800, &ipv4(1, &[3, 3, 0, 0, 0, 0, 0, 0], 1, 0)),
                ),
                1,
                0,
            ),
        ),
    ];
    let mut decoder = Decoder::default();
    for linktype in [
        lt::ETHERNET,
        lt::RAW,
        lt::NULL,
        lt::PPP,
        lt::LINUX_SLL2,
        999,
    ] {
        for f in &frames {
            for n in 0..=f.len() {
                let mut variants = vec![f[..n].to_vec()];
                for bit in 0..8 {
                    let mut flipped = f[..n].to_vec();
                    if let Some(byte) = flipped.get_mut(n.saturating_sub(1) / 2) {
                        *byte ^= 1 << bit;
                    }
                    variants.push(flipped);
                }
                let b = batch(&variants, None, linktype);
                let cols = decoder.decode(b.as_ref(), DecodeOptions::default());
                assert_eq!(cols.len(), variants.len());
            }
        }
    }
}
