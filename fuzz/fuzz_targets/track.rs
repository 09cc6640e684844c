//! The tracker on arbitrary segment sequences: into one TCP connection (both directions, any
//! flags, sequence and acknowledgement numbers near or far from each side's ISN, payloads,
//! windows, times from the same microsecond to days apart, bad checksums, cut payloads), or
//! into the table (four hosts, three ports, TCP/UDP/ICMP, a small flow cap so that eviction
//! runs), in one or two batches. No panic (overflow checks are on), the cap holds after every
//! batch, every packet is tracked or skipped, and `finish` leaves nothing open. In table mode
//! below the cap, flow shards in 2 or 3 threads (`Shards`) give the one tracker's rows and
//! transitions, ICMP errors quoting a flow of other hosts (a router's) included, packets
//! carried in tunnels of changing endpoints included (the carriers' uids cross shards), with
//! the end of the capture taken at once or in parts (`finish_part`), and the second shard's
//! rows tracked by a helping thread when it takes them (`feed_helped`, as the reading thread
//! of a file does) or else by the feeding one.
//!
//! Input: a configuration byte, then 13-byte segments. Configuration: bit 0 drop bad
//! checksums; bit 1 table mode; bits 2-3 the flow cap (1, 2, 5 or 200,000); bit 4 keep
//! transitions; bit 5 VLAN in the key; bit 6 split into two batches; bit 7 short timeouts.
//! A segment's last byte is its tunnel in table mode: bits 0-2 none (0-3), VXLAN, GRE, VXLAN
//! in GRE, VXLAN in VXLAN; bits 3-5 and 6-7 the endpoints of the outer and inner carrier
//! (hosts of the flows among them).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use portlens_core::hand::{Hand, Wake};
use portlens_core::track::shards::{Shards, SharedBatch, SplitPlan};
use portlens_core::track::{Config, ConnBatch, Packets, Timeouts, Tracker, TransitionBatch};

const NANOS: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * NANOS;
const PAYLOADS: [i32; 8] = [0, 0, 1, 10, 100, 1460, 1448, 65495];
const WINDOWS: [u16; 4] = [65535, 0, 512, 1];
const GAPS: [i64; 8] = [0, 1_000, 1_000_000, NANOS, 6 * NANOS, 61 * NANOS, 400 * NANOS, 86_400 * NANOS];
const PORTS: [u16; 4] = [40000, 80, 53, 443];

fn v4(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12] = 10;
    a[15] = last;
    a
}

/// Packet columns owned by the target, one segment a row.
#[derive(Default)]
struct Rows {
    frame: Vec<i64>,
    ts_ns: Vec<i64>,
    vlan: Vec<i32>,
    ip_version: Vec<u8>,
    src: Vec<u8>,
    dst: Vec<u8>,
    proto: Vec<u8>,
    ip_len: Vec<u32>,
    ip_len_zero: Vec<bool>,
    frag: Vec<u8>,
    sport: Vec<u16>,
    dport: Vec<u16>,
    payload: Vec<i32>,
    tcp_flags: Vec<u16>,
    seq: Vec<u32>,
    ack: Vec<u32>,
    win: Vec<u16>,
    mss: Vec<i32>,
    wscale: Vec<i16>,
    sack_perm: Vec<bool>,
    has_ts: Vec<bool>,
    opt_count: Vec<u8>,
    opt_kinds: Vec<u8>,
    udp_len: Vec<u16>,
    /// The flow an ICMP error quotes: its own sockets reversed, or (a router's error) one
    /// between its destination and another host.
    q_dst: Vec<u8>,
    icmp_type: Vec<i16>,
    icmp_code: Vec<i16>,
    q_valid: Vec<bool>,
    q_proto: Vec<u8>,
    truncated: Vec<bool>,
    l4_csum: Vec<u8>,
    zero_u8: Vec<u8>,
    zero_u16: Vec<u16>,
    zero_u32: Vec<u32>,
    zero_addr: Vec<u8>,
    tunnel_depth: Vec<u8>,
    tunnel: Vec<u32>,
    /// The outermost carrier, then the innermost (`out_*`, `car_*`).
    carriers: [Carriers; 2],
}

