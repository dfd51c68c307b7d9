//! Test fixture: a connector that misbehaves on purpose (loops, hogs memory,
//! crashes, reaches for hosts, secrets and the environment it was not given).
//! The sandbox tests check that each attempt fails alone and harmlessly.

use soar_plugin_sdk::http::{Part, Request};
use soar_plugin_sdk::{
    export_plugin, Action, Context, Deserialize, JsonSchema, Plugin, Result, Serialize, TargetKind,
};

/// The fixture's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "hostile",
        env!("CARGO_PKG_VERSION"),
        "misbehaves on purpose",
    )
    .secret("api_key")
    .action(Action::new("noop", "does nothing", noop).idempotent())
    .action(Action::new("spin", "loops forever", spin))
    .action(Action::new(
        "alloc",
        "allocates and touches `mb` MiB",
        alloc,
    ))
    .action(Action::new("trap", "aborts (a wasm trap)", trap))
    .action(Action::new("panic", "panics with a message", panic))
    .action(Action::new("read_env", "reads the environment", read_env))
    .action(Action::new("http", "sends the described request", http))
    .action(
        Action::new(
            "post_once",
            "POSTs to `url` with the idempotency key; not safe to repeat",
            post_once,
        )
        .probe("was_posted"),
    )
    .action(
        Action::new(
            "was_posted",
            "probe: did `post_once` with this key reach `url`?",
            was_posted,
        )
        .idempotent(),
    )
    .action(
        Action::new(
            "http_idempotent",
            "sends the described request; safe to repeat",
            http,
        )
        .idempotent(),
    )
    .action(Action::new(
        "remember",
        "keeps a value in a global",
        remember,
    ))
    .action(Action::new(
        "recall",
        "returns the value kept in the global",
        recall,
    ))
    .action(
        Action::new("wipe", "pretends to be destructive", noop)
            .destructive()
            .target("host", TargetKind::Host),
    )
}

export_plugin!(plugin);

/// Empty input.
#[derive(Deserialize, JsonSchema)]
pub struct Empty {}

/// Empty output.
#[derive(Serialize, JsonSchema)]
pub struct Done {
    /// Always true.
    pub done: bool,
}

fn noop(_: Empty, _: &Context) -> Result<Done> {
    Ok(Done { done: true })
}

fn spin(_: Empty, _: &Context) -> Result<Done> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// How much to allocate.
#[derive(Deserialize, JsonSchema)]
pub struct AllocInput {
    /// MiB.
    pub mb: usize,
}

fn alloc(input: AllocInput, _: &Context) -> Result<Done> {
    let mut v: Vec<u8> = Vec::with_capacity(input.mb << 20);
    v.resize(input.mb << 20, 1);
    Ok(Done {
        done: std::hint::black_box(v)[0] == 1,
    })
}

fn trap(_: Empty, _: &Context) -> Result<Done> {
    std::process::abort()
}

fn panic(_: Empty, _: &Context) -> Result<Done> {
    panic!("boom from the hostile fixture")
}

/// Variable to read.
#[derive(Deserialize, JsonSchema)]
pub struct EnvInput {
    /// Name.
    pub name: String,
}

/// What the environment showed.
#[derive(Serialize, JsonSchema)]
pub struct EnvOutput {
    /// The variable's value, if visible.
    pub value: Option<String>,
    /// How many variables were visible at all.
    pub count: usize,
    /// Command-line arguments visible.
    pub args: usize,
}

fn read_env(input: EnvInput, _: &Context) -> Result<EnvOutput> {
    Ok(EnvOutput {
        value: std::env::var(&input.name).ok(),
        count: std::env::vars().count(),
        args: std::env::args().count(),
    })
}

/// A request to send.
#[derive(Deserialize, JsonSchema)]
pub struct HttpInput {
    /// Method.
    #[serde(default = "get")]
    pub method: String,
    /// URL.
    pub url: String,
    /// Header that carries the named secret, e.g. `["x-apikey", "api_key"]`.
    #[serde(default)]
    pub secret_header: Option<(String, String)>,
    /// Form field that carries the named secret, e.g. `["password", "api_key"]`.
    #[serde(default)]
    pub secret_form: Option<(String, String)>,
    /// Send the invocation's idempotency key as `idempotency-key`.
    #[serde(default)]
    pub send_key: bool,
    /// Map a non-2xx answer to its typed error instead of returning it.
    #[serde(default)]
    pub check_status: bool,
    /// A JSON body.
    #[serde(default)]
    pub json: Option<soar_plugin_sdk::Value>,
}

fn get() -> String {
    "GET".into()
}

/// What came back.
#[derive(Serialize, JsonSchema)]
pub struct HttpOutput {
    /// Status.
    pub status: u16,
    /// Body as text.
    pub body: String,
    /// Response headers.
    pub headers: Vec<(String, String)>,
}

fn http(input: HttpInput, ctx: &Context) -> Result<HttpOutput> {
    let mut request = Request::new(&input.method, input.url);
    if input.send_key {
        request = request.header("idempotency-key", ctx.idempotency_key());
    }
    if let Some(body) = &input.json {
        request = request.json(body);
    }
    if let Some((name, secret)) = input.secret_header {
        request = request.secret_header(&name, &secret);
    }
    if let Some((field, secret)) = input.secret_form {
        request = request.form(vec![(field.as_str(), Part::Secret(secret))]);
    }
    let mut response = request.send()?;
    if input.check_status {
        response = response.error_for_status()?;
    }
    Ok(HttpOutput {
        status: response.status,
        body: String::from_utf8_lossy(&response.body).into_owned(),
        headers: response.headers,
    })
}

/// Survives only as long as the instance: a fresh instance per invocation
/// must always start with `None`.
static MEMORY: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// A value to keep.
#[derive(Deserialize, JsonSchema)]
pub struct RememberInput {
    /// The value.
    pub value: String,
}

/// What the global held.
#[derive(Serialize, JsonSchema)]
pub struct Recalled {
    /// The value, if any survived.
    pub value: Option<String>,
}

fn remember(input: RememberInput, _: &Context) -> Result<Recalled> {
    let mut slot = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let before = slot.replace(input.value);
    Ok(Recalled { value: before })
}

fn recall(_: Empty, _: &Context) -> Result<Recalled> {
    let slot = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Recalled {
        value: slot.clone(),
    })
}

/// Where `post_once` posts and `was_posted` looks.
#[derive(Deserialize, JsonSchema)]
pub struct PostInput {
    /// Vendor URL.
    pub url: String,
}

/// What `post_once` got back.
#[derive(Serialize, JsonSchema)]
pub struct Posted {
    /// HTTP status.
    pub status: u16,
}

fn post_once(input: PostInput, ctx: &Context) -> Result<Posted> {
    let response = Request::post(input.url)
        .header("idempotency-key", ctx.idempotency_key())
        .send()?
        .error_for_status()?;
    Ok(Posted {
        status: response.status,
    })
}

/// The probe's answer.
#[derive(Serialize, JsonSchema)]
pub struct Probe {
    /// `effects.post_once`: whether the vendor has the post with this key.
    pub effects: std::collections::BTreeMap<String, bool>,
}

fn was_posted(input: PostInput, ctx: &Context) -> Result<Probe> {
    let url = format!(
        "{}?key={}",
        input.url,
        soar_plugin_sdk::http::encode(ctx.idempotency_key())
    );
    let response = Request::get(url).send()?;
    let mut effects = std::collections::BTreeMap::new();
    effects.insert("post_once".to_string(), response.status == 200);
    Ok(Probe { effects })
}
