//! The device end of an emulated serial cable: a real pseudo-terminal whose slave is reachable
//! at a path of the user's choosing, with the baud rate enforced as a byte-rate limit.
//!
//! A firmware simulator (GRBL, Marlin) owns one [`SerialWire`]. The host (a driver, a terminal
//! program, `microfab serve`) opens [`SerialWire::link`] as it would open
//! `/dev/serial/by-id/...`: the link is a symlink to the PTY slave (`/dev/pts/N`), already in
//! raw mode.
//!
//! Timing model: each byte occupies the wire for 10 bit times (8N1), so the wire carries at most
//! `baud / 10` bytes per second in each direction. Bytes the host writes are taken off the PTY at
//! once (a USB-serial adapter buffers them too) and handed to the firmware at wire pace through
//! [`SerialWire::recv`], in chunks of what arrived since the last call. Bytes the firmware sends
//! with [`SerialWire::send`] reach the host at wire pace as well. A firmware that cannot keep
//! up must model its own receive buffer (and lose bytes, as a real board does).
//!
//! Faults on the cable: random per-line bit flips ([`SerialWire::set_noise`]), and pulling and
//! plugging the cable ([`SerialWire::unplug`], [`SerialWire::replug`]): the host's open port dies
//! (reads fail) and the path disappears until the replug creates a new PTY behind it.
//!
//! [`SerialWire::take_host_opens`] tells the device each time the host opens the port (an inotify
//! watch on the PTY slave): a board whose DTR line resets it (an Arduino's auto-reset) reboots
//! then, as a native-USB board does not.
//!
//! Everything here uses safe APIs: `nix` for the PTY and terminal settings, tokio's pipe types
//! for non-blocking I/O on the master.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use microfab_rng::SplitMix64;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Which way bytes travel on the cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireDirection {
    HostToDevice,
    DeviceToHost,
}

#[derive(Debug, Clone)]
pub struct WireConfig {
    /// Path of the symlink the host opens (e.g. `/tmp/mill1`). Replaced if it exists.
    pub link: PathBuf,
    /// Bits per second; the wire carries `baud / 10` bytes per second each way.
    pub baud: u32,
    /// Seed for the noise generator, so a faulty run can be replayed.
    pub seed: u64,
}

enum Command {
    Send(Vec<u8>),
    Noise(WireDirection, f64),
    Unplug(oneshot::Sender<()>),
    Replug(oneshot::Sender<io::Result<()>>),
}

/// The device end of the cable. Dropping it unplugs the cable and removes the link.
#[derive(Debug)]
pub struct SerialWire {
    link: PathBuf,
    from_host: mpsc::UnboundedReceiver<Vec<u8>>,
    host_opens: Option<mpsc::UnboundedReceiver<()>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl SerialWire {
    /// Create the PTY and the link to it. Must be called inside a tokio runtime.
    pub fn open(config: WireConfig) -> io::Result<SerialWire> {
        let pty = Pty::open(&config.link)?;
        let (from_host_tx, from_host) = mpsc::unbounded_channel();
        let (host_opens_tx, host_opens) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let byte_time = Duration::from_secs_f64(10.0 / f64::from(config.baud.max(1)));
        let task = WireTask {
            link: config.link.clone(),
            pty: Some(pty),
            inbound: Lane::new(byte_time, config.seed),
            outbound: Lane::new(byte_time, config.seed.wrapping_add(1)),
            unwritten: VecDeque::new(),
            from_host: from_host_tx,
            host_opens: host_opens_tx,
            watching_opens: true,
        };
        tokio::spawn(task.run(commands_rx));
        Ok(SerialWire {
            link: config.link,
            from_host,
            host_opens: Some(host_opens),
            commands,
        })
    }

    /// The path the host opens.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The next bytes from the host, at wire pace. `None` once the wire's task has ended.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.from_host.recv().await
    }

    /// A message each time the host opens the port (several opens in a burst may count once),
    /// for a device that reacts to it. Held apart from [`SerialWire::recv`] so one loop can wait
    /// on both; only the first call gets it.
    pub fn take_host_opens(&mut self) -> Option<mpsc::UnboundedReceiver<()>> {
        self.host_opens.take()
    }

    /// Queue bytes for the host; they leave at wire pace, after everything sent before.
    pub fn send(&self, bytes: impl Into<Vec<u8>>) {
        let _ = self.commands.send(Command::Send(bytes.into()));
    }