/// The columns of one level of tunnel carriers.
#[derive(Default)]
struct Carriers {
    src: Vec<u8>,
    dst: Vec<u8>,
    proto: Vec<u8>,
    sport: Vec<u16>,
    dport: Vec<u16>,
    ip_len: Vec<u32>,
}

impl Carriers {
    fn push(&mut self, (src, dst, proto, sport): ([u8; 16], [u8; 16], u8, u16), ip_len: u32) {
        self.src.extend_from_slice(&src);
        self.dst.extend_from_slice(&dst);
        self.proto.push(proto);
        self.sport.push(sport);
        self.dport.push(if proto == 17 { 4789 } else { 0 });
        self.ip_len.push(ip_len);
    }
}

impl Rows {
    fn len(&self) -> usize {
        self.frame.len()
    }

    fn packets(&self, from: usize, to: usize) -> Packets<'_> {
        fn a(v: &[u8], from: usize, to: usize) -> &[u8] {
            &v[from * 16..to * 16]
        }
        Packets {
            frame: &self.frame[from..to],
            ts_ns: &self.ts_ns[from..to],
            // what only the packet listing reads
            wirelen: &self.zero_u32[from..to],
            caplen: &self.zero_u32[from..to],
            linktype: &self.zero_u16[from..to],
            interface: &self.zero_u16[from..to],
            ethertype: &self.zero_u16[from..to],
            ppp_proto: &self.zero_u16[from..to],
            tsval: &self.zero_u32[from..to],
            vlan: &self.vlan[from..to],
            ip_version: &self.ip_version[from..to],
            src: a(&self.src, from, to),
            dst: a(&self.dst, from, to),
            proto: &self.proto[from..to],
            ip_len: &self.ip_len[from..to],
            ip_len_zero: &self.ip_len_zero[from..to],
            frag: &self.frag[from..to],
            l4: &self.proto[from..to],
            sport: &self.sport[from..to],
            dport: &self.dport[from..to],
            payload: &self.payload[from..to],
            tcp_flags: &self.tcp_flags[from..to],
            seq: &self.seq[from..to],
            ack: &self.ack[from..to],
            win: &self.win[from..to],
            mss: &self.mss[from..to],
            wscale: &self.wscale[from..to],
            sack_perm: &self.sack_perm[from..to],
            has_ts: &self.has_ts[from..to],
            opt_count: &self.opt_count[from..to],
            opt_kinds: &self.opt_kinds[from * 40..to * 40],
            udp_len: &self.udp_len[from..to],
            dns_qr: &self.icmp_type[from..to],
            ntp_mode: &self.icmp_code[from..to],
            icmp_type: &self.icmp_type[from..to],
            icmp_code: &self.icmp_code[from..to],
            q_valid: &self.q_valid[from..to],
            q_src: a(&self.dst, from, to),
            q_dst: a(&self.q_dst, from, to),
            q_proto: &self.q_proto[from..to],
            q_sport: &self.dport[from..to],
            q_dport: &self.sport[from..to],
            sub: &self.zero_u8[from..to],
            tunnel_depth: &self.tunnel_depth[from..to],
            tunnel: &self.tunnel[from..to],
            out_src: a(&self.carriers[0].src, from, to),
            out_dst: a(&self.carriers[0].dst, from, to),
            out_proto: &self.carriers[0].proto[from..to],
            out_sport: &self.carriers[0].sport[from..to],
            out_dport: &self.carriers[0].dport[from..to],
            out_ip_len: &self.carriers[0].ip_len[from..to],
            car_src: a(&self.carriers[1].src, from, to),
            car_dst: a(&self.carriers[1].dst, from, to),
            car_proto: &self.carriers[1].proto[from..to],
            car_sport: &self.carriers[1].sport[from..to],
            car_dport: &self.carriers[1].dport[from..to],
            car_ip_len: &self.carriers[1].ip_len[from..to],
            truncated: &self.truncated[from..to],
            ip_csum: &self.zero_u8[from..to],
            l4_csum: &self.l4_csum[from..to],
            malformed: &self.zero_u8[from..to],
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&conf, rest)) = data.split_first() else {
        return;
    };
    let table_mode = conf & 0x02 != 0;
    let isn = [0xffff_f000u32, 0x1000];
    let mut rows = Rows::default();
    let mut ts = T0;
    for seg in rest.chunks_exact(13) {
        let who = seg[0];
        let (src, dst, sport, dport, proto, fwd) = if table_mode {
            let proto = [6u8, 6, 17, 1][usize::from(who >> 6)];
            (
                v4(who & 3),
                v4((who >> 2) & 3),
                PORTS[usize::from((who >> 4) & 3)],
                PORTS[usize::from(who & 3)],
                proto,
                who & 1 == 0,
            )
        } else {
            let fwd = who & 1 == 0;
            let (c, s) = ((v4(1), 40000u16), (v4(2), 443u16));
            let ((a, pa), (b, pb)) = if fwd { (c, s) } else { (s, c) };
            (a, b, pa, pb, 6, fwd)
        };
        let (own, peer) = if fwd { (isn[0], isn[1]) } else { (isn[1], isn[0]) };
        let flags = u16::from_be_bytes([seg[1], seg[2]]) & 0x0fff;
        let off = u32::from_be_bytes([0, seg[3], seg[4], seg[5]]);
        let seq = if seg[6] & 0x80 != 0 { off.rotate_left(13) } else { own.wrapping_add(off) };
        let ack_off = u32::from(u16::from_be_bytes([seg[7], seg[8]]));
        let ack = if seg[6] & 0x40 != 0 { ack_off.wrapping_neg() } else { peer.wrapping_add(ack_off) };
        let payload = PAYLOADS[usize::from(seg[9] & 7)];
        ts = ts.saturating_add(GAPS[usize::from((seg[9] >> 3) & 7)]);
        if seg[9] & 0xc0 == 0xc0 {
            ts = ts.saturating_sub(NANOS); // time going backwards
        }
        let misc = seg[10];
        rows.frame.push(rows.frame.len() as i64 + 1);
        rows.ts_ns.push(ts);
        rows.vlan.push(i32::from(misc >> 7));
        rows.ip_version.push(4);
        rows.src.extend_from_slice(&src);
        rows.dst.extend_from_slice(&dst);
        rows.proto.push(proto);
        rows.ip_len.push(40u32.saturating_add(payload as u32));
        rows.ip_len_zero.push(misc & 0x40 != 0 && misc & 0x20 != 0);
        rows.frag.push(0);
        rows.sport.push(sport);
        rows.dport.push(dport);
        rows.payload.push(payload);
        rows.tcp_flags.push(flags);
        rows.seq.push(seq);
        rows.ack.push(ack);
        rows.win.push(WINDOWS[usize::from(misc & 3)]);
        let syn = flags & 0x02 != 0;
        rows.mss.push(if syn { 1460 } else { -1 });
        rows.wscale.push(if syn { [-1, 0, 7, 14][usize::from((misc >> 2) & 3)] } else { -1 });
        rows.sack_perm.push(syn && misc & 0x10 != 0);
        rows.has_ts.push(syn && misc & 0x10 != 0);
        let kinds = usize::from(seg[11] % 41);
        rows.opt_count.push(if syn { kinds as u8 } else { 0 });
        let mut k = [0u8; 40];
        for (i, slot) in k.iter_mut().enumerate().take(kinds) {
            *slot = [2, 4, 8, 1, 3, 0, 30, 253][(i + usize::from(seg[11])) % 8];
        }
        rows.opt_kinds.extend_from_slice(&k);
        rows.udp_len.push(u16::try_from(payload.saturating_add(8)).unwrap_or(u16::MAX));
        let icmp = proto == 1;
        rows.icmp_type.push(if icmp { [8, 0, 3, 11][usize::from(seg[11] & 3)] } else { -1 });
        rows.icmp_code.push(if icmp { i16::from(seg[11] >> 4) } else { -1 });
        rows.q_valid.push(icmp && seg[11] & 2 != 0);
        let router = table_mode && seg[11] & 8 != 0;
        rows.q_dst.extend_from_slice(&if router { v4((who >> 4) & 3) } else { src });
        rows.q_proto.push([6, 17][usize::from(seg[11] & 1)]);
        rows.truncated.push(misc & 0x40 != 0 && misc & 0x20 == 0);
        rows.l4_csum.push(if misc & 0x60 == 0x20 { 2 } else { 1 });
        rows.zero_u8.push(0);
        rows.zero_u16.push(0);
        rows.zero_u32.push(0);
        rows.zero_addr.extend_from_slice(&[0u8; 16]);
        let tun = if table_mode { seg[12] } else { 0 };
        let ip_len = rows.ip_len.last().copied().unwrap_or(0);
        // carriers between 8 hosts, the flows' 4 among them; UDP ones on 8 source ports
        let outer = (v4((tun >> 3) & 7), v4(7 - ((tun >> 3) & 7)), 17u8, 49152 + u16::from(tun >> 6));
        let inner = (v4(tun >> 6), v4(4 + ((tun >> 3) & 3)), 17u8, 50000 + u16::from((tun >> 3) & 7));
        let gre = |c: ([u8; 16], [u8; 16], u8, u16)| (c.0, c.1, 47u8, 0u16);
        let none = ([0u8; 16], [0u8; 16], 0u8, 0u16);
        let vxlan_len = ip_len.saturating_add(50);
        let (depth, kinds, first, second) = match tun & 7 {
            4 => (1, 1, (outer, vxlan_len), (none, 0)),
            5 => (1, 2, (gre(outer), ip_len.saturating_add(38)), (none, 0)),
            6 => (2, 3, (gre(outer), vxlan_len.saturating_add(38)), (inner, vxlan_len)),
            7 => (2, 1, (outer, vxlan_len.saturating_add(50)), (inner, vxlan_len)),
            _ => (0, 0, (none, 0), (none, 0)),
        };
        rows.tunnel_depth.push(depth);
        rows.tunnel.push(kinds);
        rows.carriers[0].push(first.0, first.1);
        rows.carriers[1].push(second.0, second.1);
    }
    let n = rows.len();
    let rows = Arc::new(rows);
    let mut timeouts = Timeouts::default();
    if conf & 0x80 != 0 {
        timeouts.tcp_inactivity = 2 * NANOS;
        timeouts.udp_inactivity = NANOS / 2;
        timeouts.tcp_attempt = NANOS / 2;
        timeouts.tcp_close = 0;
        timeouts.tcp_reset = NANOS / 10;
        timeouts.tcp_partial_close = Some(3 * NANOS);
    }
    let max_flows = [1, 2, 5, 200_000][usize::from((conf >> 2) & 3)];
    let config = Config {
        timeouts,
        drop_bad_checksums: conf & 0x01 != 0,
        likely_server_ports: vec![(6, 443), (6, 80), (17, 53)],
        max_flows,
        keep_transitions: conf & 0x10 != 0,
        vlan_in_key: conf & 0x20 != 0,
        ..Config::default()
    };
    // Below the cap (which shards share out, each evicting its own), shards give one
    // tracker's rows.
    let mut shards = (table_mode && max_flows == 200_000)
        .then(|| Shards::new(config.clone(), 2 + data.len() % 2));
    // (by the input's length) batches split as a file's reading thread splits them, and a
    // thread that takes the second shard's rows whenever it is offered them first
    let hand = Arc::new(Hand::default());
    let helper = (shards.is_some() && (data.len() / 16) % 2 == 1).then(|| {
        let hand = Arc::clone(&hand);
        std::thread::spawn(move || {
            let mut seen = 0;
            while let Wake::Job(job) = hand.wait(&mut seen) {
                job();
            }
        })
    });
    let mut t = Tracker::new(config);
    let cut = if conf & 0x40 != 0 { n / 2 } else { n };
    for (from, to) in [(0, cut), (cut, n)] {
        let p = rows.packets(from, to);
        t.feed(&p).expect("columns of one length");
        assert!(t.open_flows() <= max_flows, "the flow cap holds");
        let ended = t.ended.take();
        assert_eq!(ended.uid.len(), ended.history.len());
        let transitions = t.transitions.take();
        if let Some(s) = &mut shards {
            match s.split_spec().filter(|_| helper.is_some()).cloned() {
                Some(spec) => {
                    let mut split = SplitPlan::default();
                    split.make(&p, &spec).expect("columns of one length");
                    let rows = Arc::clone(&rows);
                    let batch = Arc::new(HelpedBatch {
                        rows,
                        from,
                        to,
                        split,
                    });
                    s.feed_helped(&batch, &hand).expect("columns of one length");
                    let again = Arc::strong_count(&batch) == 1;
                    assert!(again, "the batch is the feeder's again");
                }
                None => s.feed(&p).expect("columns of one length"),
            }
            same(&ended, &transitions, &s.take_ended(), &s.take_transitions());
        }
    }
    hand.close();
    if let Some(helper) = helper {
        helper.join().expect("the helping thread ran its jobs");
    }
    t.finish();
    assert_eq!(t.open_flows(), 0, "finish leaves nothing open");
    assert_eq!(t.packets_tracked + t.packets_skipped, n as u64);
    if let Some(s) = &mut shards {
        // The end of the capture at once, or (by the input's length) in parts of 1 to 4 rows,
        // as Python takes it.
        let (mut rows, mut transitions) = (ConnBatch::default(), TransitionBatch::default());
        if (data.len() / 4) % 2 == 1 {
            let limit = 1 + data.len() % 4;
            loop {
                s.finish_part(limit);
                let part = s.take_ended();
                assert!(part.len() <= limit, "a part of at most {limit} rows");
                rows.append(part);
                transitions.append(s.take_transitions());
                if s.open_flows() == 0 {
                    break;
                }
            }
        } else {
            s.finish();
            rows = s.take_ended();
            transitions = s.take_transitions();
        }
        same(&t.ended.take(), &t.transitions.take(), &rows, &transitions);
        assert_eq!(s.open_flows(), 0);
        assert_eq!(
            (s.packets_tracked(), s.packets_skipped()),
            (t.packets_tracked, t.packets_skipped)
        );
    }
});

