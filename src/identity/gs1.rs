//! GS1 barcode data: application-identifier (AI) element strings from a
//! scan, and the EPC pure-identity URI of the asset they name.
//!
//! # When text counts as GS1 data
//!
//! Only when it says so, because a false positive changes an asset's id and
//! a plain label such as `0112345678901231` or `ASSET-0042` must keep the
//! id it has always had:
//!
//! - a GS1 AIM symbology identifier: `]C1` (GS1-128), `]d2` (GS1
//!   DataMatrix), `]Q3` (GS1 QR), `]e0` (GS1 DataBar, composite). The
//!   scanner decoded an FNC1 in first position, so the data *is* AI data;
//!   GS (0x1D) stands for each later FNC1 separator.
//! - the human-readable form, `(8004)0614141ABC123`: text starting with a
//!   parenthesised, well-formed AI (2–4 digits, the length its prefix
//!   requires, a prefix GS1 has assigned). `(spare) laptop` or
//!   `(555)123-4567` are not.
//!
//! Any other AIM identifier (`]C0`, `]d1`, `]Q1`, `]E0`…) says the data is
//! *not* GS1; it is plain text once [`without_symbology_id`] strips the
//! identifier. Without an identifier or parentheses nothing is guessed:
//! digits-only heuristics would turn ordinary serial-number labels into
//! GS1 keys, and a scanner that should send AIM identifiers can be
//! configured to.
//!
//! # Strictness
//!
//! Once text claims to be GS1 data, a defect is an error rather than plain
//! text, so a misprinted check digit is reported instead of silently
//! becoming a second asset. The scan-form rules follow GS1's reference
//! parser (gs1-syntax-engine): an AI's length comes from its first two
//! digits, predefined-length AIs need no separator, one GS may follow any
//! element (even a predefined-length one, and at the end), and a GS where
//! an AI should start (leading, doubled) is an error.

use std::collections::BTreeSet;

use thiserror::Error;

use super::epc::{is_cset82, uri_escape};

/// Group separator: stands for FNC1 after the first position.
const GS: char = '\u{1D}';

/// The AIM symbology identifiers whose data is GS1 AI data.
const GS1_SYMBOLOGY_IDS: [&str; 4] = ["C1", "d2", "Q3", "e0"];

/// Why text that claims to be GS1 data is not valid GS1 data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Gs1Error {
    #[error("GS1 data is empty")]
    NoData,
    /// Where an AI should start there is something else: a GS, a letter,
    /// too few digits, or a malformed `(AI)`.
    #[error("expected a GS1 application identifier at {found:?}")]
    NotAnAi { found: String },
    #[error("no GS1 application identifier starts with {prefix}")]
    UnknownAi { prefix: String },
    #[error("({ai}) is empty")]
    Empty { ai: String },
    /// A predefined-length AI with too few (or, in parentheses, too many)
    /// characters.
    #[error("({ai}) has {len} characters, needs {expected}")]
    WrongLength {
        ai: String,
        len: usize,
        expected: usize,
    },
    #[error("({ai}) has {len} characters, at most {max} are allowed")]
    TooLong { ai: String, len: usize, max: usize },
    #[error("({ai}) must be all digits")]
    NotNumeric { ai: String },
    #[error("({ai}) contains {ch:?}, outside the GS1 character set")]
    BadCharacter { ai: String, ch: char },
    #[error("({ai}) check digit is {found}, expected {expected}")]
    CheckDigit {
        ai: String,
        found: char,
        expected: char,
    },
    #[error("({ai}) {reason}")]
    Invalid { ai: String, reason: &'static str },
}

/// Parses scanned text as GS1 AI data.
///
/// `Ok(None)`: not GS1 data (see the module docs); use
/// [`without_symbology_id`] of the text as its plain id. `Ok(Some)`: the
/// element strings in order, as (AI, value). `Err`: the text claims to be
/// GS1 data and is not valid.
pub fn parse(text: &str) -> Result<Option<Vec<(String, String)>>, Gs1Error> {
    if let Some((id, data)) = split_symbology_id(text) {
        return if GS1_SYMBOLOGY_IDS.contains(&id) {
            parse_scan(data).map(Some)
        } else {
            Ok(None)
        };
    }
    if bracketed_ai(text).is_some() {
        return parse_bracketed(text).map(Some);
    }
    Ok(None)
}

