//! The payment provider (Stripe) as the rest of the code sees it.
//!
//! [`Payments`] is either the real Stripe client or a local development mode that needs no keys
//! and no network. Every call here is a network round trip, so callers must make it *outside*
//! any database transaction that holds row locks and pass an
//! idempotency key derived from their own row (e.g. `order-{order_id}-pi`), so that a job that
//! runs twice creates, cancels or refunds at most once.
//!
//! Failures come back as a [`PaymentError`] that only says what the caller needs to decide:
//! retry later with backoff ([`PaymentError::Retryable`]) or give up and record why
//! ([`PaymentError::Permanent`]). The client itself never retries: one call is one HTTP attempt
//! bounded by a per-attempt timeout, and the job system owns the retry schedule and the attempt
//! cap.
//!
//! Two Stripe behaviours shape this module:
//! * Stripe's idempotency layer stores the first answer for a key (errors included) for 24 hours
//!   and replays it. A replayed answer can therefore describe an older state of the intent; see
//!   [`Payments::cancel_intent`].
//! * async-stripe parses responses with miniserde into typed structs; a response (or an error
//!   body) it cannot parse loses its details, see [`PaymentError`].

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use stripe::{
    ApiErrors, ApiErrorsCode, IdempotencyKey, RequestStrategy, StripeError, StripeRequest,
};
use stripe_core::{
    PaymentIntent, PaymentIntentStatus,
    payment_intent::{
        CancelPaymentIntent, CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
        RetrievePaymentIntent,
    },
    refund::CreateRefund,
};
use uuid::Uuid;

pub mod matching;

/// Stripe's API base URL, used when `STRIPE_API_BASE` is unset.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com/";

/// How long one HTTP attempt to Stripe may take (connect, send and read the whole body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Prefix of every payment intent id made up by the development mode.
const DEV_INTENT_PREFIX: &str = "pi_dev_";

/// Prefix of every refund id made up by the development mode.
const DEV_REFUND_PREFIX: &str = "re_dev_";

/// async-stripe's message when an error response (any non-2xx status) is not a Stripe error
/// object; the status code is lost at that point (async-stripe `hyper/client.rs`).
const UNPARSEABLE_ERROR_BODY: &str = "error deserializing Stripe error";

