use super::*;
use std::os::unix::fs::symlink;

const FTDI: &str = "usb-FTDI_FT232R_USB_UART_A10K7QZB-if00-port0";
const SCANNER: &str = "usb-Datalogic_ADC_Inc._Handheld_Barcode_Scanner_S_N_G19J83912-event-kbd";

/// A fake root with what a Pi at a door shows: an FTDI reader (also named
/// by custodyd's udev rule), a CP210x without a by-id link, the Pi's
/// UARTs, a scanner with its mouse interface, and the GPIO chip.
fn pi() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let mkdir = |p: &str| fs::create_dir_all(r.join(p)).unwrap();
    let touch = |p: &str| fs::write(r.join(p), "").unwrap();
    let link = |target: &str, p: &str| symlink(target, r.join(p)).unwrap();
    let write = |p: &str, text: &str| fs::write(r.join(p), text).unwrap();

    for dir in [
        "dev/serial/by-id",
        "dev/input/by-id",
        "dev/custodyd",
        "sys/class/input/event3/device",
        "sys/devices/platform/soc/fe200000.gpio/gpiochip0",
        "sys/bus/gpio/devices",
        "sys/class/gpio/gpiochip512",
    ] {
        mkdir(dir);
    }
    for node in [
        "dev/ttyUSB0",
        "dev/ttyUSB1",
        "dev/ttyAMA0",
        "dev/ttyS0",
        "dev/ttyS1",
        "dev/tty1",
        "dev/input/event3",
        "dev/input/event4",
        "dev/gpiochip0",
    ] {
        touch(node);
    }
    link("../../ttyUSB0", &format!("dev/serial/by-id/{FTDI}"));
    link("../ttyUSB0", "dev/custodyd/door1-em");
    link("../event3", &format!("dev/input/by-id/{SCANNER}"));
    link(
        "../event4",
        "dev/input/by-id/usb-Datalogic_ADC_Inc._Handheld_Barcode_Scanner-event-mouse",
    );
    link("ttyS0", "dev/serial0");
    link("ttyAMA0", "dev/serial1");
    write(
        "sys/class/input/event3/device/name",
        "Datalogic ADC Inc. Handheld Barcode Scanner\n",
    );
    link(
        "../../../devices/platform/soc/fe200000.gpio/gpiochip0",
        "sys/bus/gpio/devices/gpiochip0",
    );
    link(
        "../../../devices/platform/soc/fe200000.gpio",
        "sys/class/gpio/gpiochip512/device",
    );
    write("sys/class/gpio/gpiochip512/label", "pinctrl-bcm2711\n");
    write("sys/class/gpio/gpiochip512/ngpio", "58\n");
    root
}

fn port(node: &str, links: &[&str], name: Option<&str>) -> Port {
    Port {
        node: node.into(),
        links: links.iter().map(PathBuf::from).collect(),
        name: name.map(str::to_owned),
        usb: None,
    }
}

#[test]
fn finds_each_device_with_its_stable_names_best_first() {
    let root = pi();
    let found = scan(root.path());
    let by_id = format!("/dev/serial/by-id/{FTDI}");
    assert_eq!(
        found.serial,
        [
            port("/dev/ttyAMA0", &["/dev/serial1"], None),
            port("/dev/ttyS0", &["/dev/serial0"], None),
            port("/dev/ttyUSB0", &["/dev/custodyd/door1-em", &by_id], None),
            port("/dev/ttyUSB1", &[], None),
        ]
    );
    assert_eq!(
        found.scanners,
        [port(
            "/dev/input/event3",
            &[&format!("/dev/input/by-id/{SCANNER}")],
            Some("Datalogic ADC Inc. Handheld Barcode Scanner"),
        )],
        "keyboard interfaces only, not the mouse"
    );
    assert_eq!(
        found.gpiochips,
        [GpioChip {
            node: "/dev/gpiochip0".into(),
            label: Some("pinctrl-bcm2711".into()),
            lines: Some(58),
        }]
    );
}

#[test]
fn prints_a_config_line_per_device() {
    let root = pi();
    let text = scan(root.path()).to_string();
    for expected in [
        "  /dev/ttyUSB0\n      path = \"/dev/custodyd/door1-em\"\n",
        &format!("      also /dev/serial/by-id/{FTDI}\n"),
        "  /dev/ttyUSB1  (no stable name: the number may change on re-plugging)\n      path = \"/dev/ttyUSB1\"\n",
        "      path = \"/dev/serial0\"\n",
        &format!("  /dev/input/event3  \"Datalogic ADC Inc. Handheld Barcode Scanner\"\n      path = \"/dev/input/by-id/{SCANNER}\"\n"),
        "  /dev/gpiochip0  pinctrl-bcm2711, 58 lines\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Every suggested path parses as the TOML the config file is.
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with("path = "))
    {
        let table = toml::de::DeTable::parse(line.trim()).unwrap().into_inner();
        let (key, value) = table.iter().next().unwrap();
        assert_eq!(key.get_ref(), "path");
        let toml::de::DeValue::String(path) = value.get_ref() else {
            panic!("not a string: {line}");
        };
        assert!(path.starts_with("/dev/"), "{line}");
    }
}

#[test]
fn an_empty_machine_says_so_in_every_section() {
    let root = tempfile::tempdir().unwrap();
    let found = scan(root.path());
    assert_eq!(found, Inventory::default());
    assert_eq!(found.to_string().matches("  none found\n").count(), 3);
}

#[test]
fn prints_a_udev_rule_for_each_usb_reader() {
    let root = pi();
    let r = root.path();
    // The sysfs of an FTDI adapter with a serial number on port 1-1.2
    // and a CH340 without one on 1-1.3, as the kernel lays them out.
    for (usb_port, vendor, product, serial, tty) in [
        ("1-1.2", "0403", "6001", Some("A10K7QZB"), "ttyUSB0"),
        ("1-1.3", "1a86", "7523", None, "ttyUSB1"),
    ] {
        let usb = r.join("sys/devices/usb1/1-1").join(usb_port);
        let device = usb.join(format!("{usb_port}:1.0")).join(tty);
        fs::create_dir_all(&device).unwrap();
        fs::write(usb.join("idVendor"), format!("{vendor}\n")).unwrap();
        fs::write(usb.join("idProduct"), format!("{product}\n")).unwrap();
        if let Some(serial) = serial {
            fs::write(usb.join("serial"), format!("{serial}\n")).unwrap();
        }
        let class = r.join("sys/class/tty").join(tty);
        fs::create_dir_all(&class).unwrap();
        symlink(&device, class.join("device")).unwrap();
    }
    let text = scan(r).to_string();
    for expected in [
        r#"      udev: SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", ATTRS{serial}=="A10K7QZB", SYMLINK+="custodyd/reader3", GROUP="dialout", MODE="0660""#,
        r#"      udev: SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", KERNELS=="1-1.3", SYMLINK+="custodyd/reader4", GROUP="dialout", MODE="0660""#,
        RULES_FILE,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(
        text.matches("udev: ").count(),
        2,
        "the UARTs are not USB:\n{text}"
    );
}

#[test]
fn absolute_links_resolve_below_the_root_and_stale_ones_are_skipped() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("dev/custodyd")).unwrap();
    fs::write(r.join("dev/ttyACM0"), "").unwrap();
    symlink("/dev/ttyACM0", r.join("dev/custodyd/scan1")).unwrap();
    symlink("../ttyUSB3", r.join("dev/custodyd/gone")).unwrap();
    let found = scan(r);
    assert_eq!(
        found.serial,
        [port("/dev/ttyACM0", &["/dev/custodyd/scan1"], None)]
    );
}
