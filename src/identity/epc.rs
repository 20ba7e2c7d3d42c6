//! EPC Tag Data Standard (TDS) decoding: the EPC bank of a UHF tag to the
//! GS1 pure-identity URI of the asset it names.
//!
//! The pure-identity URI (`urn:epc:id:...`) is the dedup key because it
//! names the *asset*, not the tag: it drops the header (which binary scheme
//! was used) and the filter value (a reader hint), so a GIAI-96 and a
//! GIAI-202 tag for the same asset, or a retagged asset with a new filter,
//! resolve to one id, and [`super::gs1::to_epc_uri`] derives the very same
//! string from the asset's barcode.
//!
//! Anything that is not a valid encoding of a supported scheme becomes a raw
//! URI that keeps every bit, so two different tags never collapse into one
//! asset because the decoder did not understand them. Decoding is total: no
//! input panics, and the output is at most a few times the input's length.

use std::fmt::Write;

/// What an EPC identifies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EpcId {
    /// A GS1 pure-identity URI, e.g. `urn:epc:id:giai:0614141.12345400`.
    Pure(String),
    /// `urn:epc:raw:{bits}.x{HEX}`: an EPC that is not a valid encoding of a
    /// supported scheme (unknown header, invalid partition, out-of-range
    /// field, non-zero padding, wrong length). `bits` is the input length
    /// in bits; an empty input gives `urn:epc:raw:0.x`, a form TDS does not
    /// define but which cannot collide with a real EPC.
    Raw(String),
}

impl EpcId {
    pub fn as_str(&self) -> &str {
        match self {
            EpcId::Pure(s) | EpcId::Raw(s) => s,
        }
    }

    pub fn into_string(self) -> String {
        match self {
            EpcId::Pure(s) | EpcId::Raw(s) => s,
        }
    }
}

/// Decodes an EPC bank (trimmed to the length its PC word declares).
///
/// Supported: SGTIN-96 (`0x30`), SSCC-96 (`0x31`), GRAI-96 (`0x33`),
/// GIAI-96 (`0x34`), SGTIN-198 (`0x36`), GRAI-170 (`0x37`) and GIAI-202
/// (`0x38`). The input must be exactly the scheme's length rounded up to
/// whole 16-bit words (12 bytes for the 96-bit schemes, 26 for SGTIN-198
/// and GIAI-202, 22 for GRAI-170), and the bits after the last field
/// (SSCC-96's 24 reserved bits, word padding) must be zero: a tag that
/// breaks either rule is not a TDS encoding, so it stays raw rather than
/// being folded into an asset it may not be.
pub fn decode_epc(epc: &[u8]) -> EpcId {
    match decode_pure(epc) {
        Some(uri) => EpcId::Pure(uri),
        None => EpcId::Raw(raw_uri(epc)),
    }
}

/// The schemes this decoder knows, by header byte.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    Sgtin96,
    Sscc96,
    Grai96,
    Giai96,
    Sgtin198,
    Grai170,
    Giai202,
}

impl Scheme {
    fn from_header(header: u8) -> Option<Scheme> {
        Some(match header {
            0x30 => Scheme::Sgtin96,
            0x31 => Scheme::Sscc96,
            0x33 => Scheme::Grai96,
            0x34 => Scheme::Giai96,
            0x36 => Scheme::Sgtin198,
            0x37 => Scheme::Grai170,
            0x38 => Scheme::Giai202,
            _ => return None,
        })
    }

    /// The EPC length in bytes: the scheme's bits in whole 16-bit words,
    /// because the PC word counts the EPC in words.
    fn epc_bytes(self) -> usize {
        let bits: usize = match self {
            Scheme::Sgtin96 | Scheme::Sscc96 | Scheme::Grai96 | Scheme::Giai96 => 96,
            Scheme::Sgtin198 => 198,
            Scheme::Grai170 => 170,
            Scheme::Giai202 => 202,
        };
        bits.div_ceil(16) * 2
    }
}

