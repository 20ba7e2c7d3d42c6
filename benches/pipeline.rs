//! Throughput of each stage of the pipeline, and of decode + identity + dedup
//! together, as criterion benchmarks; plus the spool's bytes per event.
//!
//! ```sh
//! cargo bench --bench pipeline                      # everything (a few minutes)
//! cargo bench --bench pipeline -- presence          # one group
//! cargo bench --bench pipeline -- --measurement-time 1 --sample-size 10
//! ```
//!
//! Every benchmark reports elements (reads, frames, events) per second. The
//! end-to-end numbers (the real daemon on pseudo-terminals into Mosquitto)
//! come from the load harness in `examples/load`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use custodyd::config::{ReadMode, Terminator};
use custodyd::custody::{Body, Custody, Draft, Transition};
use custodyd::decode::{AsciiLineCodec, Decoded, Em4100Codec, RawRead, Source};
use custodyd::identity::{Asset, Identity, Rejected};
use custodyd::presence::{Engine, Observation, ReaderInfo, Sighting};
use custodyd::spool::{RecordV1, Store, StoredRecord};
use custodyd::topic::Naming;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

// Shared with the load harness (examples/load), which uses more of it.
#[allow(dead_code)]
#[path = "common/workload.rs"]
mod workload;

use workload::{Door, Pattern};

/// Frames decoded per iteration of the decode benchmarks.
const FRAMES: usize = 1000;
/// A stream id as the spool gives one (a ULID).
const STREAM: &str = "01JEXAMPLESTREAM0000000000";

fn naming() -> Naming {
    Naming {
        root: "itad".into(),
        site: "reno-1".into(),
        gateway: "dock-pi-03".into(),
    }
}

fn reader_info(mode: ReadMode) -> Arc<ReaderInfo> {
    Arc::new(ReaderInfo {
        name: "door1-em".into(),
        location: "dock-door-1".into(),
        mode,
        rescan_window: Duration::from_secs(2),
        departure_timeout: Duration::from_secs(5),
        sides: Default::default(),
    })
}

/// Identity as the daemon resolves it (no company prefixes configured).
fn resolve(read: &RawRead) -> Result<Asset, Rejected> {
    static IDENTITY: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(Identity::default).resolve(read)
}

fn observation(reader: &Arc<ReaderInfo>, asset: Asset) -> Observation {
    Observation {
        reader: reader.clone(),
        asset: Ok(asset),
        antenna: None,
        rssi_dbm: None,
        wall: SystemTime::now(),
    }
}

/// Feeds `frames` to `codec` one frame at a time, as a reader writing one
/// frame per serial read delivers them, and counts the reads.
fn decode_each<C: Decoder<Item = Decoded>>(
    codec: &mut C,
    buf: &mut BytesMut,
    frames: &[Vec<u8>],
) -> usize
where
    C::Error: std::fmt::Debug,
{
    let mut reads = 0;
    for frame in frames {
        buf.extend_from_slice(frame);
        while let Some(item) = codec.decode(buf).expect("decoders never fail") {
            if let Decoded::Read(read) = item {
                black_box(&read);
                reads += 1;
            }
        }
    }
    reads
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(FRAMES as u64));

    let em: Vec<Vec<u8>> = (0..FRAMES as u64)
        .map(|i| workload::frame(workload::tag_value(i % 500)))
        .collect();
    let mut codec = Em4100Codec::new();
    let mut buf = BytesMut::with_capacity(8192);
    g.bench_function("em4100", |b| {
        b.iter(|| assert_eq!(decode_each(&mut codec, &mut buf, &em), FRAMES))
    });

    // A typical asset label: a 12-character code, CR-terminated.
    let lines: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| format!("ITAD{:08}\r", i % 500).into_bytes())
        .collect();
    let mut codec = AsciiLineCodec::new(Terminator::Cr, None, None, 128, Source::Barcode);
    g.bench_function("ascii-line", |b| {
        b.iter(|| assert_eq!(decode_each(&mut codec, &mut buf, &lines), FRAMES))
    });
    g.finish();
}

fn identity(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity");
    g.throughput(Throughput::Elements(1));
    let read = RawRead {
        data: "62E3086CED".into(),
        source: Source::Rfid,
        antenna: None,
        rssi_dbm: None,
    };
    g.bench_function("resolve", |b| b.iter(|| resolve(black_box(&read))));
    g.finish();
}

