//! The serial transport shared by the line-protocol drivers (GRBL, Marlin).
//!
//! A [`SerialLink`] is one open port with an outgoing byte queue. Drivers queue whole lines (or
//! real-time bytes) with [`SerialLink::queue`] and then await [`SerialLink::transfer`], which
//! writes queued bytes as fast as the port takes them and returns as soon as bytes arrive.
//! Everything lives on the struct, so `transfer` is cancel-safe: a driver can poll it inside
//! `tokio::select!` next to its timers, drop it, and call it again without losing a byte in
//! either direction.
//!
//! A [`Reconnector`] opens the port with exponential backoff, for drivers that must come back on
//! their own after a cable is pulled and plugged again.
//!
//! # Choosing the port path
//! Use the stable `/dev/serial/by-id/usb-...` links rather than `/dev/ttyUSB0`/`/dev/ttyACM0`:
//! the numbered names are handed out in plug order and swap between machines after a reboot or
//! a replug; the by-id names carry the adapter's vendor, product and serial number.
//!
//! # Reset on open (Arduino-class boards)
//! Linux raises DTR (and RTS) when a serial port is opened. On an Arduino Uno/Nano and most
//! boards with a CH340, FTDI or 16U2 USB bridge, DTR is wired through a capacitor to the MCU's
//! reset pin, so *opening the port reboots the controller*: GRBL then prints its welcome banner
//! after its bootloader's delay (about one to two seconds), and Marlin prints `start`. Drivers
//! must therefore (a) never assume a job survived a reconnect and (b) wait for the banner or for a
//! status answer before sending. [`SerialSettings::dtr_on_open`] only affects boards whose reset
//! circuit reacts to the level after open; the pulse Linux makes while opening cannot be avoided
//! from user space (a hardware jumper or a capacitor on RESET is the usual fix when the reset is
//! unwanted).
//!
//! # Pseudo-terminals
//! The same code opens a pseudo-terminal slave (`/dev/pts/N` or a symlink to it), which is how
//! the simulators in `hil-tests` stand in for a machine. [`SerialLink::from_stream`] accepts any
//! `AsyncRead + AsyncWrite` (e.g. `tokio::io::duplex`) for tests that need no terminal at all.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;

/// Where and how to open a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    /// Device path, preferably `/dev/serial/by-id/...`; a PTY slave path in tests.
    pub path: String,
    pub baud: u32,
    /// Level to put DTR at after opening; `None` leaves whatever the OS set (raised, on Linux).
    pub dtr_on_open: Option<bool>,
}

impl SerialSettings {
    pub fn new(path: impl Into<String>, baud: u32) -> Self {
        SerialSettings {
            path: path.into(),
            baud,
            dtr_on_open: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("serial I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the port was closed (device unplugged?)")]
    Closed,
}

/// Anything a link can run over: a serial port, a PTY, an in-memory duplex pipe.
pub trait Port: AsyncRead + AsyncWrite + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Send + std::fmt::Debug> Port for T {}

const READ_CHUNK: usize = 4096;

/// One open port and the bytes still waiting to be written to it.
#[derive(Debug)]
pub struct SerialLink {
    name: String,
    port: Pin<Box<dyn Port>>,
    outgoing: VecDeque<u8>,
    read_buf: Box<[u8]>,
}

impl SerialLink {
    /// Open a serial port (or PTY slave) in raw 8N1 mode, without blocking.
    pub fn open(settings: &SerialSettings) -> Result<SerialLink, LinkError> {
        let mut builder = tokio_serial::new(&settings.path, settings.baud);
        builder = match settings.dtr_on_open {
            Some(level) => builder.dtr_on_open(level),
            None => builder.preserve_dtr_on_open(),
        };
        let stream = builder
            .open_native_async()
            .map_err(|error| LinkError::Open {
                path: settings.path.clone(),
                reason: error.to_string(),
            })?;
        Ok(SerialLink::from_stream(settings.path.clone(), stream))
    }

