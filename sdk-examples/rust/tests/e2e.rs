//! End-to-end tests against a live `ensign serve` (or flagd) serving a copy of
//! ../flags.json. Run them with ../e2e.sh, which starts the server and sets:
//!
//! - `FLAGD_HOST`, `FLAGD_PORT`: the server's evaluation port;
//! - `ENSIGN_FLAGS_FILE`: the served file, which the configuration-change test rewrites.

use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ensign_rust_sdk_example::{Resolved, Theme, connect, resolve};
use open_feature::{Client, EvaluationContext};
use tokio::runtime::Runtime;

/// One runtime and one client for all tests: the provider's gRPC channel lives
/// in the runtime that created it.
struct Live {
    runtime: Runtime,
    client: Client,
}

static LIVE: LazyLock<Live> = LazyLock::new(|| {
    assert!(
        std::env::var_os("FLAGD_PORT").is_some(),
        "FLAGD_PORT is not set: run these tests through e2e.sh"
    );
    let runtime = Runtime::new().expect("tokio runtime");
    let client = runtime.block_on(connect()).expect("connect to the flag server");
    Live { runtime, client }
});

fn block_on<F: Future>(future: F) -> F::Output {
    LIVE.runtime.block_on(future)
}

fn client() -> &'static Client {
    &LIVE.client
}

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(key)
}

fn resolved<T>(value: T, variant: &str, reason: &str) -> Resolved<T> {
    Resolved { value, variant: Some(variant.into()), reason: reason.into(), error: None }
}

#[test]
fn typed_values_variants_and_reasons() {
    let ctx = user("user-1");
    let ctx = Some(&ctx);
    block_on(async {
        let c = client();
        assert_eq!(
            resolve(c.get_bool_details("show-welcome-banner", ctx, None).await, false),
            resolved(true, "on", "STATIC")
        );
        assert_eq!(
            resolve(c.get_string_details("welcome-message", ctx, None).await, "Hi!".into()),
            resolved("Hello from Ensign!".to_string(), "hello", "STATIC")
        );
        assert_eq!(
            resolve(c.get_int_details("max-cart-items", ctx, None).await, 20),
            resolved(250, "large", "STATIC")
        );
        assert_eq!(
            resolve(c.get_float_details("discount-rate", ctx, None).await, 0.0),
            resolved(0.15, "spring-sale", "STATIC")
        );
        let theme = Theme { background: "#1e1e1e".into(), font_size: 14, rounded: true };
        assert_eq!(
            resolve(c.get_struct_details::<Theme>("theme", ctx, None).await, Theme::default()),
            resolved(theme, "dark", "STATIC")
        );
    });
}

#[test]
fn missing_flag_gives_the_code_default() {
    let ctx = user("user-1");
    let ctx = Some(&ctx);
    block_on(async {
        let c = client();
        fn expected<T>(value: T) -> Resolved<T> {
            Resolved {
                value,
                variant: None,
                reason: "ERROR".into(),
                error: Some("FLAG_NOT_FOUND".into()),
            }
        }
        assert_eq!(
            resolve(c.get_bool_details("no-such-flag", ctx, None).await, true),
            expected(true)
        );
        assert_eq!(
            resolve(c.get_string_details("no-such-flag", ctx, None).await, "fallback".into()),
            expected("fallback".to_string())
        );
        assert_eq!(resolve(c.get_int_details("no-such-flag", ctx, None).await, 7), expected(7));
    });
}

#[test]
fn disabled_flag_gives_the_code_default() {
    let ctx = user("user-1");
    let ctx = Some(&ctx);
    block_on(async {
        let details = client().get_string_details("holiday-banner-text", ctx, None).await;
        // The server answers successfully (not with an error) and says why.
        let details = details.expect("a disabled flag is a successful evaluation");
        assert_eq!(details.reason.as_ref().map(|r| r.to_string()).as_deref(), Some("DISABLED"));
        assert_eq!(details.variant.as_deref().unwrap_or(""), "");
        assert_eq!(
            resolve(Ok(details), "no banner".to_string()),
            Resolved {
                value: "no banner".into(),
                variant: None,
                reason: "DISABLED".into(),
                error: None
            }
        );
    });
}

