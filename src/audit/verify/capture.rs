//! Captures as `mosquitto_sub -v` writes them: one message a line, the
//! topic, one space, the payload bytes exactly as published.
//!
//! Our payloads are compact JSON, so they never hold a newline; and our
//! topics hold no space (names are `[A-Za-z0-9._-]`, asset keys are
//! percent-encoded). A line ending in CR (a capture that passed through
//! Windows) loses the CR: no payload of ours ends in one.

/// One captured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based, for the report.
    pub number: usize,
    pub topic: &'a str,
    pub payload: &'a [u8],
}

/// The messages in `capture`, in order. Empty lines and lines whose topic is
/// not UTF-8 are not messages of ours and are skipped.
pub fn lines(capture: &[u8]) -> impl Iterator<Item = Line<'_>> {
    capture
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return None;
            }
            let (topic, payload) = match line.iter().position(|&b| b == b' ') {
                Some(space) => (&line[..space], &line[space + 1..]),
                None => (line, &line[line.len()..]),
            };
            Some(Line {
                number: i + 1,
                topic: std::str::from_utf8(topic).ok()?,
                payload,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topic_space_payload_per_line() {
        let capture = b"a/b {\"x\": 1}\r\n\nc/d\n\xff/e x\nf/g  two spaces\n";
        let got: Vec<_> = lines(capture)
            .map(|l| (l.number, l.topic, l.payload))
            .collect();
        assert_eq!(
            got,
            [
                (1, "a/b", &b"{\"x\": 1}"[..]),
                (3, "c/d", b""),
                (5, "f/g", b" two spaces"),
            ]
        );
    }

    proptest! {
        /// Whatever a file holds, parsing ends without a panic, and every
        /// message written as mosquitto_sub writes it comes back exactly.
        #[test]
        fn any_bytes_parse_and_written_messages_come_back(
            junk in proptest::collection::vec(any::<u8>(), 0..512),
            messages in proptest::collection::vec(
                ("[a-z0-9/_.-]{1,40}", "[^\n\r]{0,200}"), 0..8),
        ) {
            let _ = lines(&junk).count();
            let mut capture = Vec::new();
            for (topic, payload) in &messages {
                capture.extend_from_slice(format!("{topic} {payload}\n").as_bytes());
            }
            let back: Vec<(String, Vec<u8>)> = lines(&capture)
                .map(|l| (l.topic.to_owned(), l.payload.to_vec()))
                .collect();
            let want: Vec<(String, Vec<u8>)> = messages
                .iter()
                .map(|(t, p)| (t.clone(), p.as_bytes().to_vec()))
                .collect();
            prop_assert_eq!(back, want);
        }
    }
}
