//! `custodyd devices`: what is plugged in, named the way the configuration
//! wants it.
//!
//! A technician at a door has a reader and a scanner in a USB hub and needs
//! their `path`s. The kernel's names (`/dev/ttyUSB0`, `/dev/input/event3`)
//! follow plug order and change after a re-plug or a reboot; the names udev
//! derives from vendor, product and serial number (`/dev/serial/by-id/...`,
//! `/dev/input/by-id/...`, or `/dev/custodyd/...` from our own rules) do not.
//! So this lists each device node with the links that point at it, best
//! first, and prints the line to paste.
//!
//! Everything is read below a root directory, `/` in production, so the tests
//! build a fake `/dev` and `/sys` (real symlinks, as udev makes them).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Link directories, best first: the first link found for a node is the one
/// suggested for the configuration.
const LINK_DIRS: [&str; 3] = ["dev/custodyd", "dev/serial/by-id", "dev/input/by-id"];

/// Kernel names of the serial ports readers sit on: USB-serial adapters,
/// CDC-ACM devices, the Pi's PL011 UARTs. The Pi's mini UART (`ttyS0`) is
/// found through `/dev/serial0`, as `ttyS*` on other machines are mostly
/// legacy ports with nothing behind them.
const SERIAL_NODES: [&str; 3] = ["ttyUSB", "ttyACM", "ttyAMA"];

#[derive(Debug, Default, PartialEq)]
pub struct Inventory {
    pub serial: Vec<Port>,
    /// Input devices with a keyboard interface (`*-event-kbd`): HID barcode
    /// scanners, and keyboards, which look the same to the kernel.
    pub scanners: Vec<Port>,
    pub gpiochips: Vec<GpioChip>,
}

/// A serial port or input device.
#[derive(Debug, PartialEq)]
pub struct Port {
    /// The kernel's node, e.g. `/dev/ttyUSB0`.
    pub node: PathBuf,
    /// Stable names that point at `node`, best first.
    pub links: Vec<PathBuf>,
    /// What the device calls itself (input devices only).
    pub name: Option<String>,
    /// The USB device it belongs to, for a udev rule; none for a UART.
    pub usb: Option<UsbId>,
}

/// What a udev rule matches a USB reader by (`udevadm info -a` shows the
/// same attributes).
#[derive(Debug, PartialEq)]
pub struct UsbId {
    pub vendor: String,
    pub product: String,
    /// Absent on adapters without one (CH340), and useless where every
    /// board says the same ("0001"): then the port is matched instead.
    pub serial: Option<String>,
    /// The USB port path (`1-1.3`), udev's `KERNELS`.
    pub port: String,
}

impl Port {
    /// What to put in a reader's `path`.
    pub fn config_path(&self) -> &Path {
        self.links.first().unwrap_or(&self.node)
    }
}

#[derive(Debug, PartialEq)]
pub struct GpioChip {
    pub node: PathBuf,
    /// The driver's label (`pinctrl-bcm2711`, `pinctrl-rp1`): on a Pi 5
    /// the header's pins are not on every kernel's `gpiochip0`.
    pub label: Option<String>,
    pub lines: Option<u32>,
}