/// The text without a leading AIM symbology identifier (`]`, a code
/// letter, a modifier), so the same plain label read with and without the
/// scanner's AIM prefix enabled has one id.
pub fn without_symbology_id(text: &str) -> &str {
    split_symbology_id(text).map_or(text, |(_, data)| data)
}

/// The canonical element string `(AI)value(AI)value…`, in scan order.
///
/// This is what `asset.id` falls back to for valid GS1 data that
/// [`to_epc_uri`] cannot map (no known company prefix, or no key with an
/// EPC): the same data read as `]C1…` with GS separators or typed in
/// parentheses gives the same string.
pub fn element_string(elements: &[(String, String)]) -> String {
    let mut out = String::new();
    for (ai, value) in elements {
        out.push('(');
        out.push_str(ai);
        out.push(')');
        out.push_str(value);
    }
    out
}

/// Known GS1 company prefixes, which locate the boundary between company
/// prefix and reference inside a GS1 key (the key itself does not say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanyPrefixes {
    prefixes: BTreeSet<String>,
}

/// A configured company prefix that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("GS1 company prefix {0:?} must be 6 to 12 digits")]
pub struct CompanyPrefixError(pub String);

impl CompanyPrefixes {
    /// Builds the set from configured prefixes: 6 to 12 digits each, the
    /// lengths the EPC partition tables can encode.
    pub fn new<I, S>(prefixes: I) -> Result<Self, CompanyPrefixError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for prefix in prefixes {
            let prefix = prefix.as_ref();
            if !(6..=12).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CompanyPrefixError(prefix.to_string()));
            }
            set.insert(prefix.to_string());
        }
        Ok(CompanyPrefixes { prefixes: set })
    }

    /// The longest known prefix found at `key[start..]` that ends at or
    /// before `max_end`. Longest, so that a list holding both `061414` and
    /// `0614141` resolves consistently.
    fn find<'k>(&self, key: &'k str, start: usize, max_end: usize) -> Option<&'k str> {
        (6..=12)
            .rev()
            .filter(|len| start + len <= max_end)
            .filter_map(|len| key.get(start..start + len))
            .find(|candidate| self.prefixes.contains(*candidate))
    }
}

/// The EPC pure-identity URI for GS1 data, exactly as
/// [`super::epc::decode_epc`] gives it for a tag encoding the same key.
///
/// Keys, first present wins: (8004) GIAI → `urn:epc:id:giai:CP.IAR`;
/// (8003) GRAI with a serial → `urn:epc:id:grai:CP.AssetType.Serial`;
/// (00) SSCC → `urn:epc:id:sscc:CP.ExtSerialRef`; (01) GTIN with (21)
/// serial → `urn:epc:id:sgtin:CP.IndicatorItemRef.Serial`. None if there is
/// no such key, the key's company prefix is not in `company_prefixes`, or
/// the elements are not shaped as [`parse`] returns them; the caller then
/// uses [`element_string`].
pub fn to_epc_uri(
    elements: &[(String, String)],
    company_prefixes: &CompanyPrefixes,
) -> Option<String> {
    let get = |wanted: &str| {
        elements
            .iter()
            .find(|(ai, _)| ai == wanted)
            .map(|(_, value)| value.as_str())
    };
    if let Some(giai) = get("8004") {
        // GIAI = CP + IAR; the IAR has at least one character.
        let cp = company_prefixes.find(giai, 0, giai.len().saturating_sub(1))?;
        let iar = uri_escape(giai.get(cp.len()..)?)?;
        return Some(format!("urn:epc:id:giai:{cp}.{iar}"));
    }
    if let Some(grai) = get("8003") {
        // GRAI element = "0" + CP + asset type + check digit + serial.
        let digits = numeric(grai.get(..14)?)?;
        let serial = grai.get(14..).filter(|s| !s.is_empty())?;
        let cp = company_prefixes.find(digits, 1, 13)?;
        let asset_type = digits.get(1 + cp.len()..13)?;
        let serial = uri_escape(serial)?;
        return Some(format!("urn:epc:id:grai:{cp}.{asset_type}.{serial}"));
    }
    if let Some(sscc) = get("00") {
        // SSCC = extension + CP + serial reference + check digit.
        let sscc = numeric(sscc).filter(|s| s.len() == 18)?;
        let cp = company_prefixes.find(sscc, 1, 17)?;
        let serial_ref = sscc.get(1 + cp.len()..17)?;
        return Some(format!("urn:epc:id:sscc:{cp}.{}{serial_ref}", &sscc[..1]));
    }
    if let (Some(gtin), Some(serial)) = (get("01"), get("21")) {
        // GTIN-14 = indicator + CP + item reference + check digit.
        let gtin = numeric(gtin).filter(|g| g.len() == 14)?;
        let cp = company_prefixes.find(gtin, 1, 13)?;
        let item_ref = gtin.get(1 + cp.len()..13)?;
        let serial = uri_escape(serial)?;
        return Some(format!(
            "urn:epc:id:sgtin:{cp}.{}{item_ref}.{serial}",
            &gtin[..1]
        ));
    }
    None
}

