#!/usr/bin/env python3
"""The host side of scripts/vm-test.sh: boots the guest, feeds its devices,
watches the broker, and runs the scenarios, one PASS/FAIL line each.

Everything the guest sees comes from here: its disk (a copy of the cached
image), a second disk with the .deb, an EM4100 reader behind the USB serial
adapter (a Unix socket QEMU serves), keystrokes on the USB keyboard (QMP), and
a Mosquitto on a free loopback port, reached only through a guestfwd. The
guest is driven through the agent on its second serial port
(scripts/vm/agent.sh). Standard library only.
"""

import argparse
import base64
import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

BROKER_IN_GUEST = "10.0.2.100"
SITE, GATEWAY = "rig", "vm"
TOPICS = f"itad/{SITE}/{GATEWAY}/#"
# The adapter, plugged into the same port with the same serial number every
# time: QEMU's default serial number names the port, and udev's by-id link
# (the reader's configured path) would change with a replug elsewhere, as
# it would for a real adapter.
SERIAL_ADAPTER = {"id": "rfid0", "chardev": "rfid", "bus": "xhci.0", "port": "2", "serial": "RIGEM0001"}
SERIAL_GLOB = "/dev/serial/by-id/usb-QEMU_QEMU_USB_SERIAL_RIGEM0001-*"
KBD_GLOB = "/dev/input/by-id/usb-QEMU_QEMU_USB_Keyboard_*-event-kbd"
# Short enough that a scenario waits seconds, not the defaults' minutes.
WATCHDOG_SEC = 10
OFFLINE_AFTER = "5s"


def die_with_parent():
    """In a child before exec: the kernel kills it when the rig dies, even by
    SIGKILL, where no cleanup of the rig's own runs (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class Fail(Exception):
    """A scenario's failure, with the reason printed after its name."""


