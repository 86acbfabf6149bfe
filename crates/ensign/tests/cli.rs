//! The `ensign` binary as an admin API client, against real `ensign serve`
//! processes on free loopback ports with temporary SQLite databases:
//! `ensign token create|list|revoke`, `ensign user create|list|delete`,
//! `ensign flags import|export`, their
//! errors, and the issue's "done when": flags imported through the CLI
//! evaluate through OFREP and the flagd evaluation API exactly as the same
//! files served with `--uri file:` do. TLS on the admin port (`-c/-k`) with
//! certificates of a private CA made with the `openssl` command: the CLI over
//! `https://` with and without `--ca-file`, and a web UI sign-in. Start-up
//! refuses short shared secrets.
//!
//! The flagd testbed's flag files are used from `../shared/flagd-testbed`
//! when present (required under CI); otherwise the test's own flag file, which
//! is always used too, stands in and the test says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BOOTSTRAP: &str = "bootstrap-secret-for-the-cli-tests";
const TESTBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/flagd-testbed");

/// The test's own flag document: a static flag, targeting (with a shared `$evaluators`
/// segment, `sem_ver`, `starts_with`, `in`, timestamps), `fractional` (plain
/// and with a custom bucketing value), disabled flags, code defaults (no and
/// null `defaultVariant`, targeting that answers null), a broken rule, and
/// flag and flag-set metadata.
const OWN_FLAGS: &str = r##"{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "metadata": {"flagSetId": "own-flags", "team": "checkout", "tier": 2},
  "$evaluators": {
    "beta-users": {"ends_with": [{"var": "email"}, "@beta.example.com"]}
  },
  "flags": {
    "own-banner": {
      "state": "ENABLED",
      "variants": {"plain": "Welcome", "fancy": "Welcome!"},
      "defaultVariant": "fancy"
    },
    "own-checkout-redesign": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"if": [{"$ref": "beta-users"}, "on", "off"]},
      "metadata": {"owner": "web", "ticket": 42}
    },
    "own-header-color": {
      "state": "ENABLED",
      "variants": {"red": "#FF0000", "blue": "#0000FF", "green": "#00FF00"},
      "defaultVariant": "red",
      "targeting": {"fractional": [["red", 50], ["blue", 30], ["green", 20]]}
    },
    "own-bucket-by-email": {
      "state": "ENABLED",
      "variants": {"a": "A", "b": "B"},
      "defaultVariant": "a",
      "targeting": {"fractional": [
        {"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]},
        ["a", 1], ["b", 1]
      ]}
    },
    "own-page-size": {
      "state": "ENABLED",
      "variants": {"small": 10, "large": 50},
      "defaultVariant": "small",
      "targeting": {"if": [{"sem_ver": [{"var": "appVersion"}, ">=", "2.0.0"]}, "large", "small"]}
    },
    "own-discount": {
      "state": "ENABLED",
      "variants": {"none": 0, "some": 0.15, "lots": 0.4},
      "defaultVariant": "none",
      "targeting": {"if": [
        {"in": [{"var": "country"}, ["NL", "BE"]]}, "some",
        {"starts_with": [{"var": "tier"}, "gold"]}, "lots",
        null
      ]}
    },
    "own-theme": {
      "state": "ENABLED",
      "variants": {"light": {"bg": "#fff", "contrast": 1}, "dark": {"bg": "#000", "contrast": 2}},
      "defaultVariant": "light",
      "targeting": {"if": [{"<": [{"var": "$flagd.timestamp"}, 4102444800]}, "dark", "light"]}
    },
    "own-kill-switch": {
      "state": "DISABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "on"
    },
    "own-disabled-targeted": {
      "state": "DISABLED",
      "variants": {"x": "X", "y": "Y"},
      "defaultVariant": "x",
      "targeting": {"if": [{"==": [{"var": "country"}, "NL"]}, "y", "x"]}
    },
    "own-code-default": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false}
    },
    "own-null-default": {
      "state": "ENABLED",
      "variants": {"on": "yes", "off": "no"},
      "defaultVariant": null
    },
    "own-code-default-targeted": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "targeting": {"if": [{"==": [{"var": "country"}, "US"]}, "on", null]}
    },
    "own-misrouted": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"if": [{"==": [{"var": "country"}, "NL"]}, "missing-variant", "off"]}
    }
  }
}"##;

/// Testbed flag files that import cleanly and do not share flag keys.
const TESTBED_FILES: &[&str] = &[
    "testing-flags.json",
    "custom-ops.json",
    "disabled-flags.json",
    "metadata-flags.json",
    "selector-flag-combined-metadata.json",
];

