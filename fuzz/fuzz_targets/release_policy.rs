//! Any release policy message (payload, and the topic level that names the
//! asset) is an entry or refused without panicking; an accepted entry
//! stands as it says, renders into the custody event of a grant whose
//! expiry reads back as the entry's, and an accepted key holds no topic
//! wildcard.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte says where the topic level ends and the payload starts.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (key, payload) = rest.split_at(usize::from(split).min(rest.len()));
    custodyd::fuzzing::release_policy(payload, &String::from_utf8_lossy(key));
});
