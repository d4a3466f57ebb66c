#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `config/example.toml` loads, and `docs/configuration.md` documents
//! every setting it shows.

use std::path::{Path, PathBuf};

use alma_bursar_sync::config::{self, DropConfig, Needs, StoreConfig};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example() -> String {
    std::fs::read_to_string(repo().join("config/example.toml")).unwrap()
}

#[test]
fn the_example_configuration_loads_with_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(
        &secrets,
        "ABS_ALMA_API_KEY = \"l8xx\"\nABS_PAYMENTS_SFTP_PASSWORD = \"pw\"\nABS_MONGODB_PASSWORD = \"p@ss:word\"\n\
         AWS_ACCESS_KEY_ID = \"AKIAFROMFILE\"\nAWS_SECRET_ACCESS_KEY = \"s3-secret-from-file\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = example().replace(
        "file = \"/etc/alma-bursar-sync/secrets.toml\"",
        &format!("file = {:?}", secrets.display().to_string()),
    );
    let file = dir.path().join("alma-bursar-sync.toml");
    let settings =
        config::parse(&text, &file, dir.path(), Needs::ALL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        settings.alma.base_url,
        "https://api-na.hosted.exlibrisgroup.com"
    );
    assert_eq!(settings.alma.requests_per_second, 10);
    assert_eq!(settings.alma.remaining_floor, Some(5000));
    assert_eq!(
        settings.import.paths.fines,
        "/shared/Example University/Reports/Bursar/All Fines"
    );
    assert_eq!(settings.import.settings.ignored_fines.len(), 1);
    assert_eq!(
        settings.import.settings.account_rules,
        sync_core::rules::accounts::AccountRules::default()
    );
    assert_eq!(
        settings.export.billing,
        sync_stages::export_plan::BillingRules::default()
    );
    assert_eq!(settings.export.layout.line_width(), 97);
    match &settings.store {
        StoreConfig::Mongo(mongo) => {
            assert_eq!(
                mongo.uri,
                "mongodb://abs_sync:p%40ss%3Aword@db1.example.edu,db2.example.edu/?replicaSet=rs0&authSource=admin"
            );
            assert_eq!(mongo.database, "bursar_sync");
        }
        other => panic!("{other:?}"),
    }
    match &settings.bursar {
        DropConfig::Sftp { config, archive } => {
            assert_eq!(config.host, "sftp.bursar.example.edu");
            assert_eq!(config.port, 22);
            assert_eq!(archive.as_deref(), Some("/incoming/library/archive"));
        }
        other => panic!("{other:?}"),
    }
    match &settings.payments.drop {
        DropConfig::Sftp { config, .. } => assert_eq!(config.port, 2222),
        other => panic!("{other:?}"),
    }
    let s3 = settings.backup.s3.as_ref().unwrap();
    assert_eq!(s3.bucket, "library-backups");
    // S3 keys from the secrets file, unless the environment has them.
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let credentials = s3.credentials.as_ref().unwrap();
    assert_eq!(
        credentials.access_key,
        from_env("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "AKIAFROMFILE".into())
    );
    assert_eq!(
        credentials.secret_key,
        from_env("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "s3-secret-from-file".into())
    );
    let debug = format!("{s3:?}");
    assert!(debug.contains("secret_key: \"<redacted>\""), "{debug}");
    // (The test services use one word for both keys.)
    if credentials.secret_key != credentials.access_key {
        assert!(!debug.contains(&credentials.secret_key), "{debug}");
    }
    assert_eq!(settings.backup.keep, 14);
    assert!(settings.notify.webhook_url.is_some());
    assert_eq!(settings.logging.dir, Path::new("/var/log/alma-bursar-sync"));
    // The secrets are used, never shown.
    let debug = format!("{:?}", settings.alma);
    assert!(!debug.contains("l8xx"));
}

#[test]
fn relative_paths_are_taken_from_the_configuration_folder() {
    let text = "[rehearsal]\nenabled = true\n[reports]\nfines = \"a\"\ntransactions = \"b\"\nbalances = \"c\"\n[bursar_sftp]\nkind = \"local\"\nfolder = \"drop\"\n[payments_sftp]\nkind = \"local\"\nfolder = \"pay\"\n";
    let base = Path::new("/srv/abs");
    let settings = config::parse(text, &base.join("x.toml"), base, Needs::ALL).unwrap();
    assert_eq!(settings.export.exports_dir, base.join("exports"));
    assert_eq!(settings.backup.local_dir, base.join("backups"));
    assert_eq!(settings.logging.dir, base.join("logs"));
    match settings.store {
        StoreConfig::Sqlite(path) => assert_eq!(path, base.join("alma-bursar-sync.sqlite3")),
        other => panic!("{other:?}"),
    }
}

/// Every `key` of the example, as `section.key`.
fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => keys(inner, &path, out),
            _ => out.push(path),
        }
    }
}

#[test]
fn every_setting_of_the_example_is_documented() {
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let table: toml::Table = example().parse().unwrap();
    let mut found = Vec::new();
    keys(&table, "", &mut found);
    let missing: Vec<&String> = found
        .iter()
        .filter(|key| !docs.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}
