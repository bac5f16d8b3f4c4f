//! The options of `trellis serve`: one struct that clap fills from flags and env, and serde from the
//! config file. Precedence: config file < environment < flag; the merged result is validated at start-up
//! into [`ServeConfig`], and every bad value is named with where it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// `trellis serve` options. Every field is optional here so that the three sources can be merged.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServeOptions {
    /// Database URL: sqlite://PATH (default: <data-dir>/trellis.db) or postgres://USER:PASS@HOST/DB.
    #[arg(long, env = "TRELLIS_DB")]
    pub db: Option<String>,
    /// Address to listen on, HOST:PORT (default 127.0.0.1:8080).
    #[arg(long, env = "TRELLIS_ADDR")]
    pub addr: Option<String>,
    /// Directory for the SQLite database and files (default ./trellis-data).
    #[arg(long, env = "TRELLIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Install the CLM demo app if no app `clm` exists (idempotent).
    #[arg(long, env = "TRELLIS_DEMO", num_args = 0..=1, default_missing_value = "true")]
    #[serde(default)]
    pub demo: Option<bool>,
    /// Largest request body in bytes (default 33554432 = 32 MiB).
    #[arg(long, env = "TRELLIS_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest import file accepted over HTTP in bytes (default 1073741824 = 1 GiB).
    #[arg(long, env = "TRELLIS_MAX_IMPORT_BYTES")]
    pub max_import_bytes: Option<usize>,
    /// Log format: `text` or `json` (default text).
    #[arg(long, env = "TRELLIS_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// TOML file with any of these options (snake_case keys); flags and env override it.
    #[arg(long, env = "TRELLIS_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Validated serve configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db_url: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub demo: bool,
    pub max_body_bytes: usize,
    pub max_import_bytes: usize,
    pub json_logs: bool,
}

impl ServeOptions {
    /// Fill unset options from `file` (lower precedence).
    fn or(self, file: ServeOptions) -> ServeOptions {
        ServeOptions {
            db: self.db.or(file.db),
            addr: self.addr.or(file.addr),
            data_dir: self.data_dir.or(file.data_dir),
            demo: self.demo.or(file.demo),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            max_import_bytes: self.max_import_bytes.or(file.max_import_bytes),
            log_format: self.log_format.or(file.log_format),
            config: self.config,
        }
    }

    /// Merge the config file (if any) under these options and validate the result.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let merged = match &self.config {
            Some(path) => {
                let file = read_config(path)?;
                self.or(file)
            }
            None => self,
        };
        merged.validate()
    }

    fn validate(self) -> anyhow::Result<ServeConfig> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./trellis-data"));
        let addr_text = self.addr.unwrap_or_else(|| "127.0.0.1:8080".into());
        let addr: SocketAddr = addr_text.parse().with_context(|| {
            format!("invalid address '{addr_text}' (--addr / TRELLIS_ADDR / addr): expected HOST:PORT such as 127.0.0.1:8080")
        })?;
        let db_url = match self.db {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("trellis.db").display()),
        };
        if !(db_url.starts_with("sqlite:")
            || db_url.starts_with("postgres://")
            || db_url.starts_with("postgresql://"))
        {
            bail!(
                "invalid database url (--db / TRELLIS_DB / db): use sqlite://PATH or postgres://USER@HOST/DB"
            );
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(32 * 1024 * 1024);
        if max_body_bytes < 1024 {
            bail!(
                "max_body_bytes {max_body_bytes} is too small (--max-body-bytes / TRELLIS_MAX_BODY_BYTES): use at least 1024"
            );
        }
        let json_logs = match self.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => bail!(
                "invalid log format '{other}' (--log-format / TRELLIS_LOG_FORMAT): use text or json"
            ),
        };
        Ok(ServeConfig {
            db_url,
            addr,
            data_dir,
            demo: self.demo.unwrap_or(false),
            max_body_bytes,
            max_import_bytes: self.max_import_bytes.unwrap_or(1024 * 1024 * 1024),
            json_logs,
        })
    }
}

fn read_config(path: &Path) -> anyhow::Result<ServeOptions> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file '{}'", path.display()))?;
    toml::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{}: {}", path.display(), error.to_string().trim_end()))
}
