//! The custody log's test vectors (tests/vectors/custody-log/), which a
//! central team uses to test its own verifier.
//!
//! They are made here, from a fixed key and fixed events, by the same code
//! that renders, chains and signs in the daemon; the test fails if what it
//! makes differs from the files by one byte (the formats are a contract).
//! `CUSTODYD_WRITE_VECTORS=1` writes them instead, e.g. for a new vector.
//!
//! Then they are checked the way central would, with nothing of ours: SHA-256
//! from the `sha2` crate, the signed note with `signed_note` (a port of
//! golang.org/x/mod/sumdb/note), every field of the note recomputed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use signed_note::{Note, StandardVerifier, Verifier, VerifierList};

use custodyd::audit::{chain, checkpoint, note, DeviceKey};
use custodyd::custody::{Alarm, Body, Context, Custody, Draft, Transition};
use custodyd::decode::Source;
use custodyd::identity::Asset;
use custodyd::topic::Naming;

/// The numbering the vector events belong to (see `spool::recovery`).
const STREAM: &str = "01JE0000000000000000000000";
const SITE: &str = "reno-1";
const GATEWAY: &str = "dock-pi-03";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/custody-log")
}

fn naming() -> Naming {
    Naming {
        root: "itad".into(),
        site: SITE.into(),
        gateway: GATEWAY.into(),
    }
}

/// The vector key: a test key, published with the vectors; never a gateway's.
fn key(pkcs8: &[u8]) -> DeviceKey {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("device.key"), pkcs8).unwrap();
    DeviceKey::load(tmp.path()).unwrap()
}

fn drafts() -> Vec<Draft> {
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_796_550_000_000 + ms);
    let scanned = |id: &str, ms: u64| {
        Body::Custody(Custody {
            transition: Transition::Scanned,
            asset: Asset {
                id: id.into(),
                raw: id.into(),
                source: Source::Barcode,
            },
            reader: "station1-scan".into(),
            reads: 1,
            first_seen: at(ms),
            last_seen: at(ms),
            antennas: vec![],
            rssi_max: None,
            context: Context::default(),
            crossing: None,
        })
    };
    let offline = Body::Alarm(Alarm {
        kind: "reader_offline",
        asset: None,
        detail: "Reader door1-em has been down for 30s.".into(),
    });
    let events = [
        (
            "01KBQZ7M0G3ZD8V6X2W1N5R4T7",
            "scan-station-1",
            0,
            scanned("SN-1001", 0),
        ),
        ("01KBQZ7M8Y6J2K4P9C0F3H5Q8S", "dock-door-1", 250, offline),
        (
            "01KBQZ7MHE1A7B3D5F9G2J4K6M",
            "scan-station-1",
            900,
            scanned("SN-1002", 900),
        ),
    ];
    events
        .into_iter()
        .map(|(id, location, ms, body)| {
            let mut draft = Draft::new(location.into(), at(ms), body);
            draft.event_id = id.parse().unwrap();
            draft.clock_synced = true;
            draft
        })
        .collect()
}

/// Every vector file's name and contents, made from the key.
fn make(pkcs8: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let key = key(pkcs8);
    let naming = naming();
    let mut capture = String::new();
    let mut hashes = String::new();
    let mut head: Option<chain::Digest> = None;
    let drafts = drafts();
    for (seq, draft) in (1..).zip(&drafts) {
        let prev = head.as_ref().map(chain::hex);
        let payload = draft.render(&naming, STREAM, seq, prev.as_deref());
        let hash = chain::hash(&payload);
        capture += &format!(
            "{} {}\n",
            draft.topic(&naming),
            String::from_utf8(payload).unwrap()
        );
        hashes += &format!("{seq} {}\n", chain::hex(&hash));
        head = Some(hash);
    }
    let last = drafts.len() as u64;
    let cp = checkpoint::sign(&key, SITE, GATEWAY, last, &head.unwrap());
    let cp = String::from_utf8(cp).unwrap();
    capture += &format!("{} {cp}\n", naming.checkpoint());
    let name = checkpoint::key_name(SITE, GATEWAY);
    vec![
        (
            "device-key.pkcs8.b64",
            (BASE64.encode(pkcs8) + "\n").into_bytes(),
        ),
        ("public-key.b64", (key.public_base64() + "\n").into_bytes()),
        (
            "verifier-key.txt",
            (note::verifier_key(&name, &key.public()) + "\n").into_bytes(),
        ),
        ("capture.txt", capture.into_bytes()),
        ("event-hashes.txt", hashes.into_bytes()),
        ("checkpoint.json", (cp + "\n").into_bytes()),
    ]
}

