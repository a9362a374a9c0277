//! The real `api` binary fails closed: in production it refuses to start without its secrets,
//! naming the variable, and never falls back to development payments.

use std::time::Duration;

use test_support::process::BinaryProcess;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Production settings with every secret, and `name` set to `value` (blank by default).
fn production(
    name: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    let mut vars: Vec<(&str, &str)> = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("STRIPE_SECRET_KEY", "sk_live_startup_test"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_startup_test"),
        ("OBJECT_STORE_URL", "file:///tmp/marketplace-objects"),
        ("RUN_MIGRATIONS", "false"),
        ("API_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .filter(|(k, _)| *k != name)
    .collect();
    // The variable is present but blank (an empty string reaches the process as such).
    vars.push((name, value.unwrap_or("")));
    vars
}

fn refuses(vars: &[(&str, &str)], variable: &str) {
    let mut api = BinaryProcess::spawn("api", env!("CARGO_BIN_EXE_api"), vars);
    let status = api.wait_for_exit(TIMEOUT);
    assert!(
        !status.success(),
        "started anyway; output: {:#?}",
        api.output
    );
    assert!(
        api.logged(variable),
        "the message names {variable}; output: {:#?}",
        api.output
    );
    assert!(!api.logged("api listening"), "{:#?}", api.output);
}

#[test]
fn production_refuses_to_start_with_a_blank_stripe_secret_key() {
    refuses(&production("STRIPE_SECRET_KEY", None), "STRIPE_SECRET_KEY");
    refuses(
        &production("STRIPE_SECRET_KEY", Some("   ")),
        "STRIPE_SECRET_KEY",
    );
}

#[test]
fn production_refuses_to_start_with_a_blank_webhook_secret() {
    refuses(
        &production("STRIPE_WEBHOOK_SECRET", None),
        "STRIPE_WEBHOOK_SECRET",
    );
}

#[test]
fn production_refuses_to_start_with_a_blank_jwt_secret() {
    refuses(&production("JWT_SECRET", None), "JWT_SECRET");
}

#[test]
fn production_refuses_to_start_without_an_object_store() {
    refuses(&production("OBJECT_STORE_URL", None), "OBJECT_STORE_URL");
}

#[test]
fn production_refuses_development_payments() {
    refuses(&production("PAYMENTS", Some("dev")), "PAYMENTS");
}

#[test]
fn the_api_logs_its_payment_mode_at_start() {
    let mut api = BinaryProcess::spawn(
        "api",
        env!("CARGO_BIN_EXE_api"),
        &[("RUN_MIGRATIONS", "false"), ("API_ADDR", "127.0.0.1:0")],
    );
    let listening = api.wait_for_message("api listening", TIMEOUT);
    assert_eq!(listening["payment_mode"], "dev", "{listening}");
}
