//! `trellis template …`: validate, pack (and sign), install, upgrade and roll back templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use trellis_model::Severity;
use trellis_model::merge::MergeSide;
use trellis_runtime::apps::check_app_bundle;
use trellis_runtime::templates::package::{self, SignaturePolicy};
use trellis_runtime::templates::source::{read_template, read_template_files};
use trellis_runtime::templates::upgrade::UpgradeOptions;
use trellis_runtime::templates::{InstallOptions, source::ReadTemplate};
use trellis_runtime::{Principal, Runtime, RuntimeError, RuntimeSettings};

#[derive(Debug, clap::Subcommand)]
pub enum TemplateCommand {
    /// Check every file of a template; print each problem as FILE:POINTER: message; exit 1 when invalid.
    Validate {
        /// Template directory, packed template (.zip) or .json bundle file.
        path: PathBuf,
    },
    /// Pack a template directory into one file (zip with a checksum manifest), optionally signed.
    Pack {
        /// Template directory.
        dir: PathBuf,
        /// The package file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Sign with this ed25519 key file (from `trellis template keygen`).
        #[arg(long)]
        sign: Option<PathBuf>,
    },
    /// Make an ed25519 key pair for signing packages; prints the public key to trust.
    Keygen {
        /// Where to write the secret key (hex); the public key goes to FILE.pub.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Install a template (directory or packed file) as an app.
    Install {
        path: PathBuf,
        /// App id (default: the template's id).
        #[arg(long)]
        app: Option<String>,
        /// Also import the template's sample data (data/).
        #[arg(long)]
        sample_data: bool,
        /// Install an unsigned package although TRELLIS_REQUIRE_SIGNED_TEMPLATES is set.
        #[arg(long)]
        allow_unsigned: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Upgrade an installed app to a newer template version, keeping local edits (three-way merge).
    Upgrade {
        app: String,
        /// The new template version: directory or packed file.
        package: PathBuf,
        /// Show the diff, conflicts and migration without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Resolve a conflict: `FILE:POINTER=template` or `=local` (repeatable). Unresolved
        /// conflicts keep the local value.
        #[arg(long = "resolve", value_name = "ID=SIDE")]
        resolutions: Vec<String>,
        /// Install an unsigned package although TRELLIS_REQUIRE_SIGNED_TEMPLATES is set.
        #[arg(long)]
        allow_unsigned: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Undo the last upgrade of an app.
    Rollback {
        app: String,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Where the database is.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Database URL (default: sqlite://<data-dir>/trellis.db).
    #[arg(long, env = "TRELLIS_DB")]
    db: Option<String>,
    /// Data directory of the default SQLite database.
    #[arg(long, env = "TRELLIS_DATA_DIR", default_value = "./trellis-data")]
    data_dir: PathBuf,
}

impl DbArgs {
    pub fn url(&self) -> anyhow::Result<String> {
        match &self.db {
            Some(url) => Ok(url.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!("cannot create data directory {}", self.data_dir.display())
                })?;
                Ok(format!(
                    "sqlite://{}",
                    self.data_dir.join("trellis.db").display()
                ))
            }
        }
    }
}

pub fn run(command: TemplateCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplateCommand::Validate { path } => validate(&path),
        TemplateCommand::Pack { dir, output, sign } => pack(&dir, &output, sign.as_deref()),
        TemplateCommand::Keygen { output } => keygen(&output),
        TemplateCommand::Install {
            path,
            app,
            sample_data,
            allow_unsigned,
            db,
        } => install(&path, app, sample_data, allow_unsigned, &db),
        TemplateCommand::Upgrade {
            app,
            package,
            dry_run,
            resolutions,
            allow_unsigned,
            db,
        } => upgrade(&app, &package, dry_run, &resolutions, allow_unsigned, &db),
        TemplateCommand::Rollback { app, dry_run, db } => rollback(&app, dry_run, &db),
    }
}

/// Print problems as `FILE:POINTER: message` (sorted); returns the number of errors.
fn print_problems(problems: &mut [trellis_model::Problem]) -> usize {
    problems.sort_by(|a, b| (&a.file, &a.pointer).cmp(&(&b.file, &b.pointer)));
    for problem in problems.iter() {
        println!("{problem}");
    }
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count()
}

fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    let ReadTemplate {
        bundle: raw,
        mut problems,
        package,
    } = read_template(path)
        .with_context(|| format!("cannot read template '{}'", path.display()))?;
    let bundle = if package.is_none() && !problems.is_empty() && raw.0.is_empty() {
        None
    } else {
        match check_app_bundle(&raw) {
            Ok(bundle) => {
                problems.extend(
                    bundle
                        .warnings
                        .iter()
                        .filter(|w| w.code != "missing_translation")
                        .cloned(),
                );
                problems.extend(trellis_model::i18n::check_template_translations(&bundle));
                problems.extend(trellis_runtime::templates::check_engine(&bundle));
                Some(bundle)
            }
            Err(found) => {
                problems.extend(found);
                None
            }
        }
    };
    let mut tests_run = 0;
    // Tests need a structurally valid bundle; missing translations do not stop them.
    if bundle.is_some() {
        let (outcomes, failures) = run_tests(&raw)?;
        tests_run = outcomes.len();
        for outcome in &outcomes {
            eprintln!(
                "test {}: {} ({} steps)",
                outcome.test,
                if outcome.passed { "passed" } else { "FAILED" },
                outcome.steps
            );
        }
        problems.extend(failures);
    }
    let errors = print_problems(&mut problems);
    let warnings = problems.len() - errors;
    match bundle {
        Some(bundle) if errors == 0 => {
            let signature = match package.as_ref().map(|p| p.signed_by.clone()) {
                Some(Some(key)) => format!(", signed by {key}"),
                Some(None) => ", unsigned".into(),
                None => String::new(),
            };
            eprintln!(
                "{}: valid — app '{}' {} with {} entities, {tests_run} test(s) passed ({warnings} warning(s){signature})",
                path.display(),
                bundle.id(),
                bundle.manifest.version,
                bundle.entities.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!(
                "{}: {errors} error(s), {warnings} warning(s); fix the lines above and run again",
                path.display()
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Run the template's own tests on a scratch database.
fn run_tests(
    raw: &trellis_model::RawBundle,
) -> anyhow::Result<(
    Vec<trellis_runtime::templates::testing::TestOutcome>,
    Vec<trellis_model::Problem>,
)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(trellis_runtime::templates::testing::run_template_tests(raw))?)
}

fn pack(dir: &Path, output: &Path, sign: Option<&Path>) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        bail!(
            "{}: not a directory; `template pack` packs a template directory (trellis.json at its top)",
            dir.display()
        );
    }
    let key = match sign {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read signing key {}", path.display()))?;
            Some(package::parse_signing_key(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}; make one with `trellis template keygen -o FILE`",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    let (files, mut problems) = read_template_files(dir)
        .with_context(|| format!("cannot read template '{}'", dir.display()))?;
    let (raw, more) = trellis_runtime::templates::source::files_to_bundle(&files);
    problems.extend(more);
    let checked = match check_app_bundle(&raw) {
        Ok(bundle) => {
            problems.extend(trellis_model::i18n::check_template_translations(&bundle));
            problems.extend(trellis_runtime::templates::check_engine(&bundle));
            Some(bundle)
        }
        Err(found) => {
            problems.extend(found);
            None
        }
    };
    if checked.is_some() {
        problems.extend(run_tests(&raw)?.1);
    }
    let errors = print_problems(&mut problems);
    let Some(bundle) = checked.filter(|_| errors == 0) else {
        eprintln!(
            "{}: {errors} error(s); nothing packed — fix the lines above (or run `trellis template validate`)",
            dir.display()
        );
        return Ok(ExitCode::from(1));
    };
    let bytes = package::pack(
        &files,
        bundle.id().as_str(),
        &bundle.manifest.version.to_string(),
        key.as_ref(),
    )?;
    std::fs::write(output, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "packed '{}' {} ({} files, {} bytes{}) into {}",
        bundle.id(),
        bundle.manifest.version,
        files.len(),
        bytes.len(),
        if key.is_some() { ", signed" } else { "" },
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn keygen(output: &Path) -> anyhow::Result<ExitCode> {
    if output.exists() {
        bail!(
            "{} exists; refusing to overwrite a key (choose another -o)",
            output.display()
        );
    }
    let (secret, public) = package::generate_key();
    write_private(output, &format!("{secret}\n"))?;
    let public_path = PathBuf::from(format!("{}.pub", output.display()));
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    println!("{public}");
    eprintln!(
        "secret key in {} (keep it private), public key in {}; servers trust it with TRELLIS_TRUSTED_KEYS={public}",
        output.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Read a template for install/upgrade, refusing problems and packages the policy refuses.
fn read_checked(
    path: &Path,
    allow_unsigned: bool,
) -> anyhow::Result<Result<trellis_model::RawBundle, ExitCode>> {
    let ReadTemplate {
        bundle,
        mut problems,
        package,
    } = read_template(path)
        .with_context(|| format!("cannot read template '{}'", path.display()))?;
    if let Some(package) = &package
        && let Err(problem) = SignaturePolicy::from_env().check(package, allow_unsigned)
    {
        problems.push(problem);
    }
    if !problems.is_empty() {
        print_problems(&mut problems);
        eprintln!("{}: refused; nothing installed", path.display());
        return Ok(Err(ExitCode::from(1)));
    }
    Ok(Ok(bundle))
}

fn with_runtime<T>(
    db: &DbArgs,
    work: impl AsyncFnOnce(Runtime) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let url = db.url()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let trellis = Runtime::connect(&url, RuntimeSettings::default())
            .await
            .with_context(|| {
                format!("opening database {}", trellis_runtime::redact_db_url(&url))
            })?;
        work(trellis).await
    })
}

/// Print a bundle problem list for a refused operation, or pass other errors up.
fn report_error(error: RuntimeError, what: &str) -> anyhow::Result<ExitCode> {
    match error {
        RuntimeError::InvalidBundle(mut problems) => {
            print_problems(&mut problems);
            eprintln!("{what}: refused; nothing changed — fix the lines above");
            Ok(ExitCode::from(1))
        }
        RuntimeError::Conflict(message)
        | RuntimeError::NotFound(message)
        | RuntimeError::PreconditionFailed(message)
        | RuntimeError::InvalidInput(message) => {
            eprintln!("{what}: {message}");
            Ok(ExitCode::from(1))
        }
        other => Err(other.into()),
    }
}

fn install(
    path: &Path,
    app: Option<String>,
    sample_data: bool,
    allow_unsigned: bool,
    db: &DbArgs,
) -> anyhow::Result<ExitCode> {
    let bundle = match read_checked(path, allow_unsigned)? {
        Ok(bundle) => bundle,
        Err(code) => return Ok(code),
    };
    let what = path.display().to_string();
    with_runtime(db, async move |trellis| {
        let actor = Principal::system("cli", "cli");
        let options = InstallOptions { app, sample_data };
        match trellis.install_bundle(&actor, bundle, &options).await {
            Ok(installed) => {
                println!(
                    "installed app '{}' (version {}) from template '{}' {}",
                    installed.app.id,
                    installed.app.version,
                    installed.template,
                    installed.template_version
                );
                for (entity, counts) in &installed.sample_data {
                    println!(
                        "  sample data {entity}: {} inserted, {} rejected",
                        counts.inserted, counts.rejected
                    );
                    for reason in &counts.reasons {
                        println!("    {reason}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => report_error(error, &what),
        }
    })
}

fn upgrade(
    app: &str,
    path: &Path,
    dry_run: bool,
    resolutions: &[String],
    allow_unsigned: bool,
    db: &DbArgs,
) -> anyhow::Result<ExitCode> {
    let mut parsed = BTreeMap::new();
    for item in resolutions {
        let (id, side) = item.rsplit_once('=').ok_or_else(|| {
            anyhow::anyhow!("--resolve '{item}': write FILE:POINTER=template or FILE:POINTER=local")
        })?;
        let side = match side {
            "template" => MergeSide::Template,
            "local" => MergeSide::Local,
            other => bail!("--resolve '{item}': unknown side '{other}'; use template or local"),
        };
        parsed.insert(id.to_owned(), side);
    }
    let bundle = match read_checked(path, allow_unsigned)? {
        Ok(bundle) => bundle,
        Err(code) => return Ok(code),
    };
    let app = app.to_owned();
    with_runtime(db, async move |trellis| {
        let actor = Principal::system("cli", "cli");
        let options = UpgradeOptions {
            resolutions: parsed,
            dry_run,
            expected_version: None,
        };
        match trellis.upgrade_app(&actor, &app, bundle, &options).await {
            Ok(report) => {
                println!("{}", serde_json::to_string_pretty(&report)?);
                eprintln!(
                    "{} app '{app}' from template {} to {}: {} template change(s), {} local edit(s) kept, {} conflict(s), {} record(s) migrated{}",
                    if dry_run { "would upgrade" } else { "upgraded" },
                    report.from_template_version,
                    report.to_template_version,
                    report.template_changes.len(),
                    report.local_changes.len(),
                    report.conflicts.len(),
                    report.migration.records_migrated,
                    if dry_run {
                        " (dry run: nothing changed)"
                    } else {
                        ""
                    }
                );
                for conflict in &report.conflicts {
                    eprintln!(
                        "  conflict {}: local {} / template {} → kept {:?}",
                        conflict.id,
                        show(&conflict.local),
                        show(&conflict.template),
                        conflict.chosen
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => report_error(error, &format!("upgrade of '{app}'")),
        }
    })
}

fn show(value: &Option<serde_json::Value>) -> String {
    value
        .as_ref()
        .map_or_else(|| "(removed)".to_owned(), ToString::to_string)
}

fn rollback(app: &str, dry_run: bool, db: &DbArgs) -> anyhow::Result<ExitCode> {
    let app = app.to_owned();
    with_runtime(db, async move |trellis| {
        let actor = Principal::system("cli", "cli");
        match trellis.rollback_upgrade(&actor, &app, dry_run).await {
            Ok(report) => {
                println!("{}", serde_json::to_string_pretty(&report)?);
                eprintln!(
                    "{} app '{app}' to template version {} (app version {})",
                    if dry_run {
                        "would roll back"
                    } else {
                        "rolled back"
                    },
                    report.template_version,
                    report.migration.to_version
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => report_error(error, &format!("rollback of '{app}'")),
        }
    })
}