    /// A link over any byte stream (tests, TCP bridges such as ser2net).
    pub fn from_stream(name: impl Into<String>, port: impl Port + 'static) -> SerialLink {
        SerialLink {
            name: name.into(),
            port: Box::pin(port),
            outgoing: VecDeque::new(),
            read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// The path (or name) this link was opened on.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Append bytes to the outgoing queue; [`SerialLink::transfer`] writes them.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.outgoing.extend(bytes);
    }

    /// Put bytes ahead of everything queued. For real-time commands (GRBL's `?`, `!`, `~`,
    /// Ctrl-X) that the firmware picks out of the stream wherever they land, even mid-line.
    pub fn queue_front(&mut self, bytes: &[u8]) {
        for &byte in bytes.iter().rev() {
            self.outgoing.push_front(byte);
        }
    }

    /// Bytes queued but not yet handed to the operating system.
    pub fn queued(&self) -> usize {
        self.outgoing.len()
    }

    /// Drop everything not yet written (after a controller reset, the rest is stale).
    pub fn discard_queued(&mut self) {
        self.outgoing.clear();
    }

    /// Write queued bytes as the port accepts them and return the next bytes received.
    ///
    /// Cancel-safe: bytes written before cancellation have left the queue, bytes not yet written
    /// stay in it, and received bytes are only consumed by the call that returns them.
    /// End of file is reported as [`LinkError::Closed`].
    pub async fn transfer(&mut self) -> Result<&[u8], LinkError> {
        let received = std::future::poll_fn(|cx| {
            while !self.outgoing.is_empty() {
                let (front, _) = self.outgoing.as_slices();
                match self.port.as_mut().poll_write(cx, front) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(LinkError::Closed)),
                    Poll::Ready(Ok(written)) => {
                        self.outgoing.drain(..written);
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                    Poll::Pending => break,
                }
            }
            let mut buf = ReadBuf::new(&mut self.read_buf);
            match self.port.as_mut().poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    Poll::Ready(Err(LinkError::Closed))
                }
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        Ok(&self.read_buf[..received])
    }
}

/// Exponential backoff between reconnection attempts: `min`, `2·min`, ... capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.min(max);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt; each call doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Opens a port again and again with backoff until it opens.
#[derive(Debug)]
pub struct Reconnector {
    settings: SerialSettings,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

impl Reconnector {
    pub fn new(settings: SerialSettings, backoff: Backoff) -> Reconnector {
        Reconnector {
            settings,
            backoff,
            retry_at: None,
        }
    }

    pub fn settings(&self) -> &SerialSettings {
        &self.settings
    }

    /// Wait for the next attempt's time, then try to open the port once. A failure schedules the
    /// next attempt (doubling the delay); a success resets the backoff. Cancel-safe: cancelling
    /// while waiting keeps the scheduled time.
    pub async fn connect(&mut self) -> Result<SerialLink, LinkError> {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
        }
        match SerialLink::open(&self.settings) {
            Ok(link) => {
                self.backoff.reset();
                self.retry_at = None;
                Ok(link)
            }
            Err(error) => {
                self.retry_at = Some(Instant::now() + self.backoff.next_delay());
                Err(error)
            }
        }
    }

    /// The link was lost: the next attempt waits one backoff step, so a port that opens but
    /// dies at once is not hammered.
    pub fn lost(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff.next_delay());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(250));
    }

    #[tokio::test]
    async fn transfer_writes_the_queue_and_returns_received_bytes() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut link = SerialLink::from_stream("duplex", near);
        link.queue(b"G1 X1\n");
        link.queue_front(b"?");
        far.write_all(b"ok\r\n").await.unwrap();
        assert_eq!(link.transfer().await.unwrap(), b"ok\r\n");
        let mut sent = [0; 7];
        far.read_exact(&mut sent).await.unwrap();
        assert_eq!(&sent, b"?G1 X1\n");
        assert_eq!(link.queued(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_transfer_keeps_unwritten_bytes() {
        // The pipe holds 4 bytes; the rest must stay queued when the transfer is dropped.
        let (near, mut far) = tokio::io::duplex(4);
        let mut link = SerialLink::from_stream("duplex", near);
        link.queue(b"0123456789");
        let cancelled = tokio::time::timeout(Duration::from_millis(20), link.transfer()).await;
        assert!(cancelled.is_err());
        assert_eq!(link.queued(), 6);
        let mut first = [0; 4];
        far.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"0123");
        let cancelled = tokio::time::timeout(Duration::from_millis(20), link.transfer()).await;
        assert!(cancelled.is_err());
        assert_eq!(link.queued(), 2);
        far.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"4567");
        drop(far);
        assert!(link.transfer().await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn reconnector_backs_off_after_failures() {
        let settings = SerialSettings::new("/nonexistent/microfab-test-port", 115_200);
        let mut reconnector = Reconnector::new(
            settings,
            Backoff::new(Duration::from_millis(100), Duration::from_millis(400)),
        );
        let start = Instant::now();
        for _ in 0..4 {
            assert!(matches!(
                reconnector.connect().await,
                Err(LinkError::Open { .. })
            ));
        }
        // Attempts at 0, 100, 300 and 700 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(700));
    }
}
