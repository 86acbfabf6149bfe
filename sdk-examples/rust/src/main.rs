//! Prints every flag of flags.json as one user sees it.
//!
//!     FLAGD_PORT=8013 cargo run -- [TARGETING_KEY] [EMAIL]
//!
//! Each line: `flag-key = value (variant V, reason R)`; a code default shows
//! `variant -` and, when the evaluation failed, the error code.

use std::fmt::Debug;

use ensign_rust_sdk_example::{Resolved, Theme, connect, resolve};
use open_feature::EvaluationContext;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "user-1".into());
    let email = args.next().unwrap_or_else(|| "ada@example.com".into());

    let client = connect().await?;
    let context = EvaluationContext::default()
        .with_targeting_key(user.clone())
        .with_custom_field("email", email.clone());
    let ctx = Some(&context);
    println!("flags for {user} <{email}>");

    // Each flag with its code default: the value used when the flag is
    // missing, disabled, or cannot be evaluated.
    let details = client.get_bool_details("show-welcome-banner", ctx, None).await;
    show("show-welcome-banner", &resolve(details, false));

    let details = client.get_string_details("welcome-message", ctx, None).await;
    show("welcome-message", &resolve(details, "Hi!".to_string()));

    let details = client.get_int_details("max-cart-items", ctx, None).await;
    show("max-cart-items", &resolve(details, 20));

    let details = client.get_float_details("discount-rate", ctx, None).await;
    show("discount-rate", &resolve(details, 0.0));

    let details = client.get_struct_details::<Theme>("theme", ctx, None).await;
    show("theme", &resolve(details, Theme::default()));

    let details = client.get_string_details("holiday-banner-text", ctx, None).await;
    show("holiday-banner-text", &resolve(details, "no banner".to_string()));

    let details = client.get_bool_details("premium-support", ctx, None).await;
    show("premium-support", &resolve(details, false));

    let details = client.get_string_details("checkout-flow", ctx, None).await;
    show("checkout-flow", &resolve(details, "classic".to_string()));

    let details = client.get_bool_details("no-such-flag", ctx, None).await;
    show("no-such-flag", &resolve(details, false));
    Ok(())
}

fn show<T: Debug>(key: &str, resolved: &Resolved<T>) {
    let variant = resolved.variant.as_deref().unwrap_or("-");
    let error = resolved.error.as_deref().map(|e| format!(", error {e}")).unwrap_or_default();
    println!("{key} = {:?} (variant {variant}, reason {}{error})", resolved.value, resolved.reason);
}