/// The testbed's `flags/` folder; `None` (said aloud) when it is absent
/// outside CI.
fn testbed_flags() -> Option<PathBuf> {
    let dir = Path::new(TESTBED).join("flags");
    if dir.join("testing-flags.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the flagd testbed is missing at {} (CI must have it)",
        dir.display()
    );
    eprintln!(
        "NOTE: the flagd testbed is absent at {}; this test uses its own flag file instead",
        dir.display()
    );
    None
}

/// Five free loopback ports, held together while chosen so they differ.
fn free_ports() -> [u16; 5] {
    let listeners: Vec<TcpListener> = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.try_into().unwrap()
}

/// A running `ensign serve`, killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
    evaluation: u16,
    management: u16,
    ofrep: u16,
    admin: Option<u16>,
}

impl Server {
    /// Starts `ensign serve` with `args` (a database one unless `--no-database`).
    fn start(dir: &Path, name: &str, args: &[String]) -> Server {
        let with_database = !args.iter().any(|a| a == "--no-database");
        for attempt in 1..=3 {
            let [evaluation, management, sync, ofrep, admin] = free_ports();
            let log = dir.join(format!("{name}-{attempt}.log"));
            let log_file = File::create(&log).unwrap();
            let mut command = Command::new(env!("CARGO_BIN_EXE_ensign"));
            clear_ensign_env(&mut command);
            command
                .arg("serve")
                .args(["--bind", "127.0.0.1"])
                .args(["--port", &evaluation.to_string()])
                .args(["--management-port", &management.to_string()])
                .args(["--sync-port", &sync.to_string()])
                .args(["--ofrep-port", &ofrep.to_string()])
                .args(["--admin-port", &admin.to_string()])
                .args(args)
                .env("ENSIGN_ADMIN_TOKEN", BOOTSTRAP)
                .env("ENSIGN_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file);
            let child = command.spawn().unwrap();
            let mut server = Server {
                child,
                log,
                evaluation,
                management,
                ofrep,
                admin: with_database.then_some(admin),
            };
            if server.wait_ready() {
                return server;
            }
            eprintln!(
                "ensign serve did not start (attempt {attempt}); its log:\n{}",
                server.log_text()
            );
        }
        panic!("ensign serve did not start in three attempts");
    }

    /// Waits for `/readyz` (every source loaded); false if the process exited.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let ready = try_http(self.management, "GET", "/readyz", &[], b"")
                .is_some_and(|(status, _)| status == 200);
            let admin_up = self
                .admin
                .is_none_or(|port| TcpStream::connect(("127.0.0.1", port)).is_ok());
            if ready && admin_up {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.admin.expect("a database server")
        )
    }

    /// `ensign ARGS --server URL` against this server's admin port.
    fn cli(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = args.to_vec();
        all.extend(["--server", url.as_str()]);
        ensign(&all)
    }

    /// `ensign ARGS` with the bootstrap token; asserts success.
    fn cli_ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--token", BOOTSTRAP]);
        let output = self.cli(&all);
        assert!(
            output.status.success(),
            "ensign {args:?} failed:\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log_text()
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps the caller's `ENSIGN_*` settings out of a child process.
fn clear_ensign_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ENSIGN_") {
            command.env_remove(key);
        }
    }
}

