//! `custodyd tail`: the gateway's MQTT traffic, one line a message, for ops
//! teams who want to see a door work without reading JSON.
//!
//! It connects exactly as the daemon does (the same [`connect::client`], TLS
//! and login included), so a working tail on a Pi also proves the daemon's
//! broker settings. Everything printed comes from the network: any producer
//! can publish under these topics, so every string is made terminal-safe
//! before it is printed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::ValueEnum;
use rumqttc::{Event, Packet, QoS, SubscribeFilter, SubscribeReasonCode};
use serde_json::Value;

use crate::config::{self, Config};
use crate::sink::connect;

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The gateway's configuration: broker, login, TLS and topic names.
    #[arg(long, default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Only messages about this location (repeatable). Gateway-wide messages
    /// (status, health) have no location and are then left out.
    #[arg(long)]
    location: Vec<String>,
    /// Only these kinds of message (repeatable or comma-separated); default:
    /// all but `reads`.
    #[arg(long, value_enum, value_delimiter = ',')]
    kind: Vec<Kind>,
    /// Every gateway of the site, not only the configured one.
    #[arg(long)]
    all_gateways: bool,
}

/// The fourth topic segment, `{root}/{site}/{gateway}/{kind}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Custody,
    Alarm,
    Status,
    Health,
    Pass,
    Context,
    CmdReply,
    /// Raw reads, published only while commissioning: left out unless asked for.
    Reads,
}

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Kind::Custody => "custody",
            Kind::Alarm => "alarm",
            Kind::Status => "status",
            Kind::Health => "health",
            Kind::Pass => "pass",
            Kind::Context => "context",
            Kind::CmdReply => "cmd-reply",
            Kind::Reads => "reads",
        }
    }
}

/// How long to wait before reconnecting after the broker dropped the tail.
const RETRY: Duration = Duration::from_secs(1);

