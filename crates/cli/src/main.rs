//! `trellis`: the command-line entry point — serve the API, validate templates.
//!
//! `anyhow` lives only here; libraries return typed errors, and this binary prints the whole cause chain.

mod demo;
mod import;
mod options;
mod seed;
mod serve;
mod template;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "trellis",
    version,
    about = "Trellis: a metadata-driven no-code app builder"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (and UI) on SQLite by default or PostgreSQL with --db postgres://…
    Serve(options::ServeOptions),
    /// Import CSV, NDJSON or XLSX rows into an entity of an app.
    Import(import::ImportArgs),
    /// Generate a deterministic sample history for a CLM app.
    Seed(seed::SeedArgs),
    /// Work with templates.
    #[command(subcommand)]
    Template(template::TemplateCommand),
}

/// mimalloc: imports and request handling allocate on one thread and free on another, where glibc's
/// allocator spent a third of an import's time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(options) => serve::run(options),
        Command::Template(command) => template::run(command),
        Command::Import(args) => import::run(args),
        Command::Seed(args) => seed::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
