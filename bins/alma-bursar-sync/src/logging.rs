//! Logs: the console (stderr) and a daily-rotated file in the configured
//! log folder, both with the configured level (`RUST_LOG` overrides it).

use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LoggingConfig;
use crate::error::AppError;

/// The log file's name: `alma-bursar-sync.YYYY-MM-DD.log`.
pub const FILE_PREFIX: &str = "alma-bursar-sync";

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Console and the daily file.
pub fn init(config: &LoggingConfig) -> Result<(), AppError> {
    std::fs::create_dir_all(&config.dir)
        .map_err(|e| AppError::io("cannot create the log folder", &config.dir, e))?;
    let file = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix("log")
        .max_log_files(config.keep_days)
        .build(&config.dir)
        .map_err(|e| {
            AppError::io(
                "cannot open the log file in",
                &config.dir,
                std::io::Error::other(e),
            )
        })?;
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(file.with_max_level(tracing::Level::TRACE))
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(filter(&config.level))
        .with(console)
        .with(file_layer)
        .try_init();
    Ok(())
}
