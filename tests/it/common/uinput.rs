//! A virtual USB keyboard-wedge scanner through `/dev/uinput`.
//!
//! The kernel makes it a real input device (`/dev/input/eventN`), so the
//! daemon opens, grabs and reads it exactly as it would a scanner. A symlink
//! in a tempdir stands in for the stable `/dev/input/by-id/...` name and
//! survives unplug/replug, as [`Pty`](super::Pty) does for serial readers.
//!
//! Needs `/dev/uinput` (the `uinput` module) and read access to
//! `/dev/input/event*`; [`VirtualScanner::plug_in`] says why it cannot run
//! where they are missing, so the test can skip saying so.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evdev::uinput::VirtualDevice;
use evdev::{AttributeSet, Device, EventType, InputEvent, KeyCode};
use tempfile::TempDir;

use super::PATIENCE;

pub struct VirtualScanner {
    /// Holds the symlink; removed with the scanner.
    _dir: TempDir,
    link: PathBuf,
    /// `None` while unplugged.
    device: Option<Plugged>,
}

struct Plugged {
    uinput: VirtualDevice,
    node: PathBuf,
}

impl VirtualScanner {
    /// A new virtual keyboard behind `<tempdir>/usb-Virtual_Scanner-event-kbd`,
    /// or why there cannot be one here.
    pub fn plug_in() -> Result<Self, String> {
        if !Path::new("/dev/uinput").exists() {
            return Err("/dev/uinput is not available".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("custodyd-hid-")
            .tempdir()
            .expect("create scanner tempdir");
        let link = dir.path().join("usb-Virtual_Scanner-event-kbd");
        let mut scanner = VirtualScanner {
            _dir: dir,
            link,
            device: None,
        };
        scanner.replug()?;
        Ok(scanner)
    }

    /// The stable device path to put in the daemon's config.
    pub fn path(&self) -> &Path {
        &self.link
    }

    /// The current `/dev/input/eventN` behind [`VirtualScanner::path`].
    pub fn node(&self) -> &Path {
        &self.plugged().node
    }

    /// Pulls the cable: destroys the input device (the daemon's reads fail
    /// with ENODEV) and removes the symlink.
    pub fn unplug(&mut self) {
        self.device = None;
        let _ = std::fs::remove_file(&self.link);
    }

    /// Plugs a new scanner in at the same path (its eventN may differ).
    pub fn replug(&mut self) -> Result<(), String> {
        self.unplug();
        let mut keys = AttributeSet::<KeyCode>::new();
        for code in 1..128 {
            keys.insert(KeyCode(code));
        }
        let mut uinput = VirtualDevice::builder()
            .and_then(|b| b.name("Virtual Scanner").with_keys(&keys))
            .and_then(|b| b.build())
            .map_err(|e| format!("cannot create a keyboard through /dev/uinput: {e}"))?;
        let node = wait_for_node(&mut uinput)?;
        // The daemon runs as this user: it can read the node if we can.
        Device::open(&node).map_err(|e| format!("cannot read {}: {e}", node.display()))?;
        symlink(&node, &self.link).expect("create scanner symlink");
        self.device = Some(Plugged { uinput, node });
        Ok(())
    }

    /// Types `text` as a US-layout keyboard wedge does (Shift around upper
    /// case and shifted symbols, Ctrl+] for GS), then `end`.
    pub fn type_scan(&mut self, text: &str, end: KeyCode) {
        for c in text.chars() {
            let (key, modifier) = us_key(c);
            match modifier {
                Some(modifier) => self.with(modifier, key),
                None => self.tap(key),
            }
        }
        self.tap(end);
    }

    /// Whether a second program can grab the device now.
    pub fn can_grab(&self) -> bool {
        let mut other = Device::open(self.node()).expect("open the scanner's event node");
        other.grab().is_ok()
    }

    fn tap(&mut self, key: KeyCode) {
        self.key(key, 1);
        self.key(key, 0);
    }

    fn with(&mut self, modifier: KeyCode, key: KeyCode) {
        self.key(modifier, 1);
        self.tap(key);
        self.key(modifier, 0);
    }

    fn key(&mut self, key: KeyCode, value: i32) {
        let event = InputEvent::new(EventType::KEY.0, key.code(), value);
        let device = &mut self
            .device
            .as_mut()
            .expect("the scanner is unplugged")
            .uinput;
        device.emit(&[event]).expect("emit a key event");
    }

    fn plugged(&self) -> &Plugged {
        self.device.as_ref().expect("the scanner is unplugged")
    }
}

/// The `/dev/input/eventN` of a new virtual device, once it exists.
fn wait_for_node(uinput: &mut VirtualDevice) -> Result<PathBuf, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let nodes = uinput
            .enumerate_dev_nodes_blocking()
            .map_err(|e| format!("cannot list the virtual keyboard's nodes: {e}"))?;
        if let Some(node) = nodes.flatten().find(|node| node.exists()) {
            return Ok(node);
        }
        if Instant::now() >= deadline {
            return Err("the virtual keyboard's /dev/input/event* node never appeared".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The key (and modifier) that types `c` on a US layout. Written from the
/// kernel's key names, independently of the daemon's keymap.
fn us_key(c: char) -> (KeyCode, Option<KeyCode>) {
    const SHIFT: Option<KeyCode> = Some(KeyCode::KEY_LEFTSHIFT);
    const LETTERS: [KeyCode; 26] = [
        KeyCode::KEY_A,
        KeyCode::KEY_B,
        KeyCode::KEY_C,
        KeyCode::KEY_D,
        KeyCode::KEY_E,
        KeyCode::KEY_F,
        KeyCode::KEY_G,
        KeyCode::KEY_H,
        KeyCode::KEY_I,
        KeyCode::KEY_J,
        KeyCode::KEY_K,
        KeyCode::KEY_L,
        KeyCode::KEY_M,
        KeyCode::KEY_N,
        KeyCode::KEY_O,
        KeyCode::KEY_P,
        KeyCode::KEY_Q,
        KeyCode::KEY_R,
        KeyCode::KEY_S,
        KeyCode::KEY_T,
        KeyCode::KEY_U,
        KeyCode::KEY_V,
        KeyCode::KEY_W,
        KeyCode::KEY_X,
        KeyCode::KEY_Y,
        KeyCode::KEY_Z,
    ];
    const DIGITS: [KeyCode; 10] = [
        KeyCode::KEY_0,
        KeyCode::KEY_1,
        KeyCode::KEY_2,
        KeyCode::KEY_3,
        KeyCode::KEY_4,
        KeyCode::KEY_5,
        KeyCode::KEY_6,
        KeyCode::KEY_7,
        KeyCode::KEY_8,
        KeyCode::KEY_9,
    ];
    match c {
        'a'..='z' => (LETTERS[c as usize - 'a' as usize], None),
        'A'..='Z' => (LETTERS[c as usize - 'A' as usize], SHIFT),
        '0'..='9' => (DIGITS[c as usize - '0' as usize], None),
        '/' => (KeyCode::KEY_SLASH, None),
        '-' => (KeyCode::KEY_MINUS, None),
        '#' => (KeyCode::KEY_3, SHIFT),
        '+' => (KeyCode::KEY_EQUAL, SHIFT),
        ']' => (KeyCode::KEY_RIGHTBRACE, None),
        '\u{1d}' => (KeyCode::KEY_RIGHTBRACE, Some(KeyCode::KEY_LEFTCTRL)),
        _ => panic!("no US key for {c:?} in this test helper"),
    }
}
