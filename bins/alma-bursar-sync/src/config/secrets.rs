//! Secrets: from the environment, or from a secrets file named in the
//! configuration, never from the command line or the configuration file.
//!
//! The secrets file is TOML with the same names as the environment
//! variables (`ABS_ALMA_API_KEY = "..."`); a variable set in the
//! environment wins over the file. The file should be readable by the
//! account that runs the sync only; a file others can read is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::reader::Problems;

pub const ALMA_API_KEY: &str = "ABS_ALMA_API_KEY";
pub const BURSAR_SFTP_PASSWORD: &str = "ABS_BURSAR_SFTP_PASSWORD";
pub const BURSAR_SFTP_PASSPHRASE: &str = "ABS_BURSAR_SFTP_KEY_PASSPHRASE";
pub const PAYMENTS_SFTP_PASSWORD: &str = "ABS_PAYMENTS_SFTP_PASSWORD";
pub const PAYMENTS_SFTP_PASSPHRASE: &str = "ABS_PAYMENTS_SFTP_KEY_PASSPHRASE";
pub const MONGODB_PASSWORD: &str = "ABS_MONGODB_PASSWORD";
/// The webhook URL, when it is better kept out of the configuration file
/// (a Slack webhook URL carries its own token).
pub const WEBHOOK_URL: &str = "ABS_WEBHOOK_URL";
/// The S3 key pair of the backups; without it, the S3 client looks for an
/// AWS profile.
pub const S3_ACCESS_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const S3_SECRET_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// Every secret the tool knows, for the secrets file's unknown-name check.
pub const ALL: [&str; 9] = [
    WEBHOOK_URL,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    ALMA_API_KEY,
    BURSAR_SFTP_PASSWORD,
    BURSAR_SFTP_PASSPHRASE,
    PAYMENTS_SFTP_PASSWORD,
    PAYMENTS_SFTP_PASSPHRASE,
    MONGODB_PASSWORD,
];

/// Where secrets are looked up.
#[derive(Default)]
pub struct Secrets {
    file: Option<PathBuf>,
    from_file: BTreeMap<String, String>,
}

impl Secrets {
    /// Reads the secrets file, if one is configured; its problems are
    /// reported under `secrets.file`.
    pub fn load(file: Option<PathBuf>, problems: &Problems) -> Secrets {
        let mut secrets = Secrets {
            file: file.clone(),
            from_file: BTreeMap::new(),
        };
        let Some(path) = file else { return secrets };
        if let Err(message) = check_permissions(&path) {
            problems.add("secrets.file", message);
            return secrets;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                problems.add(
                    "secrets.file",
                    format!("cannot read {}: {error}", path.display()),
                );
                return secrets;
            }
        };
        match text.parse::<toml::Table>() {
            Ok(table) => {
                for (name, value) in table {
                    match value {
                        toml::Value::String(s) if ALL.contains(&name.as_str()) => {
                            secrets.from_file.insert(name, s);
                        }
                        toml::Value::String(_) => problems.add(
                            "secrets.file",
                            format!(
                                "{}: unknown secret {name} (known: {})",
                                path.display(),
                                ALL.join(", ")
                            ),
                        ),
                        _ => problems.add(
                            "secrets.file",
                            format!("{}: {name} must be text in quotes", path.display()),
                        ),
                    }
                }
            }
            Err(error) => problems.add(
                "secrets.file",
                format!(
                    "{} is not valid TOML: {}",
                    path.display(),
                    error.to_string().trim().replace('\n', " ")
                ),
            ),
        }
        secrets
    }

    /// The secret, from the environment first, then the file.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.from_file.get(name).cloned())
    }

    /// The secret, or a problem naming it and where to put it.
    pub fn require(&self, name: &str, what: &str, problems: &Problems) -> Option<String> {
        let value = self.get(name);
        if value.is_none() {
            let place = match &self.file {
                Some(file) => format!("in the environment or in {}", file.display()),
                None => {
                    "in the environment, or in a secrets file (setting secrets.file)".to_string()
                }
            };
            problems.add(name, format!("missing: {what}; set it {place}"));
        }
        value
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Err(format!(
            "{} can be read by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        )),
        Ok(_) => Ok(()),
        Err(error) => Err(format!(
            "cannot read {}: {error}; create it (readable by this account only: chmod 600) or \
             correct the setting",
            path.display()
        )),
    }
}

#[cfg(not(unix))]
fn check_permissions(path: &Path) -> Result<(), String> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
}
