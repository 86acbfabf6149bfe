//! `ensign validate FILE...`: reports every problem of every document and exits
//! 1 when any document is rejected (or, with `--strict`, has warnings).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::load_file;

/// Options of `ensign validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Flag documents (JSON, or YAML by `.yaml`/`.yml` extension).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// Treat warnings (such as targeting that cannot be compiled) as errors.
    #[arg(long, env = "ENSIGN_STRICT")]
    strict: bool,
}

/// Runs the command.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for file in &args.files {
        match load_file(file)? {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    writeln!(out, "{file}: {warning}")?;
                }
                let rejected = args.strict && !loaded.warnings.is_empty();
                failed |= rejected;
                let verdict = if rejected {
                    "rejected (strict)"
                } else {
                    "valid"
                };
                writeln!(
                    out,
                    "{file}: {verdict}: {} flags, {} warnings",
                    loaded.document.flags.len(),
                    loaded.warnings.len()
                )?;
            }
            Err(error) => {
                failed = true;
                for problem in &error.problems {
                    writeln!(out, "{file}: {problem}")?;
                }
                writeln!(out, "{file}: invalid")?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
