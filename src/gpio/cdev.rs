//! GPIO through the kernel's character device (`/dev/gpiochipN`, uAPI v2),
//! by line offset on one chip.
//!
//! The character device is what every Pi has, the Pi 5 included (its header
//! is the RP1's chip, not the SoC's registers), and the only GPIO access the
//! unit's `DevicePolicy=closed` lets through (`DeviceAllow=char-gpiochip`).
//! On the Pi's header chip the line offsets are the BCM numbers.
//!
//! A line request is a file descriptor: the kernel releases the line when
//! the request is dropped or the process dies, so a crashed daemon leaves no
//! line claimed for its restart to trip over.

use std::path::{Path, PathBuf};

use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, Value};
use gpiocdev::request::{Config, Request};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use super::{Driver, Gpio, GpioError, RawInput};
use crate::config::Pull;

/// How the lines show in `gpioinfo`, so a technician sees who holds them.
const CONSUMER: &str = "custodyd";

pub(super) struct CdevGpio {
    chip: PathBuf,
}

impl CdevGpio {
    /// Opens the chip once, so that a missing device or a permission
    /// problem is reported at start-up, naming the path, rather than at
    /// the first pin.
    pub(super) fn open(chip: &Path) -> Result<Self, GpioError> {
        gpiocdev::Chip::from_path(chip)
            .and_then(|c| c.info())
            .map_err(|e| GpioError::Open {
                backend: "cdev",
                detail: format!("{}: {e}", chip.display()),
            })?;
        Ok(CdevGpio {
            chip: chip.to_path_buf(),
        })
    }

    fn request(&self, pin: u8, config: Config) -> Result<Request, GpioError> {
        Request::from_config(config)
            .with_consumer(CONSUMER)
            .request()
            .map_err(|e| pin_error(pin, &self.chip, e))
    }
}

fn pin_error(pin: u8, chip: &Path, e: impl std::fmt::Display) -> GpioError {
    GpioError::Pin {
        pin,
        detail: format!("{}: {e}", chip.display()),
    }
}

/// The line of an output, driving `high` from the moment it is granted:
/// the kernel sets direction and value in the one request, so the relay
/// never sees another level in between.
fn output_config(chip: &Path, pin: u8, high: bool) -> Config {
    let mut config = Config::default();
    config
        .on_chip(chip)
        .with_line(pin.into())
        .as_output(value(high));
    config
}

/// The line of an input: both edges reported, levels as they are on the
/// wire (polarity and debouncing are done in [`super::Input`], the same for
/// every backend).
fn input_config(chip: &Path, pin: u8, pull: Pull) -> Config {
    let mut config = Config::default();
    config
        .on_chip(chip)
        .with_line(pin.into())
        .as_input()
        .with_bias(bias(pull))
        .with_edge_detection(EdgeDetection::BothEdges);
    config
}

fn bias(pull: Pull) -> Bias {
    match pull {
        Pull::Up => Bias::PullUp,
        Pull::Down => Bias::PullDown,
        Pull::None => Bias::Disabled,
    }
}

fn value(high: bool) -> Value {
    if high {
        Value::Active
    } else {
        Value::Inactive
    }
}

/// The level a line has after an edge: the uAPI reports a rising edge as
/// the transition to active, which without `active_low` is high.
fn level_after(kind: EdgeKind) -> bool {
    kind == EdgeKind::Rising
}

impl Gpio for CdevGpio {
    fn output(&self, pin: u8, high: bool) -> Result<Box<dyn Driver>, GpioError> {
        let request = self.request(pin, output_config(&self.chip, pin, high))?;
        Ok(Box::new(CdevOutput { pin, request }))
    }

