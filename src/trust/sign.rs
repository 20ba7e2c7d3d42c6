//! Central's side, as `custodyd sign` and the demo do it: the inner object
//! completed with the fields the gateway checks, signed, in its envelope.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::envelope;
use super::keys::SigningKey;

/// How long a command stays valid when the inner object gives no
/// `not_after`: long enough for a broker hop, short enough that a captured
/// request is useless soon.
pub const DEFAULT_COMMAND_TTL: Duration = Duration::from_secs(300);

/// Whether `topic` is a command topic, `{root}/{site}/{gateway}/cmd/{command}`.
pub fn is_command_topic(topic: &str) -> bool {
    let levels: Vec<&str> = topic.split('/').collect();
    levels.len() == 5 && levels[3] == "cmd"
}

/// The envelope of `inner` (a JSON object) for `topic`, signed by `key` at
/// `now`. Adds `topic` and `issued_at`, and on command topics `id` (a new
/// ULID) and `not_after` (`now` + `ttl`), where the object lacks them; a
/// `topic` it names must be `topic`.
pub fn sign(
    key: &SigningKey,
    topic: &str,
    inner: &[u8],
    now: SystemTime,
    ttl: Duration,
) -> Result<String, String> {
    let mut object: Map<String, Value> = serde_json::from_slice(inner)
        .map_err(|e| format!("the input is not a JSON object: {e}"))?;
    match object.get("topic") {
        None => {
            object.insert("topic".into(), topic.into());
        }
        Some(Value::String(t)) if t == topic => {}
        Some(other) => return Err(format!("the input names topic {other}, not {topic:?}")),
    }
    let stamp = |t: SystemTime| Value::String(humantime::format_rfc3339_millis(t).to_string());
    object.entry("issued_at").or_insert_with(|| stamp(now));
    if is_command_topic(topic) {
        object
            .entry("id")
            .or_insert_with(|| ulid::Ulid::new().to_string().into());
        object
            .entry("not_after")
            .or_insert_with(|| stamp(now + ttl));
    }
    let bytes = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
    Ok(envelope::encode(&bytes, &key.key_id, &key.sign(&bytes)))
}