/// Looks for devices below `root` (`/` on a real system). Unreadable or
/// missing directories are simply empty: a Pi without a scanner has no
/// `/dev/input/by-id`.
pub fn scan(root: &Path) -> Inventory {
    let mut serial = BTreeMap::new();
    let mut scanners = BTreeMap::new();
    let mut gpiochips = Vec::new();
    for name in entries(&root.join("dev")) {
        let node = Path::new("/dev").join(&name);
        if is_numbered(&name, &SERIAL_NODES) {
            serial.insert(node.clone(), new_port(node));
        } else if is_numbered(&name, &["gpiochip"]) {
            gpiochips.push(gpio_chip(root, &name));
        }
    }
    let links = LINK_DIRS
        .iter()
        .map(|dir| (*dir, entries(&root.join(dir))))
        .chain([("dev", entries(&root.join("dev")))]);
    for (dir, names) in links {
        for name in names {
            if dir == "dev/input/by-id" && !name.ends_with("-event-kbd")
                || dir == "dev" && !is_numbered(&name, &["serial"])
            {
                continue;
            }
            let link = Path::new("/").join(dir).join(&name);
            // A link to a node that is gone is stale (udev removes both).
            let Some(node) = link_target(root, &link)
                .filter(|node| node.strip_prefix("/").is_ok_and(|n| root.join(n).exists()))
            else {
                continue;
            };
            let ports = if node.starts_with("/dev/input") {
                &mut scanners
            } else if file_name(&node).starts_with("tty") {
                &mut serial
            } else {
                continue;
            };
            ports
                .entry(node.clone())
                .or_insert_with(|| new_port(node))
                .links
                .push(link);
        }
    }
    let scanners = scanners
        .into_values()
        .map(|mut port| {
            let sys = root.join("sys/class/input").join(file_name(&port.node));
            port.name = read_trimmed(&sys.join("device/name"));
            port.usb = usb_id(&sys);
            port
        })
        .collect();
    let serial = serial
        .into_values()
        .map(|mut port| {
            port.usb = usb_id(&root.join("sys/class/tty").join(file_name(&port.node)));
            port
        })
        .collect();
    Inventory {
        serial,
        scanners,
        gpiochips,
    }
}

/// The USB device above a class device (`/sys/class/tty/ttyUSB0`): the
/// first directory up from its `device` that has an `idVendor`, as udev's
/// `ATTRS{}` matching walks.
fn usb_id(class_dir: &Path) -> Option<UsbId> {
    let mut dir = fs::canonicalize(class_dir.join("device")).ok()?;
    loop {
        if let Some(vendor) = read_trimmed(&dir.join("idVendor")) {
            return Some(UsbId {
                vendor,
                product: read_trimmed(&dir.join("idProduct"))?,
                serial: read_trimmed(&dir.join("serial")),
                port: file_name(&dir).to_owned(),
            });
        }
        if !dir.pop() || dir.parent().is_none() {
            return None;
        }
    }
}

fn new_port(node: PathBuf) -> Port {
    Port {
        node,
        links: Vec::new(),
        name: None,
        usb: None,
    }
}

