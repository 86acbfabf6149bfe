//! `ensign eval`: resolves one flag and prints the full resolution, or resolves
//! a batch of JSON Lines cases and prints one result line per case.

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use ensign_engine::{
    Context, EvaluationOptions, FlagValue, FractionalGeneration, RequestedType, Resolution,
    Snapshot, Source, metadata::metadata_to_json,
};
use serde_json::{Value, json};

use super::{load_file, now};

/// Options of `ensign eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The flag document to evaluate.
    #[arg(long, env = "ENSIGN_FLAGS", value_name = "FILE")]
    flags: String,
    /// The flag to resolve.
    #[arg(
        long,
        value_name = "KEY",
        required_unless_present = "cases",
        conflicts_with = "cases"
    )]
    flag: Option<String>,
    /// The requested type.
    #[arg(long = "type", value_name = "T", default_value = "object", value_parser = parse_type)]
    requested: RequestedType,
    /// The evaluation context, a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    context: String,
    /// JSON Lines of `{"flag", "type", "context"}` cases; one result line each.
    #[arg(long, value_name = "CASES.jsonl")]
    cases: Option<String>,
    /// The `fractional` bucketing generation.
    #[arg(long, env = "ENSIGN_FRACTIONAL", default_value = "v3", value_parser = parse_generation)]
    fractional: FractionalGeneration,
}

fn parse_type(text: &str) -> Result<RequestedType, String> {
    RequestedType::parse(text)
        .ok_or_else(|| "expected boolean, string, integer, float or object".to_owned())
}

fn parse_generation(text: &str) -> Result<FractionalGeneration, String> {
    FractionalGeneration::parse(text).ok_or_else(|| "expected v2 or v3".to_owned())
}

/// Runs the command.
pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let loaded = match load_file(&args.flags)? {
        Ok(loaded) => loaded,
        Err(error) => {
            for problem in &error.problems {
                eprintln!("{}: {problem}", args.flags);
            }
            bail!("{} is not a valid flag document", args.flags);
        }
    };
    let options = EvaluationOptions {
        fractional: args.fractional,
    };
    let snapshot = Snapshot::build(
        vec![Source::new(args.flags.as_str(), loaded.document)],
        options,
    );
    match (&args.cases, &args.flag) {
        (Some(cases), _) => run_cases(&snapshot, cases),
        (None, Some(key)) => {
            let context = parse_context(&args.context).context("--context")?;
            let resolution = snapshot.resolve(key, args.requested, &context, now());
            let mut output = result_json(&resolution, args.requested);
            output["key"] = Value::from(key.as_str());
            output["errorMessage"] = resolution
                .error
                .as_ref()
                .map_or(Value::Null, |e| Value::from(e.message.as_ref()));
            output["metadata"] = Value::Object(metadata_to_json(resolution.metadata));
            writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string_pretty(&output)?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        (None, None) => bail!("give --flag KEY or --cases FILE"),
    }
}

fn parse_context(text: &str) -> anyhow::Result<Context> {
    match serde_json::from_str(text).context("the context is not valid JSON")? {
        Value::Object(map) => Ok(map),
        other => bail!("the context must be a JSON object, not {other}"),
    }
}

/// One batch case.
#[derive(Debug)]
struct Case {
    flag: String,
    requested: RequestedType,
    context: Context,
}

fn parse_case(line: &str) -> anyhow::Result<Case> {
    let value: Value = serde_json::from_str(line).context("not valid JSON")?;
    let flag = value["flag"]
        .as_str()
        .context("\"flag\" must be a string")?
        .to_owned();
    let requested = value["type"]
        .as_str()
        .and_then(RequestedType::parse)
        .context("\"type\" must be boolean, string, integer, float or object")?;
    let context = match &value["context"] {
        Value::Null => Context::new(),
        Value::Object(map) => map.clone(),
        _ => bail!("\"context\" must be an object"),
    };
    Ok(Case {
        flag,
        requested,
        context,
    })
}

fn run_cases(snapshot: &Snapshot, path: &str) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let now = now();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {path}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let case = parse_case(&line).with_context(|| format!("{path}:{}", number + 1))?;
        let resolution = snapshot.resolve(&case.flag, case.requested, &case.context, now);
        writeln!(out, "{}", result_json(&resolution, case.requested))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `{"value", "variant", "reason", "errorCode"}`, null where absent.
fn result_json(resolution: &Resolution<'_, &FlagValue>, requested: RequestedType) -> Value {
    json!({
        "value": resolution.value.map_or(Value::Null, |v| typed_json(v, requested)),
        "variant": resolution.variant,
        "reason": resolution.reason.as_str(),
        "errorCode": resolution.error_code().map(|c| c.as_str()),
    })
}

/// The value as the requested type presents it (integers without a fraction).
fn typed_json(value: &FlagValue, requested: RequestedType) -> Value {
    match (value, requested) {
        (FlagValue::Number(n), RequestedType::Integer) => n.as_i64().map_or_else(
            || Value::from(n.as_f64().unwrap_or(0.0) as i64),
            Value::from,
        ),
        (FlagValue::Number(n), RequestedType::Float) => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        (other, _) => other.to_json(),
    }
}
