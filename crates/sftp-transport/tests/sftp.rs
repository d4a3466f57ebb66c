//! `SftpDir` against a real OpenSSH server: the shared behaviour, logins,
//! host-key checks, and an upload cut off by killing the server.
//!
//! Needs the server that `scripts/test-services.sh start` runs, and the
//! variables of `.test-services/env`. Without them these tests print
//! SKIPPED and pass, except under `CI=true`, where they fail. Each test
//! works in its own new folder under `ABS_TEST_SFTP_ROOT`, so they run in
//! parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::{Harness, behaviour_tests, local_file};
use sftp_transport::{
    IfMissing, RemoteDir, SftpAuth, SftpConfig, SftpDir, TransportError, UploadOutcome,
};
use ssh2::{FileStat, Session, Sftp};
use tempfile::TempDir;

/// An ed25519 public key that is not the test server's.
const OTHER_ED25519_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXLirzeT8ZbON747QvFknFDdERPrG2XvGeR5zjNMLas";

const VARS: [&str; 8] = [
    "ABS_TEST_SFTP_HOST",
    "ABS_TEST_SFTP_PORT",
    "ABS_TEST_SFTP_USER",
    "ABS_TEST_SFTP_PASSWORD",
    "ABS_TEST_SFTP_KEY",
    "ABS_TEST_SFTP_KNOWN_HOSTS",
    "ABS_TEST_SFTP_ROOT",
    "ABS_TEST_SSHD_CONFIG",
];

/// The test server, from the environment.
#[derive(Clone)]
struct Env {
    host: String,
    port: u16,
    user: String,
    password: String,
    key: PathBuf,
    known_hosts: PathBuf,
    root: String,
    sshd_config: PathBuf,
}

fn env() -> Option<Env> {
    let missing: Vec<&str> = VARS
        .into_iter()
        .filter(|var| std::env::var(var).map_or(true, |value| value.is_empty()))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the SFTP test server is not configured (missing {missing:?}): \
             run scripts/test-services.sh start and source .test-services/env before the tests"
        );
        // Straight to stderr, past the test harness's output capture, once.
        static SKIPPED: Once = Once::new();
        SKIPPED.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: SFTP test server not running (run scripts/test-services.sh start and source .test-services/env)"
            );
        });
        return None;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    Some(Env {
        host: var("ABS_TEST_SFTP_HOST"),
        port: var("ABS_TEST_SFTP_PORT")
            .parse()
            .expect("ABS_TEST_SFTP_PORT is a port number"),
        user: var("ABS_TEST_SFTP_USER"),
        password: var("ABS_TEST_SFTP_PASSWORD"),
        key: var("ABS_TEST_SFTP_KEY").into(),
        known_hosts: var("ABS_TEST_SFTP_KNOWN_HOSTS").into(),
        root: var("ABS_TEST_SFTP_ROOT"),
        sshd_config: var("ABS_TEST_SSHD_CONFIG").into(),
    })
}

/// A plain key-authenticated SFTP session that does not check the host
/// key: the tests' own back door for arranging and inspecting folders.
fn raw_sftp(env: &Env) -> (Session, Sftp) {
    let stream = TcpStream::connect((env.host.as_str(), env.port)).unwrap();
    let mut session = Session::new().unwrap();
    session.set_timeout(30_000);
    session.set_tcp_stream(stream);
    session.handshake().unwrap();
    session
        .userauth_pubkey_file(&env.user, None, &env.key, None)
        .unwrap();
    let sftp = session.sftp().unwrap();
    (session, sftp)
}

struct SftpHarness {
    env: Env,
    sftp: Sftp,
    _session: Session,
    /// This test's own folder on the server.
    folder: String,
    scratch: TempDir,
}

fn sftp_harness(test: &str) -> Option<SftpHarness> {
    let env = env()?;
    let (session, sftp) = raw_sftp(&env);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let folder = format!("{}/{test}-{}-{nanos}", env.root, std::process::id());
    sftp.mkdir(Path::new(&folder), 0o755).unwrap();
    Some(SftpHarness {
        env,
        sftp,
        _session: session,
        folder,
        scratch: TempDir::new().unwrap(),
    })
}

impl SftpHarness {
    fn config(&self, auth: SftpAuth) -> SftpConfig {
        let mut config = SftpConfig::new(
            self.env.host.clone(),
            self.env.user.clone(),
            auth,
            self.env.known_hosts.clone(),
            self.folder.clone(),
        );
        config.port = self.env.port;
        config.connect_timeout = Duration::from_secs(5);
        config.io_timeout = Duration::from_secs(30);
        config
    }

