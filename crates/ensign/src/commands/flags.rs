//! `ensign flags import|export`: moves flagd documents into and out of a
//! running server's database through the admin API (`POST /api/v1/import`,
//! `GET /api/v1/export`), one flag set in one environment at a time.
//!
//! YAML files (by `.yaml`/`.yml` extension) are converted to JSON here; JSON
//! files are sent as written. The server validates the whole document before
//! writing anything and answers every problem with its JSON Pointer, which is
//! printed; the exit status is then 1.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use ensign_engine::document::Format;
use hyper::body::Bytes;
use serde_json::Value;

use super::client::{Client, ClientArgs, block_on, query};

/// Options of `ensign flags`.
#[derive(Debug, Args)]
pub struct FlagsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: FlagsCommand,
}

#[derive(Debug, Subcommand)]
enum FlagsCommand {
    /// Import a flagd document (JSON, or YAML by extension) into one
    /// environment of a flag set; new flags start disabled elsewhere.
    Import(ImportArgs),
    /// Print (or write) the flagd document a flag set serves in one environment.
    Export(ExportArgs),
}

/// Options of `ensign flags import`.
#[derive(Debug, Args)]
struct ImportArgs {
    /// The flagd document.
    #[arg(value_name = "FILE")]
    file: String,
    /// The environment whose configuration the document sets.
    #[arg(long, env = "ENSIGN_ENVIRONMENT", default_value = "production")]
    environment: String,
    /// The flag set (created when missing); default: the document's `metadata.flagSetId`.
    #[arg(long, env = "ENSIGN_FLAG_SET", value_name = "SET")]
    flag_set: Option<String>,
    /// Why, recorded in the audit log.
    #[arg(long)]
    comment: Option<String>,
}

/// Options of `ensign flags export`.
#[derive(Debug, Args)]
struct ExportArgs {
    /// The environment whose configuration to export.
    #[arg(long, env = "ENSIGN_ENVIRONMENT", default_value = "production")]
    environment: String,
    /// The flag set to export.
    #[arg(long, env = "ENSIGN_FLAG_SET", value_name = "SET")]
    flag_set: String,
    /// Write here instead of standard output (YAML for `.yaml`/`.yml`, else JSON).
    #[arg(short, long, value_name = "FILE")]
    output: Option<String>,
}

/// Runs the command.
pub fn run(args: &FlagsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    match &args.command {
        FlagsCommand::Import(import) => block_on(run_import(client, import)),
        FlagsCommand::Export(export) => block_on(run_export(client, export)),
    }
}

/// The request body for `path`: JSON as written, YAML converted to JSON. A
/// file over the admin API's body limit is refused by its length, unread.
fn document_body(path: &str) -> anyhow::Result<Bytes> {
    let bytes = ensign_sources::read_limited(Path::new(path), ensign_admin::MAX_REQUEST_BODY)
        .with_context(|| format!("reading {path}"))?;
    let text = String::from_utf8(bytes).with_context(|| format!("{path} is not UTF-8 text"))?;
    match Format::from_path(path) {
        Format::Json => {
            // Sent as written (flag order kept); only the syntax is checked here.
            serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{path} is not valid JSON"))?;
            Ok(Bytes::from(text))
        }
        Format::Yaml => {
            let value: Value = serde_norway::from_str(&text)
                .with_context(|| format!("{path} is not valid YAML"))?;
            Ok(Bytes::from(serde_json::to_vec(&value)?))
        }
    }
}

async fn run_import(client: Client, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let body = document_body(&args.file)?;
    let client = client.with_comment(args.comment.as_deref())?;
    let path = format!(
        "/import{}",
        query(&[
            ("environment", Some(&args.environment)),
            ("flagSet", args.flag_set.as_deref()),
        ])
    );
    let answer = client
        .post(&path, body)
        .await
        .with_context(|| format!("importing {}", args.file))?;
    let flag_set = answer["flagSet"].as_str().unwrap_or("?");
    let environment = answer["environment"].as_str().unwrap_or(&args.environment);
    let keys: Vec<&str> = answer["imported"]
        .as_array()
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "imported {} flag{} into flag set \"{flag_set}\", environment \"{environment}\"",
        keys.len(),
        if keys.len() == 1 { "" } else { "s" }
    )?;
    for key in keys {
        writeln!(out, "  {key}")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_export(client: Client, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/export{}",
        query(&[
            ("environment", Some(&args.environment)),
            ("flagSet", Some(&args.flag_set)),
        ])
    );
    let document = client.get(&path).await.with_context(|| {
        format!(
            "exporting flag set \"{}\" of environment \"{}\"",
            args.flag_set, args.environment
        )
    })?;
    if !document.is_object() {
        bail!("the server answered something other than a flag document: {document}");
    }
    let format = args
        .output
        .as_deref()
        .map_or(Format::Json, Format::from_path);
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(&document)?,
        Format::Yaml => serde_norway::to_string(&document)?,
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match &args.output {
        Some(file) => {
            write_file(file, &text)?;
            let flags = document["flags"].as_object().map_or(0, |f| f.len());
            eprintln!("wrote {file} ({flags} flags)");
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path` through a temporary file and a rename, so a server
/// watching `path` never reads half a document.
fn write_file(path: &str, text: &str) -> anyhow::Result<()> {
    let target = Path::new(path);
    let directory = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .with_context(|| format!("{path} names no file"))?;
    let temporary = directory.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, target).with_context(|| {
        let _ = std::fs::remove_file(&temporary);
        format!("writing {path}")
    })
}
