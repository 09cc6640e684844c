//! The decoder's output: one row per frame, as columns (Python's `PacketBatch`).
//!
//! One table below names every column with its element type and its "absent" value; the
//! per-row [`Row`], the column store [`Columns`] and the hand-over to Python
//! ([`Columns::into_named`]) are generated from it, so the three cannot disagree. Fixed-width
//! 2-D columns (addresses, SACK edges, option kinds) are flat vectors of `n * width` elements,
//! reshaped to `(n, width)` on the Python side.

/// Checksum status of `ip_csum` / `l4_csum`: no such checksum, or not asked for.
pub const CSUM_NONE: u8 = 0;
pub const CSUM_GOOD: u8 = 1;
pub const CSUM_BAD: u8 = 2;
/// Present but not verifiable: frame cut, UDP checksum 0 over IPv4, a fragment.
pub const CSUM_UNVERIFIED: u8 = 3;

/// `frag`: not a fragment.
pub const FRAG_NONE: u8 = 0;
/// `frag`: a fragment that does not (yet) complete its datagram.
pub const FRAG_PART: u8 = 1;
/// `frag`: the fragment that completed its datagram; its row describes the whole datagram.
pub const FRAG_COMPLETE: u8 = 2;

/// `sub`: the frame's own row (every frame has exactly one, first among its rows).
pub const SUB_FRAME: u8 = 0;
/// `sub`: a tunnel carrier between the outermost (`out_*`) and the innermost (`car_*`) of the
/// row before it (three or more tunnels): its IP and transport columns are the carrier
/// datagram's; it is counted with that row, never on its own.
pub const SUB_CARRIER: u8 = 1;
/// `sub` >= this: the packet of an A-MSDU subframe after the first, a packet of its own;
/// `sub - SUB_MSDU` tunnels were crossed before its 802.11 frame, whose carriers it shares
/// with the frame's own row (which counted them).
pub const SUB_MSDU: u8 = 2;

pub const OPT_KINDS_MAX: usize = 40;
pub const SACK_BLOCKS_MAX: usize = 4;

/// A column's element: a scalar, or a fixed-width array stored flat.
pub trait Cell: Copy {
    type Elem: Copy + Default;
    /// 0 for a 1-D column, else the row width of a 2-D column.
    const WIDTH: usize;
    fn push_to(self, column: &mut Vec<Self::Elem>);
    fn read(column: &[Self::Elem], row: usize) -> Option<Self>;
    fn write_at(self, column: &mut [Self::Elem], row: usize);
    /// Writes `values` into rows `first`, `first + 1`, ... (those past the last row are
    /// dropped): one bounds check for the block, where `write_at` makes one a row.
    fn write_from(column: &mut [Self::Elem], first: usize, values: impl Iterator<Item = Self>);
    /// A column of `rows` rows, every one holding `self`.
    fn filled(self, rows: usize) -> Vec<Self::Elem>;
    /// `column` made `rows` rows long, new rows holding `self`, old ones left as they are.
    fn resize(self, column: &mut Vec<Self::Elem>, rows: usize);
}

macro_rules! scalar_cell {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            type Elem = $t;
            const WIDTH: usize = 0;
            fn push_to(self, column: &mut Vec<$t>) {
                column.push(self);
            }
            fn read(column: &[$t], row: usize) -> Option<$t> {
                column.get(row).copied()
            }
            fn write_at(self, column: &mut [$t], row: usize) {
                if let Some(cell) = column.get_mut(row) {
                    *cell = self;
                }
            }
            fn write_from(column: &mut [$t], first: usize, values: impl Iterator<Item = $t>) {
                let cells = column.get_mut(first..).unwrap_or_default();
                for (cell, value) in cells.iter_mut().zip(values) {
                    *cell = value;
                }
            }
            fn filled(self, rows: usize) -> Vec<$t> {
                vec![self; rows]
            }
            fn resize(self, column: &mut Vec<$t>, rows: usize) {
                column.resize(rows, self);
            }
        }
    )*};
}
scalar_cell!(bool, u8, u16, u32, i16, i32, i64);