/// Installs rustls' `ring` crypto provider as the process default.
///
/// Every TLS client built without an explicit provider (the Stripe client, reqwest with
/// `rustls-no-provider`) needs a process-wide provider and panics without one. Call it first thing in `main`; calling it again, or after another provider was
/// installed, is harmless. [`StripeClient::new`] calls it too, so building a client never panics.
pub fn install_crypto_provider() {
    // `Err` only means a provider is already installed, which is exactly what we want.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// The payment provider used by the worker.
#[derive(Clone, Debug)]
pub enum Payments {
    /// Development mode: deterministic, local, no network. The real payment state lives in our
    /// database; the intents returned here are placeholders with stable ids and secrets.
    Dev,
    /// The Stripe API.
    Stripe(StripeClient),
}

impl Payments {
    /// Builds the provider from a key: none → development mode; otherwise Stripe at `api_base`
    /// (default [`DEFAULT_API_BASE`]) with a [`DEFAULT_TIMEOUT`] per attempt.
    ///
    /// A key that is given but blank is refused rather than read as "none": silently falling
    /// back to fake payments because of an empty variable is worse than failing start-up.
    pub fn new(secret_key: Option<&str>, api_base: Option<&str>) -> Result<Self, PaymentError> {
        let Some(secret_key) = secret_key else {
            return Ok(Self::Dev);
        };
        let mut config = StripeConfig::new(secret_key);
        if let Some(api_base) = api_base {
            config = config.api_base(api_base);
        }
        Self::stripe(config)
    }

    /// Builds a Stripe provider from an explicit configuration (tests use it to shorten the
    /// timeout).
    pub fn stripe(config: StripeConfig) -> Result<Self, PaymentError> {
        StripeClient::new(config).map(Self::Stripe)
    }

    /// Whether this is the development mode (no real payments are taken).
    pub fn is_dev(&self) -> bool {
        matches!(self, Self::Dev)
    }

    /// In development mode, the intent [`Payments::create_intent`] would create for `order_id`,
    /// computed without any call (it depends on the order id only), so it can be stored together
    /// with the order. `None` with a real provider.
    pub fn local_intent(&self, order_id: Uuid) -> Option<Intent> {
        match self {
            Self::Dev => Some(dev_intent(order_id, IntentStatus::RequiresPaymentMethod)),
            Self::Stripe(_) => None,
        }
    }

    /// Creates a PaymentIntent for an order, or returns the one an earlier call with the same
    /// `idempotency_key` created: `amount_cents` in minor units, `currency` a three-letter ISO
    /// code (sent lowercase), the order id in the intent's metadata (`order_id`) and automatic
    /// payment methods on. The caller's key is `format!("order-{order_id}-pi")`.
    pub async fn create_intent(
        &self,
        order_id: Uuid,
        amount_cents: i64,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<Intent, PaymentError> {
        // Checked in both modes so a development run catches what Stripe would refuse.
        let currency = checked_currency(currency)?;
        if amount_cents <= 0 {
            return Err(PaymentError::invalid(format!(
                "amount must be positive, got {amount_cents}"
            )));
        }
        let key = idempotency(idempotency_key)?;
        match self {
            Self::Dev => Ok(Intent {
                amount_cents,
                amount_received: Some(0),
                currency,
                ..dev_intent(order_id, IntentStatus::RequiresPaymentMethod)
            }),
            Self::Stripe(client) => {
                client
                    .create_intent(order_id, amount_cents, &currency, key)
                    .await
            }
        }
    }

    /// Retrieves the current state of an intent, for when webhook events may be stale or out of
    /// order.
    ///
    /// In development mode the real state lives in our database, so this returns the
    /// placeholder intent (status `RequiresPaymentMethod`, amount 0, empty currency).
    pub async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, PaymentError> {
        match self {
            Self::Dev => {
                let order_id = dev_order_id(intent_id)?;
                Ok(dev_intent(order_id, IntentStatus::RequiresPaymentMethod))
            }
            Self::Stripe(client) => client.retrieve_intent(checked_intent_id(intent_id)?).await,
        }
    }

    /// Cancels an intent, idempotently.
    ///
    /// An intent that is already canceled comes back as `Ok` with status
    /// [`IntentStatus::Canceled`]; one that already succeeded comes back as `Ok` with status
    /// [`IntentStatus::Succeeded`], so the caller can treat the order as paid instead of
    /// cancelled. An intent that is `Processing` cannot be cancelled yet: that is
    /// [`PaymentError::Retryable`], since it will settle one way or the other.
    pub async fn cancel_intent(
        &self,
        intent_id: &str,
        idempotency_key: &str,
    ) -> Result<Intent, PaymentError> {
        let key = idempotency(idempotency_key)?;
        match self {
            Self::Dev => {
                let order_id = dev_order_id(intent_id)?;
                Ok(dev_intent(order_id, IntentStatus::Canceled))
            }
            Self::Stripe(client) => {
                client
                    .cancel_intent(checked_intent_id(intent_id)?, key)
                    .await
            }
        }
    }

    /// Refunds a succeeded intent: `amount_cents` of it, or all that is left with `None`; the
    /// same `idempotency_key` never refunds twice.
    ///
    /// Stripe refuses a second refund of a fully refunded intent made with a *different* key with
    /// a permanent error whose code is `charge_already_refunded`, and a partial refund larger
    /// than what is left with `amount_too_large`.
    pub async fn refund(
        &self,
        intent_id: &str,
        amount_cents: Option<i64>,
        idempotency_key: &str,
    ) -> Result<RefundRef, PaymentError> {
        let key = idempotency(idempotency_key)?;
        if let Some(amount) = amount_cents.filter(|a| *a <= 0) {
            return Err(PaymentError::invalid(format!(
                "a refund must be positive, got {amount}"
            )));
        }
        match self {
            Self::Dev => {
                let order_id = dev_order_id(intent_id)?;
                // One id per key, like Stripe: a repeated call names the same refund.
                let digest = Sha256::digest(idempotency_key.as_bytes());
                let suffix: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
                Ok(RefundRef {
                    id: format!("{DEV_REFUND_PREFIX}{}_{suffix}", order_id.simple()),
                })
            }
            Self::Stripe(client) => {
                client
                    .refund(checked_intent_id(intent_id)?, amount_cents, key)
                    .await
            }
        }
    }
}

/// Settings of the Stripe client.
#[derive(Clone)]
pub struct StripeConfig {
    secret_key: SecretString,
    api_base: String,
    timeout: Duration,
}

impl StripeConfig {
    /// Settings for the given secret key, Stripe's own base URL and the [`DEFAULT_TIMEOUT`].
    pub fn new(secret_key: &str) -> Self {
        Self {
            secret_key: SecretString::from(secret_key),
            api_base: DEFAULT_API_BASE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sends requests to another base URL (a local fake in tests). Requests go to
    /// `{api_base}/v1/...`; a missing trailing slash is added.
    pub fn api_base(mut self, api_base: &str) -> Self {
        api_base.clone_into(&mut self.api_base);
        self
    }

    /// Sets the per-attempt timeout (connect, send and read the whole response).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret key stays out of logs.
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A configured Stripe API client; cheap to clone (one shared allocation).
#[derive(Clone)]
pub struct StripeClient {
    // Behind an `Arc` so `Payments` stays pointer-sized and clones do not copy headers.
    inner: Arc<StripeInner>,
}

struct StripeInner {
    client: stripe::Client,
    // Kept only to scrub it from error messages, should anything ever echo it.
    secret_key: SecretString,
    api_base: String,
    timeout: Duration,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.inner.api_base)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// Builds the client. Fails (permanently) on a blank key or a base URL that is not http(s).
    pub fn new(config: StripeConfig) -> Result<Self, PaymentError> {
        if config.secret_key.expose_secret().trim().is_empty() {
            return Err(PaymentError::invalid(
                "STRIPE_SECRET_KEY is blank; set it, or choose PAYMENTS=dev outside production",
            ));
        }
        let mut api_base = config.api_base.trim().to_owned();
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(PaymentError::invalid(format!(
                "Stripe API base URL must start with https:// or http://, got {api_base:?}"
            )));
        }
        // async-stripe builds `format!("{base}v1{path}")`, so a base without a trailing slash
        // ("http://host/stripe") would produce "http://host/stripev1/...".
        if !api_base.ends_with('/') {
            api_base.push('/');
        }
        // Building the TLS connector needs a process-wide crypto provider (it panics without).
        install_crypto_provider();
        let client = stripe::ClientBuilder::new(config.secret_key.expose_secret())
            .url(api_base.as_str())
            .timeout(config.timeout)
            .build()
            .map_err(|err| PaymentError::invalid(format!("invalid Stripe configuration: {err}")))?;
        Ok(Self {
            inner: Arc::new(StripeInner {
                client,
                secret_key: config.secret_key,
                api_base,
                timeout: config.timeout,
            }),
        })
    }

    async fn create_intent(
        &self,
        order_id: Uuid,
        amount_cents: i64,
        currency: &str,
        key: IdempotencyKey,
    ) -> Result<Intent, PaymentError> {
        let metadata = HashMap::from([("order_id".to_owned(), order_id.to_string())]);
        let currency: stripe_types::Currency =
            currency.parse().unwrap_or_else(|never| match never {});
        let intent = CreatePaymentIntent::new(amount_cents, currency)
            .metadata(metadata)
            .automatic_payment_methods(CreatePaymentIntentAutomaticPaymentMethods::new(true))
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.inner.client)
            .await
            .map_err(|err| self.error(err))?;
        Intent::from_stripe(&intent)
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, PaymentError> {
        let intent = RetrievePaymentIntent::new(intent_id)
            .send(&self.inner.client)
            .await
            .map_err(|err| self.error(err))?;
        Intent::from_stripe(&intent)
    }

    async fn cancel_intent(
        &self,
        intent_id: &str,
        key: IdempotencyKey,
    ) -> Result<Intent, PaymentError> {
        match self
            .send_cancel(intent_id, RequestStrategy::Idempotent(key))
            .await?
        {
            CancelOutcome::Done(intent) => Ok(intent),
            CancelOutcome::Cancelable(_) => {
                // Stripe refused the cancel, yet the intent can be cancelled now: the refusal was
                // either a replay of an older answer stored under this idempotency key (e.g. from
                // while the intent was processing) or a race. Replaying the key would return the
                // same refusal for 24 hours, so send one cancel without a key; cancelling is
                // idempotent by itself because a second cancel is refused as "already canceled".
                match self.send_cancel(intent_id, RequestStrategy::Once).await? {
                    CancelOutcome::Done(intent) => Ok(intent),
                    CancelOutcome::Cancelable(intent) => Err(PaymentError::Retryable(format!(
                        "Stripe refused to cancel {} although its status is {}",
                        intent.id, intent.status
                    ))),
                }
            }
        }
    }

    /// One cancel request; a refusal because of the intent's state is resolved into the
    /// intent's current state.
    async fn send_cancel(
        &self,
        intent_id: &str,
        strategy: RequestStrategy,
    ) -> Result<CancelOutcome, PaymentError> {
        let api = match CancelPaymentIntent::new(intent_id)
            .customize()
            .request_strategy(strategy)
            .send(&self.inner.client)
            .await
        {
            Ok(intent) => return Intent::from_stripe(&intent).map(CancelOutcome::Done),
            Err(StripeError::Stripe(api, _))
                if api.code == Some(ApiErrorsCode::PaymentIntentUnexpectedState) =>
            {
                api
            }
            Err(err) => return Err(self.error(err)),
        };
        // The error embeds the intent as it was when Stripe first answered; a replayed answer can
        // be old. Only a final state (succeeded, canceled) is safe to trust without asking again.
        let embedded = api
            .payment_intent
            .as_ref()
            .map(Intent::from_stripe)
            .transpose()?;
        let current = match embedded {
            Some(intent) if intent.status.is_final() => intent,
            _ => self.retrieve_intent(intent_id).await?,
        };
        match current.status {
            IntentStatus::Canceled | IntentStatus::Succeeded => Ok(CancelOutcome::Done(current)),
            IntentStatus::Processing => Err(PaymentError::Retryable(format!(
                "{} is processing and cannot be cancelled until it settles",
                current.id
            ))),
            IntentStatus::RequiresPaymentMethod
            | IntentStatus::RequiresConfirmation
            | IntentStatus::RequiresAction
            | IntentStatus::RequiresCapture => Ok(CancelOutcome::Cancelable(current)),
        }
    }

    async fn refund(
        &self,
        intent_id: &str,
        amount_cents: Option<i64>,
        key: IdempotencyKey,
    ) -> Result<RefundRef, PaymentError> {
        let mut request = CreateRefund::new().payment_intent(intent_id);
        if let Some(amount) = amount_cents {
            request = request.amount(amount);
        }
        let refund = request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.inner.client)
            .await
            .map_err(|err| self.error(err))?;
        Ok(RefundRef {
            id: refund.id.to_string(),
        })
    }

    /// Classifies an async-stripe error and removes the secret key from its text.
    fn error(&self, err: StripeError) -> PaymentError {
        match classify(err, self.inner.timeout) {
            PaymentError::Retryable(message) => PaymentError::Retryable(self.scrub(message)),
            PaymentError::Permanent { code, message } => PaymentError::Permanent {
                code,
                message: self.scrub(message),
            },
        }
    }

    fn scrub(&self, message: String) -> String {
        let key = self.inner.secret_key.expose_secret();
        if message.contains(key) {
            message.replace(key, "[redacted]")
        } else {
            message
        }
    }
}

/// What one cancel request found.
enum CancelOutcome {
    /// Cancelled now, or already in a final state.
    Done(Intent),
    /// Refused, but the intent's current state can still be cancelled.
    Cancelable(Intent),
}

/// Maps an async-stripe error to retry-or-not.
fn classify(err: StripeError, timeout: Duration) -> PaymentError {
    match err {
        StripeError::Stripe(api, status) => {
            let retryable = matches!(status, 409 | 424 | 429 | 500..=599)
                || matches!(
                    api.code,
                    Some(
                        ApiErrorsCode::LockTimeout
                            | ApiErrorsCode::IdempotencyKeyInUse
                            | ApiErrorsCode::RateLimit
                    )
                );
            let message = describe(&api, status);
            if retryable {
                PaymentError::Retryable(message)
            } else {
                PaymentError::Permanent {
                    code: api.code.as_ref().map(|code| code.as_str().to_owned()),
                    message,
                }
            }
        }
        // A non-2xx answer whose body is not a Stripe error object (a proxy's HTML 502, a load
        // balancer page). The status is lost; such answers are almost always transient, and every
        // call here is idempotent, so retrying is the safe reading.
        StripeError::JSONDeserialize(message) if message == UNPARSEABLE_ERROR_BODY => {
            PaymentError::Retryable(
                "Stripe answered with an error status and a body that is not a Stripe error"
                    .to_owned(),
            )
        }
        // A 2xx body that does not parse: retrying cannot change the SDK's parser.
        StripeError::JSONDeserialize(message) => PaymentError::Permanent {
            code: None,
            message: format!("could not parse Stripe's response: {message}"),
        },
        StripeError::Timeout => PaymentError::Retryable(format!(
            "no complete answer from Stripe within {} ms",
            timeout.as_millis()
        )),
        StripeError::ClientError(message) => {
            PaymentError::Retryable(format!("could not reach Stripe: {message}"))
        }
        StripeError::ConfigError(message) => PaymentError::Permanent {
            code: None,
            message: format!("invalid Stripe request: {message}"),
        },
    }
}

/// "Stripe answered 402 card_error card_declined (decline code insufficient_funds): …".
fn describe(api: &ApiErrors, status: u16) -> String {
    let mut message = format!("Stripe answered {status} {}", api.type_.as_str());
    if let Some(code) = &api.code {
        message.push(' ');
        message.push_str(code.as_str());
    }
    if let Some(decline_code) = &api.decline_code {
        message.push_str(" (decline code ");
        message.push_str(decline_code);
        message.push(')');
    }
    if let Some(text) = &api.message {
        message.push_str(": ");
        message.push_str(text);
    }
    message
}

/// A payment intent as far as orders care.
#[derive(Clone, PartialEq, Eq)]
pub struct Intent {
    /// Stripe's id (`pi_...`).
    pub id: String,
    /// The secret the browser needs to confirm the payment; Stripe omits it in some answers.
    pub client_secret: Option<String>,
    /// Where the intent is in its life cycle.
    pub status: IntentStatus,
    /// The amount in minor units.
    pub amount_cents: i64,
    /// What was actually received, in minor units, when Stripe says.
    pub amount_received: Option<i64>,
    /// Lowercase ISO currency code.
    pub currency: String,
    /// The order the intent was made for (`metadata.order_id`), as Stripe holds it.
    pub order_ref: Option<String>,
}

impl Intent {
    fn from_stripe(intent: &PaymentIntent) -> Result<Self, PaymentError> {
        Ok(Self {
            id: intent.id.to_string(),
            client_secret: intent.client_secret.clone(),
            status: IntentStatus::from_stripe(&intent.status)?,
            amount_cents: intent.amount,
            amount_received: Some(intent.amount_received),
            currency: intent.currency.to_string(),
            order_ref: intent.metadata.get("order_id").cloned(),
        })
    }

    /// Reads the PaymentIntent embedded in a webhook event (`data.object`). `None` when the
    /// object lacks a field a payment decision needs (id, status, amount, currency): such an
    /// event is never trusted on its own.
    pub fn from_event_object(object: &serde_json::Value) -> Option<Self> {
        Some(Self {
            id: object["id"].as_str()?.to_owned(),
            client_secret: None,
            status: IntentStatus::parse(object["status"].as_str()?)?,
            amount_cents: object["amount"].as_i64()?,
            amount_received: object["amount_received"].as_i64(),
            currency: object["currency"].as_str()?.to_owned(),
            order_ref: object["metadata"]["order_id"].as_str().map(str::to_owned),
        })
    }
}

impl fmt::Debug for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client secret lets whoever holds it confirm the payment, so it stays out of logs.
        f.debug_struct("Intent")
            .field("id", &self.id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("status", &self.status)
            .field("amount_cents", &self.amount_cents)
            .field("amount_received", &self.amount_received)
            .field("currency", &self.currency)
            .field("order_ref", &self.order_ref)
            .finish()
    }
}

/// The status of a payment intent (Stripe's names, in snake case on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntentStatus {
    /// Waiting for the customer to provide a payment method (also after a failed attempt).
    RequiresPaymentMethod,
    /// A payment method is attached; waiting for confirmation.
    RequiresConfirmation,
    /// The customer must act (e.g. 3-D Secure).
    RequiresAction,
    /// The payment is being processed; it will end succeeded or back at requires_payment_method.
    Processing,
    /// Authorised, waiting for capture (manual capture only).
    RequiresCapture,
    /// Cancelled; final.
    Canceled,
    /// The money was taken; final.
    Succeeded,
}