/// Runs the `ensign` binary.
fn ensign(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ensign"));
    clear_ensign_env(&mut command);
    command.args(args).stdin(Stdio::null()).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One HTTP/1.1 request to a loopback port: the status and the body, or
/// `None` when nothing answers.
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut content = answer[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        content = dechunk(&content);
    }
    Some((status, content))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// A JSON POST; the status and the JSON answer.
fn post_json(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let (status, bytes) = try_http(
        port,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap_or_else(|| panic!("nothing answers POST {path} on port {port}"));
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("POST {path}: {status} {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

// Web UI users.

/// `ensign user create NAME ARGS` against `server` with the bootstrap token,
/// the password given in `ENSIGN_PASSWORD` or on standard input.
fn create_user(server: &Server, name: &str, args: &[&str], password: Password) -> Output {
    let url = server.url();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ensign"));
    clear_ensign_env(&mut command);
    command
        .args(["user", "create", name])
        .args(args)
        .args(["--server", &url, "--token", BOOTSTRAP])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match password {
        Password::Variable(password) => {
            command
                .env("ENSIGN_PASSWORD", password)
                .stdin(Stdio::null());
            command.output().unwrap()
        }
        Password::Stdin(password) => {
            let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{password}\n").as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    }
}

/// Where `ensign user create` reads the password.
enum Password<'a> {
    Variable(&'a str),
    Stdin(&'a str),
}

#[test]
fn users_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("ensign.db").display());
    let server = Server::start(dir.path(), "admin", &["--database-url".into(), database]);
    let password = "correct horse battery staple";

    let output = create_user(
        &server,
        "alice",
        &["--role", "editor", "--environment", "staging"],
        Password::Variable(password),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("created user \"alice\" (role editor, environments: staging)"),
        "{stdout}"
    );
    let output = create_user(
        &server,
        "bob",
        &["--role", "viewer"],
        Password::Stdin(password),
    );
    assert!(output.status.success(), "{}", stderr(&output));

    // Too short: the server's pointer and message, non-zero status.
    let output = create_user(
        &server,
        "carol",
        &["--role", "admin"],
        Password::Variable("short"),
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("/password") && message.contains("12"),
        "{message}"
    );
    assert!(!message.contains("short\n"), "{message}");

    // Listed without passwords.
    let table = server.cli_ok(&["user", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("NAME")
            && lines[1].starts_with("alice")
            && lines[2].starts_with("bob")
    );
    assert!(
        lines[1].contains("editor") && lines[1].contains("staging"),
        "{table}"
    );
    assert!(!table.contains("horse"));
    let listed: Value = serde_json::from_str(&server.cli_ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(listed[1]["role"], "viewer");

    // The password signs in to the web UI; deleting the user ends that.
    let admin = server.admin.unwrap();
    let (status, session) = post_json(
        admin,
        "/api/v1/session",
        &json!({"username": "bob", "password": password}),
    );
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["actor"], "user:bob");
    let output = server.cli_ok(&["user", "delete", "bob"]);
    assert_eq!(output.trim(), "deleted user \"bob\"");
    let (status, _) = post_json(
        admin,
        "/api/v1/session",
        &json!({"username": "bob", "password": password}),
    );
    assert_eq!(status, 401);
    assert!(!server.cli_ok(&["user", "list"]).contains("bob"));
}

// Tokens, import, export and their errors.

#[test]
fn tokens_import_and_export_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("ensign.db").display());
    let server = Server::start(dir.path(), "admin", &["--database-url".into(), database]);

    // The admin port serves the web UI at / beside the API.
    let admin = server.admin.unwrap();
    let (status, page) = try_http(admin, "GET", "/", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("/app.js"));
    let (status, _) = try_http(admin, "GET", "/api/v1/openapi.json", &[], b"").unwrap();
    assert_eq!(status, 200);

    // `token create` prints the secret alone on stdout, once, and says so.
    let output = server.cli(&[
        "token", "create", "ci", "--role", "editor", "--token", BOOTSTRAP,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the secret on stdout: {stdout:?}");
    let secret = lines[0].trim().to_owned();
    assert!(secret.len() >= 20, "{secret}");
    let message = stderr(&output);
    assert!(message.contains("shown only this once"), "{message}");
    assert!(
        message.contains("\"ci\"") && message.contains("editor"),
        "{message}"
    );
    assert!(!message.contains(&secret), "{message}");

    // Listing never shows it again.
    let table = server.cli_ok(&["token", "list"]);
    assert!(table.contains("ci") && table.contains("editor"), "{table}");
    assert!(!table.contains(&secret), "{table}");
    let listed: Value = serde_json::from_str(&server.cli_ok(&["token", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "ci");
    assert!(!listed.to_string().contains(&secret));

    // The new token works: import the testbed's (or our own) flags with it.
    let (source, flag_set) = match testbed_flags() {
        Some(flags) => (flags.join("testing-flags.json"), "testbed"),
        None => {
            let own = dir.path().join("own.json");
            std::fs::write(&own, OWN_FLAGS).unwrap();
            (own, "testbed")
        }
    };
    let source = source.to_str().unwrap();
    let original: Value = serde_json::from_str(&std::fs::read_to_string(source).unwrap()).unwrap();
    let output = server.cli(&[
        "flags",
        "import",
        source,
        "--flag-set",
        flag_set,
        "--token",
        &secret,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let count = original["flags"].as_object().unwrap().len();
    assert!(
        stdout.starts_with(&format!(
            "imported {count} flags into flag set \"{flag_set}\", environment \"production\""
        )),
        "{stdout}"
    );

    // An editor may not create tokens: the server's message, non-zero status.
    let output = server.cli(&[
        "token", "create", "other", "--role", "viewer", "--token", &secret,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("token:ci is an editor; this needs the admin role"),
        "{message}"
    );
    assert!(message.contains("HTTP 403"), "{message}");

    // Export: the flags as imported.
    let exported: Value =
        serde_json::from_str(&server.cli_ok(&["flags", "export", "--flag-set", flag_set])).unwrap();
    assert_eq!(exported["metadata"]["flagSetId"], flag_set);
    let keys = |document: &Value| -> Vec<String> {
        document["flags"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(keys(&exported), keys(&original));
    assert_eq!(
        exported["flags"]["boolean-flag"], original["flags"]["boolean-flag"],
        "a flag without targeting comes back as written"
    );

    // Round trip: export to a file, import that file into another flag set,
    // export again: the same flags (and through YAML too).
    let json_file = dir.path().join("exported.json");
    let yaml_file = dir.path().join("exported.yaml");
    for file in [&json_file, &yaml_file] {
        let file = file.to_str().unwrap();
        let output = server.cli(&[
            "flags",
            "export",
            "--flag-set",
            flag_set,
            "--output",
            file,
            "--token",
            BOOTSTRAP,
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stderr(&output).contains(&format!("wrote {file} ({count} flags)")));
    }
    let yaml = std::fs::read_to_string(&yaml_file).unwrap();
    assert!(
        yaml.contains("flags:") && !yaml.trim_start().starts_with('{'),
        "{yaml}"
    );
    for (file, copy) in [(&json_file, "copy-json"), (&yaml_file, "copy-yaml")] {
        server.cli_ok(&[
            "flags",
            "import",
            file.to_str().unwrap(),
            "--flag-set",
            copy,
            "--comment",
            "round trip",
        ]);
        let again: Value =
            serde_json::from_str(&server.cli_ok(&["flags", "export", "--flag-set", copy])).unwrap();
        assert_eq!(again["flags"], exported["flags"], "{copy}");
        assert_eq!(again["$evaluators"], exported["$evaluators"], "{copy}");
        assert_eq!(again["metadata"]["flagSetId"], copy);
    }

    // Another environment was not touched: the imported flags are disabled there.
    let staging: Value = serde_json::from_str(&server.cli_ok(&[
        "flags",
        "export",
        "--flag-set",
        flag_set,
        "--environment",
        "staging",
    ]))
    .unwrap();
    assert!(
        staging["flags"]
            .as_object()
            .unwrap()
            .values()
            .all(|flag| flag["state"] == "DISABLED"),
        "{staging}"
    );

    // A YAML file is converted client-side.
    let yaml_source = dir.path().join("small.yml");
    std::fs::write(
        &yaml_source,
        "flags:\n  yaml-flag:\n    state: ENABLED\n    variants:\n      'on': true\n      'off': false\n    defaultVariant: 'on'\n",
    )
    .unwrap();
    let stdout = server.cli_ok(&[
        "flags",
        "import",
        yaml_source.to_str().unwrap(),
        "--flag-set",
        "from-yaml",
        "--environment",
        "staging",
    ]);
    assert!(stdout.contains("environment \"staging\""), "{stdout}");
    let from_yaml: Value = serde_json::from_str(&server.cli_ok(&[
        "flags",
        "export",
        "--flag-set",
        "from-yaml",
        "--environment",
        "staging",
    ]))
    .unwrap();
    assert_eq!(
        from_yaml["flags"]["yaml-flag"],
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"})
    );

    // An invalid document: exit 1, every problem with its path, nothing
    // written (not even its valid flag's change, not even a new flag set).
    let invalid = dir.path().join("invalid.json");
    std::fs::write(
        &invalid,
        json!({"flags": {
            "boolean-flag": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
            "broken": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "c"},
            "bad-state": {"state": "MAYBE", "variants": {"on": true}, "defaultVariant": "on"}
        }})
        .to_string(),
    )
    .unwrap();
    let invalid = invalid.to_str().unwrap();
    for target in [flag_set, "fresh-set"] {
        let output = server.cli(&[
            "flags",
            "import",
            invalid,
            "--flag-set",
            target,
            "--token",
            &secret,
        ]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let message = stderr(&output);
        assert!(
            message.contains(&format!("importing {invalid}")),
            "{message}"
        );
        assert!(
            message.contains("the input has 2 problems (HTTP 422, invalid)"),
            "{message}"
        );
        assert!(
            message.contains("\n  at /flags/broken/defaultVariant: "),
            "{message}"
        );
        assert!(
            message.contains("\n  at /flags/bad-state/state: "),
            "{message}"
        );
        assert!(output.stdout.is_empty());
    }
    let after: Value =
        serde_json::from_str(&server.cli_ok(&["flags", "export", "--flag-set", flag_set])).unwrap();
    assert_eq!(after, exported, "an invalid import changed nothing");
    let output = server.cli(&[
        "flags",
        "export",
        "--flag-set",
        "fresh-set",
        "--token",
        BOOTSTRAP,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("flag set \"fresh-set\" not found (HTTP 404, not_found)"),
        "{}",
        stderr(&output)
    );

    // A file that is not JSON never leaves the client.
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"flags\": ").unwrap();
    let output = server.cli(&[
        "flags",
        "import",
        garbage.to_str().unwrap(),
        "--flag-set",
        "x",
        "--token",
        BOOTSTRAP,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not valid JSON"),
        "{}",
        stderr(&output)
    );

    // A wrong token: the server's message, non-zero status.
    let output = server.cli(&[
        "flags",
        "import",
        source,
        "--flag-set",
        flag_set,
        "--token",
        "not-a-token",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("the token is unknown or revoked (HTTP 401, unauthorized)"),
        "{message}"
    );

    // No token at all.
    let output = server.cli(&["token", "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("give --token"),
        "{}",
        stderr(&output)
    );

    // Revoked: the token stops working at once.
    let stdout = server.cli_ok(&["token", "revoke", "ci"]);
    assert!(stdout.contains("revoked token \"ci\""), "{stdout}");
    let output = server.cli(&[
        "flags",
        "export",
        "--flag-set",
        flag_set,
        "--token",
        &secret,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown or revoked"),
        "{}",
        stderr(&output)
    );
    let table = server.cli_ok(&["token", "list"]);
    let row = table.lines().find(|l| l.starts_with("ci ")).unwrap();
    assert!(row.trim_end().ends_with("UTC"), "a revocation time: {row}");

    // Environment-limited tokens are created with their scope.
    let limited = server.cli(&[
        "token",
        "create",
        "staging-bot",
        "--role",
        "editor",
        "--environment",
        "staging",
        "--token",
        BOOTSTRAP,
    ]);
    assert!(limited.status.success(), "{}", stderr(&limited));
    assert!(
        stderr(&limited).contains("environments: staging"),
        "{}",
        stderr(&limited)
    );
    let limited_secret = String::from_utf8(limited.stdout).unwrap().trim().to_owned();
    let output = server.cli(&[
        "flags",
        "import",
        source,
        "--flag-set",
        flag_set,
        "--token",
        &limited_secret,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("may only change the environments \"staging\""),
        "{}",
        stderr(&output)
    );

    // Nothing listening: a clear message.
    let [closed, ..] = free_ports();
    let output = ensign(&[
        "token",
        "list",
        "--server",
        &format!("http://127.0.0.1:{closed}"),
        "--token",
        BOOTSTRAP,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "cannot reach the Ensign server at http://127.0.0.1:{closed}"
        )),
        "{}",
        stderr(&output)
    );
}

// The issue's "done when".

/// Contexts that exercise every rule of the flag files.
fn contexts() -> Vec<Value> {
    let mut contexts = vec![
        json!({}),
        json!({"targetingKey": "user-1", "email": "ada@example.com", "appVersion": "2.1.0", "country": "NL"}),
        json!({"targetingKey": "user-2", "email": "bob@beta.example.com", "appVersion": "1.9.9", "country": "US", "tier": "gold-plus"}),
        json!({"targetingKey": "user-3", "email": "carol@beta.example.com", "appVersion": "3.0.0-rc.1", "country": "BE"}),
        json!({"fn": "Sulisław", "ln": "Świętopełk", "age": 29, "customer": false}),
        json!({"targetingKey": "5c3d8535-f81a-4478-a6d3-afaa4d51199e", "time": 1}),
        json!({"time": 9_999_999_999_i64, "email": "ballmer@macrosoft.com", "version": "1.2.3"}),
        json!({"id": "user-7", "version": "v2.0.0", "injectedmetadata": "set", "user": {"name": "jon"}}),
        json!({"targetingKey": "", "email": null, "appVersion": "not-a-version"}),
    ];
    contexts.extend((10..40).map(
        |n| json!({"targetingKey": format!("user-{n}"), "email": format!("u{n}@example.com")}),
    ));
    contexts
}

/// An answer without `flagSetId` in any `metadata` (the database names its
/// flag sets; files without one have none), empty metadata removed.
fn without_flag_set_id(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            metadata.remove("flagSetId");
            if metadata.is_empty() {
                map.remove("metadata");
            }
        }
        for child in map.values_mut() {
            *child = without_flag_set_id(child.take());
        }
    }
    value
}

/// Every (flag, context) through OFREP, and every context through the flagd
/// evaluation API's `ResolveAll` (Connect, JSON).
fn evaluations(server: &Server, keys: &[String], contexts: &[Value]) -> BTreeMap<String, Value> {
    let mut answers = BTreeMap::new();
    for (n, context) in contexts.iter().enumerate() {
        for key in keys {
            let (status, body) = post_json(
                server.ofrep,
                &format!("/ofrep/v1/evaluate/flags/{key}"),
                &json!({"context": context}),
            );
            answers.insert(
                format!("ofrep {key} #{n}"),
                json!({"status": status, "body": without_flag_set_id(body)}),
            );
        }
        let (status, body) = post_json(
            server.evaluation,
            "/flagd.evaluation.v1.Service/ResolveAll",
            &json!({"context": context}),
        );
        answers.insert(
            format!("flagd ResolveAll #{n}"),
            json!({"status": status, "body": without_flag_set_id(body)}),
        );
    }
    answers
}

#[test]
fn imported_flags_evaluate_as_the_files_do() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own-flags.json");
    std::fs::write(&own, OWN_FLAGS).unwrap();
    let mut files = vec![own];
    if let Some(testbed) = testbed_flags() {
        files.extend(TESTBED_FILES.iter().map(|name| testbed.join(name)));
    }
    let mut keys = Vec::new();
    for file in &files {
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        keys.extend(document["flags"].as_object().unwrap().keys().cloned());
    }
    let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "the files share no flag key");

    // The files, served as files.
    let mut args = vec!["--no-database".to_owned()];
    for file in &files {
        args.push("--uri".to_owned());
        args.push(format!("file:{}", file.display()));
    }
    let from_files = Server::start(dir.path(), "files", &args);

    // The same files imported through the CLI into a database server.
    let database = format!("sqlite://{}", dir.path().join("imported.db").display());
    let from_database = Server::start(dir.path(), "database", &["--database-url".into(), database]);
    for file in &files {
        let path = file.to_str().unwrap();
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let mut import = vec!["flags", "import", path];
        // Our own file names its flag set in its metadata; the testbed's do not.
        if stem != "own-flags" {
            import.extend(["--flag-set", stem]);
        }
        let stdout = from_database.cli_ok(&import);
        assert!(stdout.contains("environment \"production\""), "{stdout}");
    }

    // The database source reloads on the committed change; wait for every flag.
    let deadline = Instant::now() + Duration::from_secs(20);
    for key in &keys {
        loop {
            let (status, _) = post_json(
                from_database.ofrep,
                &format!("/ofrep/v1/evaluate/flags/{key}"),
                &json!({"context": {}}),
            );
            if status != 404 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{key} is not served after the import:\n{}",
                from_database.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let contexts = contexts();
    let expected = evaluations(&from_files, &keys, &contexts);
    let actual = evaluations(&from_database, &keys, &contexts);
    assert_eq!(expected.len(), actual.len());
    let mut differences = Vec::new();
    for (what, answer) in &expected {
        if actual.get(what) != Some(answer) {
            differences.push(format!(
                "{what}:\n  file:     {answer}\n  imported: {}",
                actual.get(what).unwrap_or(&Value::Null)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} answers differ:\n{}",
        differences.len(),
        expected.len(),
        differences.join("\n")
    );

    // The comparison saw every kind of answer it is meant to cover.
    let reasons: std::collections::BTreeSet<String> = expected
        .values()
        .filter_map(|a| a["body"]["reason"].as_str().map(str::to_owned))
        .collect();
    for reason in ["STATIC", "TARGETING_MATCH", "DISABLED", "DEFAULT"] {
        assert!(
            reasons.contains(reason),
            "no {reason} answer among {reasons:?}"
        );
    }
    let header_colors: std::collections::BTreeSet<&str> = expected
        .iter()
        .filter(|(what, _)| what.starts_with("ofrep own-header-color "))
        .filter_map(|(_, a)| a["body"]["variant"].as_str())
        .collect();
    assert_eq!(
        header_colors.len(),
        3,
        "fractional spreads: {header_colors:?}"
    );
    assert!(
        expected
            .values()
            .any(|a| a["status"] == 400 || a["body"]["errorCode"].is_string()),
        "an error answer is compared too"
    );
    // Our own document names its flag set: its answers carry flag-set
    // metadata (and the same `flagSetId`) from the database as from the file.
    let (_, file_answer) = post_json(
        from_files.ofrep,
        "/ofrep/v1/evaluate/flags/own-checkout-redesign",
        &json!({"context": {}}),
    );
    let (_, imported_answer) = post_json(
        from_database.ofrep,
        "/ofrep/v1/evaluate/flags/own-checkout-redesign",
        &json!({"context": {}}),
    );
    assert_eq!(file_answer["metadata"]["flagSetId"], "own-flags");
    assert_eq!(file_answer["metadata"], imported_answer["metadata"]);
}

/// SIGTERM: open event streams get `provider_shutdown`, the process drains
/// and exits with status 0.
#[test]
fn serve_shuts_down_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let flags = dir.path().join("flags.json");
    std::fs::write(
        &flags,
        json!({"flags": {"banner": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}})
            .to_string(),
    )
    .unwrap();
    let uri = format!("file:{}", flags.display());
    let mut server = Server::start(
        dir.path(),
        "shutdown",
        &["--no-database".into(), "--uri".into(), uri],
    );

    // A Connect server-streaming EventStream over HTTP/1.1.
    let mut stream = TcpStream::connect(("127.0.0.1", server.evaluation)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = b"\x00\x00\x00\x00\x02{}";
    let request = format!(
        "POST /flagd.evaluation.v1.Service/EventStream HTTP/1.1\r\nhost: localhost\r\n\
         content-type: application/connect+json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut read_until = |received: &mut Vec<u8>, stream: &mut TcpStream, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(received).contains(needle) && Instant::now() < deadline {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
        String::from_utf8_lossy(received).contains(needle)
    };
    assert!(
        read_until(&mut received, &mut stream, "provider_ready"),
        "no provider_ready"
    );

    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    assert!(
        read_until(&mut received, &mut stream, "provider_shutdown"),
        "no provider_shutdown before the stream ended: {}",
        String::from_utf8_lossy(&received)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ensign did not exit within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
}

/// The kill switch end to end in one `ensign serve`: an Alertmanager
/// notification with `--alertmanager-token` disables a flag and OFREP serves
/// it disabled; the resolution restores it through the restore loop (cool-down
/// 0); `/metrics` counts the webhook calls, the actions and the kill's
/// latency.
#[test]
fn serve_kills_and_restores_a_flag_on_alertmanager_notifications() {
    const ALERTMANAGER: &str = "alertmanager-secret-for-cli-tests";
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("ensign.db").display());
    let server = Server::start(
        dir.path(),
        "kill-switch",
        &[
            "--database-url".into(),
            database,
            "--alertmanager-token".into(),
            ALERTMANAGER.into(),
        ],
    );
    let admin = server.admin.unwrap();
    let bearer = format!("Bearer {BOOTSTRAP}");
    let send = |path: &str, authorization: &str, body: &Value| {
        let (status, bytes) = try_http(
            admin,
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", authorization),
            ],
            body.to_string().as_bytes(),
        )
        .unwrap_or_else(|| panic!("nothing answers POST {path}"));
        (
            status,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    };
    let (status, _) = send(
        "/api/v1/flag-sets",
        &bearer,
        &json!({"key": "shop", "name": "Shop"}),
    );
    assert_eq!(status, 201);
    let (status, body) = send(
        "/api/v1/flags",
        &bearer,
        &json!({"flagSet": "shop", "key": "checkout", "state": "ENABLED",
            "variants": {"on": true, "off": false}, "defaultVariant": "on"}),
    );
    assert_eq!(status, 201, "{body}");
    let served = || {
        post_json(
            server.ofrep,
            "/ofrep/v1/evaluate/flags/checkout",
            &json!({"context": {}}),
        )
        .1
    };
    let wait_for = |what: &str, done: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = served();
            if done(&answer) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: still {answer}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("served enabled", &|a| a["value"] == true);

    let notification = |status: &str| {
        json!({"version": "4", "status": status, "receiver": "ensign", "groupKey": "{}", "alerts": [{
            "status": status, "fingerprint": "c0ffee", "startsAt": "2026-11-29T18:00:00Z",
            "labels": {"alertname": "CheckoutBurn", "ensign_flag": "checkout",
                "ensign_on_resolved": "restore", "ensign_cooldown_seconds": "0"}}]})
    };
    let webhook = "/api/v1/integrations/alertmanager";
    // The admin token is not the webhook's.
    let (status, _) = send(webhook, &bearer, &notification("firing"));
    assert_eq!(status, 401);
    let am = format!("Bearer {ALERTMANAGER}");
    let (status, body) = send(webhook, &am, &notification("firing"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actions"][0]["outcome"], "applied", "{body}");
    wait_for("served disabled", &|a| a["value"] != true);

    let (status, body) = send(webhook, &am, &notification("resolved"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actions"][0]["outcome"], "restore_scheduled", "{body}");
    wait_for("restored", &|a| a["value"] == true);

    let (status, metrics) = try_http(server.management, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    for line in [
        "ensign_killswitch_webhook_requests_total{outcome=\"ok\"} 2",
        "ensign_killswitch_webhook_requests_total{outcome=\"unauthorized\"} 1",
        "ensign_killswitch_actions_total{action=\"disable\",outcome=\"applied\"} 1",
        "ensign_killswitch_actions_total{action=\"restore\",outcome=\"restored\"} 1",
        // The kill was observed; the restore (a cool-down later) is not an
        // alert's latency.
        "ensign_killswitch_propagation_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

// TLS and secrets.

/// A private CA and a certificate it issued for 127.0.0.1 and localhost,
/// made with the `openssl` command in `dir`: `(ca.pem, server.pem, server.key)`.
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |command: &str| {
        let args: Vec<&str> = command.split(' ').collect();
        let output = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (scripts/install-system-packages.sh installs it)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            stderr(&output)
        );
    };
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(&format!(
        "req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=Ensign-test-CA"
    ));
    openssl(&format!(
        "req {key} -keyout server.key -out server.csr -subj /CN=localhost"
    ));
    std::fs::write(
        path("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile server.ext",
    );
    (path("ca.pem"), path("server.pem"), path("server.key"))
}

/// A server with TLS on its admin port; its `https://` URL and the CA file.
fn tls_server(dir: &Path) -> (Server, String, PathBuf) {
    let (ca, cert, key) = private_ca(dir);
    let database = format!("sqlite://{}", dir.join("ensign.db").display());
    let server = Server::start(
        dir,
        "tls",
        &[
            "--database-url".into(),
            database,
            "-c".into(),
            cert.display().to_string(),
            "-k".into(),
            key.display().to_string(),
        ],
    );
    let url = format!("https://127.0.0.1:{}", server.admin.unwrap());
    (server, url, ca)
}

#[test]
fn the_cli_talks_https_verifying_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, ca) = tls_server(dir.path());
    let ca = ca.display().to_string();
    let output = ensign(&[
        "token",
        "list",
        "--server",
        &url,
        "--token",
        BOOTSTRAP,
        "--ca-file",
        &ca,
    ]);
    assert!(
        output.status.success(),
        "{}\nserver log:\n{}",
        stderr(&output),
        server.log_text()
    );
    // The CA also comes from ENSIGN_CA_FILE.
    let mut command = Command::new(env!("CARGO_BIN_EXE_ensign"));
    clear_ensign_env(&mut command);
    let output = command
        .args(["token", "list", "--server", &url, "--token", BOOTSTRAP])
        .env("ENSIGN_CA_FILE", &ca)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // Without the private CA the certificate is not trusted: a clear error.
    let output = ensign(&["token", "list", "--server", &url, "--token", BOOTSTRAP]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("TLS handshake with"), "{message}");
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("--ca-file"), "{message}");
    // The admin port speaks nothing but TLS now.
    let plain = url.replace("https://", "http://");
    let output = ensign(&["token", "list", "--server", &plain, "--token", BOOTSTRAP]);
    assert!(!output.status.success());
}

/// One HTTP/1.1 exchange over TLS trusting `ca`: the status line and headers
/// (lowercase) and the body.
fn https(port: u16, ca: &Path, request: &str) -> (String, String) {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // The server closes the connection (`Connection: close`) after answering.
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn the_web_ui_signs_in_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _, ca) = tls_server(dir.path());
    let port = server.admin.unwrap();
    let (head, body) = https(
        port,
        &ca,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.contains("<html"), "{body}");
    let login = json!({"token": BOOTSTRAP}).to_string();
    let (head, _) = https(
        port,
        &ca,
        &format!(
            "POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{login}",
            login.len()
        ),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .expect("a session cookie");
    assert!(
        cookie.contains("secure") && cookie.contains("httponly"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap();
    let (head, body) = https(
        port,
        &ca,
        &format!(
            "GET /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Cookie: {session}\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.contains("token:bootstrap"), "{body}");
}

#[test]
fn serve_refuses_short_shared_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("ensign.db").display());
    /// Arguments, environment, and the option the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (
            &[],
            &[("ENSIGN_ADMIN_TOKEN", "short-admin-token")],
            "ENSIGN_ADMIN_TOKEN",
        ),
        (
            &["--alertmanager-token", "0123456789"],
            &[],
            "--alertmanager-token",
        ),
        (
            &[
                "--ofrep-auth-token",
                "0123456789abcdef0123456789abcdef,short",
            ],
            &[],
            "--ofrep-auth-token",
        ),
        (
            &["--evaluation-auth-token", "short"],
            &[],
            "--evaluation-auth-token",
        ),
        (
            &[],
            &[("ENSIGN_SYNC_AUTH_TOKEN", "short")],
            "--sync-auth-token",
        ),
    ];
    for (args, env, option) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ensign"));
        clear_ensign_env(&mut command);
        command
            .args([
                "serve",
                "--database-url",
                &database,
                "--port",
                "0",
                "--management-port",
                "0",
            ])
            .args(["--sync-port", "0", "--ofrep-port", "0", "--admin-port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{option}");
        let message = stderr(&output);
        let line = message
            .lines()
            .find(|l| l.contains("error:"))
            .unwrap_or_default();
        assert!(
            line.contains(&format!(
                "{option}: a shared secret needs at least 32 characters"
            )) && line.contains("openssl rand -hex 32"),
            "{option}: {message}"
        );
    }
}

#[test]
fn serve_help_names_the_admin_bind_default_and_tls_on_every_port() {
    let output = ensign(&["serve", "--help"]);
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--admin-bind <ADMIN_BIND>",
        "[default: 127.0.0.1]",
        "--evaluation-auth-token",
        "--sync-auth-token",
        "OFREP and admin",
    ] {
        assert!(help.contains(expected), "{expected} missing from\n{help}");
    }
}