/// Rows `from..to` shared with the helping thread, with their split.
struct HelpedBatch {
    rows: Arc<Rows>,
    from: usize,
    to: usize,
    split: SplitPlan,
}

impl SharedBatch for HelpedBatch {
    fn packets(&self) -> Packets<'_> {
        self.rows.packets(self.from, self.to)
    }

    fn split(&self) -> &SplitPlan {
        &self.split
    }
}

/// The shards' rows are one tracker's, column by column in its order; each connection's
/// transitions too (the shards' streams interleave otherwise).
fn same(one: &ConnBatch, t1: &TransitionBatch, shards: &ConnBatch, t2: &TransitionBatch) {
    assert_eq!(format!("{one:?}"), format!("{shards:?}"), "the shards' rows differ");
    let per_conn = |t: &TransitionBatch| {
        let mut v: Vec<(u64, String)> = (0..t.len())
            .map(|i| {
                let row = format!(
                    "{:?} {} {} {} {} {} {} {} {}",
                    t.uid[i], t.ts_ns[i], t.frame[i], t.host[i], t.endpoint[i], t.event[i],
                    t.from[i], t.to[i], t.seq[i]
                );
                (t.serial[i], row)
            })
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v
    };
    assert!(per_conn(t1) == per_conn(t2), "the shards' transitions differ");
}