fn read(name: &str) -> String {
    fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_vectors_are_what_the_daemon_makes_byte_for_byte() {
    let write = std::env::var_os("CUSTODYD_WRITE_VECTORS").is_some();
    let pkcs8 = match fs::read_to_string(dir().join("device-key.pkcs8.b64")) {
        Ok(b64) => BASE64.decode(b64.trim()).unwrap(),
        Err(_) if write => {
            let rng = ring::rand::SystemRandom::new();
            let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            doc.as_ref().to_vec()
        }
        Err(e) => panic!("device-key.pkcs8.b64: {e}"),
    };
    for (name, contents) in make(&pkcs8) {
        let path = dir().join(name);
        if write {
            fs::create_dir_all(dir()).unwrap();
            fs::write(&path, &contents).unwrap();
        }
        let committed = fs::read(&path).unwrap_or_default();
        assert!(
            committed == contents,
            "{name} differs from what the code makes now: a format changed\n{}",
            String::from_utf8_lossy(&contents)
        );
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_vectors_verify_with_an_independent_implementation() {
    let capture = read("capture.txt");
    let public = BASE64.decode(read("public-key.b64").trim()).unwrap();
    assert_eq!(public.len(), 32);
    let name = format!("{SITE}/{GATEWAY}");

    // The chain: each prev is the SHA-256 of the previous payload's bytes.
    let mut prev: Option<[u8; 32]> = None;
    let mut hashes = String::new();
    let mut events = 0;
    let mut checkpoint = None;
    for line in capture.lines() {
        let (topic, payload) = line.split_once(' ').unwrap();
        let json: serde_json::Value = serde_json::from_str(payload).unwrap();
        if topic.ends_with("/checkpoint") {
            checkpoint = Some(json);
            continue;
        }
        events += 1;
        assert_eq!(json["seq"], events);
        match prev {
            None => assert!(json["prev"].is_null(), "seq 1 has a null prev"),
            Some(p) => assert_eq!(json["prev"], hex(&p), "seq {events}"),
        }
        let hash = sha256(payload.as_bytes());
        hashes += &format!("{events} {}\n", hex(&hash));
        prev = Some(hash);
    }
    assert_eq!(events, 3);
    assert_eq!(hashes, read("event-hashes.txt"));

    // The checkpoint: seq and head of the last event, its note exactly as the
    // contract lays it out, signed by the key.
    let cp = checkpoint.expect("a checkpoint in the capture");
    assert_eq!(
        cp,
        serde_json::from_str::<serde_json::Value>(&read("checkpoint.json")).unwrap()
    );
    assert_eq!(cp["schema"], "custodyd.checkpoint.v1");
    assert_eq!(cp["seq"], 3);
    let head = prev.unwrap();
    assert_eq!(cp["head"], hex(&head));
    let text = format!("custodyd/{name}\n3\n{}\n", BASE64.encode(head));
    let note_text = cp["note"].as_str().unwrap();
    let (signed, sig_line) = note_text.split_once("\n\n").unwrap();
    assert_eq!(format!("{signed}\n"), text);
    let sig_line = sig_line.strip_suffix('\n').unwrap();
    let sig = sig_line
        .strip_prefix(&format!("\u{2014} {name} "))
        .expect("the signature line starts with an em dash and the key name");
    let sig = BASE64.decode(sig).unwrap();
    assert_eq!(sig.len(), 4 + 64);
    let mut keyed = format!("{name}\n").into_bytes();
    keyed.push(0x01);
    keyed.extend_from_slice(&public);
    assert_eq!(sig[..4], sha256(&keyed)[..4], "the key hash");

    // The note with signed_note, from the verifier key we publish.
    let vkey = read("verifier-key.txt");
    let verifier = StandardVerifier::new(vkey.trim()).unwrap();
    assert_eq!(verifier.name(), name);
    assert_eq!(verifier.key_id().to_be_bytes(), sig[..4]);
    let note = Note::from_bytes(note_text.as_bytes()).unwrap();
    let (verified, _) = note
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(note.text(), text.as_bytes());

    // And a tampered note does not.
    let tampered = note_text.replacen("\n3\n", "\n4\n", 1);
    let verifier = StandardVerifier::new(vkey.trim()).unwrap();
    let rejected = Note::from_bytes(tampered.as_bytes())
        .unwrap()
        .verify(&VerifierList::new(vec![Box::new(verifier)]));
    assert!(rejected.is_err());

    // Our own verifier agrees.
    let key: [u8; 32] = public.try_into().unwrap();
    let report = custodyd::audit::verify::verify(
        &[("capture.txt".into(), capture.into_bytes())],
        &key,
        None,
    )
    .unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.findings.checkpoints, [3]);
}
