//! The one error type of the crate. Each message says what failed, where
//! (server, folder, file), and what a person can do about it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a folder operation failed.
///
/// `server` fields read `host:port`; `location` fields read like
/// [`crate::RemoteDir::location`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("SFTP setting {setting} is invalid: {problem}")]
    InvalidConfig {
        setting: &'static str,
        problem: String,
    },

    #[error(
        "cannot resolve SFTP host {host}: {source}. Check the host name in the configuration and this machine's DNS"
    )]
    Resolve { host: String, source: io::Error },

    #[error(
        "cannot connect to SFTP server {server} (within {timeout:?}): {source}. Check the host and port settings, that the server is up, and that no firewall blocks the way"
    )]
    Connect {
        server: String,
        timeout: Duration,
        source: io::Error,
    },

    #[error(
        "SSH handshake with {server} failed: {source}. Check that {server} is an SSH server and reachable; a timeout here often means a firewall or a wrong port"
    )]
    Handshake { server: String, source: ssh2::Error },

    #[error(
        "cannot read known_hosts file {path}: {detail}. The SFTP server's host key must be listed there; check the known_hosts setting, and add the server's key after confirming its fingerprint with the server's administrator"
    )]
    KnownHostsUnreadable { path: PathBuf, detail: String },

    #[error(
        "refusing to connect to {server}: its host key is not in known_hosts file {path} (the server offered {offered}). Confirm this fingerprint with the server's administrator, then add this line to {path}:\n{line}"
    )]
    UnknownHostKey {
        server: String,
        path: PathBuf,
        offered: String,
        line: String,
    },

    #[error(
        "refusing to connect to {server}: its host key does NOT match known_hosts file {path} (the server offered {offered}). Either the server's key was replaced or someone is intercepting the connection. Ask the server's administrator whether the key changed; only if it did, replace the line for {server} in {path} with:\n{line}"
    )]
    HostKeyMismatch {
        server: String,
        path: PathBuf,
        offered: String,
        line: String,
    },

    #[error(
        "could not check the host key of {server} against known_hosts file {path}: {detail}. Check that the file is in OpenSSH format"
    )]
    HostKeyCheck {
        server: String,
        path: PathBuf,
        detail: String,
    },

    #[error(
        "private key file {path} cannot be read: {source}. Check the private key setting and the file's permissions"
    )]
    KeyFile { path: PathBuf, source: io::Error },

    #[error(
        "{server} refused {method} authentication for user {user}: {detail}. Check the user name and the {method} given to this tool (SFTP secrets come from the environment or the secrets file)"
    )]
    Auth {
        server: String,
        user: String,
        method: &'static str,
        detail: String,
    },

    #[error(
        "SFTP could not start on {server} for user {user}: {source}. The server must offer the sftp subsystem to this user"
    )]
    SftpSubsystem {
        server: String,
        user: String,
        source: ssh2::Error,
    },

    #[error(
        "folder {folder} does not exist on {server}: {detail}. Check the folder setting, or ask the server's owner to create it"
    )]
    FolderMissing {
        server: String,
        folder: String,
        detail: String,
    },

    #[error("{location}: {path} is not a folder. Check the folder setting")]
    NotAFolder { location: String, path: String },

    #[error("{location}: {name} is not a regular file (a folder or a special file has that name)")]
    NotAFile { location: String, name: String },

    #[error("{location}: there is no file {name}")]
    NotFound { location: String, name: String },

    #[error("{location}: {name} has no modification time, so the newest file cannot be chosen")]
    NoModificationTime { location: String, name: String },

    #[error("invalid file name {name:?}: {problem}")]
    InvalidName { name: String, problem: &'static str },

    #[error(
        "{location}: {op} {path} failed: {source}. If the connection was lost, running again is safe; otherwise check the server's permissions on that folder"
    )]
    Remote {
        location: String,
        op: &'static str,
        path: String,
        source: ssh2::Error,
    },

    #[error(
        "{location}: {op} {path} failed: {source}. If the connection was lost, running again is safe; otherwise check the server's permissions on that folder"
    )]
    RemoteIo {
        location: String,
        op: &'static str,
        path: String,
        source: io::Error,
    },

    #[error("local file {path}: {op} failed: {source}")]
    Local {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error(
        "{location}: upload of {final_name} did not arrive whole: {expected} bytes were sent but the server holds {found} in {temp_name}. Nothing was renamed to {final_name}; run again to retry"
    )]
    SizeMismatch {
        location: String,
        final_name: String,
        temp_name: String,
        expected: u64,
        found: u64,
    },

    #[error(
        "local file {path} changed while it was being copied ({expected} bytes at the start, {read} bytes read). Nothing was renamed to its final name; make sure no other program writes it, then run again"
    )]
    SourceChanged {
        path: PathBuf,
        expected: u64,
        read: u64,
    },

    #[error(
        "{location}: {name} changed while it was being downloaded ({expected} bytes listed, {read} bytes read); it may still be being written. The local copy was not replaced; try again later"
    )]
    ChangedDuringDownload {
        location: String,
        name: String,
        expected: u64,
        read: u64,
    },

    #[error(
        "{location}: {name} already exists with different content ({remote_size} bytes there, {local_size} bytes in {local_path}). It was not overwritten: the recipient may already have processed it. Compare the two files; replace or remove the remote one only after agreeing with its owner"
    )]
    Conflict {
        location: String,
        name: String,
        local_path: PathBuf,
        remote_size: u64,
        local_size: u64,
    },
}

impl TransportError {
    /// Whether trying again later may succeed without anyone changing
    /// anything: the server or the network failed, not the configuration
    /// or the data.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Connect { .. }
                | TransportError::Handshake { .. }
                | TransportError::Remote { .. }
                | TransportError::RemoteIo { .. }
                | TransportError::SizeMismatch { .. }
                | TransportError::SourceChanged { .. }
                | TransportError::ChangedDuringDownload { .. }
        )
    }
}