/// Subscribes and prints until Ctrl-C, SIGTERM or a closed stdout (`| head`).
/// A first connection that fails is an error, so a wrong setting shows at
/// once; a connection lost later is retried.
pub async fn run(config: &Config, args: &TailArgs) -> anyhow::Result<()> {
    let naming = config.naming();
    let gateway = if args.all_gateways {
        "+"
    } else {
        naming.gateway.as_str()
    };
    let kinds: Vec<Kind> = if args.kind.is_empty() {
        Kind::value_variants()
            .iter()
            .copied()
            .filter(|&k| k != Kind::Reads)
            .collect()
    } else {
        args.kind.clone()
    };
    let filters: Vec<SubscribeFilter> = kinds
        .iter()
        .map(|k| {
            let filter = format!(
                "{}/{}/{gateway}/{}/#",
                naming.root,
                naming.site,
                k.segment()
            );
            SubscribeFilter::new(filter, QoS::AtLeastOnce)
        })
        .collect();
    let client_id = format!("{}-tail-{}", config.client_id(), std::process::id());
    let (client, mut eventloop) = connect::client(&config.mqtt, &client_id, 64, |options| {
        // A viewer: nothing kept for it while it is away, and no Last Will.
        options.set_clean_session(true);
    })?;
    let style = Style {
        show_gateway: args.all_gateways,
        utc_offset: local_utc_offset,
    };

    let stop = crate::signals::stop();
    tokio::pin!(stop);
    // Once a subscription has worked, connection failures are outages, not
    // settings to fix: retried rather than fatal.
    let mut worked = false;
    loop {
        let polled = tokio::select! {
            polled = eventloop.poll() => polled,
            () = &mut stop => return Ok(()),
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                client
                    .try_subscribe_many(filters.clone())
                    .context("queueing the subscription")?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    bail!("the broker refused the subscription (its ACL does not allow this client to read these topics)");
                }
                let topics: Vec<&str> = filters.iter().map(|f| f.path.as_str()).collect();
                eprintln!(
                    "custodyd tail: subscribed at {} to {}",
                    config.mqtt.url,
                    topics.join(" ")
                );
                worked = true;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !args.location.is_empty() && !args.location.contains(&location_of(&p.payload)) {
                    continue;
                }
                let text = line(&p.topic, &p.payload, SystemTime::now(), &style);
                let mut out = std::io::stdout().lock();
                match writeln!(out, "{text}").and_then(|()| out.flush()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(e).context("writing to stdout"),
                }
            }
            Ok(_) => {}
            Err(e) if !worked => {
                bail!(
                    "cannot connect to {}: {}",
                    config.mqtt.url,
                    connect::describe(&e)
                )
            }
            Err(e) => {
                eprintln!(
                    "custodyd tail: connection lost: {}; reconnecting (messages meanwhile are missed)",
                    connect::describe(&e)
                );
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// The payload's `location`, or "" for messages that have none.
fn location_of(payload: &[u8]) -> String {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v["location"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// How [`line`] renders.
pub struct Style {
    /// Put the gateway before the location (when tailing several gateways).
    pub show_gateway: bool,
    /// Seconds east of UTC at a Unix time: the local zone, fixed in tests.
    pub utc_offset: fn(i64) -> i64,
}

/// Fields every spooled event has, left out of the generic rendering.
const COMMON: &[&str] = &[
    "schema",
    "event_id",
    "seq",
    "site",
    "gateway",
    "location",
    "observed_at",
    "clock_synced",
];
/// Longest raw payload or detail shown; the rest is cut with "…".
const MAX_SHOWN: usize = 300;

/// One message as one line: local time, place, what happened, details.
///
/// The time is the event's `observed_at` where it has one (a backlog drained
/// after an outage shows when things happened, not when they arrived), else
/// `received`. Unknown payloads are printed raw, with control characters
/// escaped so that nothing from the network can drive the terminal.
pub fn line(topic: &str, payload: &[u8], received: SystemTime, style: &Style) -> String {
    let segments: Vec<&str> = topic.splitn(5, '/').collect();
    let (gateway, kind, rest) = match segments.as_slice() {
        [_, _, gateway, kind, rest @ ..] => (*gateway, *kind, rest.first().copied()),
        _ => ("?", "", None),
    };
    let json = serde_json::from_slice::<Value>(payload)
        .ok()
        .filter(Value::is_object);
    let Some(json) = json else {
        let raw = clip(&safe(&String::from_utf8_lossy(payload)));
        return format!(
            "{}  {:<16}  {}",
            local_time(received, style),
            safe(topic),
            raw
        );
    };

    let observed = json["observed_at"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok());
    let mut place = json["location"].as_str().unwrap_or(gateway).to_string();
    if style.show_gateway && place != gateway {
        place = format!("{gateway}/{place}");
    }
    let (label, details) = match json["schema"].as_str().unwrap_or("") {
        "custodyd.custody.v1" => (text(&json["transition"]), custody(&json)),
        "custodyd.alarm.v1" => ("ALARM".to_string(), alarm(&json)),
        "custodyd.status.v1" => ("status".to_string(), status(&json)),
        "custodyd.health.v1" => ("health".to_string(), health(&json)),
        _ => {
            let label = match rest {
                Some(rest) => format!("{kind} {rest}"),
                None => kind.to_string(),
            };
            (label, clip(&scalars(&json, COMMON)))
        }
    };
    let mut out = format!(
        "{}  {:<16}  {:<8}  {}",
        local_time(observed.unwrap_or(received), style),
        safe(&place),
        safe(&label),
        details
    );
    if json["clock_synced"] == Value::Bool(false) {
        out.push_str("  (gateway clock not synchronised)");
    }
    out.trim_end().to_string()
}

/// `asset  from -> to  reader R`.
fn custody(e: &Value) -> String {
    let mut out = text(&e["asset"]["id"]);
    if !e["from_zone"].is_null() || !e["to_zone"].is_null() {
        let zone = |z: &Value| if z.is_null() { "?".into() } else { text(z) };
        let _ = write!(
            out,
            "  {} -> {}",
            zone(&e["from_zone"]),
            zone(&e["to_zone"])
        );
    }
    let _ = write!(out, "  reader {}", text(&e["reader"]));
    out
}

/// `kind [asset]: detail`.
fn alarm(e: &Value) -> String {
    let mut out = text(&e["kind"]);
    if !e["asset"]["id"].is_null() {
        let _ = write!(out, " {}", text(&e["asset"]["id"]));
    }
    let _ = write!(out, ": {}", clip(&text(&e["detail"])));
    out
}

/// `online, readers a up, b down (failing antennas 2), spool dropped N`.
fn status(s: &Value) -> String {
    let mut out = text(&s["state"]);
    if let Some(readers) = readers(s) {
        let _ = write!(out, ", {readers}");
    }
    if let Some(dropped) = s["spool"]["dropped"].as_u64().filter(|&d| d > 0) {
        let _ = write!(out, ", spool dropped {dropped}");
    }
    out
}

/// `readers a up, ...` and then the numbers, whatever they are.
fn health(h: &Value) -> String {
    let numbers = scalars(h, COMMON);
    match readers(h) {
        Some(readers) => format!("{readers}  {numbers}"),
        None => numbers,
    }
}

/// `readers a up, b down (failing antennas 2)` from a `readers` object.
fn readers(v: &Value) -> Option<String> {
    let readers = v["readers"].as_object()?;
    let mut out = "readers".to_string();
    for (i, (name, reader)) in readers.iter().enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        let _ = write!(out, "{sep}{} {}", safe(name), text(&reader["state"]));
        if let Some(failing) = reader["failing_antennas"].as_array() {
            let list: Vec<String> = failing.iter().map(text).collect();
            let _ = write!(out, " (failing antennas {})", list.join(" "));
        }
    }
    Some(out)
}

/// The scalar fields of an object as `key=value`, nested objects flattened
/// one level (`spool.depth=0`), arrays as JSON; `skip` left out. A summary
/// that needs no knowledge of the schema, so it keeps up as fields are added.
fn scalars(v: &Value, skip: &[&str]) -> String {
    let mut parts = Vec::new();
    let Some(object) = v.as_object() else {
        return String::new();
    };
    for (key, value) in object.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
        match value {
            Value::Object(inner) => {
                for (k, v) in inner.iter().filter(|(_, v)| !v.is_object()) {
                    parts.push(format!("{}.{}={}", safe(key), safe(k), text(v)));
                }
            }
            _ => parts.push(format!("{}={}", safe(key), text(value))),
        }
    }
    parts.join(" ")
}

/// A JSON value as shown: strings bare, anything else as compact JSON; made
/// terminal-safe either way.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => safe(s),
        Value::Null => "-".into(),
        other => safe(&other.to_string()),
    }
}

