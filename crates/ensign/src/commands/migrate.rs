//! `ensign migrate`: applies the embedded schema migrations to a database
//! (`ensign serve` also does this at start).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

/// Options of `ensign migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database: `sqlite://PATH` or `postgres://…`.
    #[arg(
        long,
        env = "ENSIGN_DATABASE_URL",
        default_value = "sqlite://ensign.db",
        hide_env_values = true
    )]
    database_url: String,
}

/// Runs the command.
pub fn run(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let storage = ensign_storage::Storage::connect(&args.database_url)
            .await
            .context("connecting to the database")?;
        storage.migrate().await.context("applying migrations")?;
        println!("migrations applied ({:?})", storage.backend());
        Ok(ExitCode::SUCCESS)
    })
}
