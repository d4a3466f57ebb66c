//! [`SftpDir`]: a folder on an SFTP server, over ssh2 (libssh2).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ssh2::{
    CheckResult, ErrorCode, FileStat, HashType, KnownHostFileKind, OpenFlags, OpenType,
    RenameFlags, Session, Sftp,
};

use crate::atomic::{self, Backend, TempWriter};
use crate::{IfMissing, RemoteDir, RemoteFile, Result, TransportError, UploadOutcome};

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02, section 7).
const FX_NO_SUCH_FILE: i32 = 2;
const FX_OP_UNSUPPORTED: i32 = 8;
const FX_NO_SUCH_PATH: i32 = 10;

/// How to log in.
#[derive(Clone)]
pub enum SftpAuth {
    /// A password.
    Password(String),
    /// A private key file (OpenSSH or PEM format), with its passphrase if
    /// it has one.
    PrivateKey {
        path: PathBuf,
        passphrase: Option<String>,
    },
}

impl SftpAuth {
    fn method(&self) -> &'static str {
        match self {
            SftpAuth::Password(_) => "password",
            SftpAuth::PrivateKey { .. } => "private key",
        }
    }
}

/// Never shows a password or a passphrase.
impl fmt::Debug for SftpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SftpAuth::Password(_) => f.write_str("Password(<redacted>)"),
            SftpAuth::PrivateKey { path, passphrase } => f
                .debug_struct("PrivateKey")
                .field("path", path)
                .field("passphrase", &passphrase.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// Where an [`SftpDir`] is and how to reach it. Plain data: the binary
/// fills it from the configuration file (and secrets from the
/// environment); [`SftpConfig::new`] gives the usual defaults.
#[derive(Clone, Debug)]
pub struct SftpConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SftpAuth,
    /// An OpenSSH known_hosts file that lists the server's host key, as
    /// `host key-type key` or, for a port other than 22,
    /// `[host]:port key-type key` (hashed entries work too; for a port
    /// other than 22, libssh2 also accepts a plain `host` entry). Connecting
    /// to a server whose key is missing or different is refused.
    pub known_hosts: PathBuf,
    /// The folder, absolute or relative to the login folder. It must exist.
    pub folder: String,
    /// Limit for establishing the TCP connection, per address.
    pub connect_timeout: Duration,
    /// Limit for any single SSH/SFTP exchange (handshake included) once
    /// connected; a server that stops answering fails after this long.
    pub io_timeout: Duration,
    /// Permission bits of uploaded files.
    pub file_mode: i32,
}

impl SftpConfig {
    pub const DEFAULT_PORT: u16 = 22;
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(120);
    pub const DEFAULT_FILE_MODE: i32 = 0o644;

    /// A configuration with port 22, the default timeouts and file mode.
    pub fn new(
        host: impl Into<String>,
        user: impl Into<String>,
        auth: SftpAuth,
        known_hosts: impl Into<PathBuf>,
        folder: impl Into<String>,
    ) -> SftpConfig {
        SftpConfig {
            host: host.into(),
            port: SftpConfig::DEFAULT_PORT,
            user: user.into(),
            auth,
            known_hosts: known_hosts.into(),
            folder: folder.into(),
            connect_timeout: SftpConfig::DEFAULT_CONNECT_TIMEOUT,
            io_timeout: SftpConfig::DEFAULT_IO_TIMEOUT,
            file_mode: SftpConfig::DEFAULT_FILE_MODE,
        }
    }

    /// `host:port`, as messages show it.
    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |setting, problem: &str| {
            Err(TransportError::InvalidConfig {
                setting,
                problem: problem.to_string(),
            })
        };
        if self.host.is_empty() || self.host.contains(|c: char| c.is_whitespace() || c == '\0') {
            return invalid("host", "it must be a host name or address, without spaces");
        }
        if self.port == 0 {
            return invalid("port", "it must be 1-65535");
        }
        if self.user.is_empty() || self.user.contains('\0') {
            return invalid("user", "it must be a user name");
        }
        if self.folder.contains('\0') {
            return invalid("folder", "it contains a NUL character");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect timeout", "it must be more than zero");
        }
        if self.io_timeout.is_zero() {
            return invalid("I/O timeout", "it must be more than zero");
        }
        if !(0..=0o7777).contains(&self.file_mode) {
            return invalid("file mode", "it must be permission bits such as 0o644");
        }
        Ok(())
    }
}