impl IntentStatus {
    /// Stripe's name for the status, e.g. `requires_payment_method`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Canceled => "canceled",
            Self::Succeeded => "succeeded",
        }
    }

    /// Parses Stripe's name for a status; `None` for a name this code does not know.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "requires_payment_method" => Self::RequiresPaymentMethod,
            "requires_confirmation" => Self::RequiresConfirmation,
            "requires_action" => Self::RequiresAction,
            "processing" => Self::Processing,
            "requires_capture" => Self::RequiresCapture,
            "canceled" => Self::Canceled,
            "succeeded" => Self::Succeeded,
            _ => return None,
        })
    }

    /// Whether the intent can no longer change (succeeded or canceled).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Canceled)
    }

    /// Maps async-stripe's status. A status this code does not know is an error rather than a
    /// guess: acting on a misread payment state is worse than failing the job loudly.
    pub fn from_stripe(status: &PaymentIntentStatus) -> Result<Self, PaymentError> {
        Ok(match status {
            PaymentIntentStatus::RequiresPaymentMethod => Self::RequiresPaymentMethod,
            PaymentIntentStatus::RequiresConfirmation => Self::RequiresConfirmation,
            PaymentIntentStatus::RequiresAction => Self::RequiresAction,
            PaymentIntentStatus::Processing => Self::Processing,
            PaymentIntentStatus::RequiresCapture => Self::RequiresCapture,
            PaymentIntentStatus::Canceled => Self::Canceled,
            PaymentIntentStatus::Succeeded => Self::Succeeded,
            // `Unknown(name)` and whatever a later SDK adds (the enum is non-exhaustive).
            other => {
                return Err(PaymentError::Permanent {
                    code: None,
                    message: format!(
                        "Stripe returned an unknown payment intent status {:?}",
                        other.as_str()
                    ),
                });
            }
        })
    }
}