/// `name` is one of `prefixes` followed by a number (`ttyUSB0`, not `ttyUSB`).
fn is_numbered(name: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The names in `dir`, sorted; none if it cannot be read.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// Where the symlink `link` (a path on the target system) points, as a path on
/// the target system: udev's links are relative (`../../ttyUSB0`), and are
/// resolved here by name, so a fake tree resolves as the real one does.
fn link_target(root: &Path, link: &Path) -> Option<PathBuf> {
    let target = fs::read_link(root.join(link.strip_prefix("/").ok()?)).ok()?;
    let mut resolved = PathBuf::from("/");
    for part in link.parent()?.join(target).components() {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(part) => resolved.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(resolved)
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn gpio_chip(root: &Path, name: &str) -> GpioChip {
    let node = Path::new("/dev").join(name);
    let (label, lines) = chip_info(&root.join("dev").join(name))
        .or_else(|| legacy_sysfs_info(root, name))
        .map_or((None, None), |(label, lines)| (Some(label), Some(lines)));
    GpioChip { node, label, lines }
}

/// Label and line count from the chip itself, as `gpiodetect` asks it; needs
/// read access to the node (the `gpio` group).
fn chip_info(node: &Path) -> Option<(String, u32)> {
    let info = gpiocdev::Chip::from_path(node).ok()?.info().ok()?;
    Some((info.label, info.num_lines))
}

/// Label and line count from the legacy `/sys/class/gpio/gpiochipBASE`
/// directories (numbered by first GPIO, not by chip), for a node that cannot
/// be opened: the one whose `device` is the parent of the chip's own device
/// directory `/sys/bus/gpio/devices/gpiochipN`.
fn legacy_sysfs_info(root: &Path, name: &str) -> Option<(String, u32)> {
    let chip = fs::canonicalize(root.join("sys/bus/gpio/devices").join(name)).ok()?;
    let parent = chip.parent()?;
    let class = root.join("sys/class/gpio");
    entries(&class)
        .into_iter()
        .map(|entry| class.join(entry))
        .find(|dir| fs::canonicalize(dir.join("device")).is_ok_and(|d| d == parent))
        .and_then(|dir| {
            let label = read_trimmed(&dir.join("label"))?;
            let lines = read_trimmed(&dir.join("ngpio"))?.parse().ok()?;
            Some((label, lines))
        })
}

/// Where a site's own reader rules go (the package installs none).
const RULES_FILE: &str = "/etc/udev/rules.d/99-custodyd-readers.rules";

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Serial ports (readers with kind = \"serial\"):")?;
        ports(f, &self.serial, Kind::Serial)?;
        writeln!(
            f,
            "\nKeyboard-like input devices: HID barcode scanners (kind = \"hid\"), and keyboards:"
        )?;
        ports(f, &self.scanners, Kind::Scanner)?;
        if self
            .serial
            .iter()
            .chain(&self.scanners)
            .any(|p| p.usb.is_some())
        {
            writeln!(
                f,
                "\nA \"udev:\" line, pasted into {RULES_FILE} (then `udevadm control --reload && \
                 udevadm trigger`), names that device /dev/custodyd/<name> by its USB identity; \
                 rename it to the reader. Examples: /usr/share/doc/custodyd/examples/."
            )?;
        }
        writeln!(f, "\nGPIO chips:")?;
        if self.gpiochips.is_empty() {
            writeln!(f, "  none found")?;
        }
        for chip in &self.gpiochips {
            write!(f, "  {}", chip.node.display())?;
            if let Some(label) = &chip.label {
                write!(f, "  {label}")?;
            }
            if let Some(lines) = chip.lines {
                write!(f, ", {lines} lines")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Serial,
    Scanner,
}

/// A udev rule naming this device `/dev/custodyd/<name>`, matched by its
/// USB vendor, product and serial number, or by its USB port where it has
/// no serial number (see the examples file for why).
fn udev_rule(usb: &UsbId, kind: Kind, name: &str) -> String {
    let device = match kind {
        Kind::Serial => r#"SUBSYSTEM=="tty""#.to_owned(),
        // Only the keyboard node: a scanner's mouse interface is not one.
        Kind::Scanner => {
            r#"SUBSYSTEM=="input", KERNEL=="event*", ENV{ID_INPUT_KEYBOARD}=="1""#.to_owned()
        }
    };
    let unit = match &usb.serial {
        Some(serial) => format!(r#"ATTRS{{serial}}=="{serial}""#),
        None => format!(r#"KERNELS=="{}""#, usb.port),
    };
    let group = match kind {
        Kind::Serial => "dialout",
        Kind::Scanner => "input",
    };
    format!(
        r#"{device}, ATTRS{{idVendor}}=="{}", ATTRS{{idProduct}}=="{}", {unit}, SYMLINK+="custodyd/{name}", GROUP="{group}", MODE="0660""#,
        usb.vendor, usb.product
    )
}

fn ports(f: &mut fmt::Formatter<'_>, ports: &[Port], kind: Kind) -> fmt::Result {
    if ports.is_empty() {
        return writeln!(f, "  none found");
    }
    let prefix = match kind {
        Kind::Serial => "reader",
        Kind::Scanner => "scanner",
    };
    for (i, port) in ports.iter().enumerate() {
        write!(f, "  {}", port.node.display())?;
        if let Some(name) = &port.name {
            write!(f, "  \"{name}\"")?;
        }
        if port.links.is_empty() {
            write!(
                f,
                "  (no stable name: the number may change on re-plugging)"
            )?;
        }
        writeln!(f)?;
        // Debug-quoting makes it a valid TOML string.
        writeln!(
            f,
            "      path = {:?}",
            port.config_path().display().to_string()
        )?;
        for other in port.links.iter().skip(1) {
            writeln!(f, "      also {}", other.display())?;
        }
        if let Some(usb) = &port.usb {
            let name = format!("{prefix}{}", i + 1);
            writeln!(f, "      udev: {}", udev_rule(usb, kind, &name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
