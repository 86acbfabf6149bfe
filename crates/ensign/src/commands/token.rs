//! `ensign token create|list|revoke`: manages the admin API's tokens
//! (`/api/v1/tokens`, which needs an admin token such as the server's
//! bootstrap `ENSIGN_ADMIN_TOKEN`).
//!
//! `create` prints the new secret alone on standard output (so
//! `TOKEN=$(ensign token create ci --role editor)` captures it) and says on
//! standard error that it is shown this once: the server keeps only its hash.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, block_on, encode};

/// Options of `ensign token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (shown this once).
    Create(CreateArgs),
    /// List the tokens (never their secrets), revoked ones included.
    List(ListArgs),
    /// Revoke a token; it stops working at once.
    Revoke(RevokeArgs),
}

/// What a token or user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Role {
    /// Read everything but tokens.
    Viewer,
    /// Also change flags, segments and flag sets, and import.
    Editor,
    /// Also change environments and tokens.
    Admin,
}

impl Role {
    /// The role's name in the admin API.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

/// Options of `ensign token create`.
#[derive(Debug, Args)]
struct CreateArgs {
    /// A unique name; the token's changes are audited as `token:NAME`.
    #[arg(value_name = "NAME")]
    name: String,
    /// What the token may do.
    #[arg(long, value_enum)]
    role: Role,
    /// Limit the token's changes to this environment; repeat for more (default: all).
    #[arg(long = "environment", value_name = "ENV", value_delimiter = ',')]
    environments: Vec<String>,
    /// Why, recorded in the audit log.
    #[arg(long)]
    comment: Option<String>,
}

/// Options of `ensign token list`.
#[derive(Debug, Args)]
struct ListArgs {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `ensign token revoke`.
#[derive(Debug, Args)]
struct RevokeArgs {
    /// The token's name.
    #[arg(value_name = "NAME")]
    name: String,
    /// Why, recorded in the audit log.
    #[arg(long)]
    comment: Option<String>,
}

/// Runs the command.
pub fn run(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    match &args.command {
        TokenCommand::Create(create) => block_on(run_create(client, create)),
        TokenCommand::List(list) => block_on(run_list(client, list)),
        TokenCommand::Revoke(revoke) => block_on(run_revoke(client, revoke)),
    }
}

/// A token's or user's environments for people: a list, or `all`.
pub(super) fn scope(environments: &Value) -> String {
    match environments.as_array() {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        None => "all".to_owned(),
    }
}

async fn run_create(client: Client, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let client = client.with_comment(args.comment.as_deref())?;
    let mut body = json!({"name": args.name, "role": args.role.as_str()});
    if !args.environments.is_empty() {
        body["environments"] = json!(args.environments);
    }
    let answer = client
        .post("/tokens", Bytes::from(serde_json::to_vec(&body)?))
        .await
        .with_context(|| format!("creating token \"{}\"", args.name))?;
    let secret = answer["secret"]
        .as_str()
        .context("the server's answer has no secret")?;
    let token = &answer["token"];
    eprintln!(
        "created token \"{}\" (role {}, environments: {}).\n\
         Its secret follows. It is shown only this once: store it now (the server keeps only a hash).",
        token["name"].as_str().unwrap_or(&args.name),
        token["role"].as_str().unwrap_or(args.role.as_str()),
        scope(&token["environments"]),
    );
    writeln!(std::io::stdout().lock(), "{secret}")?;
    Ok(ExitCode::SUCCESS)
}

async fn run_list(client: Client, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let answer = client.get("/tokens").await.context("listing tokens")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let tokens = answer.as_array().cloned().unwrap_or_default();
    let rows: Vec<[String; 5]> = tokens
        .iter()
        .map(|t| {
            [
                t["name"].as_str().unwrap_or("").to_owned(),
                t["role"].as_str().unwrap_or("").to_owned(),
                scope(&t["environments"]),
                t["createdAt"].as_i64().map_or_else(String::new, utc),
                t["revokedAt"].as_i64().map_or_else(|| "-".to_owned(), utc),
            ]
        })
        .collect();
    let header = ["NAME", "ROLE", "ENVIRONMENTS", "CREATED", "REVOKED"].map(str::to_owned);
    print_table(&mut out, &header, &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints `rows` under `header` in left-aligned columns.
pub(super) fn print_table<const N: usize>(
    out: &mut impl std::io::Write,
    header: &[String; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

async fn run_revoke(client: Client, args: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let client = client.with_comment(args.comment.as_deref())?;
    client
        .delete(&format!("/tokens/{}", encode(&args.name)))
        .await
        .with_context(|| format!("revoking token \"{}\"", args.name))?;
    println!("revoked token \"{}\"", args.name);
    Ok(ExitCode::SUCCESS)
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM UTC`.
pub(super) fn utc(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_767_225_599_000), "2025-12-31 23:59 UTC");
        assert_eq!(utc(-1000), "1969-12-31 23:59 UTC");
    }
}