impl<T: Copy + Default + PartialEq, const N: usize> Cell for [T; N] {
    type Elem = T;
    const WIDTH: usize = N;
    fn push_to(self, column: &mut Vec<T>) {
        column.extend_from_slice(&self);
    }
    fn read(column: &[T], row: usize) -> Option<Self> {
        let start = row.checked_mul(N)?;
        column.get(start..)?.first_chunk::<N>().copied()
    }
    fn write_at(self, column: &mut [T], row: usize) {
        let cells = row
            .checked_mul(N)
            .and_then(|start| column.get_mut(start..))
            .and_then(<[T]>::first_chunk_mut::<N>);
        if let Some(cells) = cells {
            *cells = self;
        }
    }
    fn write_from(column: &mut [T], first: usize, values: impl Iterator<Item = Self>) {
        let cells = first
            .checked_mul(N)
            .and_then(|start| column.get_mut(start..))
            .unwrap_or_default();
        for (cells, value) in cells.chunks_exact_mut(N).zip(values) {
            cells.copy_from_slice(&value);
        }
    }
    fn filled(self, rows: usize) -> Vec<T> {
        let len = rows.saturating_mul(N);
        if self.iter().all(|x| *x == T::default()) {
            return vec![T::default(); len]; // zeroed pages, not written
        }
        let mut column = Vec::with_capacity(len);
        for _ in 0..rows {
            column.extend_from_slice(&self);
        }
        column
    }
    fn resize(self, column: &mut Vec<T>, rows: usize) {
        let len = rows.saturating_mul(N);
        column.truncate(len);
        while column.len() < len {
            column.extend_from_slice(&self);
        }
    }
}

/// A column handed to Python: its vector, by element type.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

macro_rules! column_data_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<Vec<$t>> for ColumnData {
            fn from(v: Vec<$t>) -> Self {
                ColumnData::$variant(v)
            }
        }
    )*};
}
column_data_from!(bool => Bool, u8 => U8, u16 => U16, u32 => U32, i16 => I16, i32 => I32,
                  i64 => I64);

/// A named column: (name, width (0 for 1-D), data).
pub type NamedColumn = (&'static str, usize, ColumnData);

macro_rules! packet_columns {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty = $absent:expr, )*) => {
        /// One frame's column values while it is decoded.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Row {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        impl Default for Row {
            /// Every column at its "absent" value (PacketBatch.allocate).
            fn default() -> Self {
                Self { $( $name: $absent, )* }
            }
        }

        /// The rows of a batch as columns: a frame's own row, then any more rows it gives
    /// (`sub` > 0: A-MSDU subframes, middle tunnel carriers).
        #[derive(Debug, Default, Clone, PartialEq)]
        pub struct Columns {
            $( pub $name: Vec<<$ty as Cell>::Elem>, )*
            rows: usize,
        }

        impl Columns {
            /// Column names in PacketBatch order.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($name), )*];

            /// Room for `n` rows, so that pushing them does not reallocate.
            pub fn with_capacity(n: usize) -> Self {
                Self {
                    $( $name: Vec::with_capacity(n.saturating_mul(<$ty as Cell>::WIDTH.max(1))), )*
                    rows: 0,
                }
            }

            /// `n` rows at their absent values, to be overwritten with [`Columns::set_row`]:
            /// cheaper per row than pushing (one bounds check per column, no length to keep).
            pub fn filled(n: usize) -> Self {
                let absent = Row::default();
                Self {
                    $( $name: absent.$name.filled(n), )*
                    rows: n,
                }
            }

            /// `n` rows whose values are left from earlier use (or absent), every one to be
            /// overwritten with [`Columns::set_row`]: the columns' memory is reused.
            pub fn resize(&mut self, n: usize) {
                let absent = Row::default();
                $( absent.$name.resize(&mut self.$name, n); )*
                self.rows = n;
            }

            /// One column by its PacketBatch name, copied, with its width (bytes a row for
            /// the 2-D columns, 0 for the others); None for no such column.
            pub fn named(&self, name: &str) -> Option<(usize, ColumnData)> {
                match name {
                    $( stringify!($name) => Some((<$ty as Cell>::WIDTH,
                                                  ColumnData::from(self.$name.clone()))), )*
                    _ => None,
                }
            }

            /// The rows `rows` (in their order) as columns of their own, copied column by
            /// column; None when one is past the last row.
            pub fn take_rows(&self, rows: &[usize]) -> Option<Columns> {
                Some(Self {
                    $( $name: gather(&self.$name, rows, <$ty as Cell>::WIDTH.max(1))?, )*
                    rows: rows.len(),
                })
            }

            /// Overwrites row `i` (nothing happens past the last row).
            pub fn set_row(&mut self, i: usize, row: &Row) {
                $( row.$name.write_at(&mut self.$name, i); )*
            }

            /// Overwrites rows `first`, `first + 1`, ... with `rows` (nothing past the last
            /// row), a column at a time: a few instructions a cell where
            /// [`Columns::set_row`] takes about six (a bounds check and a branch each).
            pub fn set_rows(&mut self, first: usize, rows: &[Row]) {
                $( <$ty as Cell>::write_from(&mut self.$name, first,
                                             rows.iter().map(|r| r.$name)); )*
            }

            pub fn push(&mut self, row: &Row) {
                $( row.$name.push_to(&mut self.$name); )*
                self.rows += 1;
            }

            pub fn len(&self) -> usize {
                self.rows
            }

            pub fn is_empty(&self) -> bool {
                self.rows == 0
            }

            /// Row `i` read back (tests, and the reassembler's copy of a first fragment).
            pub fn row(&self, i: usize) -> Option<Row> {
                Some(Row { $( $name: <$ty as Cell>::read(&self.$name, i)?, )* })
            }

            /// The columns by name, for the hand-over to Python.
            pub fn into_named(self) -> Vec<NamedColumn> {
                vec![$( (stringify!($name), <$ty as Cell>::WIDTH, ColumnData::from(self.$name)), )*]
            }
        }
    };
}

