//! Bytes as lowercase hex, without allocating (telemetry lines, logs).

use core::fmt;

/// Bytes as lowercase hex: `Hex(&[0xc1, 0x01])` displays as `c101`.
pub struct Hex<'b>(pub &'b [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::Hex;
    use std::string::ToString;

    #[test]
    fn lowercase_two_digits_per_byte() {
        assert_eq!(Hex(&[0xc1, 0x01, 0x00, 0xff]).to_string(), "c10100ff");
        assert_eq!(Hex(&[]).to_string(), "");
    }
}