def wait_for(what, predicate, timeout, interval=0.5):
    """Polls until predicate() is truthy and returns it, or fails naming what."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Fail(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def connect_unix(path, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise Fail(f"cannot connect to {path}")
            time.sleep(0.2)


class Agent:
    """Runs shell commands in the guest (scripts/vm/agent.sh on ttyS1)."""

    def __init__(self, path):
        self.sock = connect_unix(path, 30)
        self.buf = b""
        self.n = 0

    def _result(self, ident, timeout):
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                parts = line.strip().split(b" ")
                if len(parts) >= 3 and parts[0] == b"RESULT" and parts[1] == ident.encode():
                    out = base64.b64decode(parts[3]) if len(parts) > 3 else b""
                    return int(parts[2]), out.decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise Fail("the guest agent's serial port closed")
            self.buf += data

    def _send(self, cmd):
        self.n += 1
        ident = f"c{self.n}"
        self.sock.sendall(f"{ident} {base64.b64encode(cmd.encode()).decode()}\n".encode())
        return ident

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._result(self._send("true"), 5) is not None:
                return
        raise Fail(f"the guest did not come up within {timeout:.0f}s")

    def run(self, cmd, timeout=120):
        result = self._result(self._send(cmd), timeout)
        if result is None:
            raise Fail(f"guest command timed out: {cmd}")
        return result

    def check(self, cmd, timeout=120):
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            last = out.strip().splitlines()[-3:]
            raise Fail(f"`{cmd}` exited {rc}: {' | '.join(last)}")
        return out

    def close(self):
        self.sock.close()


class Qmp:
    """The QEMU monitor, as JSON (QMP)."""

    def __init__(self, path):
        self.sock = connect_unix(path, 30)
        self.file = self.sock.makefile("rw")
        self.file.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, execute, **arguments):
        msg = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise Fail("QMP closed")
            reply = json.loads(line)
            if "error" in reply:
                raise Fail(f"QMP {execute}: {reply['error'].get('desc')}")
            if "return" in reply:
                return reply["return"]

    def type_text(self, text):
        """Types text and Enter on the USB keyboard, one key press each."""
        for ch in text:
            keys = [key_name(ch)]
            if ch.isupper():
                keys.insert(0, "shift")
            self.cmd("send-key", keys=[{"type": "qcode", "data": k} for k in keys])
            time.sleep(0.05)
        self.cmd("send-key", keys=[{"type": "qcode", "data": "ret"}])

    def close(self):
        self.sock.close()


def key_name(ch):
    if ch.isalnum():
        return ch.lower()
    return {"-": "minus", ".": "dot", " ": "spc"}[ch]


class Broker:
    """A Mosquitto on a free loopback port, and a subscriber recording what
    the gateway publishes."""

    def __init__(self, work):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = os.path.join(work, "mosquitto.conf")
        with open(conf, "w") as f:
            # `user root`: as root, mosquitto would switch to its own user,
            # and a change of credentials clears the parent-death signal
            # that ends it with the rig. It listens on loopback only.
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n")
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.log = open(os.path.join(work, "mosquitto.log"), "w")
        self.proc = subprocess.Popen([mosquitto, "-c", conf], stdout=self.log, stderr=self.log,
                                     preexec_fn=die_with_parent)
        self.messages = []
        self.lock = threading.Lock()
        self.sub = None
        try:
            self._subscribe()
        except Exception:
            self.close()
            raise

    def _subscribe(self):
        deadline = time.monotonic() + 10
        while True:
            self.sub = subprocess.Popen(
                ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
                 "-v", "-t", TOPICS, "-t", "rig/ping"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent)
            time.sleep(0.5)
            if self.sub.poll() is None:
                break
            if time.monotonic() > deadline:
                raise Fail("the host broker did not start")
        threading.Thread(target=self._read, daemon=True).start()
        # The subscription is in place once its own ping comes back.
        wait_for("the broker subscription", lambda: self._ping(), 10, 0.5)

    def _ping(self):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port),
                        "-t", "rig/ping", "-m", "1"], check=False)
        time.sleep(0.2)
        return any(t == "rig/ping" for t, _ in self.snapshot())

    def _read(self):
        for line in self.sub.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            try:
                body = json.loads(payload) if payload else None
            except ValueError:
                body = payload
            with self.lock:
                self.messages.append((topic, body))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def events(self):
        """Spooled events (custody and alarm), in arrival order."""
        return [b for t, b in self.snapshot()
                if isinstance(b, dict) and "seq" in b and ("/custody/" in t or "/alarm/" in t)]

    def custody(self, reader=None):
        return [e for e in self.events()
                if e.get("schema") == "custodyd.custody.v1" and (reader is None or e.get("reader") == reader)]

    def alarms(self, kind):
        return [e for e in self.events() if e.get("kind") == kind]

    def close(self):
        for p in (self.sub, self.proc):
            if p and p.poll() is None:
                p.terminate()
                p.wait()


def check_seq(events):
    """`seq` gap-free from 1 and never reused (a re-delivery repeats the
    event_id, never the seq with another id). Returns the highest seq."""
    by_seq = {}
    for e in events:
        first = by_seq.setdefault(e["seq"], e["event_id"])
        if first != e["event_id"]:
            raise Fail(f"seq {e['seq']} reused: events {first} and {e['event_id']}")
    if not by_seq:
        raise Fail("no events at the broker")
    top = max(by_seq)
    missing = sorted(set(range(1, top + 1)) - set(by_seq))
    if missing:
        raise Fail(f"seq has gaps: {missing[:10]} missing of 1..{top}")
    return top


def drained(broker, timeout):
    """Waits until the events at the broker have stopped changing and their
    seq is whole (what is still spooled arrives late, never out of the
    picture); returns the highest seq, or fails with the last problem."""
    deadline = time.monotonic() + timeout
    last, problem = None, "no events"
    while time.monotonic() < deadline:
        events = broker.events()
        try:
            top = check_seq(events)
            if last == len(events):
                return top
            problem = None
        except Fail as e:
            problem = str(e)
        last = len(events)
        time.sleep(3)
    raise Fail(problem or "events still arriving")


class Reader:
    """The EM4100 reader behind the guest's USB serial adapter: one frame of a
    new tag at a time, while running. QEMU enumerates the adapter once this
    end is connected; it reconnects to each new QEMU."""

    def __init__(self, path):
        self.path = path
        self.sent = []
        self.running = threading.Event()
        self.stop = threading.Event()
        self.n = 0
        self.sock = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @staticmethod
    def frame(tag):
        data = bytes.fromhex(tag)
        checksum = 0
        for b in data:
            checksum ^= b
        return b"\x02" + tag.encode() + f"{checksum:02X}".encode() + b"\x03"

    def _loop(self):
        while not self.stop.is_set():
            if self.sock is None:
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(self.path)
                    self.sock = s
                except OSError:
                    s.close()
                    time.sleep(0.2)
                    continue
            if not self.running.is_set():
                # Idle, but still notice QEMU closing its end (the adapter
                # unplugged, QEMU gone), and reconnect: QEMU attaches the
                # adapter again only once this end is connected.
                readable, _, _ = select.select([self.sock], [], [], 0.1)
                if readable and not self._drain():
                    self.sock.close()
                    self.sock = None
                continue
            self.n += 1
            tag = f"{0x5A00000000 + self.n:010X}"
            try:
                self.sock.sendall(self.frame(tag))
                self.sent.append(tag)
            except OSError:
                self.sock.close()
                self.sock = None
            time.sleep(0.3)

    def _drain(self):
        """Reads what the guest wrote to the port; False once it is closed."""
        try:
            return bool(self.sock.recv(4096))
        except OSError:
            return False

    def close(self):
        self.stop.set()
        self.thread.join()
        if self.sock:
            self.sock.close()


class Vm:
    """One QEMU process on the run's disk; a new one after each power cut."""

    def __init__(self, rig):
        self.rig = rig
        self.proc = None
        self.agent = None
        self.qmp = None
        self.booted_at = None

    def start(self):
        r = self.rig
        for name in ("agent.sock", "qmp.sock", "rfid.sock"):
            path = os.path.join(r.work, name)
            if os.path.exists(path):
                os.unlink(path)
        forwarder = f"socat - TCP:127.0.0.1:{r.broker.port}"
        args = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2",
            "-kernel", os.path.join(r.image, "vmlinuz"),
            "-initrd", os.path.join(r.image, "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyS0 quiet",
            "-drive", f"file={r.disk},if=virtio,format=raw",
            "-drive", f"file={r.payload},if=virtio,format=raw,readonly=on",
            "-display", "none",
            "-serial", f"file:{os.path.join(r.work, 'console-%d.log' % r.boots)}",
            "-chardev", f"socket,id=agent,path={os.path.join(r.work, 'agent.sock')},server=on,wait=off",
            "-serial", "chardev:agent",
            "-nic", f"user,restrict=on,guestfwd=tcp:{BROKER_IN_GUEST}:1883-cmd:{forwarder}",
            "-device", "qemu-xhci,id=xhci",
            "-device", "usb-kbd,id=kbd,bus=xhci.0,port=1",
            "-chardev", f"socket,id=rfid,path={os.path.join(r.work, 'rfid.sock')},server=on,wait=off",
            "-device", "usb-serial," + ",".join(f"{k}={v}" for k, v in SERIAL_ADAPTER.items()),
            "-qmp", f"unix:{os.path.join(r.work, 'qmp.sock')},server=on,wait=off",
        ]
        r.boots += 1
        self.booted_at = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=r.qemu_log, stderr=r.qemu_log, start_new_session=True,
                                     preexec_fn=die_with_parent)
        self.qmp = Qmp(os.path.join(r.work, "qmp.sock"))
        self.agent = Agent(os.path.join(r.work, "agent.sock"))
        self.agent.wait_ready(600)

    def kill(self):
        """The power cut: SIGKILL, so the guest's page cache is simply gone."""
        for c in (self.agent, self.qmp):
            if c:
                c.close()
        self.agent = self.qmp = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


