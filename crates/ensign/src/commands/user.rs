//! `ensign user create|list|delete`: manages the people who sign in to the web
//! UI with a password (`/api/v1/users`, which needs an admin token such as the
//! server's bootstrap `ENSIGN_ADMIN_TOKEN`).
//!
//! `create` takes the password from `ENSIGN_PASSWORD` or, without it, from
//! the first line of standard input, never from the command line (where it
//! would end up in the shell history and the process list). The server stores
//! only its Argon2id hash.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, block_on, encode};
use super::token::{Role, print_table, scope, utc};

/// The environment variable `user create` reads the password from.
const PASSWORD_VARIABLE: &str = "ENSIGN_PASSWORD";

/// Options of `ensign user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password comes from ENSIGN_PASSWORD or standard input.
    Create(CreateArgs),
    /// List the users (never their passwords).
    List(ListArgs),
    /// Delete a user; their web UI sessions end at once.
    Delete(DeleteArgs),
}

/// Options of `ensign user create`.
#[derive(Debug, Args)]
struct CreateArgs {
    /// A unique name; the user's changes are audited as `user:NAME`.
    #[arg(value_name = "NAME")]
    name: String,
    /// What the user may do.
    #[arg(long, value_enum)]
    role: Role,
    /// Limit the user's changes to this environment; repeat for more (default: all).
    #[arg(long = "environment", value_name = "ENV", value_delimiter = ',')]
    environments: Vec<String>,
    /// Why, recorded in the audit log.
    #[arg(long)]
    comment: Option<String>,
}

/// Options of `ensign user list`.
#[derive(Debug, Args)]
struct ListArgs {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `ensign user delete`.
#[derive(Debug, Args)]
struct DeleteArgs {
    /// The user's name.
    #[arg(value_name = "NAME")]
    name: String,
    /// Why, recorded in the audit log.
    #[arg(long)]
    comment: Option<String>,
}

/// Runs the command.
pub fn run(args: &UserArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    match &args.command {
        UserCommand::Create(create) => {
            let password = password()?;
            block_on(run_create(client, create, password))
        }
        UserCommand::List(list) => block_on(run_list(client, list)),
        UserCommand::Delete(delete) => block_on(run_delete(client, delete)),
    }
}

/// The new user's password: `ENSIGN_PASSWORD`, else the first line of
/// standard input (without its line ending).
fn password() -> anyhow::Result<String> {
    if let Some(password) = std::env::var_os(PASSWORD_VARIABLE) {
        return password
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSWORD_VARIABLE} is not UTF-8"));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password: set {PASSWORD_VARIABLE} or write it on standard input");
    }
    Ok(password)
}

async fn run_create(
    client: Client,
    args: &CreateArgs,
    password: String,
) -> anyhow::Result<ExitCode> {
    let client = client.with_comment(args.comment.as_deref())?;
    let mut body = json!({"name": args.name, "password": password, "role": args.role.as_str()});
    if !args.environments.is_empty() {
        body["environments"] = json!(args.environments);
    }
    let answer = client
        .post("/users", Bytes::from(serde_json::to_vec(&body)?))
        .await
        .with_context(|| format!("creating user \"{}\"", args.name))?;
    println!(
        "created user \"{}\" (role {}, environments: {})",
        answer["name"].as_str().unwrap_or(&args.name),
        answer["role"].as_str().unwrap_or(args.role.as_str()),
        scope(&answer["environments"]),
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_list(client: Client, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let answer = client.get("/users").await.context("listing users")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = answer
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|u: &Value| {
            [
                u["name"].as_str().unwrap_or("").to_owned(),
                u["role"].as_str().unwrap_or("").to_owned(),
                scope(&u["environments"]),
                u["createdAt"].as_i64().map_or_else(String::new, utc),
            ]
        })
        .collect();
    let header = ["NAME", "ROLE", "ENVIRONMENTS", "CREATED"].map(str::to_owned);
    print_table(&mut out, &header, &rows)?;
    Ok(ExitCode::SUCCESS)
}

async fn run_delete(client: Client, args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let client = client.with_comment(args.comment.as_deref())?;
    client
        .delete(&format!("/users/{}", encode(&args.name)))
        .await
        .with_context(|| format!("deleting user \"{}\"", args.name))?;
    println!("deleted user \"{}\"", args.name);
    Ok(ExitCode::SUCCESS)
}