/// Company-prefix (bits, digits) by partition value 0..=6; 7 is invalid.
///
/// The field after the company prefix gets the rest of a fixed bit budget
/// and a fixed digit budget, so each scheme's row of the TDS partition
/// table follows from two sums (see the uses below): e.g. SGTIN has
/// 44 bits and 13 digits for company prefix + indicator/item reference.
const PARTITIONS: [(usize, usize); 7] = [
    (40, 12),
    (37, 11),
    (34, 10),
    (30, 9),
    (27, 8),
    (24, 7),
    (20, 6),
];

fn decode_pure(epc: &[u8]) -> Option<String> {
    let scheme = Scheme::from_header(*epc.first()?)?;
    if epc.len() != scheme.epc_bytes() {
        return None;
    }
    // Skip the header and the filter: the filter is a hint for readers
    // (pallet, case, item), not part of the identity.
    let mut bits = Bits {
        data: epc,
        pos: 8 + 3,
    };
    let partition = usize::try_from(bits.take(3)?).ok()?;
    let &(cp_bits, cp_digits) = PARTITIONS.get(partition)?;
    let cp = padded(bits.take(cp_bits)?, cp_digits)?;
    let uri = match scheme {
        Scheme::Sgtin96 | Scheme::Sgtin198 => {
            let item = padded(bits.take(44 - cp_bits)?, 13 - cp_digits)?;
            let serial = match scheme {
                Scheme::Sgtin96 => bits.take(38)?.to_string(),
                _ => string7(&mut bits, 140, 20)?,
            };
            format!("urn:epc:id:sgtin:{cp}.{item}.{serial}")
        }
        Scheme::Sscc96 => {
            let serial_ref = padded(bits.take(58 - cp_bits)?, 17 - cp_digits)?;
            format!("urn:epc:id:sscc:{cp}.{serial_ref}")
        }
        Scheme::Grai96 | Scheme::Grai170 => {
            let asset_type = padded(bits.take(44 - cp_bits)?, 12 - cp_digits)?;
            let serial = match scheme {
                Scheme::Grai96 => bits.take(38)?.to_string(),
                _ => string7(&mut bits, 112, 16)?,
            };
            format!("urn:epc:id:grai:{cp}.{asset_type}.{serial}")
        }
        // Unpadded and unchecked: 82 - cp_bits bits never exceed the
        // 25 - cp_digits digits the partition allows (2^62 has 19 digits).
        Scheme::Giai96 => format!("urn:epc:id:giai:{cp}.{}", bits.take(82 - cp_bits)?),
        Scheme::Giai202 => {
            let iar = string7(&mut bits, 188 - cp_bits, 30 - cp_digits)?;
            format!("urn:epc:id:giai:{cp}.{iar}")
        }
    };
    bits.rest_is_zero().then_some(uri)
}

/// `value` as exactly `digits` decimal digits, or None if it needs more:
/// TDS decoding fails on a field too large for its partition, and such a
/// tag must not alias a valid one.
fn padded(value: u64, digits: usize) -> Option<String> {
    let limit = 10u64.checked_pow(u32::try_from(digits).ok()?)?;
    if value >= limit {
        return None;
    }
    // A zero-digit field (GRAI asset type with a 12-digit company prefix)
    // is empty, not "0".
    Some(if digits == 0 {
        String::new()
    } else {
        format!("{value:0digits$}")
    })
}

/// A TDS "String" field of 7-bit characters: characters up to the first
/// zero, then zeros to the end of the field. Fails on a non-zero
/// character after the end, a character outside the GS1 set, more than
/// `max_chars` characters, or an empty string (every GS1 serial and
/// asset reference has at least one character). Returns the URI form.
fn string7(bits: &mut Bits<'_>, field_bits: usize, max_chars: usize) -> Option<String> {
    let mut value = String::new();
    let mut ended = false;
    for _ in 0..field_bits / 7 {
        let c = u8::try_from(bits.take(7)?).ok()?;
        if c == 0 {
            ended = true;
        } else if ended || value.len() == max_chars {
            return None;
        } else {
            value.push(char::from(c));
        }
    }
    if bits.take(field_bits % 7)? != 0 || value.is_empty() {
        return None;
    }
    uri_escape(&value)
}

