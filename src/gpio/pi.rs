//! The Raspberry Pi's own GPIO, through rppal (BCM numbering).
//!
//! rppal builds on any Linux; [`PiGpio::open`] fails cleanly on a machine
//! that is not a Pi, which is the only place the tests could reach it (they
//! use the simulator).

use std::sync::Arc;

use rppal::gpio::{Event, Level, OutputPin, Trigger};
use tokio::sync::watch;

use super::{Driver, Gpio, GpioError, RawInput};
use crate::config::Pull;

pub(super) struct PiGpio(rppal::gpio::Gpio);

impl PiGpio {
    pub(super) fn open() -> Result<Self, GpioError> {
        rppal::gpio::Gpio::new()
            .map(PiGpio)
            .map_err(|e| GpioError::Open {
                backend: "rppal",
                detail: e.to_string(),
            })
    }

    fn pin(&self, pin: u8) -> Result<rppal::gpio::Pin, GpioError> {
        self.0.get(pin).map_err(|e| pin_error(pin, e))
    }
}

fn pin_error(pin: u8, e: rppal::gpio::Error) -> GpioError {
    GpioError::Pin {
        pin,
        detail: e.to_string(),
    }
}

fn level(high: bool) -> Level {
    if high {
        Level::High
    } else {
        Level::Low
    }
}

impl Gpio for PiGpio {
    fn output(&self, pin: u8, high: bool) -> Result<Box<dyn Driver>, GpioError> {
        let pin = self.pin(pin)?;
        let mut out = if high {
            pin.into_output_high()
        } else {
            pin.into_output_low()
        };
        // rppal would turn the pin back into an input when it is dropped,
        // leaving a relay to its board's pull resistor. [`super::Output`]
        // drives it inactive before that, and it is left driving that level.
        out.set_reset_on_drop(false);
        Ok(Box::new(PiOutput(out)))
    }

    fn input(&self, pin: u8, pull: Pull) -> Result<RawInput, GpioError> {
        let number = pin;
        let pin = self.pin(pin)?;
        let mut input = match pull {
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
            Pull::None => pin.into_input(),
        };
        let (tx, levels) = watch::channel(input.is_high());
        let tx = Arc::new(tx);
        let on_edge = tx.clone();
        // Debounced in `super::Input`, the same for every backend.
        input
            .set_async_interrupt(Trigger::Both, None, move |event: Event| {
                on_edge.send_replace(event.trigger == Trigger::RisingEdge);
            })
            .map_err(|e| pin_error(number, e))?;
        // An edge between the first read and the interrupt being armed
        // would otherwise be missed.
        let now = input.is_high();
        tx.send_if_modified(|level| std::mem::replace(level, now) != now);
        Ok(RawInput {
            levels,
            hold: Box::new(input),
        })
    }
}

struct PiOutput(OutputPin);

impl Driver for PiOutput {
    fn write(&mut self, high: bool) {
        self.0.write(level(high));
    }
}
