//! Whether a Docker engine answers, asked cheaply before testcontainers is
//! asked for anything: where no engine runs, testcontainers would spend its
//! own timeouts failing to reach one, in every test binary.
//!
//! The engine is the one testcontainers would use (with no
//! `~/.testcontainers.properties`): `DOCKER_HOST` when set, otherwise the
//! first of the usual sockets that exists, `/var/run/docker.sock` first.
//! It answers when `GET /_ping` gets `200` and the body `OK` within a
//! second. Plain HTTP only: an engine behind TLS (`DOCKER_TLS_VERIFY`)
//! does not answer this probe.
//!
//! Pure std, so that `tests/docker_probe.rs` tests it on its own.
#![allow(dead_code)]

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the whole probe may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The socket testcontainers falls back on.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where a Docker engine may listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Unix(path) => write!(f, "unix://{}", path.display()),
            Engine::Tcp(address) => write!(f, "tcp://{address}"),
        }
    }
}

/// The engine the environment names, and whether it answers: `Err` says
/// which socket or host was tried and why it did not do.
pub fn probe() -> Result<Engine, String> {
    let engine = engine_from(
        std::env::var("DOCKER_HOST").ok().as_deref(),
        &default_sockets(),
    )?;
    ping(&engine, PING_TIMEOUT).map_err(|why| format!("{engine}: {why}"))?;
    Ok(engine)
}

/// The sockets testcontainers looks for when `DOCKER_HOST` is unset, in
/// its order: the system one, then rootless Docker's and Docker Desktop's.
pub fn default_sockets() -> Vec<PathBuf> {
    let mut sockets = vec![PathBuf::from(DEFAULT_SOCKET)];
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        sockets.push(Path::new(&dir).join(".docker/run/docker.sock"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        sockets.push(Path::new(&home).join(".docker/run/docker.sock"));
        sockets.push(Path::new(&home).join(".docker/desktop/docker.sock"));
    }
    sockets
}

/// `DOCKER_HOST` (`unix://`, `tcp://` or `http://`) when set and not
/// blank; otherwise the first of `sockets` that exists, or the first of
/// them when none does (the probe then says it is missing).
pub fn engine_from(docker_host: Option<&str>, sockets: &[PathBuf]) -> Result<Engine, String> {
    if let Some(host) = docker_host.map(str::trim).filter(|host| !host.is_empty()) {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Engine::Unix(PathBuf::from(path)));
        }
        if let Some(address) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let address = address.trim_end_matches('/');
            if address.is_empty() {
                return Err(format!("DOCKER_HOST={host}: no host:port"));
            }
            return Ok(Engine::Tcp(address.to_string()));
        }
        return Err(format!(
            "DOCKER_HOST={host}: not unix:// or tcp://, not probed"
        ));
    }
    let socket = sockets
        .iter()
        .find(|socket| socket.exists())
        .or(sockets.first())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    Ok(Engine::Unix(socket))
}

/// `Ok` when `GET /_ping` at `engine` is answered `200` with the body `OK`
/// within `timeout`; otherwise why not.
pub fn ping(engine: &Engine, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    match engine {
        Engine::Unix(path) => {
            if !path.exists() {
                return Err("no such socket".to_string());
            }
            let stream = UnixStream::connect(path).map_err(|e| format!("cannot connect: {e}"))?;
            exchange(stream, deadline)
        }
        Engine::Tcp(address) => {
            let addresses: Vec<_> = address
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve: {e}"))?
                .collect();
            let mut refused = format!("{address} resolves to no address");
            for one in addresses {
                let left = left(deadline)?;
                match TcpStream::connect_timeout(&one, left) {
                    Ok(stream) => return exchange(stream, deadline),
                    Err(e) => refused = format!("cannot connect to {one}: {e}"),
                }
            }
            Err(refused)
        }
    }
}

/// Time left before `deadline`, or the error that there is none.
fn left(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err("no answer in time".to_string())
    } else {
        Ok(left)
    }
}

/// What a socket stream needs for the exchange.
trait Stream: Read + Write {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Stream for TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

/// Sends the ping and reads the answer until it is whole, the peer closes,
/// or `deadline` passes.
fn exchange(mut stream: impl Stream, deadline: Instant) -> Result<(), String> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "no answer in time".to_string()
        }
        _ => format!("{e}"),
    };
    stream.set_timeouts(left(deadline)?).map_err(io)?;
    stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .map_err(io)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(verdict) = judge(&answer, false) {
            return verdict;
        }
        stream.set_timeouts(left(deadline)?).map_err(io)?;
        let read = stream.read(&mut chunk).map_err(io)?;
        if read == 0 {
            return judge(&answer, true).unwrap_or_else(|| Err("closed mid-answer".to_string()));
        }
        answer.extend_from_slice(&chunk[..read]);
        if answer.len() > 64 * 1024 {
            return Err("answered more than a ping's worth".to_string());
        }
    }
}

/// The verdict on an HTTP answer read so far, or `None` while it may yet
/// be incomplete (`closed`: nothing more will come).
fn judge(answer: &[u8], closed: bool) -> Option<Result<(), String>> {
    if answer.is_empty() {
        return closed.then(|| Err("closed without answering".to_string()));
    }
    // A short read may hold only the start of "HTTP/1.x".
    let version = b"HTTP/1.";
    if !answer.starts_with(&version[..answer.len().min(version.len())]) {
        return Some(Err("answered something other than HTTP".to_string()));
    }
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return closed.then(|| Err("closed mid-answer".to_string()));
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let body = &answer[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Some(Err(format!("answered {status:?}, not 200")));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let body = if chunked {
        dechunk(body)?
    } else if let Some(length) = length {
        if body.len() < length {
            return closed.then(|| Err("closed mid-answer".to_string()));
        }
        body[..length].to_vec()
    } else if closed {
        body.to_vec()
    } else {
        return None;
    };
    Some(if body.trim_ascii() == b"OK" {
        Ok(())
    } else {
        Err(format!(
            "answered 200 with {:?}, not OK",
            String::from_utf8_lossy(&body)
        ))
    })
}

/// The body of a whole chunked answer, or `None` while chunks are missing.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&rest[..end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
