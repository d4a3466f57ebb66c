//! The Docker probe that decides whether the MongoDB tests may start a
//! container (`common/docker.rs`), against fake sockets: its answer only.
//! Nothing here starts a container; that part (`common/container.rs`)
//! needs a real engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/docker.rs"]
mod docker;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use docker::{Engine, engine_from, ping};

const QUICK: Duration = Duration::from_millis(500);

const ENGINE_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK";

/// A Unix socket in a fresh directory whose one connection gets `answer`
/// (after the request is read), then is held open for a while.
fn unix_server(answer: &'static [u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        serve(&mut stream, answer);
    });
    (dir, path)
}

fn serve(stream: &mut (impl Read + Write), answer: &[u8]) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 256];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).unwrap();
        if read == 0 {
            return;
        }
        request.extend_from_slice(&chunk[..read]);
    }
    assert!(request.starts_with(b"GET /_ping HTTP/1.1\r\n"));
    stream.write_all(answer).unwrap();
    // Not closing: the probe must not need the close to decide.
    std::thread::sleep(Duration::from_secs(3));
}

fn ping_unix(path: PathBuf) -> Result<(), String> {
    ping(&Engine::Unix(path), QUICK)
}

#[test]
fn a_missing_socket_is_no_engine() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let answer = ping_unix(dir.path().join("docker.sock"));
    assert_eq!(answer, Err("no such socket".to_string()));
    assert!(started.elapsed() < QUICK);
}

#[test]
fn a_socket_nobody_listens_on_is_no_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    drop(UnixListener::bind(&path).unwrap());
    let answer = ping_unix(path).unwrap_err();
    assert!(answer.starts_with("cannot connect"), "{answer}");
}

#[test]
fn a_file_that_is_no_socket_is_no_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    std::fs::write(&path, "not a socket").unwrap();
    let answer = ping_unix(path).unwrap_err();
    assert!(answer.starts_with("cannot connect"), "{answer}");
}

#[test]
fn a_socket_that_closes_is_no_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || drop(listener.accept().unwrap()));
    let answer = ping_unix(path).unwrap_err();
    assert!(
        answer == "closed without answering" || answer.contains("reset") || answer.contains("pipe"),
        "{answer}"
    );
}

#[test]
fn a_socket_that_never_answers_is_no_engine_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (_stream, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(3));
    });
    let started = Instant::now();
    assert_eq!(ping_unix(path), Err("no answer in time".to_string()));
    let took = started.elapsed();
    assert!(took >= QUICK && took < QUICK * 2, "{took:?}");
}

#[test]
fn a_socket_that_speaks_something_else_is_no_engine() {
    let (_dir, path) = unix_server(b"+OK POP3 server ready\r\n");
    assert_eq!(
        ping_unix(path),
        Err("answered something other than HTTP".to_string())
    );
}

#[test]
fn an_http_server_without_the_ping_is_no_engine() {
    let (_dir, path) = unix_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    assert_eq!(
        ping_unix(path),
        Err("answered \"HTTP/1.1 404 Not Found\", not 200".to_string())
    );
    let (_dir, path) = unix_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(
        ping_unix(path),
        Err("answered 200 with \"hello\", not OK".to_string())
    );
}

#[test]
fn an_engine_that_answers_ok_is_one() {
    let (_dir, path) = unix_server(ENGINE_ANSWER);
    let started = Instant::now();
    assert_eq!(ping_unix(path), Ok(()));
    assert!(started.elapsed() < QUICK);
}

#[test]
fn a_chunked_ok_is_one_too() {
    let (_dir, path) =
        unix_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n");
    assert_eq!(ping_unix(path), Ok(()));
}

#[test]
fn an_engine_over_tcp_answers_too() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        serve(&mut stream, ENGINE_ANSWER);
    });
    let engine = engine_from(Some(&format!("tcp://{address}")), &[]).unwrap();
    assert_eq!(engine, Engine::Tcp(address.to_string()));
    assert_eq!(ping(&engine, QUICK), Ok(()));
}

#[test]
fn a_tcp_port_nobody_listens_on_is_no_engine() {
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let answer = ping(&Engine::Tcp(address.to_string()), QUICK).unwrap_err();
    assert!(answer.starts_with("cannot connect"), "{answer}");
}

#[test]
fn docker_host_names_the_engine() {
    let sockets = [PathBuf::from("/nonexistent/docker.sock")];
    assert_eq!(
        engine_from(Some("unix:///run/user/1000/docker.sock"), &sockets),
        Ok(Engine::Unix("/run/user/1000/docker.sock".into()))
    );
    assert_eq!(
        engine_from(Some("tcp://127.0.0.1:2375"), &sockets),
        Ok(Engine::Tcp("127.0.0.1:2375".into()))
    );
    assert_eq!(
        engine_from(Some("http://docker:2375/"), &sockets),
        Ok(Engine::Tcp("docker:2375".into()))
    );
    assert!(
        engine_from(Some("ssh://me@host"), &sockets)
            .unwrap_err()
            .contains("not probed")
    );
    assert_eq!(
        Engine::Unix("/var/run/docker.sock".into()).to_string(),
        "unix:///var/run/docker.sock"
    );
}

#[test]
fn without_docker_host_the_first_socket_there_is_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let present = dir.path().join("present.sock");
    std::fs::write(&present, "").unwrap();
    assert_eq!(
        engine_from(None, &[missing.clone(), present.clone()]),
        Ok(Engine::Unix(present))
    );
    assert_eq!(
        engine_from(Some("  "), std::slice::from_ref(&missing)),
        Ok(Engine::Unix(missing.clone()))
    );
    // None there: the first, which the ping then finds missing.
    assert_eq!(
        engine_from(None, &[missing.clone(), dir.path().join("other.sock")]),
        Ok(Engine::Unix(missing))
    );
}