/// `Engine::observe` for a read of a tag already in the field (the common
/// case by far: a tag is read hundreds of times per arrival), with 1, 100
/// and 10,000 tags in the field.
fn presence(c: &mut Criterion) {
    let mut g = c.benchmark_group("presence/observe");
    g.throughput(Throughput::Elements(1));
    let reader = reader_info(ReadMode::Presence);
    for in_field in [1u64, 100, 10_000] {
        let assets: Vec<Asset> = (0..in_field)
            .map(|i| {
                resolve(&RawRead {
                    data: workload::tag_hex(workload::tag_value(i)),
                    source: Source::Rfid,
                    antenna: None,
                    rssi_dbm: None,
                })
                .expect("a tag id always resolves")
            })
            .collect();
        let mut engine = Engine::new();
        let now = Instant::now();
        for a in &assets {
            assert!(engine
                .observe(observation(&reader, a.clone()), now)
                .is_some());
        }
        let mut next = 0;
        g.bench_function(format!("{in_field} in field"), |b| {
            b.iter(|| {
                next = (next + 1) % assets.len();
                let obs = observation(&reader, assets[next].clone());
                black_box(engine.observe(obs, now))
            })
        });
    }
    g.finish();
}

fn custody_draft(transition: Transition) -> Draft {
    let t = SystemTime::now();
    let asset = resolve(&RawRead {
        data: "62E3086CED".into(),
        source: Source::Rfid,
        antenna: None,
        rssi_dbm: None,
    })
    .expect("a card number always resolves");
    Draft::new(
        "dock-door-1".into(),
        t,
        Body::Custody(Custody {
            transition,
            asset,
            reader: "door1-em".into(),
            reads: 30,
            first_seen: t,
            last_seen: t,
            antennas: vec![],
            rssi_max: None,
            context: Default::default(),
            crossing: None,
        }),
    )
}

fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("custody");
    g.throughput(Throughput::Elements(1));
    let draft = custody_draft(Transition::Departed);
    let naming = naming();
    let mut seq = 0;
    g.bench_function("render", |b| {
        b.iter(|| {
            seq += 1;
            draft.render(&naming, STREAM, seq, None)
        })
    });
    g.finish();
}

/// Decode + identity + dedup per read, as the reader and presence tasks do
/// it, over the door traffic of the load harness: about 500 tags in the
/// field coming and going, so arrivals, departures and their drafts are
/// included, not only repeats.
fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));

    // 8,000 reads/s of model time; 1,000 tags, each in the field half the time.
    let pattern = Pattern {
        readers: 1,
        tags: 1000,
        dwell_us: 8_000_000,
        gap_us: 8_000_000,
        flood: false,
        span_us: 0,
        seed: 1,
    };
    let mut door = Door::new(&pattern, 0);
    let (mut frames, mut at_us) = (Vec::new(), Vec::new());
    let step_us = 125;
    for i in 0..400_000u64 {
        let t = i * step_us;
        door.advance(t, |_| {});
        if let Some(visit) = door.next_read() {
            frames.push(visit.frame.clone());
            at_us.push(t);
        }
    }
    let span = Duration::from_micros(400_000 * step_us);

    let reader = reader_info(ReadMode::Presence);
    let mut codec = Em4100Codec::new();
    let mut buf = BytesMut::with_capacity(8192);
    let mut engine = Engine::new();
    let start = Instant::now();
    let (mut pos, mut lap) = (0, 0u32);
    let mut drafts = Vec::new();
    g.bench_function("decode+identity+dedup", |b| {
        b.iter_custom(|iters| {
            let began = StdInstant::now();
            for _ in 0..iters {
                if pos == frames.len() {
                    pos = 0;
                    lap += 1;
                }
                let now = start + span * lap + Duration::from_micros(at_us[pos]);
                buf.extend_from_slice(&frames[pos]);
                pos += 1;
                if let Some(Decoded::Read(raw)) = codec.decode(&mut buf).expect("never fails") {
                    let obs = Observation {
                        reader: reader.clone(),
                        asset: resolve(&raw),
                        antenna: raw.antenna,
                        rssi_dbm: raw.rssi_dbm,
                        wall: SystemTime::now(),
                    };
                    drafts.extend(engine.observe(obs, now).map(Sighting::from));
                }
                if pos % 256 == 0 {
                    engine.expire(now, SystemTime::now(), &mut drafts);
                    black_box(&drafts);
                    drafts.clear();
                }
            }
            began.elapsed()
        })
    });
    g.finish();
}

