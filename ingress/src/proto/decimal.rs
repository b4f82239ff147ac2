//! Unsigned integers as decimal digits without the formatter: replies and the trace header
//! write several per message, and `write!` costs more than the rest of a reply.

/// The decimal digits of a `u64`, on the stack.
pub struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    /// The digits of `v`, as `{}` writes them.
    pub fn new(v: u64) -> Self {
        let mut digits = [0; 20];
        let mut start = digits.len();
        let mut rest = v;
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        Self { digits, start }
    }

    /// The digits as ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the digits are what `{}` writes; method: values at the edges and in between.
    #[test]
    fn digits_as_the_formatter_writes_them() {
        for v in [
            0,
            1,
            9,
            10,
            99,
            100,
            4096,
            1_795_433_678,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(Decimal::new(v).as_bytes(), v.to_string().as_bytes());
        }
    }
}