fn numeric(s: &str) -> Option<&str> {
    s.bytes().all(|b| b.is_ascii_digit()).then_some(s)
}

/// Splits `]` + code letter + modifier from the data.
fn split_symbology_id(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    match bytes {
        [b']', code, modifier, ..]
            if code.is_ascii_alphabetic() && modifier.is_ascii_alphanumeric() =>
        {
            Some((&text[1..3], &text[3..]))
        }
        _ => None,
    }
}

/// How many digits the AIs starting with this two-digit prefix have, or
/// None for a prefix GS1 has not assigned (reference section 5.2).
fn ai_digits(prefix: u8) -> Option<usize> {
    match prefix {
        0..=22 | 30 | 37 | 90..=99 => Some(2),
        23..=25 | 40..=42 | 71 => Some(3),
        31..=36 | 39 | 43 | 70 | 72 | 80..=82 => Some(4),
        _ => None,
    }
}

/// The value length of AIs with a predefined length, which therefore need
/// no separator (`fixedAIprefixLengths` in gs1-syntax-engine). All of them
/// are numeric.
fn predefined_length(prefix: u8) -> Option<usize> {
    match prefix {
        0 => Some(18),
        1..=3 => Some(14),
        4 => Some(16),
        11..=19 => Some(6),
        20 => Some(2),
        31..=36 => Some(6),
        41 => Some(13),
        _ => None,
    }
}

/// The two-digit prefix of an AI known to start with two ASCII digits.
fn prefix_of(ai: &str) -> u8 {
    ai.bytes().take(2).fold(0, |acc, b| acc * 10 + (b - b'0'))
}

/// The AI at the start of scan data, and the rest.
fn scan_ai(data: &str) -> Result<(&str, &str), Gs1Error> {
    let not_an_ai = || Gs1Error::NotAnAi {
        found: data.chars().take(6).collect(),
    };
    let bytes = data.as_bytes();
    if bytes.len() < 2 || !bytes[..2].iter().all(u8::is_ascii_digit) {
        return Err(not_an_ai());
    }
    let prefix = prefix_of(data);
    let len = ai_digits(prefix).ok_or_else(|| Gs1Error::UnknownAi {
        prefix: data[..2].to_string(),
    })?;
    match bytes.get(..len) {
        Some(ai) if ai.iter().all(u8::is_ascii_digit) => Ok((&data[..len], &data[len..])),
        _ => Err(not_an_ai()),
    }
}

/// Scan data after a GS1 symbology identifier: AIs and values, GS between
/// an element of variable length and the next.
fn parse_scan(data: &str) -> Result<Vec<(String, String)>, Gs1Error> {
    if data.is_empty() {
        return Err(Gs1Error::NoData);
    }
    let mut elements = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (ai, after) = scan_ai(rest)?;
        let field_end = after.find(GS).unwrap_or(after.len());
        let value_end = match predefined_length(prefix_of(ai)) {
            Some(expected) if field_end < expected => {
                return Err(Gs1Error::WrongLength {
                    ai: ai.to_string(),
                    len: after[..field_end].chars().count(),
                    expected,
                });
            }
            // Not a char boundary means a non-ASCII character, which
            // `validate` reports for the value cut at the field's end.
            Some(expected) if after.is_char_boundary(expected) => expected,
            _ => field_end,
        };
        let value = &after[..value_end];
        validate(ai, value)?;
        elements.push((ai.to_string(), value.to_string()));
        rest = &after[value_end..];
        rest = rest.strip_prefix(GS).unwrap_or(rest);
    }
    Ok(elements)
}