CONFIG = """\
[gateway]
site = "{site}"
name = "{gateway}"

[mqtt]
url = "mqtt://{broker}:1883"
reconnect_max = "1s"

[[locations]]
name = "scan-1"
kind = "scan_station"

[[readers]]
name = "{rfid_name}"
location = "scan-1"
path = "{serial}"
protocol = "em4100"
mode = "scan"
reopen_max = "1s"
offline_alarm_after = "{offline}"

[[readers]]
name = "kbd1"
location = "scan-1"
kind = "hid"
path = "{kbd}"
# QMP types a key at a time, far slower than a scanner.
scan_timeout = "10s"
"""


class Rig:
    def __init__(self, args):
        self.image = os.path.abspath(args.image)
        self.deb = os.path.abspath(args.deb)
        self.cuts = args.cuts
        self.work = os.path.abspath(args.work)
        self.boots = 0
        self.results = []
        self.serial = None
        self.kbd = None
        self.installed = False

    # -- setup ------------------------------------------------------------
    def setup(self):
        if os.path.exists(self.work):
            shutil.rmtree(self.work)
        os.makedirs(self.work)
        self.qemu_log = open(os.path.join(self.work, "qemu.log"), "w")
        self.disk = os.path.join(self.work, "disk.img")
        subprocess.run(["cp", "--sparse=always", os.path.join(self.image, "disk.img"), self.disk], check=True)
        payload_dir = os.path.join(self.work, "payload")
        os.makedirs(payload_dir)
        shutil.copy(self.deb, payload_dir)
        self.payload = os.path.join(self.work, "payload.img")
        subprocess.run(["mkfs.ext4", "-q", "-d", payload_dir, self.payload, "64M"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.broker = Broker(self.work)
        self.reader = Reader(os.path.join(self.work, "rfid.sock"))
        self.vm = Vm(self)

    def teardown(self):
        """Stops QEMU (and with it the forwarders it spawned), the reader and
        the broker: whatever of them setup got to start."""
        for part in ("vm", "reader", "broker"):
            thing = getattr(self, part, None)
            try:
                if thing:
                    thing.kill() if part == "vm" else thing.close()
            except Exception:
                pass

    @property
    def agent(self):
        return self.vm.agent

    def config(self, rfid_name="rfid1", extra=""):
        return CONFIG.format(site=SITE, gateway=GATEWAY, broker=BROKER_IN_GUEST, rfid_name=rfid_name,
                             serial=self.serial, kbd=self.kbd, offline=OFFLINE_AFTER) + extra

    def write_config(self, text, path="/etc/custodyd/custodyd.toml"):
        b64 = base64.b64encode(text.encode()).decode()
        self.agent.check(f"echo {b64} | base64 -d > {path}")

    def flowing(self, reader, after=0, count=3, timeout=60):
        """Waits for `count` new custody events from `reader`."""
        self.reader.running.set()
        return wait_for(f"events from {reader}", lambda: len(self.broker.custody(reader)) >= after + count, timeout)

    # -- scenarios --------------------------------------------------------
    def scenario(self, name, fn, needs=()):
        for dep in needs:
            if dep not in self.passed():
                self.report(name, f"needs {dep}, which did not pass")
                return
        t0 = time.monotonic()
        try:
            note = fn()
        except Fail as e:
            self.report(name, str(e))
            return
        except Exception as e:  # a bug in the rig itself: still one line
            self.report(name, f"rig error: {type(e).__name__}: {e}")
            return
        self.report(name, None, note, time.monotonic() - t0)

    def report(self, name, why, note=None, took=None):
        self.results.append((name, why))
        if why is None:
            extra = f" ({note})" if note else ""
            print(f"PASS {name}{extra}", flush=True)
        else:
            print(f"FAIL {name}: {why}", flush=True)
        if took is not None:
            print(f"vm-test: {name} took {took:.0f}s", file=sys.stderr, flush=True)

    def passed(self):
        return {n for n, why in self.results if why is None}

    def boot_and_install(self):
        """The first boot: the devices as udev names them, the .deb installed."""
        self.vm.start()
        a = self.agent
        self.serial = wait_for("the USB serial adapter in /dev/serial/by-id",
                               lambda: a.run(f"ls {SERIAL_GLOB} 2>/dev/null")[1].strip(), 60)
        self.kbd = wait_for("the USB keyboard in /dev/input/by-id",
                            lambda: a.run(f"ls {KBD_GLOB} 2>/dev/null")[1].strip(), 60)
        try:
            self.hid_control()
            self.hid_control_error = None
        except Fail as e:
            self.hid_control_error = f"control before install: {e}"
        a.check("mkdir -p /mnt/payload && mount -o ro /dev/vdb /mnt/payload")
        a.check("apt-get install -y -q /mnt/payload/custodyd_*.deb", timeout=300)
        self.installed = True
        # What the package puts where Debian looks for it, and a conffile
        # that check-config refuses until a person has filled it in.
        a.check("test -f /usr/share/man/man1/custodyd.1.gz"
                " && test -f /usr/share/bash-completion/completions/custodyd"
                " && test -f /usr/share/doc/custodyd/examples/custodyd.toml"
                " && test -f /usr/lib/udev/rules.d/60-custodyd.rules"
                " && ! ls /etc/udev/rules.d/ | grep -q custodyd")
        rc, _ = a.run("custodyd check-config /etc/custodyd/custodyd.toml")
        if rc != 2:
            raise Fail(f"check-config on the shipped conffile exited {rc}, not 2 (refused)")
        # The rig's short watchdog, as a site would set it: a drop-in.
        a.check("mkdir -p /etc/systemd/system/custodyd.service.d && printf '[Service]\\nWatchdogSec=%ds\\n'"
                f" {WATCHDOG_SEC} > /etc/systemd/system/custodyd.service.d/rig.conf")
        self.write_config(self.config())
        a.check("custodyd check-config /etc/custodyd/custodyd.toml")

    def s_systemd(self):
        a = self.agent
        a.check("systemctl enable --now custodyd", timeout=180)
        # Type=notify: "active" only once READY=1 has been sent.
        state = a.check("systemctl show -p ActiveState,SubState custodyd").split()
        if state != ["ActiveState=active", "SubState=running"]:
            raise Fail(f"unit is {state}")
        self.flowing("rfid1")
        return f"{len(self.broker.custody('rfid1'))} events at the host broker"

    def s_libraries(self):
        # The packaged daemon links libc and libgcc_s only: it answers tokio's
        # one call into libm itself (src/main.rs), as libm.so mapped would
        # keep a good part of itself resident (docs/performance.md, "libm").
        a = self.agent
        pid = a.check("systemctl show -p MainPID --value custodyd").strip()
        maps = a.check(f"cat /proc/{pid}/maps")
        libraries = sorted({line.split()[-1].rsplit("/", 1)[-1] for line in maps.splitlines()
                            if ".so" in line.split()[-1]})
        unexpected = [l for l in libraries
                      if not l.startswith(("libc.so", "libgcc_s.so", "ld-linux"))]
        if unexpected:
            raise Fail(f"mapped besides libc and libgcc_s: {unexpected}")
        rss = a.check(f"grep VmRSS /proc/{pid}/status").split()[1]
        return f"{', '.join(libraries)}; VmRSS {rss} kB"

    def s_udev_serial(self):
        a = self.agent
        target = a.check(f"readlink -f {self.serial}").strip()
        if not target.startswith("/dev/ttyUSB"):
            raise Fail(f"{self.serial} points at {target}")
        links = a.check(f"udevadm info -q symlink -n {target}")
        if self.serial.removeprefix("/dev/") not in links.split():
            raise Fail(f"udev does not list {self.serial} for {target}: {links.strip()}")
        before = len(self.broker.custody("rfid1"))
        self.flowing("rfid1", before)
        return self.serial

    def s_security(self):
        out = self.agent.check("systemd-analyze security --no-pager custodyd.service")
        line = [l for l in out.splitlines() if "Overall exposure level" in l]
        if not line:
            raise Fail("no exposure level in systemd-analyze's output")
        exposure = float(line[0].split(":")[1].split()[0])
        if exposure > 2.0:
            raise Fail(f"exposure {exposure}, more than 2.0")
        return f"exposure {exposure}"

    def s_hid(self):
        a = self.agent
        if self.hid_control_error:
            raise Fail(self.hid_control_error)
        code = "RIGSCAN" + str(int(time.time()) % 100000)
        self.vm.qmp.type_text(code)
        wait_for(f"a scanned event for {code}",
                 lambda: [e for e in self.broker.custody("kbd1") if e.get("asset", {}).get("raw") == code], 30)
        time.sleep(2)
        scans = [e for e in self.broker.custody("kbd1") if e.get("asset", {}).get("raw") == code]
        if len(scans) != 1 or scans[0].get("transition") != "scanned":
            raise Fail(f"expected one scanned event for {code}, got {len(scans)}")
        # The keystrokes went to custodyd's grab, not to the console's login
        # prompt (tty1's screen; the control before install showed it does
        # show what is typed when nothing grabs the keyboard).
        screen = a.check("cat /dev/vcs1")
        if code in screen:
            raise Fail("the scan also reached the console (tty1): the grab did not hold")
        return code

    def hid_control(self):
        """Before custodyd: typing on the keyboard does reach tty1, so the
        hid scenario's check of the screen can see a leak."""
        marker = "LEAKCONTROL"
        wait_for("a login prompt on tty1", lambda: "login" in self.agent.run("cat /dev/vcs1")[1], 120)
        self.vm.qmp.type_text(marker)
        wait_for("typed text on tty1 (control)", lambda: marker in self.agent.run("cat /dev/vcs1")[1], 20)

    def s_reload(self):
        a = self.agent
        pid = a.check("systemctl show -p MainPID --value custodyd").strip()
        self.write_config(self.config(rfid_name="rfid2"))
        a.check("systemctl reload custodyd", timeout=120)
        self.flowing("rfid2", len(self.broker.custody("rfid2")))
        # A bad file: the reload is refused, the service and its readers stay.
        self.write_config(self.config(rfid_name="rfid2", extra='\n[gateway_typo]\nname = "x"\n'))
        rc, out = a.run("systemctl reload custodyd", timeout=120)
        if rc == 0:
            raise Fail("systemctl reload accepted a bad configuration")
        now = a.check("systemctl show -p MainPID,ActiveState --value custodyd").split()
        if now != [pid, "active"]:
            raise Fail(f"after the refused reload the unit is {now}, was pid {pid}")
        self.flowing("rfid2", len(self.broker.custody("rfid2")))
        # Back to the first configuration for the scenarios that follow.
        self.write_config(self.config())
        a.check("systemctl reload custodyd", timeout=120)
        self.flowing("rfid1", len(self.broker.custody("rfid1")))
        return "reader renamed; bad file refused by ExecReload"

    def s_watchdog(self):
        a = self.agent
        restarts = int(a.check("systemctl show -p NRestarts --value custodyd"))
        pid = a.check("systemctl show -p MainPID --value custodyd").strip()
        a.check(f"kill -STOP {pid}")
        # WatchdogSec, then SIGABRT (pending on a stopped process) and SIGKILL
        # after TimeoutAbortSec: up to about WatchdogSec + TimeoutStopSec.
        wait_for("a restart by the watchdog",
                 lambda: int(a.run("systemctl show -p NRestarts --value custodyd")[1] or 0) > restarts, 120, 2)
        wait_for("the restarted unit active",
                 lambda: a.run("systemctl is-active custodyd")[1].strip() == "active", 60)
        result = a.check("journalctl -u custodyd -b --no-pager -o cat | grep -c -i watchdog || true")
        self.flowing("rfid1", len(self.broker.custody("rfid1")))
        self.reader.running.clear()
        top = drained(self.broker, 60)
        return f"restarted; seq 1..{top} gap-free; {result.strip()} watchdog lines in the journal"

    def s_hotplug(self):
        qmp = self.vm.qmp
        self.reader.running.clear()
        offline = len(self.broker.alarms("reader_offline"))
        online = len(self.broker.alarms("reader_online"))
        qmp.cmd("device_del", id="rfid0")
        wait_for("reader_offline", lambda: len(self.broker.alarms("reader_offline")) > offline, 90)
        qmp.cmd("device_add", driver="usb-serial", **SERIAL_ADAPTER)
        wait_for("reader_online", lambda: len(self.broker.alarms("reader_online")) > online, 90)
        self.flowing("rfid1", len(self.broker.custody("rfid1")))
        return "reader_offline, reader_online, events again"

    def s_journal(self):
        a = self.agent
        warnings = a.check("journalctl -u custodyd --no-pager -o cat -p warning")
        infos = a.check("journalctl -u custodyd --no-pager -o cat -p info")
        warn_lines = [l for l in warnings.splitlines() if " WARN " in f" {l} " or l.startswith("WARN")]
        info_lines = [l for l in infos.splitlines() if l.lstrip().startswith("INFO")]
        if not info_lines:
            raise Fail("no INFO lines in the journal at all (nothing to tell apart)")
        if not warn_lines:
            raise Fail("the warnings (reader unplugged) are missing from -p warning")
        leaked = [l for l in warnings.splitlines() if l.lstrip().startswith("INFO")]
        if leaked:
            raise Fail(f"info lines filed as warnings or worse: {leaked[0]}")
        if any(l.startswith("<") for l in infos.splitlines()):
            raise Fail("a <N> prefix reached the journal's text")
        return f"{len(warn_lines)} warnings, {len(info_lines)} info lines kept out"

    def s_power_cut(self):
        times, resumed = [], []
        self.reader.running.set()
        for i in range(self.cuts):
            self.flowing("rfid1", len(self.broker.custody("rfid1")), count=5)
            self.vm.kill()
            delivered = max(e["seq"] for e in self.broker.events())
            before = len(self.broker.custody("rfid1"))
            self.vm.start()
            booted = self.vm.booted_at
            wait_for(f"events after cut {i + 1}", lambda: len(self.broker.custody("rfid1")) > before, 300)
            times.append(time.monotonic() - booted)
            a = self.agent
            if a.run("systemctl is-active custodyd")[1].strip() != "active":
                raise Fail(f"custodyd not active after cut {i + 1}")
            errors = a.run("journalctl -u custodyd -b --no-pager -o cat -p err")[1].strip()
            if errors:
                raise Fail(f"errors after cut {i + 1}: {errors.splitlines()[0]}")
            # The spool opened, and goes on after everything the broker had
            # before the cut: a seq handed out again would be reused.
            opened = a.run("journalctl -u custodyd -b --no-pager -o cat | grep -m1 'spool open'")[1]
            found = re.search(r"next_seq=(\d+)", opened)
            if not found:
                raise Fail(f"no 'spool open' in the journal after cut {i + 1}")
            if int(found.group(1)) <= delivered:
                raise Fail(f"after cut {i + 1} the spool went on at seq {found.group(1)}, "
                           f"but seq {delivered} had been delivered before it")
            resumed.append(found.group(1))
        # Everything committed before a cut arrives eventually: with the
        # reader stopped, the spool drains and seq has no gap up to the top.
        # (A seq reused after a cut shows as one seq with two event ids.)
        self.reader.running.clear()
        top = drained(self.broker, 120)
        spans = ", ".join(f"{t:.0f}s" for t in times)
        return (f"{self.cuts} cuts; boot to first event {spans}; spool reopened at seq "
                f"{', '.join(resumed)}; seq 1..{top} gap-free, none reused")

    def run(self):
        try:
            self.setup()
            install_error = None
            try:
                self.boot_and_install()
            except Fail as e:
                install_error = str(e)
            if install_error:
                for name in ("systemd", "libraries", "udev-serial", "security", "hid", "reload",
                             "watchdog", "hotplug", "journal", "power-cut"):
                    self.report(name, f"setup failed: {install_error}")
                return 1
            self.scenario("systemd", self.s_systemd)
            self.scenario("libraries", self.s_libraries, needs=("systemd",))
            self.scenario("security", self.s_security, needs=("systemd",))
            self.scenario("udev-serial", self.s_udev_serial, needs=("systemd",))
            self.scenario("hid", self.s_hid, needs=("systemd",))
            self.scenario("reload", self.s_reload, needs=("systemd",))
            self.scenario("watchdog", self.s_watchdog, needs=("systemd",))
            self.scenario("hotplug", self.s_hotplug, needs=("systemd",))
            self.scenario("journal", self.s_journal, needs=("systemd",))
            self.scenario("power-cut", self.s_power_cut, needs=("systemd",))
        finally:
            self.teardown()
        failed = [n for n, why in self.results if why is not None]
        print(f"vm-test: {len(self.results) - len(failed)} passed, {len(failed)} failed", flush=True)
        return 1 if failed else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image", required=True)
    p.add_argument("--deb", required=True)
    p.add_argument("--cuts", type=int, default=2)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    rig = Rig(args)
    # A kill of the rig (CI's timeout, ^C) still takes QEMU and the broker down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        sys.exit(rig.run())
    except KeyboardInterrupt:
        sys.exit(1)


if __name__ == "__main__":
    main()