    fn key_auth(&self) -> SftpAuth {
        SftpAuth::PrivateKey {
            path: self.env.key.clone(),
            passphrase: None,
        }
    }

    fn connect(&self) -> SftpDir {
        SftpDir::connect(&self.config(self.key_auth())).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}", self.folder))
    }

    /// Names and sizes of every entry.
    fn entries(&self) -> Vec<(String, u64)> {
        self.sftp
            .readdir(Path::new(&self.folder))
            .unwrap()
            .into_iter()
            .map(|(path, stat)| {
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                (name, stat.size.unwrap_or(0))
            })
            .collect()
    }

    /// A known_hosts file that lists `lines`.
    fn known_hosts_file(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.scratch.path().join(name);
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    /// The test server's known_hosts lines, with the host part replaced.
    fn known_host_lines_for(&self, host_part: &str) -> Vec<String> {
        fs::read_to_string(&self.env.known_hosts)
            .unwrap()
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (_, key) = line.split_once(' ').unwrap();
                format!("{host_part} {key}")
            })
            .collect()
    }
}

fn remove_tree(sftp: &Sftp, folder: &Path) {
    if let Ok(entries) = sftp.readdir(folder) {
        for (path, stat) in entries {
            if stat.is_dir() {
                remove_tree(sftp, &path);
            } else {
                let _ = sftp.unlink(&path);
            }
        }
    }
    let _ = sftp.rmdir(folder);
}

impl Drop for SftpHarness {
    fn drop(&mut self) {
        // Keep the folder of a failed test for inspection.
        if !thread::panicking() {
            remove_tree(&self.sftp, Path::new(&self.folder));
        }
    }
}

impl Harness for SftpHarness {
    fn dir(&self) -> Box<dyn RemoteDir> {
        Box::new(self.connect())
    }

    fn subdir(&self, name: &str) -> Box<dyn RemoteDir> {
        Box::new(self.connect().open_folder(name, IfMissing::Create).unwrap())
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        let mut file = self.sftp.create(&self.path(name)).unwrap();
        file.write_all(bytes).unwrap();
        file.close().unwrap();
    }

    fn set_mtime(&self, name: &str, unix_secs: i64) {
        let secs = u64::try_from(unix_secs).unwrap();
        let times = FileStat {
            size: None,
            uid: None,
            gid: None,
            perm: None,
            atime: Some(secs),
            mtime: Some(secs),
        };
        self.sftp.setstat(&self.path(name), times).unwrap();
    }

    fn get(&self, name: &str) -> Option<Vec<u8>> {
        let mut file = self.sftp.open(self.path(name)).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        Some(bytes)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries().into_iter().map(|(name, _)| name).collect();
        names.sort();
        names
    }

    fn mkdir(&self, name: &str) {
        self.sftp.mkdir(&self.path(name), 0o755).unwrap();
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}

behaviour_tests!(sftp_harness);

#[test]
fn handles_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<SftpDir>();
    assert_send::<Box<dyn RemoteDir>>();
}

#[test]
fn password_login_uploads() {
    let Some(h) = sftp_harness("password_login_uploads") else {
        return;
    };
    let dir = SftpDir::connect(&h.config(SftpAuth::Password(h.env.password.clone()))).unwrap();
    let local = local_file(&h, "f", b"by password\n");

    assert_eq!(
        dir.upload_atomic(&local, "f").unwrap(),
        UploadOutcome::Uploaded { size: 12 }
    );
    assert_eq!(h.get("f").unwrap(), b"by password\n");
    assert_eq!(dir.path(), h.folder);
    assert_eq!(
        dir.location(),
        format!(
            "sftp://{}@{}:{}{}",
            h.env.user, h.env.host, h.env.port, h.folder
        )
    );
}

#[test]
fn private_key_login_uploads() {
    let Some(h) = sftp_harness("private_key_login_uploads") else {
        return;
    };
    let dir = SftpDir::connect(&h.config(h.key_auth())).unwrap();
    let local = local_file(&h, "f", b"by key\n");

    assert_eq!(
        dir.upload_atomic(&local, "f").unwrap(),
        UploadOutcome::Uploaded { size: 7 }
    );
    assert_eq!(h.get("f").unwrap(), b"by key\n");
}