    /// From now on, corrupt each line travelling `direction` with this probability (one bit of
    /// one byte flipped, as electrical noise does). 0 turns noise off.
    pub fn set_noise(&self, direction: WireDirection, line_probability: f64) {
        let _ = self
            .commands
            .send(Command::Noise(direction, line_probability));
    }

    /// Pull the cable: the host's port fails, the link disappears, bytes in flight are lost.
    pub async fn unplug(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Unplug(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Plug the cable back in: a new PTY behind the same link.
    pub async fn replug(&self) -> io::Result<()> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Replug(done))
            .map_err(|_| io::Error::other("the wire task has ended"))?;
        wait.await
            .map_err(|_| io::Error::other("the wire task has ended"))?
    }
}

/// One PTY pair. The slave stays open here so the PTY outlives the host closing and reopening
/// its port, as a USB device outlives a program closing its tty.
#[derive(Debug)]
struct Pty {
    // Two handles on the master (tokio's pipe types work on any non-blocking fd and need no
    // `unsafe`, unlike `AsyncFd::register`).
    reader: pipe::Receiver,
    writer: pipe::Sender,
    _slave: OwnedFd,
    /// An inotify instance watching the slave for opens.
    opens: pipe::Receiver,
    slave_path: PathBuf,
}

impl Pty {
    fn open(link: &Path) -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None)?;
        let mut termios = tcgetattr(&pair.slave)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios)?;
        fcntl(&pair.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let slave_path = nix::unistd::ttyname(&pair.slave)?;
        // Watched from here on: our own open of the slave above is not the host's.
        let opens = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        opens.add_watch(&slave_path, AddWatchFlags::IN_OPEN)?;
        // Swap the link in atomically so a host polling the path never sees a half-made one.
        let staging = PathBuf::from(format!("{}.microfab-new", link.display()));
        let _ = std::fs::remove_file(&staging);
        std::os::unix::fs::symlink(&slave_path, &staging)?;
        std::fs::rename(&staging, link)?;
        Ok(Pty {
            reader: pipe::Receiver::from_owned_fd_unchecked(pair.master.try_clone()?)?,
            writer: pipe::Sender::from_owned_fd_unchecked(pair.master)?,
            _slave: pair.slave,
            opens: pipe::Receiver::from_owned_fd_unchecked(OwnedFd::from(opens))?,
            slave_path,
        })
    }

    /// Wait until the host opens the slave.
    async fn opened(&self) -> io::Result<()> {
        let mut events = [0u8; 256];
        loop {
            self.opens.readable().await?;
            match self.opens.try_read(&mut events) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                result => return result.map(drop),
            }
        }
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.reader.readable().await?;
            match self.reader.try_read(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    async fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            self.writer.writable().await?;
            match self.writer.try_write(bytes) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }
}

/// One direction of the cable: bytes with the instant their last bit leaves the wire.
#[derive(Debug)]
struct Lane {
    byte_time: Duration,
    free_at: Instant,
    in_flight: VecDeque<(Instant, u8)>,
    noise: f64,
    rng: SplitMix64,
    /// Bytes left before the flipped one, in the line being corrupted.
    corrupt_in: Option<u64>,
    at_line_start: bool,
}