    fn input(&self, pin: u8, pull: Pull) -> Result<RawInput, GpioError> {
        let request = self.request(pin, input_config(&self.chip, pin, pull))?;
        // Read after edge detection is on: an edge from here on is queued
        // in the request, so none is missed between the read and the task.
        let now = request
            .value(pin.into())
            .map_err(|e| pin_error(pin, &self.chip, e))?;
        // SAFETY: the request owns its line's file descriptor (an OwnedFd
        // it never replaces) and the AsyncFd owns the request, so the
        // descriptor stays open and the same until the AsyncFd is dropped.
        let request = unsafe { AsyncFd::register(request) }
            .map_err(|e| pin_error(pin, &self.chip, e.into_parts().1))?;
        let (levels_tx, levels) = watch::channel(now == Value::Active);
        let task = tokio::spawn(follow(request, levels_tx, pin));
        Ok(RawInput {
            levels,
            // Dropping the input stops the task, which drops the request
            // and so releases the line.
            hold: Box::new(AbortOnDropHandle::new(task)),
        })
    }
}

/// Publishes the level of an input line after each edge the kernel
/// reports, until reading fails (the chip went away): then the sender is
/// dropped and the input ends.
async fn follow(request: AsyncFd<Request>, levels: watch::Sender<bool>, pin: u8) {
    loop {
        let mut ready = match request.readable().await {
            Ok(ready) => ready,
            Err(error) => {
                tracing::error!(pin, %error, "GPIO input: waiting for edges failed");
                return;
            }
        };
        let line = ready.get_inner();
        let event = match line.has_edge_event() {
            Ok(true) => line.read_edge_event(),
            Ok(false) => {
                ready.clear_ready();
                continue;
            }
            Err(error) => Err(error),
        };
        match event {
            Ok(event) => {
                let high = level_after(event.kind);
                levels.send_if_modified(|level| std::mem::replace(level, high) != high);
            }
            Err(error) => {
                tracing::error!(pin, %error, "GPIO input: reading an edge failed");
                return;
            }
        }
    }
}

struct CdevOutput {
    pin: u8,
    request: Request,
}

impl Driver for CdevOutput {
    fn write(&mut self, high: bool) {
        if let Err(error) = self.request.set_value(self.pin.into(), value(high)) {
            // Only fails if the chip went away (a USB GPIO unplugged):
            // nothing here can drive the line then.
            tracing::error!(pin = self.pin, %error, "GPIO output: setting the level failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpiocdev::line::Direction;

    const CHIP: &str = "/dev/gpiochip0";

    #[test]
    fn an_output_is_requested_already_driving_its_level() {
        for high in [true, false] {
            let config = output_config(Path::new(CHIP), 5, high);
            assert_eq!(config.chip(), Path::new(CHIP));
            assert_eq!(config.lines(), &vec![5]);
            let line = config.line_config(5).expect("line 5 configured");
            assert_eq!(line.direction, Some(Direction::Output));
            assert_eq!(line.value, Some(value(high)));
            assert!(!line.active_low, "polarity is applied in gpio::Output");
            assert_eq!(line.edge_detection, None);
        }
    }

    #[test]
    fn an_input_reports_both_edges_with_its_bias() {
        for (pull, expected) in [
            (Pull::Up, Bias::PullUp),
            (Pull::Down, Bias::PullDown),
            (Pull::None, Bias::Disabled),
        ] {
            let config = input_config(Path::new(CHIP), 26, pull);
            assert_eq!(config.lines(), &vec![26]);
            let line = config.line_config(26).expect("line 26 configured");
            assert_eq!(line.direction, Some(Direction::Input));
            assert_eq!(line.bias, Some(expected));
            assert_eq!(line.edge_detection, Some(EdgeDetection::BothEdges));
            assert!(!line.active_low, "polarity is applied in gpio::Input");
            assert_eq!(
                line.debounce_period, None,
                "debounced in gpio::Input, the same for every backend"
            );
        }
    }

    #[test]
    fn a_rising_edge_leaves_the_line_high_and_a_falling_one_low() {
        assert!(level_after(EdgeKind::Rising));
        assert!(!level_after(EdgeKind::Falling));
    }

    #[test]
    fn a_missing_chip_is_an_error_naming_it() {
        let error = CdevGpio::open(Path::new("/dev/gpiochip-nonexistent"))
            .err()
            .expect("no such chip");
        let message = error.to_string();
        assert!(message.contains("cdev"), "{message}");
        assert!(message.contains("/dev/gpiochip-nonexistent"), "{message}");
    }
}
