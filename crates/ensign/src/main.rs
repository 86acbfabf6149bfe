//! The `ensign` binary: a flagd-compatible feature flag server and its tools.
//!
//! Every option is also an `ENSIGN_*` environment variable. Subcommands live in
//! [`commands`], one module each.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ensign: a self-hostable, OpenFeature-compatible feature flag server.
#[derive(Debug, Parser)]
#[command(name = "ensign", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve flags over the flagd evaluation API, with health and metrics.
    Serve(Box<commands::serve::ServeArgs>),
    /// Apply the database schema migrations.
    Migrate(commands::migrate::MigrateArgs),
    /// Check flag documents; list every problem with its JSON Pointer.
    Validate(commands::validate::ValidateArgs),
    /// Evaluate flags from a document, once or for a batch of cases.
    Eval(commands::eval::EvalArgs),
    /// Import or export a running server's flags (admin API client).
    Flags(commands::flags::FlagsArgs),
    /// Create, list or revoke a running server's API tokens (admin API client).
    Token(commands::token::TokenArgs),
    /// Validate SLO specs (Sloth prometheus/v1) and print their Prometheus rules.
    Slo(commands::slo::SloArgs),
    /// Create, list or delete a running server's web UI users (admin API client).
    User(commands::user::UserArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(&args),
        Command::Migrate(args) => commands::migrate::run(&args),
        Command::Validate(args) => commands::validate::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Flags(args) => commands::flags::run(&args),
        Command::Token(args) => commands::token::run(&args),
        Command::Slo(args) => commands::slo::run(&args),
        Command::User(args) => commands::user::run(&args),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`ensign eval ... | head`) is the reader's choice, not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
