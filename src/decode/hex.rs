//! Tag data as text: the spine carries tag ids as upper-case hex.

use std::fmt::Write;

/// Upper-case hex, two digits per byte, no separators: the form every RFID
/// codec reports in `RawRead::data`, so one tag reads the same on any reader.
pub(crate) fn upper_hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{b:02X}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::upper_hex;

    #[test]
    fn two_upper_case_digits_per_byte() {
        assert_eq!(upper_hex(&[]), "");
        assert_eq!(upper_hex(&[0x00, 0x0a, 0xff, 0x30]), "000AFF30");
    }
}