/// One authenticated SFTP session, shared by the folders opened on it.
struct Connection {
    // Field order matters: the SFTP channel is shut down before the session.
    sftp: Sftp,
    _session: Session,
    server: String,
    user: String,
}

/// A folder on an SFTP server.
///
/// [`SftpDir::connect`] opens the connection and the configured folder;
/// [`SftpDir::open_folder`] opens further folders (the archive) on the same
/// connection. The connection closes when the last folder on it is dropped.
pub struct SftpDir {
    conn: Arc<Connection>,
    /// Absolute, as the server resolved it.
    folder: String,
    location: String,
    file_mode: i32,
}

impl fmt::Debug for SftpDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpDir")
            .field("location", &self.location)
            .finish()
    }
}

impl SftpDir {
    /// Connects, checks the server's host key against the known_hosts
    /// file, logs in, and opens the configured folder, which must exist.
    pub fn connect(config: &SftpConfig) -> Result<SftpDir> {
        config.validate()?;
        let server = config.server();
        let stream = connect_tcp(config, &server)?;

        let mut session = Session::new().map_err(|source| TransportError::Handshake {
            server: server.clone(),
            source,
        })?;
        session.set_timeout(u32::try_from(config.io_timeout.as_millis()).unwrap_or(u32::MAX));
        session.set_tcp_stream(stream);
        session
            .handshake()
            .map_err(|source| TransportError::Handshake {
                server: server.clone(),
                source,
            })?;
        check_host_key(&session, config, &server)?;
        authenticate(&session, config, &server)?;
        let sftp = session
            .sftp()
            .map_err(|source| TransportError::SftpSubsystem {
                server: server.clone(),
                user: config.user.clone(),
                source,
            })?;

        let conn = Arc::new(Connection {
            sftp,
            _session: session,
            server,
            user: config.user.clone(),
        });
        let folder = if config.folder.is_empty() {
            "."
        } else {
            &config.folder
        };
        SftpDir::open_on(conn, folder, IfMissing::Fail, config.file_mode)
    }

    /// Opens another folder on the same connection: `path` is absolute, or
    /// relative to this folder.
    pub fn open_folder(&self, path: &str, if_missing: IfMissing) -> Result<SftpDir> {
        if path.contains('\0') {
            return Err(TransportError::InvalidName {
                name: path.to_string(),
                problem: "it contains a NUL character",
            });
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            join(&self.folder, path)
        };
        SftpDir::open_on(Arc::clone(&self.conn), &path, if_missing, self.file_mode)
    }

    /// The folder's absolute path on the server.
    pub fn path(&self) -> &str {
        &self.folder
    }

    fn open_on(
        conn: Arc<Connection>,
        path: &str,
        if_missing: IfMissing,
        file_mode: i32,
    ) -> Result<SftpDir> {
        let missing = |detail: String| TransportError::FolderMissing {
            server: conn.server.clone(),
            folder: path.to_string(),
            detail,
        };
        let resolved = match conn.sftp.realpath(Path::new(path)) {
            Ok(resolved) => resolved,
            Err(error) if is_no_such_file(&error) => match if_missing {
                IfMissing::Fail => return Err(missing(error.to_string())),
                IfMissing::Create => {
                    create_folders(&conn, path)?;
                    conn.sftp
                        .realpath(Path::new(path))
                        .map_err(|error| missing(error.to_string()))?
                }
            },
            Err(source) => {
                return Err(TransportError::Remote {
                    location: format!("sftp://{}@{}", conn.user, conn.server),
                    op: "resolve folder",
                    path: path.to_string(),
                    source,
                });
            }
        };
        let folder = resolved.to_string_lossy().into_owned();
        let location = format!("sftp://{}@{}{}", conn.user, conn.server, folder);
        // OpenSSH resolves a path whose last component is missing, so a
        // missing folder can also first show up here.
        let mut stat = conn.sftp.stat(&resolved);
        if let (Err(error), IfMissing::Create) = (&stat, if_missing)
            && is_no_such_file(error)
        {
            create_folders(&conn, &folder)?;
            stat = conn.sftp.stat(&resolved);
        }
        match stat {
            Ok(stat) if stat.is_dir() => {}
            Ok(_) => {
                return Err(TransportError::NotAFolder {
                    location,
                    path: path.to_string(),
                });
            }
            Err(error) if is_no_such_file(&error) => return Err(missing(error.to_string())),
            Err(source) => {
                return Err(TransportError::Remote {
                    location,
                    op: "stat folder",
                    path: folder,
                    source,
                });
            }
        }
        Ok(SftpDir {
            conn,
            folder,
            location,
            file_mode,
        })
    }

