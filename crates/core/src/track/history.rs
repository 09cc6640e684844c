//! Zeek's history string, kept inline: almost every connection's history is a dozen letters
//! or fewer, so a heap buffer is made only for the rare long one.

const INLINE: usize = 22;

#[derive(Debug, Clone, Default)]
pub struct History {
    len: u8,
    inline: [u8; INLINE],
    /// Every letter, once there are more than INLINE (rare: grown one letter at a time).
    spill: Option<Box<[u8]>>,
}

impl History {
    pub fn push(&mut self, c: u8) {
        if let Some(v) = self.spill.take() {
            let mut v = v.into_vec();
            v.push(c);
            self.spill = Some(v.into_boxed_slice());
            return;
        }
        let n = usize::from(self.len);
        if n < INLINE {
            self.inline[n] = c;
            self.len += 1;
        } else {
            let mut v = Vec::with_capacity(INLINE + 1);
            v.extend_from_slice(&self.inline);
            v.push(c);
            self.spill = Some(v.into_boxed_slice());
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.spill {
            Some(v) => v,
            None => &self.inline[..usize::from(self.len)],
        }
    }

    pub fn contains(&self, c: u8) -> bool {
        self.as_bytes().contains(&c)
    }

    pub fn set(&mut self, text: &[u8]) {
        self.len = 0;
        self.spill = None;
        for &c in text {
            self.push(c);
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters and '^' are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl PartialEq for History {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// Zeek's logarithmic history entries: a letter is due at the 1st, 10th, 100th... event.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scaled(pub u32);

impl Scaled {
    pub fn hit(&mut self) -> bool {
        self.0 = self.0.saturating_add(1);
        is_power_of_ten(self.0)
    }
}

pub fn is_power_of_ten(mut n: u32) -> bool {
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_histories_spill_and_keep_every_letter() {
        let mut h = History::default();
        let text: Vec<u8> = (0..60).map(|i| b'a' + (i % 26) as u8).collect();
        for &c in &text {
            h.push(c);
        }
        assert_eq!(h.as_bytes(), &text[..]);
    }

    #[test]
    fn scaled_hits_at_powers_of_ten() {
        let mut s = Scaled::default();
        let hits: Vec<u32> = (1..=1000).filter(|_| s.hit()).collect();
        assert_eq!(hits, vec![1, 10, 100, 1000]);
    }
}