/// A well-formed `(AI)` at the start of `text`, and what follows it.
fn bracketed_ai(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('(')?;
    let close = inner.find(')')?;
    let ai = &inner[..close];
    let digits = ai.len() >= 2 && ai.bytes().all(|b| b.is_ascii_digit());
    (digits && ai_digits(prefix_of(ai)) == Some(ai.len())).then(|| (ai, &inner[close + 1..]))
}

/// The human-readable form: `(AI)value` repeated. Every `(` starts an AI,
/// as in GS1's own bracketed syntax, so a value holding `(` cannot be
/// written this way (it can in scan form).
fn parse_bracketed(text: &str) -> Result<Vec<(String, String)>, Gs1Error> {
    let mut elements = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (ai, after) = bracketed_ai(rest).ok_or_else(|| Gs1Error::NotAnAi {
            found: rest.chars().take(8).collect(),
        })?;
        let end = after.find('(').unwrap_or(after.len());
        let value = &after[..end];
        if let Some(expected) = predefined_length(prefix_of(ai)) {
            let len = value.chars().count();
            if len != expected && !value.is_empty() {
                return Err(Gs1Error::WrongLength {
                    ai: ai.to_string(),
                    len,
                    expected,
                });
            }
        }
        validate(ai, value)?;
        elements.push((ai.to_string(), value.to_string()));
        rest = &after[end..];
    }
    Ok(elements)
}

/// Checks one value against what this parser knows of its AI: predefined
/// lengths are numeric, every value is in character set 82 and within the
/// AI's maximum length, and the keys carry a valid check digit.
fn validate(ai: &str, value: &str) -> Result<(), Gs1Error> {
    let err_ai = || ai.to_string();
    if value.is_empty() {
        return Err(Gs1Error::Empty { ai: err_ai() });
    }
    if let Some(ch) = value
        .chars()
        .find(|&c| !u8::try_from(c).is_ok_and(is_cset82))
    {
        return Err(Gs1Error::BadCharacter { ai: err_ai(), ch });
    }
    let numeric_part = if predefined_length(prefix_of(ai)).is_some() {
        value
    } else if ai == "8003" {
        value.get(..14).unwrap_or(value)
    } else {
        ""
    };
    if numeric(numeric_part).is_none() {
        return Err(Gs1Error::NotNumeric { ai: err_ai() });
    }
    let max = match ai {
        "10" | "21" | "254" => 20,
        "8003" | "8004" => 30,
        // The longest value any AI allows (e.g. 99, X..90).
        _ => 90,
    };
    if value.len() > max {
        return Err(Gs1Error::TooLong {
            ai: err_ai(),
            len: value.len(),
            max,
        });
    }
    let checked = match ai {
        "00" | "01" | "02" | "410" | "411" | "412" | "413" | "414" | "415" | "416" | "417" => value,
        "8003" => {
            if value.len() < 14 || !value.starts_with('0') {
                return Err(Gs1Error::Invalid {
                    ai: err_ai(),
                    reason: "must be 0, a 13-digit GRAI and an optional serial",
                });
            }
            &value[1..14]
        }
        _ => return Ok(()),
    };
    let (body, found) = checked.split_at(checked.len() - 1);
    let expected = check_digit(body);
    let found = char::from(found.as_bytes()[0]);
    if found != expected {
        return Err(Gs1Error::CheckDigit {
            ai: err_ai(),
            found,
            expected,
        });
    }
    Ok(())
}

/// GS1 mod-10 check digit of an all-digit body: weights 3, 1, 3… from the
/// rightmost digit.
fn check_digit(body: &str) -> char {
    let sum = body
        .bytes()
        .rev()
        .zip([3, 1].into_iter().cycle())
        .fold(0u8, |sum, (b, weight)| (sum + (b - b'0') * weight) % 10);
    char::from(b'0' + (10 - sum) % 10)
}

#[cfg(test)]
mod tests;