impl Lane {
    fn new(byte_time: Duration, seed: u64) -> Lane {
        Lane {
            byte_time,
            free_at: Instant::now(),
            in_flight: VecDeque::new(),
            noise: 0.0,
            rng: SplitMix64::new(seed),
            corrupt_in: None,
            at_line_start: true,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let mut at = self.free_at.max(Instant::now());
        for &byte in bytes {
            at += self.byte_time;
            let byte = self.apply_noise(byte);
            self.in_flight.push_back((at, byte));
        }
        self.free_at = at;
    }

    fn apply_noise(&mut self, byte: u8) -> u8 {
        if self.at_line_start && self.noise > 0.0 && self.rng.chance(self.noise) {
            // Lines on these links are short; hit one of their first eight bytes.
            self.corrupt_in = Some(self.rng.next_u64() % 8);
        }
        self.at_line_start = byte == b'\n';
        if byte == b'\n' {
            self.corrupt_in = None;
            return byte;
        }
        match self.corrupt_in {
            Some(0) => {
                self.corrupt_in = None;
                byte ^ (1 << (self.rng.next_u64() % 8))
            }
            Some(left) => {
                self.corrupt_in = Some(left - 1);
                byte
            }
            None => byte,
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.in_flight.front().map(|&(at, _)| at)
    }

    fn take_due(&mut self, now: Instant) -> Vec<u8> {
        let mut due = Vec::new();
        while let Some(&(at, byte)) = self.in_flight.front() {
            if at > now {
                break;
            }
            due.push(byte);
            self.in_flight.pop_front();
        }
        due
    }

    fn clear(&mut self) {
        self.in_flight.clear();
        self.free_at = Instant::now();
        self.at_line_start = true;
        self.corrupt_in = None;
    }
}

struct WireTask {
    link: PathBuf,
    pty: Option<Pty>,
    inbound: Lane,
    outbound: Lane,
    /// Device-to-host bytes that have crossed the wire but the PTY has not taken yet.
    unwritten: VecDeque<u8>,
    from_host: mpsc::UnboundedSender<Vec<u8>>,
    host_opens: mpsc::UnboundedSender<()>,
    /// Cleared if the PTY's open watch fails, so a broken watch cannot spin this loop.
    watching_opens: bool,
}

impl WireTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 4096];
        loop {
            let inbound_due = self.inbound.next_due();
            let outbound_due = self.outbound.next_due();
            let pending_write: Vec<u8> = self.unwritten.iter().take(4096).copied().collect();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                read = read_from(self.pty.as_ref(), &mut buf) => match read {
                    Ok(n) if n > 0 => self.inbound.push(&buf[..n]),
                    // EIO or EOF on the master: nobody holds the slave; cannot happen while we
                    // hold it, but never spin on it.
                    _ => self.pty = None,
                },
                opened = opened(self.pty.as_ref()), if self.watching_opens => match opened {
                    Ok(()) => {
                        let _ = self.host_opens.send(());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot watch the port for opens");
                        self.watching_opens = false;
                    }
                },
                () = sleep_until_some(inbound_due) => {
                    let due = self.inbound.take_due(Instant::now());
                    if self.from_host.send(due).is_err() {
                        break;
                    }
                }
                () = sleep_until_some(outbound_due) => {
                    let due = self.outbound.take_due(Instant::now());
                    self.unwritten.extend(due);
                }
                written = write_to(self.pty.as_ref(), &pending_write), if !pending_write.is_empty() => {
                    match written {
                        Ok(n) => {
                            self.unwritten.drain(..n);
                        }
                        Err(_) => self.unplug_now(),
                    }
                }
            }
        }
        self.unplug_now();
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Send(bytes) => {
                if self.pty.is_some() {
                    self.outbound.push(&bytes);
                }
            }
            Command::Noise(WireDirection::HostToDevice, p) => self.inbound.noise = p,
            Command::Noise(WireDirection::DeviceToHost, p) => self.outbound.noise = p,
            Command::Unplug(done) => {
                self.unplug_now();
                let _ = done.send(());
            }
            Command::Replug(done) => {
                self.unplug_now();
                let result = Pty::open(&self.link).map(|pty| self.pty = Some(pty));
                self.watching_opens = true;
                let _ = done.send(result);
            }
        }
    }

    fn unplug_now(&mut self) {
        // The path may belong to another wire by now (a new simulator on the same link, started
        // before this task got round to ending): only our own link goes.
        if let Some(pty) = self.pty.take()
            && std::fs::read_link(&self.link).is_ok_and(|target| target == pty.slave_path)
        {
            let _ = std::fs::remove_file(&self.link);
        }
        self.inbound.clear();
        self.outbound.clear();
        self.unwritten.clear();
    }
}