#[test]
fn targeting_matches_on_email_domain() {
    block_on(async {
        let c = client();
        let employee = user("user-1").with_custom_field("email", "ada@example.com");
        assert_eq!(
            resolve(c.get_bool_details("premium-support", Some(&employee), None).await, false),
            resolved(true, "yes", "TARGETING_MATCH")
        );
        // The rule returns null for everyone else: the flag's default variant.
        let customer = user("user-1").with_custom_field("email", "bob@example.org");
        assert_eq!(
            resolve(c.get_bool_details("premium-support", Some(&customer), None).await, true),
            resolved(false, "no", "DEFAULT")
        );
    });
}

#[test]
fn fractional_rollout_is_sticky_per_targeting_key() {
    // Expected variants computed independently with PyPI openfeature-flagd-core
    // 2.0.0 (fractional v3, Ensign's default) on flags.json:
    //   core.resolve_string_value("checkout-flow", "x", EvaluationContext(targeting_key=KEY))
    let expected = [
        ("user-1", "classic"),
        ("user-2", "one-page"),
        ("user-4", "one-page"),
        ("user-7", "express"),
        ("alice", "express"),
        ("bob", "classic"),
    ];
    block_on(async {
        for (key, variant) in expected {
            let ctx = user(key);
            let got = resolve(
                client().get_string_details("checkout-flow", Some(&ctx), None).await,
                "-".into(),
            );
            assert_eq!(
                got,
                resolved(variant.to_string(), variant, "TARGETING_MATCH"),
                "targeting key {key}"
            );
        }
    });
}

/// Polls `welcome-message` until it is `want`; returns how long that took.
async fn wait_for_message(want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let ctx = user("user-1");
    loop {
        let got = resolve(
            client().get_string_details("welcome-message", Some(&ctx), None).await,
            String::new(),
        );
        if got.value == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "still {:?} after {limit:?}, want {want:?}", got.value);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn configuration_change_is_served_within_one_second() {
    let path = std::env::var("ENSIGN_FLAGS_FILE").expect("ENSIGN_FLAGS_FILE: run through e2e.sh");
    let original = std::fs::read_to_string(&path).expect("read the served flags file");
    let changed =
        original.replacen(r#""defaultVariant": "hello""#, r#""defaultVariant": "goodbye""#, 1);
    assert_ne!(changed, original, "flags.json has no welcome-message defaultVariant to change");
    let limit = Duration::from_secs(1);
    block_on(async {
        wait_for_message("Hello from Ensign!", limit).await;

        // Rewrite the file in place, as `cat > flags.json` would.
        std::fs::write(&path, &changed).expect("rewrite the flags file");
        let took = wait_for_message("Goodbye from Ensign!", limit).await;
        eprintln!("in-place rewrite served after {took:?}");

        // Replace it by renaming a new file over it, as editors and config
        // management tools do.
        let staged = format!("{path}.new");
        std::fs::write(&staged, &original).expect("write the replacement");
        std::fs::rename(&staged, &path).expect("rename over the flags file");
        let took = wait_for_message("Hello from Ensign!", limit).await;
        eprintln!("rename-over replacement served after {took:?}");
    });
}

#[test]
fn example_program_prints_each_flag() {
    let _ = &*LIVE; // checks the environment
    let output = Command::new(env!("CARGO_BIN_EXE_ensign-rust-sdk-example"))
        .args(["user-7", "ada@example.com"])
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "example failed: {}", String::from_utf8_lossy(&output.stderr));
    for line in [
        "flags for user-7 <ada@example.com>",
        "show-welcome-banner = true (variant on, reason STATIC)",
        "max-cart-items = 250 (variant large, reason STATIC)",
        "discount-rate = 0.15 (variant spring-sale, reason STATIC)",
        r##"theme = Theme { background: "#1e1e1e", font_size: 14, rounded: true } (variant dark, reason STATIC)"##,
        r#"holiday-banner-text = "no banner" (variant -, reason DISABLED)"#,
        "premium-support = true (variant yes, reason TARGETING_MATCH)",
        r#"checkout-flow = "express" (variant express, reason TARGETING_MATCH)"#,
        "no-such-flag = false (variant -, reason ERROR, error FLAG_NOT_FOUND)",
    ] {
        assert!(stdout.lines().any(|l| l == line), "missing line {line:?} in:\n{stdout}");
    }
}