/// The `width` elements of each of `rows` of a column, in order; None past its end.
fn gather<T: Copy>(column: &[T], rows: &[usize], width: usize) -> Option<Vec<T>> {
    let mut out = Vec::with_capacity(rows.len().saturating_mul(width));
    for &i in rows {
        let start = i.checked_mul(width)?;
        out.extend_from_slice(column.get(start..start.checked_add(width)?)?);
    }
    Some(out)
}

packet_columns! {
    /// 1-based frame number in its source.
    frame: i64 = 0,
    ts_ns: i64 = 0,
    wirelen: u32 = 0,
    caplen: u32 = 0,
    linktype: u16 = 0,
    interface: u16 = 0,
    /// Which of its frame's rows this is: `SUB_FRAME`, `SUB_CARRIER`, `SUB_MSDU` + shared.
    sub: u8 = SUB_FRAME,
    /// Outermost VLAN id, -1 if untagged.
    vlan: i32 = -1,
    vlan_count: u8 = 0,
    mpls_count: u8 = 0,
    ethertype: u16 = 0,
    ppp_proto: u16 = 0,
    ip_version: u8 = 0,
    src: [u8; 16] = [0; 16],
    dst: [u8; 16] = [0; 16],
    proto: u8 = 0,
    ip_len: u32 = 0,
    /// The innermost IPv4 header's total length was 0 (TSO): ip_len is then the frame's.
    ip_len_zero: bool = false,
    ip_hlen: u16 = 0,
    ttl: u8 = 0,
    ip_id: u32 = 0,
    frag: u8 = FRAG_NONE,
    frag_count: u16 = 0,
    l4: u8 = 0,
    sport: u16 = 0,
    dport: u16 = 0,
    /// Transport payload bytes from the header lengths, -1 without a transport header.
    payload: i32 = -1,
    tcp_flags: u16 = 0,
    seq: u32 = 0,
    ack: u32 = 0,
    tcp_hlen: u8 = 0,
    win: u16 = 0,
    urp: u16 = 0,
    mss: i32 = -1,
    wscale: i16 = -1,
    sack_perm: bool = false,
    has_ts: bool = false,
    tsval: u32 = 0,
    tsecr: u32 = 0,
    sack_count: u8 = 0,
    sack: [u32; SACK_BLOCKS_MAX * 2] = [0; SACK_BLOCKS_MAX * 2],
    opt_count: u8 = 0,
    opt_kinds: [u8; OPT_KINDS_MAX] = [0; OPT_KINDS_MAX],
    udp_len: u16 = 0,
    /// A whole captured UDP datagram (not a fragment) with a DNS header: its QR bit, else -1.
    dns_qr: i16 = -1,
    /// The same, parsed as Zeek's NTP analyzer does: the standard message's mode, else -1.
    ntp_mode: i16 = -1,
    icmp_type: i16 = -1,
    icmp_code: i16 = -1,
    icmp_id: i32 = -1,
    q_valid: bool = false,
    q_src: [u8; 16] = [0; 16],
    q_dst: [u8; 16] = [0; 16],
    q_proto: u8 = 0,
    q_sport: u16 = 0,
    q_dport: u16 = 0,
    tunnel_depth: u8 = 0,
    tunnel: u32 = 0,
    out_src: [u8; 16] = [0; 16],
    out_dst: [u8; 16] = [0; 16],
    out_proto: u8 = 0,
    out_sport: u16 = 0,
    out_dport: u16 = 0,
    out_ip_len: u32 = 0,
    /// When tunnel_depth >= 2, the carrier of the innermost tunnel (out_* keep the outermost).
    car_src: [u8; 16] = [0; 16],
    car_dst: [u8; 16] = [0; 16],
    car_proto: u8 = 0,
    car_sport: u16 = 0,
    car_dport: u16 = 0,
    car_ip_len: u32 = 0,
    truncated: bool = false,
    ip_csum: u8 = CSUM_NONE,
    l4_csum: u8 = CSUM_NONE,
    malformed: u8 = 0,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_columns() {
        let mut cols = Columns::with_capacity(2);
        let mut r = Row::default();
        cols.push(&r);
        r.src[15] = 9;
        r.sack[7] = 42;
        r.opt_kinds[39] = 1;
        r.mss = 1460;
        cols.push(&r);
        assert_eq!(cols.len(), 2);
        assert_eq!(cols.src.len(), 32);
        assert_eq!(cols.row(0), Some(Row::default()));
        assert_eq!(cols.row(1), Some(r));
        assert_eq!(cols.row(2), None);
        let mut r2 = r;
        r2.sack = [1; 8];
        r2.sack.write_at(&mut cols.sack, 0);
        assert_eq!(cols.row(0).map(|x| x.sack), Some([1; 8]));
    }

    #[test]
    fn rows_taken_are_the_rows_pushed() {
        let mut cols = Columns::with_capacity(3);
        let rows: Vec<Row> = (0..3_u8)
            .map(|k| {
                let mut r = Row::default();
                r.src[15] = k;
                r.sport = u16::from(k) + 1000;
                r.opt_kinds[0] = k;
                r
            })
            .collect();
        for r in &rows {
            cols.push(r);
        }
        let mut expected = Columns::with_capacity(2);
        expected.push(&rows[2]);
        expected.push(&rows[0]);
        assert_eq!(cols.take_rows(&[2, 0]), Some(expected));
        assert_eq!(cols.take_rows(&[]).map(|c| c.len()), Some(0));
        assert_eq!(cols.take_rows(&[3]), None);
        let Some((16, ColumnData::U8(src))) = cols.named("src") else {
            panic!("src: 16 bytes a row");
        };
        assert_eq!(src, cols.src);
        assert!(matches!(cols.named("sport"), Some((0, ColumnData::U16(_)))));
        assert!(cols.named("no such column").is_none());
    }

    #[test]
    fn every_column_is_named_once() {
        let named = Columns::with_capacity(0).into_named();
        assert_eq!(named.len(), Columns::NAMES.len());
        let widths: Vec<_> = named
            .iter()
            .filter(|c| c.1 > 0)
            .map(|c| (c.0, c.1))
            .collect();
        assert_eq!(
            widths,
            [
                ("src", 16),
                ("dst", 16),
                ("sack", 8),
                ("opt_kinds", 40),
                ("q_src", 16),
                ("q_dst", 16),
                ("out_src", 16),
                ("out_dst", 16),
                ("car_src", 16),
                ("car_dst", 16)
            ]
        );
    }
}
