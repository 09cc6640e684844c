//! The Internet checksum (RFC 1071): one's-complement sums of big-endian 16-bit words.

/// One's-complement sum of `data` (an odd length padded with a zero byte) added to `initial`,
/// folded to 16 bits. The result is 0 only when every byte and `initial` are 0; data that
/// includes its own correct checksum sums to 0xffff.
///
/// The sum does not depend on byte order or word width (RFC 1071 §2): since 2^16 == 1 modulo
/// 0xffff, little-endian 32-bit words summed into a 64-bit accumulator (which the compiler
/// vectorises) fold to the byte-swapped big-endian 16-bit sum.
///
/// Compiled twice, for the x86-64 baseline (SSE2) and for AVX2, the one the CPU has chosen at
/// run time: the checksums are the largest part of `packets --stats` and AVX2 sums twice the
/// bytes an instruction.
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn ones_sum(data: &[u8], initial: u32) -> u16 {
    let mut acc = u64::from(swap(fold(u64::from(initial))));
    // 8 bytes at a time, as two 32-bit halves: one 16-byte load, a mask, a shift and two
    // 64-bit adds per two words once vectorised, where 4-byte words took two loads and two
    // unpacks (the checksums were a third of the instructions of `packets --stats`).
    let mut pairs = data.chunks_exact(8);
    for pair in &mut pairs {
        let mut w = [0u8; 8];
        w.copy_from_slice(pair);
        let w = u64::from_le_bytes(w);
        acc += (w & 0xFFFF_FFFF) + (w >> 32);
    }
    let mut words = pairs.remainder().chunks_exact(4);
    for word in &mut words {
        let mut w = [0u8; 4];
        w.copy_from_slice(word);
        acc += u64::from(u32::from_le_bytes(w));
    }
    let mut rest = [0u8; 4];
    for (dst, src) in rest.iter_mut().zip(words.remainder()) {
        *dst = *src;
    }
    acc += u64::from(u32::from_le_bytes(rest));
    swap(fold(acc))
}

fn swap(x: u16) -> u16 {
    x.swap_bytes()
}

/// Folds a sum to 16 bits with end-around carries; nonzero stays nonzero.
pub fn fold(mut total: u64) -> u16 {
    while total > 0xFFFF {
        total = (total & 0xFFFF) + (total >> 16);
    }
    // The loop leaves total <= 0xffff.
    u16::try_from(total).unwrap_or(u16::MAX)
}

/// True when data including its own checksum sums to 0xffff (negative zero).
pub fn is_good(sum: u16) -> bool {
    sum == 0xFFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8], initial: u32) -> u16 {
        let mut total = u64::from(initial);
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            total += hi | lo;
        }
        fold(total)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            ones_sum(&[0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7], 0),
            0xDDF2
        );
    }

    #[test]
    fn equals_the_word_by_word_sum() {
        let mut x = 0x1234_5678u32;
        let data: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        for len in 0..70 {
            for start in 0..3 {
                let d = &data[start..start + len];
                assert_eq!(ones_sum(d, 0), reference(d, 0), "len {len}");
                assert_eq!(ones_sum(d, 0x1_FFFE), reference(d, 0x1_FFFE));
                assert_eq!(ones_sum(d, 0xFFFF), reference(d, 0xFFFF));
                assert_eq!(ones_sum(d, 0x00FF), reference(d, 0x00FF));
            }
        }
        assert_eq!(ones_sum(&[0xFF; 4000], 0), reference(&[0xFF; 4000], 0));
        assert_eq!(ones_sum(&[], 0), 0);
        assert_eq!(ones_sum(&[0, 0, 0], 0), 0);
    }
}