#[test]
fn a_wrong_password_is_refused_without_showing_it() {
    let Some(h) = sftp_harness("a_wrong_password_is_refused_without_showing_it") else {
        return;
    };
    let error =
        SftpDir::connect(&h.config(SftpAuth::Password("not-the-password".into()))).unwrap_err();

    assert!(matches!(error, TransportError::Auth { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("password authentication for user sftptest"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
}

#[test]
fn a_missing_key_file_is_named() {
    let Some(h) = sftp_harness("a_missing_key_file_is_named") else {
        return;
    };
    let auth = SftpAuth::PrivateKey {
        path: h.scratch().join("no_such_key"),
        passphrase: None,
    };
    let error = SftpDir::connect(&h.config(auth)).unwrap_err();
    assert!(matches!(error, TransportError::KeyFile { .. }), "{error:?}");
    assert!(error.to_string().contains("no_such_key"), "{error}");
}

#[test]
fn a_changed_host_key_is_refused() {
    let Some(h) = sftp_harness("a_changed_host_key_is_refused") else {
        return;
    };
    let host_part = format!("[{}]:{}", h.env.host, h.env.port);
    let known_hosts =
        h.known_hosts_file("known_hosts", &[format!("{host_part} {OTHER_ED25519_KEY}")]);
    let mut config = h.config(h.key_auth());
    config.known_hosts = known_hosts.clone();

    let error = SftpDir::connect(&config).unwrap_err();

    assert!(
        matches!(error, TransportError::HostKeyMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&known_hosts.display().to_string()),
        "{message}"
    );
    assert!(message.contains("does NOT match"), "{message}");
    assert!(message.contains("SHA256:"), "{message}");
    assert!(h.names().is_empty());
}

#[test]
fn an_unknown_host_is_refused_and_the_suggested_line_lets_it_in() {
    let Some(h) = sftp_harness("an_unknown_host_is_refused_and_the_suggested_line_lets_it_in")
    else {
        return;
    };
    // The right key, but for another port: not this server.
    let other_port = format!("[{}]:{}", h.env.host, h.env.port + 1);
    let known_hosts = h.known_hosts_file("known_hosts", &h.known_host_lines_for(&other_port));
    let mut config = h.config(h.key_auth());
    config.known_hosts = known_hosts.clone();

    let error = SftpDir::connect(&config).unwrap_err();

    let TransportError::UnknownHostKey { line, .. } = &error else {
        panic!("expected UnknownHostKey, got {error:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains(&known_hosts.display().to_string()),
        "{message}"
    );
    assert!(message.contains("is not in known_hosts"), "{message}");
    assert!(
        line.starts_with(&format!("[{}]:{} ssh-", h.env.host, h.env.port)),
        "{line}"
    );

    // Following the message's advice works.
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&known_hosts)
        .unwrap();
    writeln!(file, "{line}").unwrap();
    drop(file);
    SftpDir::connect(&config).unwrap();
}

#[test]
fn hashed_known_hosts_entries_are_understood() {
    let Some(h) = sftp_harness("hashed_known_hosts_entries_are_understood") else {
        return;
    };
    let host_part = format!("[{}]:{}", h.env.host, h.env.port);
    let known_hosts = h.known_hosts_file("known_hosts", &h.known_host_lines_for(&host_part));
    // `ssh-keygen -H` replaces host names by salted hashes, as
    // `HashKnownHosts yes` does.
    let status = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let hashed = fs::read_to_string(&known_hosts).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    let mut config = h.config(h.key_auth());
    config.known_hosts = known_hosts;

    SftpDir::connect(&config).unwrap();
}

#[test]
fn an_empty_or_missing_known_hosts_file_is_refused() {
    let Some(h) = sftp_harness("an_empty_or_missing_known_hosts_file_is_refused") else {
        return;
    };
    let mut config = h.config(h.key_auth());
    config.known_hosts = h.known_hosts_file("empty", &[]);
    let error = SftpDir::connect(&config).unwrap_err();
    assert!(
        matches!(error, TransportError::UnknownHostKey { .. }),
        "{error:?}"
    );

    config.known_hosts = h.scratch().join("no_such_known_hosts");
    let error = SftpDir::connect(&config).unwrap_err();
    assert!(
        matches!(error, TransportError::KnownHostsUnreadable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no_such_known_hosts"), "{error}");
}

#[test]
fn a_missing_folder_is_an_error_naming_it() {
    let Some(h) = sftp_harness("a_missing_folder_is_an_error_naming_it") else {
        return;
    };
    let mut config = h.config(h.key_auth());
    config.folder = format!("{}/not-there", h.folder);

    let error = SftpDir::connect(&config).unwrap_err();

    assert!(
        matches!(error, TransportError::FolderMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not-there"), "{error}");
    assert!(h.names().is_empty(), "connect must not create the folder");
}

#[test]
fn nobody_listening_fails_fast() {
    let Some(h) = sftp_harness("nobody_listening_fails_fast") else {
        return;
    };
    let mut config = h.config(h.key_auth());
    config.port = free_port();
    let started = Instant::now();

    let error = SftpDir::connect(&config).unwrap_err();

    assert!(matches!(error, TransportError::Connect { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A port nothing listens on (right now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A second sshd of the test configuration, on its own port, that a test
/// may kill.
struct PrivateSshd {
    listener: Child,
}

impl PrivateSshd {
    fn start(env: &Env, port: u16, log: &Path) -> PrivateSshd {
        // `-p` replaces the configuration's port; `-o Port=` would add one.
        let listener = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&env.sshd_config)
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let sshd = PrivateSshd { listener };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_ssh(&env.host, port) {
            assert!(
                Instant::now() < deadline,
                "private sshd on port {port} did not start; see {}",
                log.display()
            );
            thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    /// Kills the listener and every session process it forked (sshd
    /// gives each connection its own session, so they are not in the
    /// listener's process group).
    fn kill_with_sessions(&mut self) {
        let mut pids = descendants(self.listener.id());
        pids.push(self.listener.id());
        let status = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        // Some may already be gone; the listener is reaped below.
        let _ = status;
        let _ = self.listener.wait();
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        if let Ok(None) = self.listener.try_wait() {
            self.kill_with_sessions();
        }
    }
}

fn answers_ssh(host: &str, port: u16) -> bool {
    let Ok(stream) = TcpStream::connect((host, port)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut banner = String::new();
    BufReader::new(stream).read_line(&mut banner).is_ok() && banner.starts_with("SSH-2.0")
}

/// All processes below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok())
        {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            queue.push_back(child);
        }
    }
    found
}

#[test]
fn an_upload_cut_off_by_the_server_dying_leaves_no_file_and_a_retry_succeeds() {
    let Some(h) = sftp_harness("an_upload_cut_off_by_the_server_dying") else {
        return;
    };
    const NAME: &str = "LIB_charges.dat.20241210.43.1";
    let port = free_port();
    let mut sshd = PrivateSshd::start(&h.env, port, &h.scratch().join("sshd-1.log"));
    let host_part = format!("[{}]:{port}", h.env.host);
    let mut config = h.config(h.key_auth());
    config.port = port;
    config.known_hosts = h.known_hosts_file("known_hosts", &h.known_host_lines_for(&host_part));

    // Big enough that the transfer is still running when we kill it.
    let block: Vec<u8> = (0..1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = h.scratch().join(NAME);
    {
        let mut file = fs::File::create(&big).unwrap();
        for i in 0..16u8 {
            file.write_all(&[i]).unwrap();
            file.write_all(&block).unwrap();
        }
    }
    let size = fs::metadata(&big).unwrap().len();

    let uploader = {
        let (config, big) = (config.clone(), big.clone());
        thread::spawn(move || SftpDir::connect(&config)?.upload_atomic(&big, NAME))
    };
    // Watch through the main server until the temporary file is growing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let growing = h
            .entries()
            .iter()
            .any(|(name, size)| name.starts_with(&format!(".{NAME}.")) && *size > 0);
        if growing || uploader.is_finished() {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never started");
        thread::sleep(Duration::from_millis(2));
    }
    sshd.kill_with_sessions();

    let error = uploader
        .join()
        .unwrap()
        .expect_err("the upload finished before the server was killed; make the file bigger");
    assert!(error.is_transient(), "{error:?}");
    assert!(!h.names().contains(&NAME.to_string()), "{:?}", h.names());
    assert!(h.get(NAME).is_none());

    // The server comes back; the next run completes the upload.
    let _sshd = PrivateSshd::start(&h.env, port, &h.scratch().join("sshd-2.log"));
    let outcome = SftpDir::connect(&config)
        .unwrap()
        .upload_atomic(&big, NAME)
        .unwrap();

    assert_eq!(outcome, UploadOutcome::Uploaded { size });
    assert!(
        h.get(NAME).unwrap() == fs::read(&big).unwrap(),
        "content differs"
    );
    assert_eq!(
        h.names(),
        [NAME],
        "the interrupted attempt's leftover is removed"
    );
}