async fn read_from(pty: Option<&Pty>, buf: &mut [u8]) -> io::Result<usize> {
    match pty {
        Some(pty) => pty.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn opened(pty: Option<&Pty>) -> io::Result<()> {
    match pty {
        Some(pty) => pty.opened().await,
        None => std::future::pending().await,
    }
}

async fn write_to(pty: Option<&Pty>, bytes: &[u8]) -> io::Result<usize> {
    match pty {
        Some(pty) => pty.write(bytes).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microfab_drivers::link::{SerialLink, SerialSettings};

    fn wire(dir: &Path, baud: u32) -> SerialWire {
        SerialWire::open(WireConfig {
            link: dir.join("port"),
            baud,
            seed: 1,
        })
        .unwrap()
    }

    async fn receive_at_least(wire: &mut SerialWire, n: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(wire.recv().await.unwrap());
        }
        got
    }

    #[tokio::test]
    async fn bytes_cross_in_both_directions_at_the_baud_rate() {
        let dir = tempfile::tempdir().unwrap();
        let mut wire = wire(dir.path(), 9600);
        let mut host =
            SerialLink::open(&SerialSettings::new(wire.link().to_str().unwrap(), 9600)).unwrap();
        let payload = vec![b'x'; 480];
        host.queue(&payload);
        wire.send(b"hello\n".to_vec());
        let start = Instant::now();
        // 960 bytes/s: the 480 bytes need half a second on the wire.
        let (received, echoed) = tokio::join!(receive_at_least(&mut wire, 480), async {
            let mut echoed = Vec::new();
            while echoed.len() < 6 {
                echoed.extend_from_slice(host.transfer().await.unwrap());
            }
            echoed
        });
        let elapsed = start.elapsed();
        assert_eq!(received, payload);
        assert_eq!(echoed, b"hello\n");
        assert!(
            elapsed >= Duration::from_millis(495) && elapsed < Duration::from_millis(700),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn unplug_breaks_the_host_port_and_replug_brings_the_path_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut wire = wire(dir.path(), 115_200);
        let settings = SerialSettings::new(wire.link().to_str().unwrap(), 115_200);
        let mut host = SerialLink::open(&settings).unwrap();
        wire.unplug().await;
        assert!(host.transfer().await.is_err());
        assert!(!wire.link().exists());
        assert!(SerialLink::open(&settings).is_err());
        wire.replug().await.unwrap();
        let mut host = SerialLink::open(&settings).unwrap();
        host.queue(b"G0\n");
        let pending = host.transfer();
        let received = tokio::select! {
            got = receive_at_least(&mut wire, 3) => got,
            _ = pending => panic!("nothing was sent to the host"),
        };
        assert_eq!(received, b"G0\n");
    }

    #[tokio::test]
    async fn the_host_can_close_and_reopen_the_port() {
        let dir = tempfile::tempdir().unwrap();
        let mut wire = wire(dir.path(), 115_200);
        let settings = SerialSettings::new(wire.link().to_str().unwrap(), 115_200);
        // Exclusive while open (TIOCEXCL), released on close.
        let first = SerialLink::open(&settings).unwrap();
        assert!(
            SerialLink::open(&settings).is_err(),
            "a second opener is refused"
        );
        drop(first);
        let mut host = SerialLink::open(&settings).unwrap();
        host.queue(b"$G\n");
        let received = tokio::select! {
            got = receive_at_least(&mut wire, 3) => got,
            _ = host.transfer() => panic!("host port failed"),
        };
        assert_eq!(received, b"$G\n");
    }

    #[tokio::test]
    async fn a_wire_that_ends_leaves_a_newer_wire_on_the_same_path_alone() {
        let dir = tempfile::tempdir().unwrap();
        let old = wire(dir.path(), 115_200);
        let new = wire(dir.path(), 115_200);
        let target = std::fs::read_link(new.link()).unwrap();
        drop(old);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(std::fs::read_link(new.link()).unwrap(), target);
        drop(new);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!dir.path().join("port").exists(), "the last one removes it");
    }

    #[tokio::test]
    async fn every_open_by_the_host_is_reported_to_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let mut wire = wire(dir.path(), 115_200);
        let settings = SerialSettings::new(wire.link().to_str().unwrap(), 115_200);
        let mut opens = wire.take_host_opens().unwrap();
        let no_open = tokio::time::timeout(Duration::from_millis(100), opens.recv()).await;
        assert!(no_open.is_err(), "creating the port is not an open");
        for _ in 0..2 {
            let host = SerialLink::open(&settings).unwrap();
            tokio::time::timeout(Duration::from_secs(2), opens.recv())
                .await
                .expect("the open was seen")
                .unwrap();
            drop(host);
        }
    }

    #[tokio::test]
    async fn noise_corrupts_about_the_requested_share_of_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut wire = wire(dir.path(), 1_000_000);
        wire.set_noise(WireDirection::HostToDevice, 0.25);
        let mut host =
            SerialLink::open(&SerialSettings::new(wire.link().to_str().unwrap(), 115_200)).unwrap();
        let line = b"G1 X10 Y20\n";
        for _ in 0..400 {
            host.queue(line);
        }
        let received = tokio::select! {
            got = receive_at_least(&mut wire, 400 * line.len()) => got,
            _ = host.transfer() => panic!("host port failed"),
        };
        let corrupted = received
            .chunks(line.len())
            .filter(|chunk| *chunk != line)
            .count();
        assert!((60..140).contains(&corrupted), "{corrupted} of 400");
    }
}