    fn sftp(&self) -> &Sftp {
        &self.conn.sftp
    }

    fn path_of(&self, name: &str) -> Result<PathBuf> {
        atomic::validate_name(name)?;
        Ok(PathBuf::from(join(&self.folder, name)))
    }

    fn remote_error(
        &self,
        op: &'static str,
        name: &str,
    ) -> impl FnOnce(ssh2::Error) -> TransportError {
        let location = self.location.clone();
        let path = name.to_string();
        move |source| TransportError::Remote {
            location,
            op,
            path,
            source,
        }
    }

    fn to_remote_file(&self, name: String, stat: &FileStat) -> Result<RemoteFile> {
        let modified = stat
            .mtime
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
        let Some(modified) = modified else {
            return Err(TransportError::NoModificationTime {
                location: self.location.clone(),
                name,
            });
        };
        Ok(RemoteFile {
            name,
            // A server that does not report sizes fails every size check,
            // which is the safe way to fail.
            size: stat.size.unwrap_or(0),
            modified,
        })
    }
}

fn join(folder: &str, name: &str) -> String {
    if folder.ends_with('/') {
        format!("{folder}{name}")
    } else {
        format!("{folder}/{name}")
    }
}

fn is_no_such_file(error: &ssh2::Error) -> bool {
    matches!(
        error.code(),
        ErrorCode::SFTP(FX_NO_SUCH_FILE) | ErrorCode::SFTP(FX_NO_SUCH_PATH)
    )
}

/// `mkdir -p` over SFTP.
fn create_folders(conn: &Connection, path: &str) -> Result<()> {
    let mut prefix = String::new();
    if path.starts_with('/') {
        prefix.push('/');
    }
    for component in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        prefix = if prefix.is_empty() || prefix == "/" {
            format!("{prefix}{component}")
        } else {
            format!("{prefix}/{component}")
        };
        let candidate = Path::new(&prefix);
        if conn.sftp.stat(candidate).is_ok() {
            continue;
        }
        if let Err(source) = conn.sftp.mkdir(candidate, 0o755) {
            // Another process may have created it meanwhile.
            if conn.sftp.stat(candidate).is_err() {
                return Err(TransportError::Remote {
                    location: format!("sftp://{}@{}", conn.user, conn.server),
                    op: "create folder",
                    path: prefix,
                    source,
                });
            }
        }
    }
    Ok(())
}

fn connect_tcp(config: &SftpConfig, server: &str) -> Result<TcpStream> {
    let addresses: Vec<SocketAddr> = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|source| TransportError::Resolve {
            host: config.host.clone(),
            source,
        })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    if addresses.is_empty() {
        return Err(TransportError::Resolve {
            host: config.host.clone(),
            source: last_error,
        });
    }
    for address in addresses {
        match TcpStream::connect_timeout(&address, config.connect_timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = error,
        }
    }
    Err(TransportError::Connect {
        server: server.to_string(),
        timeout: config.connect_timeout,
        source: last_error,
    })
}