impl fmt::Display for IntentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refund that Stripe accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRef {
    /// Stripe's id (`re_...`).
    pub id: String,
}

/// Why a payment call failed, reduced to what the caller must decide.
///
/// Messages never contain the secret key (or a client secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Try again later with backoff, with the same idempotency key: network errors, timeouts,
    /// HTTP 5xx, 429 (rate limit, `lock_timeout`), 409 (idempotency key in use by a concurrent
    /// request), 424, and error answers whose body is not a Stripe error object.
    ///
    /// Stripe stores even a 500 under its idempotency key, so a retry with the same key may
    /// replay the same 500 for up to 24 hours; the caller's attempt cap bounds that.
    #[error("payment provider temporarily unavailable: {0}")]
    Retryable(String),
    /// Do not retry: other 4xx answers (card declined, invalid request, bad key, idempotency key
    /// reused with different parameters) and invalid input.
    #[error("payment provider refused the request: {message}")]
    Permanent {
        /// Stripe's error code, e.g. `card_declined` or `resource_missing`; `None` for errors
        /// detected locally.
        code: Option<String>,
        /// What went wrong (Stripe's status, error type, code and message).
        message: String,
    },
}

impl PaymentError {
    /// Whether the call may succeed if repeated later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// Stripe's error code, if the error came from Stripe and carried one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Retryable(_) => None,
            Self::Permanent { code, .. } => code.as_deref(),
        }
    }

    /// A permanent error found before anything was sent.
    fn invalid(message: impl Into<String>) -> Self {
        Self::Permanent {
            code: None,
            message: message.into(),
        }
    }
}

