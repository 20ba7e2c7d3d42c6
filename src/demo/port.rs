//! A simulated serial reader: a pseudo-terminal pair. The daemon opens the
//! slave side exactly as it opens a `/dev/ttyUSB0`; the simulator writes real
//! protocol frames into the master side.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

pub struct SimPort {
    master: File,
    /// Held open so the pty stays up while the daemon reopens it; never read
    /// here, or it would steal the daemon's bytes.
    _slave: OwnedFd,
    path: PathBuf,
}

impl SimPort {
    pub fn open() -> io::Result<SimPort> {
        let pty = openpty(None, None)?;
        // Raw: no echo back into the master, no CR/LF translation of frames.
        let mut termios = tcgetattr(&pty.slave)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios)?;
        let path = nix::unistd::ttyname(&pty.slave)?;
        Ok(SimPort {
            master: File::from(pty.master),
            _slave: pty.slave,
            path,
        })
    }

    /// The device path to put in a reader's `path`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.master.write_all(bytes)
    }

    /// The master side again, to read what the daemon writes: the commands
    /// of a driven reader. Its reads block.
    pub fn commands(&self) -> io::Result<File> {
        self.master.try_clone()
    }
}

/// An RDM6300 frame for 10 hex characters of EM4100 data, with its XOR checksum.
pub fn em4100_frame(data_hex: &str) -> Vec<u8> {
    let checksum = (0..5)
        .map(|i| u8::from_str_radix(&data_hex[2 * i..2 * i + 2], 16).expect("10 hex characters"))
        .fold(0, |acc, b| acc ^ b);
    let mut frame = vec![0x02];
    frame.extend_from_slice(data_hex.as_bytes());
    frame.extend_from_slice(format!("{checksum:02X}").as_bytes());
    frame.push(0x03);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn em4100_frames_match_the_reference_vectors() {
        assert_eq!(
            em4100_frame("62E3086CED"),
            [0x02, 0x36, 0x32, 0x45, 0x33, 0x30, 0x38, 0x36, 0x43, 0x45, 0x44, 0x30, 0x38, 0x03]
        );
        assert_eq!(&em4100_frame("01000734E0")[11..13], b"D2");
    }
}
