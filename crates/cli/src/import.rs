//! `trellis import`: load CSV, NDJSON or XLSX into an entity with a progress bar; print the counts and
//! write every rejected row, with its reasons, next to the input file so nothing is silently dropped.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::Value;
use trellis_form::Locale;
use trellis_runtime::import::{ImportFormat, ImportReport};
use trellis_runtime::{Principal, Runtime, RuntimeError, RuntimeSettings};

/// `trellis import` arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// App id.
    #[arg(long)]
    pub app: String,
    /// Entity id.
    #[arg(long)]
    pub entity: String,
    /// The file: .csv, .ndjson/.jsonl or .xlsx.
    pub file: PathBuf,
    /// Database URL (default: sqlite://<data-dir>/trellis.db).
    #[arg(long, env = "TRELLIS_DB")]
    pub db: Option<String>,
    /// Data directory of the default SQLite database.
    #[arg(long, env = "TRELLIS_DATA_DIR", default_value = "./trellis-data")]
    pub data_dir: PathBuf,
    /// Insert nothing unless every row is valid.
    #[arg(long)]
    pub atomic: bool,
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let format = ImportFormat::from_file_name(&args.file.to_string_lossy()).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: unknown file type; use a .csv, .ndjson, .jsonl or .xlsx file",
            args.file.display()
        )
    })?;
    let input = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("trellis.db").display()));
    if db.starts_with("sqlite:") && !args.data_dir.join("trellis.db").exists() && args.db.is_none()
    {
        bail!(
            "no database at {}: start `trellis serve` once, or pass --db",
            args.data_dir.join("trellis.db").display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let trellis = Runtime::connect(&db, RuntimeSettings::default())
            .await
            .with_context(|| format!("opening database {}", trellis_runtime::redact_db_url(&db)))?;
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} validating [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let progress_bar = bar.clone();
        let progress = move |done: usize, total: usize| {
            progress_bar.set_length(total as u64);
            progress_bar.set_position(done as u64);
        };
        let actor = Principal::system("cli", "cli");
        let result = trellis
            .import_records(
                &actor,
                &args.app,
                &args.entity,
                format,
                bytes::Bytes::from(input),
                args.atomic,
                Locale::En,
                &progress,
            )
            .await;
        bar.finish_and_clear();
        let report = match result {
            Ok(report) => report,
            Err(RuntimeError::InvalidRecord(issues)) => {
                for issue in &issues {
                    eprintln!(
                        "{}:{}: {}",
                        args.file.display(),
                        issue.pointer,
                        issue.message
                    );
                }
                bail!(
                    "{}: nothing was imported; fix the lines above",
                    args.file.display()
                );
            }
            Err(error) => {
                return Err(
                    anyhow::Error::new(error).context(format!("importing {}", args.file.display()))
                );
            }
        };
        println!(
            "inserted {} row(s), rejected {} row(s)",
            report.inserted,
            report.rejected.len()
        );
        if report.inserted >= trellis.settings().column_snapshots.min_rows {
            // What the import started in the background (loading the columns of the entity's
            // reports, writing their snapshot), waited for, so the next start reads no document.
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message("preparing the columns of the entity's reports");
            spinner.enable_steady_tick(std::time::Duration::from_millis(200));
            trellis.column_snapshots_written().await;
            spinner.finish_and_clear();
        }
        if report.rejected.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let out = write_rejected(&args.file, format, &report)?;
        println!("rejected rows with their reasons: {}", out.display());
        if args.atomic {
            println!("--atomic: nothing was inserted because some rows are invalid");
        }
        Ok(ExitCode::from(1))
    })
}

/// Write rejected rows beside `file`: `NAME.rejected.csv` (the row's columns plus `_row` and `_errors`)
/// or `NAME.rejected.ndjson` (`{"row", "errors", "values"}` per line).
fn write_rejected(
    file: &Path,
    format: ImportFormat,
    report: &ImportReport,
) -> anyhow::Result<PathBuf> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    let describe = |errors: &[trellis_form::FieldIssue]| {
        errors
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    if e.pointer.is_empty() {
                        "/"
                    } else {
                        &e.pointer
                    },
                    e.message
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match format {
        ImportFormat::Ndjson => {
            let path = file.with_file_name(format!("{stem}.rejected.ndjson"));
            let mut text = String::new();
            for row in &report.rejected {
                text.push_str(&serde_json::to_string(&serde_json::json!({"row": row.row, "errors": row.errors, "values": row.values}))?);
                text.push('\n');
            }
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        }
        ImportFormat::Csv | ImportFormat::Xlsx => {
            let path = file.with_file_name(format!("{stem}.rejected.csv"));
            let mut columns: Vec<String> = Vec::new();
            for row in &report.rejected {
                if let Value::Object(values) = &row.values {
                    for key in values.keys() {
                        if !columns.contains(key) {
                            columns.push(key.clone());
                        }
                    }
                }
            }
            let mut writer = csv::Writer::from_path(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let mut header = vec!["_row".to_owned(), "_errors".to_owned()];
            header.extend(columns.iter().cloned());
            writer.write_record(&header)?;
            for row in &report.rejected {
                let mut record = vec![row.row.to_string(), describe(&row.errors)];
                for column in &columns {
                    record.push(
                        row.values
                            .get(column)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                writer.write_record(&record)?;
            }
            writer.flush()?;
            Ok(path)
        }
    }
}