/// Encoded spool records for `n` events, as the spool task makes them.
fn records(n: usize) -> Vec<Vec<u8>> {
    let naming = naming();
    let committed_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    (0..n)
        .map(|i| {
            let transition = if i % 2 == 0 {
                Transition::Arrived
            } else {
                Transition::Departed
            };
            let draft = custody_draft(transition);
            StoredRecord::V1(RecordV1 {
                topic: draft.topic(&naming),
                payload: draft.render(&naming, STREAM, 1_000_000 + i as u64, None),
                committed_at_ms,
            })
            .encode()
        })
        .collect()
}

/// A scratch directory on the same disk as `target/`, never tmpfs: an fsync
/// must cost what it costs.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("spool-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch directory under target/tmp")
}

/// `Store::append`: one durable commit (one fsync) per batch, events/s.
fn spool_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool/append");
    for batch in [512usize, 1] {
        let dir = scratch();
        let store = Store::open(&dir.path().join("spool.redb")).expect("open spool");
        let records = records(batch);
        let mut next_seq = 1;
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch {batch}"), |b| {
            b.iter(|| {
                store.append(next_seq, &records, &[0; 32]).expect("append");
                next_seq += batch as u64;
            })
        });
    }
    g.finish();
}

/// Bytes per event on disk and as `spool.max_bytes` counts them, after
/// appending `n` events in group commits of 512 (a backlog during an outage).
fn spool_footprint(n: usize) {
    let dir = scratch();
    let path = dir.path().join("spool.redb");
    let store = Store::open(&path).expect("open spool");
    let batch = records(512);
    let empty = file_size(&path);
    let mut seq = 1;
    while (seq as usize) <= n {
        store.append(seq, &batch, &[0; 32]).expect("append");
        seq += batch.len() as u64;
    }
    let events = seq - 1;
    let file = file_size(&path);
    let logical = store.bytes().expect("bytes");
    let record = batch.iter().map(Vec::len).sum::<usize>() as f64 / batch.len() as f64;
    println!("spool/bytes_per_event ({events} events spooled, group commits of 512)");
    println!("  encoded record (topic + JSON payload + postcard envelope): {record:.0} B");
    println!(
        "  Store::bytes() (what spool.max_bytes counts):            {:.0} B/event",
        logical as f64 / events as f64
    );
    println!(
        "  file size: {:.1} MiB (empty spool {} KiB):             {:.0} B/event",
        file as f64 / (1 << 20) as f64,
        empty >> 10,
        (file - empty) as f64 / events as f64
    );
    // After the broker took everything, the file keeps its size (free pages
    // are reused, not returned) but holds no events.
    store.delete_below(seq).expect("delete");
    store.sync().expect("sync");
    println!(
        "  after delivery: Store::bytes() {} B, file {:.1} MiB",
        store.bytes().expect("bytes"),
        file_size(&path) as f64 / (1 << 20) as f64
    );
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    decode(&mut c);
    identity(&mut c);
    presence(&mut c);
    render(&mut c);
    pipeline(&mut c);
    spool_append(&mut c);
    // Not a timing: only when no filter is given or it selects the spool.
    if filter().is_none_or(|f| "spool/bytes_per_event".contains(&f)) {
        spool_footprint(100_000);
    }
    c.final_summary();
}

/// The benchmark name filter on the command line, if any: the first
/// positional argument that is not the value of an option.
fn filter() -> Option<String> {
    const FLAGS: [&str; 6] = [
        "--bench",
        "--noplot",
        "--quick",
        "--verbose",
        "--list",
        "--exact",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().enumerate().find_map(|(i, a)| {
        let option_value = i > 0
            && args[i - 1].starts_with("--")
            && !args[i - 1].contains('=')
            && !FLAGS.contains(&args[i - 1].as_str());
        (!a.starts_with('-') && !option_value).then(|| a.clone())
    })
}