/// Escapes a GS1 AI value for a pure-identity URI component, per TDS:
/// the GS1 characters that are not URI-safe (`" % & / < > ?`) become
/// `%XX`; every other character of the GS1 set stays as it is. None if
/// the value holds a character outside the GS1 set (which no valid
/// encoding or element string can).
///
/// Shared with [`super::gs1`] so a tag and a barcode escape identically.
pub(super) fn uri_escape(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if !is_cset82(b) {
            return None;
        }
        match b {
            b'"' | b'%' | b'&' | b'/' | b'<' | b'>' | b'?' => {
                let _ = write!(out, "%{b:02X}");
            }
            _ => out.push(char::from(b)),
        }
    }
    Some(out)
}

/// Whether `b` is in GS1 AI encodable character set 82: the characters
/// any GS1 AI value may hold, and so the only ones a TDS 7-bit string
/// field may carry.
pub(super) fn is_cset82(b: u8) -> bool {
    matches!(b, b'!' | b'"' | b'%'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

fn raw_uri(epc: &[u8]) -> String {
    let mut uri = format!("urn:epc:raw:{}.x", epc.len() * 8);
    uri.reserve(epc.len() * 2);
    for b in epc {
        let _ = write!(uri, "{b:02X}");
    }
    uri
}

/// Big-endian bit reader. Reads past the end return None instead of
/// panicking, so a length mistake here decodes as raw, never crashes.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    /// The next `n` bits (at most 64) as an unsigned integer.
    fn take(&mut self, n: usize) -> Option<u64> {
        let mut value = 0u64;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            value = (value << 1) | u64::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(value)
    }

    /// Whether every bit from the current position to the end is zero.
    fn rest_is_zero(&self) -> bool {
        let byte = self.pos / 8;
        let Some(&first) = self.data.get(byte) else {
            return true;
        };
        let mask = 0xFFu8 >> (self.pos % 8);
        first & mask == 0 && self.data[byte + 1..].iter().all(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::gs1::{parse, to_epc_uri, CompanyPrefixes};
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pure(s: &str) -> EpcId {
        EpcId::Pure(s.to_string())
    }

    fn is_raw(epc: &[u8]) -> bool {
        matches!(decode_epc(epc), EpcId::Raw(_))
    }

    /// Test-side encoder: the fields MSB first, zero-padded to `bytes`.
    fn encode(fields: &[(u64, usize)], bytes: usize) -> Vec<u8> {
        let mut out = vec![0u8; bytes];
        let mut pos = 0;
        for &(value, width) in fields {
            for i in (0..width).rev() {
                if (value >> i) & 1 == 1 {
                    out[pos / 8] |= 0x80 >> (pos % 8);
                }
                pos += 1;
            }
        }
        assert!(pos <= bytes * 8, "fields overflow the EPC");
        out
    }

    /// Seven-bit characters of `s`, as encoder fields.
    fn chars7(s: &str) -> Vec<(u64, usize)> {
        s.bytes().map(|b| (u64::from(b), 7)).collect()
    }

    #[test]
    fn reference_vectors() {
        let cases = [
            (
                "3074257BF7194E4000001A85",
                "urn:epc:id:sgtin:0614141.812345.6789",
            ),
            (
                "3154257BF4499602D2000000",
                "urn:epc:id:sscc:0614141.1234567890",
            ),
            (
                "33B4257BF40C0E4000000190",
                "urn:epc:id:grai:0614141.12345.400",
            ),
            (
                "3434257BF400000000BC6038",
                "urn:epc:id:giai:0614141.12345400",
            ),
        ];
        for (epc, uri) in cases {
            assert_eq!(decode_epc(&hex(epc)), pure(uri), "{epc}");
        }
    }

    #[test]
    fn raw_form_keeps_every_bit() {
        let tid_like = hex("E2801170200013F3A4B90A2C");
        assert_eq!(
            decode_epc(&tid_like),
            EpcId::Raw("urn:epc:raw:96.xE2801170200013F3A4B90A2C".into())
        );
        assert_eq!(decode_epc(&[]).as_str(), "urn:epc:raw:0.x");
        assert_eq!(
            decode_epc(&[0; 12]).as_str(),
            "urn:epc:raw:96.x000000000000000000000000"
        );
        assert_eq!(decode_epc(&[0x30]).into_string(), "urn:epc:raw:8.x30");
    }

    #[test]
    fn filter_does_not_change_identity() {
        for filter in 0..8 {
            let epc = encode(
                &[(0x34, 8), (filter, 3), (5, 3), (614141, 24), (12345400, 58)],
                12,
            );
            assert_eq!(decode_epc(&epc), pure("urn:epc:id:giai:0614141.12345400"));
        }
    }

    #[test]
    fn every_partition_of_each_96_bit_scheme() {
        // (partition, company prefix, rest): company prefixes of 12..6 digits
        // with a leading zero to show the padding.
        let rows: [(u64, u64, &str); 7] = [
            (0, 12345678901, "012345678901"),
            (1, 1234567890, "01234567890"),
            (2, 123456789, "0123456789"),
            (3, 12345678, "012345678"),
            (4, 1234567, "01234567"),
            (5, 123456, "0123456"),
            (6, 12345, "012345"),
        ];
        for (p, cp, cp_str) in rows {
            let (cp_bits, cp_digits) = PARTITIONS[p as usize];
            // Item reference 7 (padded), serial 42.
            let sgtin = encode(
                &[
                    (0x30, 8),
                    (1, 3),
                    (p, 3),
                    (cp, cp_bits),
                    (7, 44 - cp_bits),
                    (42, 38),
                ],
                12,
            );
            let item = format!("{:0w$}", 7, w = 13 - cp_digits);
            assert_eq!(
                decode_epc(&sgtin),
                pure(&format!("urn:epc:id:sgtin:{cp_str}.{item}.42"))
            );

            let sscc = encode(
                &[(0x31, 8), (0, 3), (p, 3), (cp, cp_bits), (9, 58 - cp_bits)],
                12,
            );
            let serial_ref = format!("{:0w$}", 9, w = 17 - cp_digits);
            assert_eq!(
                decode_epc(&sscc),
                pure(&format!("urn:epc:id:sscc:{cp_str}.{serial_ref}"))
            );

            // GRAI asset type 0: empty for a 12-digit company prefix.
            let grai = encode(
                &[
                    (0x33, 8),
                    (0, 3),
                    (p, 3),
                    (cp, cp_bits),
                    (0, 44 - cp_bits),
                    (1, 38),
                ],
                12,
            );
            let asset_type = "0".repeat(12 - cp_digits);
            assert_eq!(
                decode_epc(&grai),
                pure(&format!("urn:epc:id:grai:{cp_str}.{asset_type}.1"))
            );

            // GIAI: the largest reference fits the partition's digit budget.
            let max_iar = (1u64 << (82 - cp_bits)) - 1;
            assert!(max_iar.to_string().len() <= 25 - cp_digits);
            let giai = encode(
                &[
                    (0x34, 8),
                    (0, 3),
                    (p, 3),
                    (cp, cp_bits),
                    (max_iar, 82 - cp_bits),
                ],
                12,
            );
            assert_eq!(
                decode_epc(&giai),
                pure(&format!("urn:epc:id:giai:{cp_str}.{max_iar}"))
            );
        }
    }

    #[test]
    fn partition_seven_is_raw() {
        for header in [0x30, 0x31, 0x33, 0x34] {
            let epc = encode(&[(header, 8), (0, 3), (7, 3), (1, 20)], 12);
            assert!(is_raw(&epc), "{header:02X}");
        }
        let giai202 = encode(&[(0x38, 8), (0, 3), (7, 3), (1, 20)], 26);
        assert!(is_raw(&giai202));
    }

    #[test]
    fn fields_too_large_for_the_partition_are_raw() {
        // Company prefix 10^12 in 40 bits (P=0) and 10^6 in 20 bits (P=6).
        let cp_p0 = encode(&[(0x34, 8), (0, 3), (0, 3), (1_000_000_000_000, 40)], 12);
        assert!(is_raw(&cp_p0));
        let cp_p6 = encode(&[(0x34, 8), (0, 3), (6, 3), (1_000_000, 20)], 12);
        assert!(is_raw(&cp_p6));
        // The same with the largest valid value decodes.
        let ok_p6 = encode(&[(0x34, 8), (0, 3), (6, 3), (999_999, 20), (1, 62)], 12);
        assert_eq!(decode_epc(&ok_p6), pure("urn:epc:id:giai:999999.1"));
        // SGTIN P=0: a one-digit item reference of 10.
        let item = encode(&[(0x30, 8), (0, 3), (0, 3), (1, 40), (10, 4), (1, 38)], 12);
        assert!(is_raw(&item));
        // SSCC P=5: serial reference of 10^10 in 34 bits.
        let sscc = encode(
            &[
                (0x31, 8),
                (0, 3),
                (5, 3),
                (614141, 24),
                (10_000_000_000, 34),
            ],
            12,
        );
        assert!(is_raw(&sscc));
        // GRAI P=0: asset type has no digits, so anything but 0 is invalid.
        let grai = encode(&[(0x33, 8), (0, 3), (0, 3), (1, 40), (1, 4), (1, 38)], 12);
        assert!(is_raw(&grai));
    }

    #[test]
    fn sscc_reserved_bits_must_be_zero() {
        let mut epc = hex("3154257BF4499602D2000000");
        epc[11] = 1;
        assert!(is_raw(&epc));
    }

    #[test]
    fn wrong_lengths_are_raw() {
        let sgtin = hex("3074257BF7194E4000001A85");
        for len in 0..sgtin.len() {
            assert!(is_raw(&sgtin[..len]), "truncated to {len}");
        }
        let mut long = sgtin.clone();
        long.extend([0, 0]);
        assert!(is_raw(&long), "a word of zeros too many");
        let giai = encode(
            &[
                (0x38, 8),
                (0, 3),
                (5, 3),
                (614141, 24),
                (u64::from(b'A'), 7),
            ],
            26,
        );
        assert!(!is_raw(&giai));
        assert!(is_raw(&giai[..24]));
        assert!(is_raw(
            &sgtin[..12]
                .iter()
                .chain(&[0u8; 14])
                .copied()
                .collect::<Vec<_>>()
        ));
    }

    #[test]
    fn unknown_headers_are_raw() {
        for header in [0x00, 0x2F, 0x32, 0x35, 0x39, 0x3A, 0xE2, 0xFF] {
            let mut epc = hex("3434257BF400000000BC6038");
            epc[0] = header;
            assert!(is_raw(&epc), "{header:02X}");
        }
    }

    #[test]
    fn sgtin_198_alphanumeric_serial_is_uri_escaped() {
        let mut fields = vec![(0x36, 8), (3, 3), (5, 3), (614141, 24), (812345, 20)];
        fields.extend(chars7("A/B%c?1\"&<>!"));
        let epc = encode(&fields, 26);
        assert_eq!(
            decode_epc(&epc),
            pure("urn:epc:id:sgtin:0614141.812345.A%2FB%25c%3F1%22%26%3C%3E!")
        );
    }

    #[test]
    fn sgtin_198_serial_of_twenty_characters() {
        let serial = "ABCDEFGHIJKLMNOPQRST";
        let mut fields = vec![(0x36, 8), (0, 3), (5, 3), (614141, 24), (812345, 20)];
        fields.extend(chars7(serial));
        let epc = encode(&fields, 26);
        assert_eq!(
            decode_epc(&epc),
            pure(&format!("urn:epc:id:sgtin:0614141.812345.{serial}"))
        );
    }

    #[test]
    fn grai_170_and_giai_202() {
        let mut grai = vec![(0x37, 8), (0, 3), (5, 3), (614141, 24), (12345, 20)];
        grai.extend(chars7("A-400"));
        assert_eq!(
            decode_epc(&encode(&grai, 22)),
            pure("urn:epc:id:grai:0614141.12345.A-400")
        );

        // GIAI-202 keeps leading zeros that GIAI-96 cannot encode.
        let mut giai = vec![(0x38, 8), (1, 3), (5, 3), (614141, 24)];
        giai.extend(chars7("0012345400"));
        assert_eq!(
            decode_epc(&encode(&giai, 26)),
            pure("urn:epc:id:giai:0614141.0012345400")
        );

        // P=0: 18 characters at most (12 + 18 = 30).
        let mut max = vec![(0x38, 8), (0, 3), (0, 3), (1, 40)];
        max.extend(chars7(&"Z".repeat(18)));
        assert!(!is_raw(&encode(&max, 26)));
        max.extend(chars7("Z"));
        assert!(is_raw(&encode(&max, 26)));
    }

    #[test]
    fn invalid_strings_are_raw() {
        let head = [(0x36, 8), (0, 3), (5, 3), (614141, 24), (812345, 20)];
        let with = |serial: &[(u64, usize)]| {
            let mut fields = head.to_vec();
            fields.extend_from_slice(serial);
            encode(&fields, 26)
        };
        // Empty serial.
        assert!(is_raw(&with(&[])));
        // A character after the terminating zero.
        assert!(is_raw(&with(&[(65, 7), (0, 7), (66, 7)])));
        // Characters outside the GS1 set: space, '#', DEL, a control.
        for c in [b' ', b'#', 0x7F, 0x1D] {
            assert!(is_raw(&with(&[(u64::from(c), 7)])), "{c:#x}");
        }
        // Non-zero padding after the 198 bits.
        let mut epc = with(&chars7("1"));
        epc[25] = 1;
        assert!(is_raw(&epc));
    }

    #[test]
    fn uri_escape_covers_the_gs1_set() {
        let cset82 =
            "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
        assert_eq!(cset82.len(), 82);
        assert_eq!(
            uri_escape(cset82).unwrap(),
            "!%22%25%26'()*+,-.%2F0123456789:;%3C=%3E%3FABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
        );
        for bad in [
            " ", "#", "$", "@", "[", "\\", "]", "^", "`", "{", "|", "}", "~", "é", "\x1D",
        ] {
            assert_eq!(uri_escape(bad), None, "{bad:?}");
        }
    }

    /// GS1 mod-10 check digit, computed independently of `gs1`.
    fn gs1_check(body: &str) -> u32 {
        let sum: u32 = body
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
            .sum();
        (10 - sum % 10) % 10
    }

    proptest! {
        /// The tag and the barcode of one asset resolve to one id, for every
        /// scheme and partition: the point of both modules.
        #[test]
        fn tag_and_barcode_agree(
            p in 0usize..7,
            cp_seed: u64,
            ref_seed: u64,
            serial in 0u64..1 << 38,
            filter in 0u64..8,
            text in "[!\"%-?A-Z_a-z]{1,16}",
        ) {
            let (cp_bits, cp_digits) = PARTITIONS[p];
            let cp = cp_seed % 10u64.pow(cp_digits as u32);
            let cp_str = format!("{cp:0cp_digits$}");
            let prefixes = CompanyPrefixes::new([&cp_str]).unwrap();
            let barcode = |scan: String| to_epc_uri(&parse(&scan).unwrap().unwrap(), &prefixes);
            let tag = |fields: &[(u64, usize)], bytes| Some(decode_epc(&encode(fields, bytes)).into_string());
            let head = |header| [(header, 8), (filter, 3), (p as u64, 3), (cp, cp_bits)];
            let with = |header, rest: &[(u64, usize)]| [&head(header)[..], rest].concat();

            // SGTIN: GTIN-14 = indicator + CP + item reference + check digit.
            let item_digits = 13 - cp_digits;
            let item = ref_seed % 10u64.pow(item_digits as u32);
            let item_str = format!("{item:0item_digits$}");
            let body = format!("{}{cp_str}{}", &item_str[..1], &item_str[1..]);
            let gtin = format!("{body}{}", gs1_check(&body));
            prop_assert_eq!(
                tag(&with(0x30, &[(item, 44 - cp_bits), (serial, 38)]), 12),
                barcode(format!("]C101{gtin}21{serial}"))
            );
            let mut sgtin198 = with(0x36, &[(item, 44 - cp_bits)]);
            sgtin198.extend(chars7(&text));
            prop_assert_eq!(tag(&sgtin198, 26), barcode(format!("]C101{gtin}21{text}")));

            // SSCC = extension + CP + serial reference + check digit.
            let sr_digits = 17 - cp_digits;
            let sr = ref_seed % 10u64.pow(sr_digits as u32);
            let sr_str = format!("{sr:0sr_digits$}");
            let body = format!("{}{cp_str}{}", &sr_str[..1], &sr_str[1..]);
            prop_assert_eq!(
                tag(&with(0x31, &[(sr, 58 - cp_bits)]), 12),
                barcode(format!("]C100{body}{}", gs1_check(&body)))
            );

            // GRAI element = 0 + CP + asset type + check digit + serial.
            let at_digits = 12 - cp_digits;
            let at = ref_seed % 10u64.pow(at_digits as u32);
            let at_str = if at_digits == 0 { String::new() } else { format!("{at:0at_digits$}") };
            let body = format!("{cp_str}{at_str}");
            let grai = format!("0{body}{}", gs1_check(&body));
            prop_assert_eq!(
                tag(&with(0x33, &[(at, 44 - cp_bits), (serial, 38)]), 12),
                barcode(format!("]C18003{grai}{serial}"))
            );
            let mut grai170 = with(0x37, &[(at, 44 - cp_bits)]);
            grai170.extend(chars7(&text));
            prop_assert_eq!(tag(&grai170, 22), barcode(format!("]C18003{grai}{text}")));

            // GIAI = CP + IAR.
            let iar = ref_seed % (1 << (82 - cp_bits));
            prop_assert_eq!(
                tag(&with(0x34, &[(iar, 82 - cp_bits)]), 12),
                barcode(format!("]d28004{cp_str}{iar}"))
            );
            let mut giai202 = with(0x38, &[]);
            giai202.extend(chars7(&text));
            prop_assert_eq!(tag(&giai202, 26), barcode(format!("]d28004{cp_str}{text}")));
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(epc in proptest::collection::vec(any::<u8>(), 0..40)) {
            let id = decode_epc(&epc);
            let s = id.as_str();
            prop_assert!(s.starts_with("urn:epc:id:") || s.starts_with("urn:epc:raw:"));
            prop_assert!(s.len() <= 64 + epc.len() * 2);
        }

        #[test]
        fn known_headers_with_any_body(
            header in prop::sample::select(vec![0x30u8, 0x31, 0x33, 0x34, 0x36, 0x37, 0x38]),
            body in proptest::collection::vec(any::<u8>(), 25),
            len in prop::sample::select(vec![12usize, 22, 26]),
        ) {
            let mut epc = vec![header];
            epc.extend_from_slice(&body[..len - 1]);
            let raw_prefix = format!("urn:epc:raw:{}.x", len * 8);
            match decode_epc(&epc) {
                EpcId::Pure(uri) => prop_assert!(uri.starts_with("urn:epc:id:")),
                EpcId::Raw(uri) => prop_assert!(uri.starts_with(&raw_prefix)),
            }
        }
    }
}
