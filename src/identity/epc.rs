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
mod tests;