/// `s` with every character that could move the cursor, change colours or
/// reorder the text escaped: C0 and C1 controls (ESC, CR, backspace, ...),
/// and the Unicode bidi and zero-width formatting characters.
fn safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let invisible = matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}'
        );
        if c.is_control() || invisible {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the local zone.
fn local_time(t: SystemTime, style: &Style) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let local = secs.saturating_add((style.utc_offset)(secs));
    let shifted = UNIX_EPOCH + Duration::from_secs(u64::try_from(local).unwrap_or(0));
    // "2026-11-22T09:14:03Z"
    let utc = humantime::format_rfc3339_seconds(shifted).to_string();
    format!("{} {}", &utc[..10], &utc[11..19])
}

/// The local zone's offset from UTC at `unix` seconds, from the C library
/// (`TZ`, `/etc/localtime`), so it follows daylight saving.
fn local_utc_offset(unix: i64) -> i64 {
    // 32 bits on armv7 with glibc's default time_t: wraps after 2038, as the
    // C library itself would.
    let t = unix as libc::time_t;
    // SAFETY: `tm` is plain old data, for which all zeroes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r only reads `t` and writes the `tm` it is given.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    // c_long: 32 bits on armv7.
    tm.tm_gmtoff as i64
}

#[cfg(test)]
mod tests;