/// Validates the caller's idempotency key (1–255 characters, Stripe's limit).
fn idempotency(key: &str) -> Result<IdempotencyKey, PaymentError> {
    IdempotencyKey::new(key)
        .map_err(|err| PaymentError::invalid(format!("invalid idempotency key: {err}")))
}

/// Lowercases and checks a currency code.
fn checked_currency(currency: &str) -> Result<String, PaymentError> {
    let currency = currency.to_ascii_lowercase();
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(currency)
    } else {
        Err(PaymentError::invalid(format!(
            "currency must be a three-letter ISO code, got {currency:?}"
        )))
    }
}

/// Checks an intent id before it becomes part of a URL path: a stray `/` or `?` would address a
/// different endpoint, and characters invalid in a URI would fail as a (retryable) client error.
fn checked_intent_id(intent_id: &str) -> Result<&str, PaymentError> {
    let valid = intent_id.starts_with("pi_")
        && intent_id.len() <= 255
        && intent_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(intent_id)
    } else {
        Err(PaymentError::invalid(format!(
            "not a payment intent id: {intent_id:?}"
        )))
    }
}

/// The placeholder intent of an order in development mode. Everything is derived from the order
/// id, so repeating a call gives identical values (the checkout job may run twice).
fn dev_intent(order_id: Uuid, status: IntentStatus) -> Intent {
    let id = format!("{DEV_INTENT_PREFIX}{}", order_id.simple());
    let digest = Sha256::digest(format!("dev-payment-intent:{order_id}").as_bytes());
    let suffix: String = digest
        .iter()
        .take(12)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Intent {
        client_secret: Some(format!("{id}_secret_{suffix}")),
        id,
        status,
        amount_cents: 0,
        amount_received: None,
        currency: String::new(),
        order_ref: Some(order_id.to_string()),
    }
}