/// Refuses the server unless the known_hosts file lists exactly the key it
/// presented.
fn check_host_key(session: &Session, config: &SftpConfig, server: &str) -> Result<()> {
    let path = &config.known_hosts;
    let check_error = |detail: String| TransportError::HostKeyCheck {
        server: server.to_string(),
        path: path.clone(),
        detail,
    };
    let Some((key, _)) = session.host_key() else {
        return Err(check_error("the server presented no host key".to_string()));
    };
    // libssh2 reports a missing file only as a generic failure; ask the
    // file system first so the message says what is wrong.
    File::open(path).map_err(|error| TransportError::KnownHostsUnreadable {
        path: path.clone(),
        detail: error.to_string(),
    })?;
    let mut known_hosts = session
        .known_hosts()
        .map_err(|error| check_error(error.to_string()))?;
    known_hosts
        .read_file(path, KnownHostFileKind::OpenSSH)
        .map_err(|error| TransportError::KnownHostsUnreadable {
            path: path.clone(),
            detail: format!("it is not a valid OpenSSH known_hosts file ({error})"),
        })?;

    let key_type = key_type_name(key);
    let offered = match session.host_key_hash(HashType::Sha256) {
        Some(hash) => format!("{key_type} key SHA256:{}", base64(hash, false)),
        None => format!("{key_type} key"),
    };
    let host_pattern = if config.port == 22 {
        config.host.clone()
    } else {
        format!("[{}]:{}", config.host, config.port)
    };
    let line = format!("{host_pattern} {key_type} {}", base64(key, true));
    // libssh2 looks for `[host]:port` entries, then plain `host` entries.
    match known_hosts.check_port(&config.host, config.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::NotFound => Err(TransportError::UnknownHostKey {
            server: server.to_string(),
            path: path.clone(),
            offered,
            line,
        }),
        CheckResult::Mismatch => Err(TransportError::HostKeyMismatch {
            server: server.to_string(),
            path: path.clone(),
            offered,
            line,
        }),
        CheckResult::Failure => Err(check_error(
            "libssh2 could not compare the key with the file's entries".to_string(),
        )),
    }
}

/// The algorithm name at the start of an SSH public key blob
/// (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...).
fn key_type_name(blob: &[u8]) -> String {
    let name = blob
        .get(..4)
        .and_then(|len| <[u8; 4]>::try_from(len).ok())
        .map(|len| u32::from_be_bytes(len) as usize)
        .and_then(|len| blob.get(4..4 + len))
        .and_then(|name| std::str::from_utf8(name).ok());
    name.unwrap_or("unknown-key-type").to_string()
}

/// Standard base64 (RFC 4648), as OpenSSH writes keys and fingerprints.
fn base64(bytes: &[u8], pad: bool) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(
                    ALPHABET[((group >> (18 - 6 * i)) & 0x3f) as usize],
                ));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn authenticate(session: &Session, config: &SftpConfig, server: &str) -> Result<()> {
    let auth_error = |detail: String| TransportError::Auth {
        server: server.to_string(),
        user: config.user.clone(),
        method: config.auth.method(),
        detail,
    };
    match &config.auth {
        SftpAuth::Password(password) => session
            .userauth_password(&config.user, password)
            .map_err(|error| auth_error(error.message().to_string()))?,
        SftpAuth::PrivateKey { path, passphrase } => {
            // libssh2's message for a missing key file is vague.
            File::open(path).map_err(|source| TransportError::KeyFile {
                path: path.clone(),
                source,
            })?;
            session
                .userauth_pubkey_file(&config.user, None, path, passphrase.as_deref())
                .map_err(|error| auth_error(error.message().to_string()))?;
        }
    }
    if session.authenticated() {
        Ok(())
    } else {
        Err(auth_error("the server did not accept it".to_string()))
    }
}

impl RemoteDir for SftpDir {
    fn location(&self) -> &str {
        &self.location
    }

