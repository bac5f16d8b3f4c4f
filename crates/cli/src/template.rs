//! `trellis template …`: validate a template directory or bundle file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use trellis_model::Severity;
use trellis_runtime::apps::check_app_bundle;
use trellis_runtime::template_dir::read_template;

#[derive(Debug, clap::Subcommand)]
pub enum TemplateCommand {
    /// Check every file of a template; print each problem as FILE:POINTER: message; exit 1 when invalid.
    Validate {
        /// Template directory (or a .json bundle file).
        path: PathBuf,
    },
}

pub fn run(command: TemplateCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplateCommand::Validate { path } => validate(&path),
    }
}

fn validate(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (raw, mut problems) = read_template(path)
        .with_context(|| format!("cannot read template '{}'", path.display()))?;
    let bundle = match check_app_bundle(&raw) {
        Ok(bundle) => {
            problems.extend(bundle.warnings.iter().cloned());
            Some(bundle)
        }
        Err(found) => {
            problems.extend(found);
            None
        }
    };
    problems.sort_by(|a, b| (&a.file, &a.pointer).cmp(&(&b.file, &b.pointer)));
    for problem in &problems {
        println!("{problem}");
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    match bundle {
        Some(bundle) if errors == 0 => {
            eprintln!(
                "{}: valid — app '{}' {} with {} entities ({warnings} warning(s))",
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