/// The order id inside a development-mode intent id.
fn dev_order_id(intent_id: &str) -> Result<Uuid, PaymentError> {
    intent_id
        .strip_prefix(DEV_INTENT_PREFIX)
        .and_then(|simple| Uuid::try_parse(simple).ok())
        .ok_or_else(|| {
            PaymentError::invalid(format!(
                "{intent_id:?} is not a development-mode payment intent (is STRIPE_SECRET_KEY missing?)"
            ))
        })
}

impl Payments {
    /// The provider the settings select (`PAYMENTS`): development mode, or Stripe with
    /// `STRIPE_SECRET_KEY` at `STRIPE_API_BASE`. The settings already refused a Stripe mode
    /// without a key; a blank key would still be refused by [`StripeClient::new`].
    pub fn from_settings(settings: &crate::config::StripeSettings) -> Result<Self, PaymentError> {
        use secrecy::ExposeSecret;
        match settings.mode {
            crate::config::PaymentMode::Dev => {
                tracing::warn!(
                    "development payment mode (PAYMENTS=dev, the default without STRIPE_SECRET_KEY \
                     outside production): no real payments"
                );
                Ok(Self::Dev)
            }
            crate::config::PaymentMode::Stripe => {
                let key = settings
                    .secret_key
                    .as_ref()
                    .map_or("", |k| k.expose_secret());
                let mut config = StripeConfig::new(key);
                if let Some(api_base) = settings.api_base.as_deref() {
                    config = config.api_base(api_base);
                }
                Self::stripe(config)
            }
        }
    }

    /// `dev` or `stripe`, for logs and `GET /api/v1/config`.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Stripe(_) => "stripe",
        }
    }
}