    fn list(&self) -> Result<Vec<RemoteFile>> {
        let entries = self
            .sftp()
            .readdir(Path::new(&self.folder))
            .map_err(self.remote_error("list", &self.folder))?;
        let mut files = Vec::new();
        for (path, stat) in entries {
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                tracing::warn!(location = %self.location, path = %path.display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if atomic::is_partial(name) {
                continue;
            }
            let stat = if stat.file_type().is_symlink() {
                match self.sftp().stat(&path) {
                    Ok(target) => target,
                    Err(error) if is_no_such_file(&error) => continue, // dangling
                    Err(error) => return Err(self.remote_error("stat", name)(error)),
                }
            } else {
                stat
            };
            if stat.is_file() {
                files.push(self.to_remote_file(name.to_string(), &stat)?);
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn stat(&self, name: &str) -> Result<Option<RemoteFile>> {
        let path = self.path_of(name)?;
        match self.sftp().stat(&path) {
            Ok(stat) if stat.is_file() => Ok(Some(self.to_remote_file(name.to_string(), &stat)?)),
            Ok(_) => Err(TransportError::NotAFile {
                location: self.location.clone(),
                name: name.to_string(),
            }),
            Err(error) if is_no_such_file(&error) => Ok(None),
            Err(error) => Err(self.remote_error("stat", name)(error)),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        let path = self.path_of(name)?;
        match self.sftp().open(&path) {
            Ok(file) => Ok(Box::new(file)),
            Err(error) if is_no_such_file(&error) => Err(TransportError::NotFound {
                location: self.location.clone(),
                name: name.to_string(),
            }),
            Err(error) => Err(self.remote_error("open", name)(error)),
        }
    }

    fn upload_atomic(&self, local_path: &Path, final_name: &str) -> Result<UploadOutcome> {
        atomic::upload_atomic(self, local_path, final_name)
    }
}

struct SftpTemp<'a> {
    dir: &'a SftpDir,
    file: ssh2::File,
    name: String,
}

impl TempWriter for SftpTemp<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|source| TransportError::RemoteIo {
                location: self.dir.location.clone(),
                op: "write",
                path: self.name.clone(),
                source,
            })
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        match self.file.fsync() {
            Ok(()) => {}
            // fsync@openssh.com is an extension; without it, closing is
            // all a client can do.
            Err(error) if error.code() == ErrorCode::SFTP(FX_OP_UNSUPPORTED) => {}
            Err(error) => return Err(self.dir.remote_error("flush", &self.name)(error)),
        }
        self.file
            .close()
            .map_err(self.dir.remote_error("close", &self.name))
    }
}

impl Backend for SftpDir {
    fn create_temp(&self, temp_name: &str) -> Result<Box<dyn TempWriter + '_>> {
        let path = self.path_of(temp_name)?;
        let file = self
            .sftp()
            .open_mode(
                &path,
                OpenFlags::WRITE | OpenFlags::EXCLUSIVE,
                self.file_mode,
                OpenType::File,
            )
            .map_err(self.remote_error("create", temp_name))?;
        Ok(Box::new(SftpTemp {
            dir: self,
            file,
            name: temp_name.to_string(),
        }))
    }

    fn rename_no_replace(&self, temp_name: &str, final_name: &str) -> Result<bool> {
        let from = self.path_of(temp_name)?;
        let to = self.path_of(final_name)?;
        // No OVERWRITE flag. SFTP v3 has no flags at all and refuses to
        // rename onto an existing name (OpenSSH links, then unlinks).
        match self
            .sftp()
            .rename(&from, &to, Some(RenameFlags::ATOMIC | RenameFlags::NATIVE))
        {
            Ok(()) => Ok(true),
            Err(error) => match self.sftp().stat(&to) {
                Ok(_) => Ok(false),
                Err(_) => Err(self.remote_error("rename to", final_name)(error)),
            },
        }
    }

    fn remove(&self, name: &str) -> Result<()> {
        let path = self.path_of(name)?;
        self.sftp()
            .unlink(&path)
            .map_err(self.remote_error("remove", name))
    }

    fn all_names(&self) -> Result<Vec<String>> {
        let entries = self
            .sftp()
            .readdir(Path::new(&self.folder))
            .map_err(self.remote_error("list", &self.folder))?;
        Ok(entries
            .iter()
            .filter_map(|(path, _)| path.file_name()?.to_str().map(str::to_string))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes(), true), expected);
            assert_eq!(
                base64(input.as_bytes(), false),
                expected.trim_end_matches('=')
            );
        }
    }

    #[test]
    fn key_type_is_read_from_the_blob() {
        let mut blob = 11u32.to_be_bytes().to_vec();
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        assert_eq!(key_type_name(&blob), "ssh-ed25519");
        assert_eq!(key_type_name(&[0, 0, 0, 99, b'x']), "unknown-key-type");
        assert_eq!(key_type_name(&[]), "unknown-key-type");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = SftpConfig::new(
            "sftp.example.edu",
            "bursar",
            SftpAuth::Password("hunter2".to_string()),
            "/etc/known_hosts",
            "incoming",
        );
        let key = SftpAuth::PrivateKey {
            path: PathBuf::from("/keys/id"),
            passphrase: Some("swordfish".to_string()),
        };
        let shown = format!("{config:?} {key:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
        assert!(shown.contains("/keys/id"), "{shown}");
    }

    #[test]
    fn invalid_settings_are_named() {
        let mut config = SftpConfig::new(
            "bad host",
            "bursar",
            SftpAuth::Password(String::new()),
            "/k",
            "",
        );
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("host"), "{error}");
        config.host = "ok".to_string();
        config.io_timeout = Duration::ZERO;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("I/O timeout"), "{error}");
    }
}
