//! The operator override: `unlock` on `{root}/{site}/{gateway}/cmd/unlock`,
//! `{"id", "location", "operator", "reason", "duration"?}`.

use std::time::Duration;

use serde_json::{Map, Value};

/// Longest operator id and reason kept in the audit alarm.
const MAX_OPERATOR: usize = 64;
const MAX_REASON: usize = 256;

/// A well-formed override request (the location is checked by the task,
/// which knows its gates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlock {
    pub location: String,
    pub operator: String,
    pub reason: String,
    /// As asked; the gate caps it at its `override_max`.
    pub duration: Option<Duration>,
}

/// The request, or why it is refused.
pub fn parse(body: &Map<String, Value>) -> Result<Unlock, String> {
    let text = |field: &str, max: usize| -> Result<String, String> {
        match body.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
                Ok(s.clone())
            }
            Some(Value::String(_)) => Err(format!("`{field}` must be 1 to {max} characters")),
            Some(_) => Err(format!("`{field}` must be a string")),
            None => Err(format!("`{field}` is required")),
        }
    };
    let duration = match body.get("duration") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            humantime::parse_duration(s)
                .map_err(|e| format!("`duration` {s:?}: {e} (e.g. \"30s\", \"2m\")"))?,
        ),
        Some(Value::Number(n)) => Some(
            n.as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
                .ok_or("`duration` in seconds must be a positive number")?,
        ),
        Some(_) => return Err("`duration` must be a string such as \"30s\" or seconds".into()),
    };
    if duration.is_some_and(|d| d.is_zero()) {
        return Err("`duration` must be more than 0".into());
    }
    Ok(Unlock {
        location: text("location", 64)?,
        operator: text("operator", MAX_OPERATOR)?,
        reason: text("reason", MAX_REASON)?,
        duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn requests_carry_who_why_and_for_how_long() {
        let u = parse(&body(
            r#"{"id":"r1","location":"cage-1","operator":"op-7","reason":"audit","duration":"30s"}"#,
        ))
        .unwrap();
        assert_eq!(u.operator, "op-7");
        assert_eq!(u.duration, Some(Duration::from_secs(30)));
        let u = parse(&body(
            r#"{"id":"r1","location":"cage-1","operator":"op-7","reason":"audit","duration":90}"#,
        ))
        .unwrap();
        assert_eq!(u.duration, Some(Duration::from_secs(90)));
        let u = parse(&body(
            r#"{"id":"r1","location":"cage-1","operator":"op-7","reason":"audit"}"#,
        ))
        .unwrap();
        assert_eq!(u.duration, None);
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        for (json, why) in [
            (
                r#"{"id":"r","location":"c","reason":"x"}"#,
                "`operator` is required",
            ),
            (
                r#"{"id":"r","location":"c","operator":"","reason":"x"}"#,
                "`operator` must be 1",
            ),
            (
                r#"{"id":"r","location":"c","operator":7,"reason":"x"}"#,
                "must be a string",
            ),
            (
                r#"{"id":"r","operator":"o","reason":"x"}"#,
                "`location` is required",
            ),
            (
                r#"{"id":"r","location":"c","operator":"o"}"#,
                "`reason` is required",
            ),
            (
                r#"{"id":"r","location":"c","operator":"o","reason":"x","duration":"soon"}"#,
                "`duration` \"soon\"",
            ),
            (
                r#"{"id":"r","location":"c","operator":"o","reason":"x","duration":"0s"}"#,
                "more than 0",
            ),
            (
                r#"{"id":"r","location":"c","operator":"o","reason":"x","duration":-5}"#,
                "positive",
            ),
        ] {
            let error = parse(&body(json)).unwrap_err();
            assert!(error.contains(why), "{json}: {error}");
        }
    }

    proptest::proptest! {
        /// Any body an operator's tool (or anyone) sends is accepted or
        /// refused with a reason; what is accepted keeps to the bounds.
        #[test]
        fn any_body_is_accepted_or_refused(
            text in "\\PC{0,300}",
            duration in "\\PC{0,24}",
            seconds in proptest::num::f64::ANY,
        ) {
            for duration in [Value::String(duration.clone()), serde_json::json!(seconds)] {
                let body = serde_json::json!({
                    "id": "x", "location": text, "operator": text, "reason": text,
                    "duration": duration,
                });
                if let Ok(unlock) = parse(body.as_object().expect("an object")) {
                    proptest::prop_assert!(unlock.duration.is_none_or(|d| !d.is_zero()));
                    proptest::prop_assert!(unlock.operator.chars().count() <= MAX_OPERATOR);
                    proptest::prop_assert!(unlock.reason.chars().count() <= MAX_REASON);
                }
            }
        }
    }
}
