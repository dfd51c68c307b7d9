//! `edr`: CrowdStrike Falcon host details, network containment and its release,
//! each call authorised by an OAuth2 token the host-held client secret buys.

use soar_plugin_sdk::http::{encode, join, Part, Request};
use soar_plugin_sdk::{
    export_plugin, Action, Context, Deserialize, Error, ErrorKind, JsonSchema, LogLevel, Plugin,
    Result, Serialize, TargetKind,
};

/// The connector's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "edr",
        env!("CARGO_PKG_VERSION"),
        "CrowdStrike Falcon: host details, network containment and its release",
    )
    .secret("client_id")
    .secret("client_secret")
    .config_key("base_url")
    .action(
        Action::new(
            "get_host",
            "Host details and containment status by Falcon device id",
            get_host,
        )
        .idempotent()
        .target("host_id", TargetKind::Host),
    )
    .action(
        Action::new(
            "isolate_host",
            "Network-contain a host; nothing is sent when it is already contained or pending",
            isolate_host,
        )
        .destructive()
        .idempotent()
        .probe("get_host")
        .target("host_id", TargetKind::Host),
    )
    .action(
        Action::new(
            "release_host",
            "Lift a host's network containment; nothing is sent when it is already lifted or pending",
            release_host,
        )
        .destructive()
        .idempotent()
        .probe("get_host")
        .target("host_id", TargetKind::Host),
    )
}

export_plugin!(plugin);

/// Input of every action.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostInput {
    /// Falcon device id (agent id, `device_id`).
    #[schemars(length(min = 1))]
    pub host_id: String,
}

/// A host's containment status as Falcon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Not contained.
    Normal,
    /// Containment requested, not yet applied by the sensor.
    ContainmentPending,
    /// Network-contained.
    Contained,
    /// Release requested, not yet applied by the sensor.
    LiftContainmentPending,
    /// A status this connector does not know, kept verbatim.
    #[serde(untagged)]
    Other(String),
}

impl HostStatus {
    /// Contained, or about to be.
    pub fn is_contained(&self) -> bool {
        matches!(self, Self::Contained | Self::ContainmentPending)
    }
}

/// Output of `get_host`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Host {
    /// Falcon device id.
    pub host_id: String,
    /// Host name, when reported.
    pub hostname: Option<String>,
    /// Containment status.
    pub status: HostStatus,
    /// True when the status is `contained` or `containment_pending`.
    pub contained: bool,
    /// `Windows`, `Mac`, `Linux`..., when reported.
    pub platform: Option<String>,
    /// When the sensor last checked in (RFC 3339), when reported.
    pub last_seen: Option<String>,
    /// Local IP address, when reported.
    pub local_ip: Option<String>,
    /// Operating system version, when reported.
    pub os_version: Option<String>,
    /// The probe answer for crash reconciliation: whether the effect of each
    /// destructive action this probe covers is already in place.
    pub effects: Effects,
}

/// Whether `isolate_host` / `release_host` have taken effect on this host
/// (a pending change counts: Falcon is already carrying it out).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Effects {
    /// Contained or containment pending.
    pub isolate_host: bool,
    /// Normal or lift pending.
    pub release_host: bool,
}

/// Which containment change an action asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainmentAction {
    /// Network-contain the host.
    Contain,
    /// Lift the containment.
    LiftContainment,
}

impl ContainmentAction {
    /// Falcon's `action_name` query value.
    fn name(self) -> &'static str {
        match self {
            Self::Contain => "contain",
            Self::LiftContainment => "lift_containment",
        }
    }

    /// True when the host is already where this action would take it.
    fn already(self, status: &HostStatus) -> bool {
        match self {
            Self::Contain => status.is_contained(),
            Self::LiftContainment => {
                matches!(
                    status,
                    HostStatus::Normal | HostStatus::LiftContainmentPending
                )
            }
        }
    }

    /// The status Falcon reports right after accepting the action.
    fn pending(self) -> HostStatus {
        match self {
            Self::Contain => HostStatus::ContainmentPending,
            Self::LiftContainment => HostStatus::LiftContainmentPending,
        }
    }
}

/// Output of `isolate_host` and `release_host`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Containment {
    /// Falcon device id.
    pub host_id: String,
    /// Host name, when reported: plans name the host the way people (and
    /// protected-asset lists) do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `contain` or `lift_containment`.
    pub action: ContainmentAction,
    /// True when the host was already in the wanted state: nothing was sent.
    pub already: bool,
    /// Present and true in a dry run: the change was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
    /// The status after the call (or the current one, when nothing was sent).
    pub status: HostStatus,
}

/// Falcon's `/oauth2/token` answer.
#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// Falcon's `/devices/entities/devices/v2` answer (only what we use).
#[derive(Deserialize)]
struct DevicesReply {
    #[serde(default)]
    resources: Vec<Device>,
}

/// One device entity.
#[derive(Deserialize)]
struct Device {
    device_id: String,
    status: HostStatus,
    hostname: Option<String>,
    platform_name: Option<String>,
    last_seen: Option<String>,
    local_ip: Option<String>,
    os_version: Option<String>,
}

/// A Falcon session: the configured base URL and this invocation's token.
struct Falcon {
    base: String,
    token: String,
}

impl Falcon {
    /// Exchanges the client credentials (named, filled in by the host) for a token.
    fn connect(ctx: &Context) -> Result<Self> {
        let base = ctx.config("base_url")?;
        let response = Request::post(join(&base, "oauth2/token"))
            .header("accept", "application/json")
            .form(vec![
                ("client_id", Part::Secret("client_id".into())),
                ("client_secret", Part::Secret("client_secret".into())),
            ])
            .send()
            .map_err(|e| token_error(ctx, e))?
            .error_for_status()
            .map_err(|e| token_error(ctx, e))?;
        let reply: TokenReply = response.json_body()?;
        if reply.access_token.is_empty() {
            return Err(Error::permanent(
                "Falcon's token answer has an empty `access_token`",
            ));
        }
        ctx.log(
            LogLevel::Debug,
            "obtained a Falcon access token",
            &[("expires_in", &reply.expires_in.to_string())],
        );
        Ok(Self {
            base,
            token: reply.access_token,
        })
    }

    /// The device `host_id`; a 404 or an empty answer is not-found naming it.
    fn host(&self, host_id: &str) -> Result<Host> {
        let url = join(
            &self.base,
            &format!("devices/entities/devices/v2?ids={}", encode(host_id)),
        );
        let response = Request::get(url)
            .bearer_token(&self.token)
            .header("accept", "application/json")
            .send()?;
        let missing = || Error::not_found(format!("Falcon has no host with device id `{host_id}`"));
        let response = match response.error_for_status() {
            Ok(response) => response,
            Err(e) if e.kind == ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(e),
        };
        let reply: DevicesReply = response.json_body()?;
        let device = reply.resources.into_iter().next().ok_or_else(missing)?;
        Ok(Host {
            contained: device.status.is_contained(),
            effects: Effects {
                isolate_host: ContainmentAction::Contain.already(&device.status),
                release_host: ContainmentAction::LiftContainment.already(&device.status),
            },
            host_id: device.device_id,
            hostname: device.hostname,
            status: device.status,
            platform: device.platform_name,
            last_seen: device.last_seen,
            local_ip: device.local_ip,
            os_version: device.os_version,
        })
    }

    /// Asks Falcon to apply `action` to `host_id`; any 2xx is accepted.
    fn act(&self, action: ContainmentAction, host_id: &str, key: &str) -> Result<()> {
        let url = join(
            &self.base,
            &format!(
                "devices/entities/devices-actions/v2?action_name={}",
                action.name()
            ),
        );
        Request::post(url)
            .bearer_token(&self.token)
            .header("accept", "application/json")
            // The IETF `Idempotency-Key` header: Falcon ignores it, but it
            // puts the runner's key on the wire for the audit trail and for
            // any proxy or gateway that deduplicates.
            .header("idempotency-key", key)
            .json(&soar_plugin_sdk::json!({ "ids": [host_id] }))
            .send()?
            .error_for_status()?;
        Ok(())
    }
}

/// Names the token exchange in its error, with a hint when a dry run refused it.
fn token_error(ctx: &Context, e: Error) -> Error {
    let hint = if ctx.dry_run() && e.kind == ErrorKind::Denied {
        " (to plan with Falcon, list `POST /oauth2/token` in this plugin's `dry_run_allow`)"
    } else {
        ""
    };
    Error::new(
        e.kind,
        format!("Falcon OAuth2 token request failed: {}{hint}", e.message),
    )
}

/// The trimmed host id, or invalid input before anything is sent.
fn host_id(input: &HostInput) -> Result<&str> {
    let id = input.host_id.trim();
    if id.is_empty() {
        return Err(Error::invalid_input("`host_id` must not be empty"));
    }
    Ok(id)
}

fn get_host(input: HostInput, ctx: &Context) -> Result<Host> {
    let id = host_id(&input)?;
    Falcon::connect(ctx)?.host(id)
}

/// Shared body of `isolate_host` and `release_host`: probe, then act if needed.
fn change(input: HostInput, ctx: &Context, action: ContainmentAction) -> Result<Containment> {
    let id = host_id(&input)?;
    let falcon = Falcon::connect(ctx)?;
    let host = falcon.host(id)?;
    let output = |already: bool, planned: Option<bool>, status: HostStatus| Containment {
        host_id: host.host_id.clone(),
        hostname: host.hostname.clone(),
        action,
        already,
        planned,
        status,
    };
    if action.already(&host.status) {
        ctx.log(
            LogLevel::Info,
            "host already in the requested state; nothing sent",
            &[("host_id", id), ("action", action.name())],
        );
        return Ok(output(true, None, host.status.clone()));
    }
    if let HostStatus::Other(status) = &host.status {
        return Err(Error::conflict(format!(
            "host `{id}` reports status `{status}`, which this connector does not know; \
             refusing to send `{}` blindly",
            action.name()
        )));
    }
    if ctx.dry_run() {
        return Ok(output(false, Some(true), host.status.clone()));
    }
    falcon.act(action, id, ctx.idempotency_key())?;
    ctx.log(
        LogLevel::Info,
        "Falcon accepted the containment change",
        &[("host_id", id), ("action", action.name())],
    );
    Ok(output(false, None, action.pending()))
}

fn isolate_host(input: HostInput, ctx: &Context) -> Result<Containment> {
    change(input, ctx, ContainmentAction::Contain)
}

fn release_host(input: HostInput, ctx: &Context) -> Result<Containment> {
    change(input, ctx, ContainmentAction::LiftContainment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_plugin_sdk::http::{HttpError, Response};
    use soar_plugin_sdk::testing::{MockHost, RecordedRequest};
    use soar_plugin_sdk::{json, Invocation, RetryAfter, Value};

    const BASE: &str = "https://falcon.test";
    const ID: &str = "4d8e2f1a9b7c4e6f8a0b1c2d3e4f5a6b";
    const TOKEN_URL: &str = "https://falcon.test/oauth2/token";
    const CONTAIN_URL: &str =
        "https://falcon.test/devices/entities/devices-actions/v2?action_name=contain";
    const LIFT_URL: &str =
        "https://falcon.test/devices/entities/devices-actions/v2?action_name=lift_containment";

    fn device_url(id: &str) -> String {
        format!("{BASE}/devices/entities/devices/v2?ids={}", encode(id))
    }

    fn token() -> Response {
        Response::json(
            201,
            &json!({"access_token": "tok-123", "expires_in": 1799, "token_type": "bearer"}),
        )
    }

    fn device(status: &str) -> Response {
        Response::json(
            200,
            &json!({"meta": {}, "errors": [], "resources": [{
                "device_id": ID,
                "hostname": "WS-0042",
                "status": status,
                "platform_name": "Windows",
                "last_seen": "2026-05-01T10:00:00Z",
                "local_ip": "10.1.2.3",
                "os_version": "Windows 11",
                "agent_version": "7.10.0"
            }]}),
        )
    }

    /// A host that grants a token and answers the device lookup with `answer`.
    fn lookup(answer: Response) -> MockHost {
        let mock = MockHost::new().respond("POST", TOKEN_URL, token());
        mock.respond("GET", &device_url(ID), answer)
    }

    /// A host that grants a token and reports the device with `status`.
    fn falcon(status: &str) -> MockHost {
        lookup(device(status))
    }

    fn call_with(
        mock: MockHost,
        action: &str,
        invocation: Invocation,
    ) -> (Result<Value>, MockHost) {
        mock.config("base_url", BASE)
            .run(|| plugin().call(action, json!({ "host_id": ID }), invocation))
    }

    fn call(mock: MockHost, action: &str) -> (Result<Value>, MockHost) {
        call_with(mock, action, Invocation::for_test("k1"))
    }

    fn posts_to<'a>(mock: &'a MockHost, url: &str) -> Vec<&'a RecordedRequest> {
        mock.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.url == url)
            .collect()
    }

    #[test]
    fn token_request_is_a_form_post_naming_the_secrets() {
        let (out, mock) = call(falcon("normal"), "get_host");
        out.unwrap();
        let token = &mock.requests()[0];
        assert_eq!(
            (token.method.as_str(), token.url.as_str()),
            ("POST", TOKEN_URL)
        );
        assert_eq!(
            String::from_utf8_lossy(&token.body),
            "client_id={{secret:client_id}}&client_secret={{secret:client_secret}}"
        );
        assert_eq!(token.header("authorization"), None);
        let lookup = &mock.requests()[1];
        assert_eq!(lookup.header("authorization"), Some("Bearer tok-123"));
        assert!(!String::from_utf8_lossy(&lookup.body).contains("secret"));
    }

    #[test]
    fn get_host_maps_status_and_enrichment_fields() {
        let (out, mock) = call(falcon("contained"), "get_host");
        let out = out.unwrap();
        assert_eq!(out["host_id"], ID);
        assert_eq!(out["hostname"], "WS-0042");
        assert_eq!(out["status"], "contained");
        assert_eq!(out["contained"], true);
        assert_eq!(
            out["effects"],
            json!({"isolate_host": true, "release_host": false})
        );
        assert_eq!(out["platform"], "Windows");
        assert_eq!(out["last_seen"], "2026-05-01T10:00:00Z");
        assert_eq!(out["local_ip"], "10.1.2.3");
        assert_eq!(out["os_version"], "Windows 11");
        assert_eq!(mock.requests().len(), 2);
    }

    #[test]
    fn get_host_keeps_missing_fields_and_unknown_statuses() {
        let body = json!({"resources": [{"device_id": ID, "status": "quarantined"}]});
        let mock = lookup(Response::json(200, &body));
        let out = call(mock, "get_host").0.unwrap();
        assert_eq!(out["status"], "quarantined");
        assert_eq!(out["contained"], false);
        assert_eq!(out["hostname"], Value::Null);
        let pending = call(falcon("containment_pending"), "get_host").0.unwrap();
        assert_eq!(pending["contained"], true);
    }

    #[test]
    fn isolate_normal_host_sends_one_contain_post() {
        let mock = falcon("normal").respond("POST", CONTAIN_URL, Response::json(202, &json!({})));
        let (out, mock) = call(mock, "isolate_host");
        assert_eq!(
            out.unwrap(),
            json!({"host_id": ID, "hostname": "WS-0042", "action": "contain", "already": false, "status": "containment_pending"})
        );
        let posts = posts_to(&mock, CONTAIN_URL);
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].json(), json!({ "ids": [ID] }));
        assert_eq!(posts[0].header("authorization"), Some("Bearer tok-123"));
        assert_eq!(posts[0].header("content-type"), Some("application/json"));
        assert_eq!(mock.requests().len(), 3);
    }

    #[test]
    fn isolate_already_contained_or_pending_sends_no_post() {
        for status in ["contained", "containment_pending"] {
            let (out, mock) = call(falcon(status), "isolate_host");
            let out = out.unwrap();
            assert_eq!(out["already"], true, "{status}");
            assert_eq!(out["status"], status);
            assert_eq!(out.get("planned"), None);
            assert!(posts_to(&mock, CONTAIN_URL).is_empty(), "{status}");
        }
    }

    #[test]
    fn dry_run_isolate_plans_without_posting() {
        let invocation = Invocation {
            dry_run: true,
            ..Invocation::for_test("k1")
        };
        let (out, mock) = call_with(falcon("normal"), "isolate_host", invocation);
        assert_eq!(
            out.unwrap(),
            json!({"host_id": ID, "hostname": "WS-0042", "action": "contain", "already": false, "planned": true, "status": "normal"})
        );
        assert!(posts_to(&mock, CONTAIN_URL).is_empty());
    }

    #[test]
    fn dry_run_refused_token_names_the_dry_run_allow_fix() {
        let invocation = Invocation {
            dry_run: true,
            ..Invocation::for_test("k1")
        };
        let mock = MockHost::new().fail(
            "POST",
            TOKEN_URL,
            HttpError::Denied("dry-run: POST /oauth2/token was not sent".into()),
        );
        let err = call_with(mock, "isolate_host", invocation).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Denied);
        assert!(err.message.contains("dry_run_allow"), "{}", err.message);
    }

    #[test]
    fn release_lifts_containment_only_when_contained() {
        let mock = falcon("contained").respond("POST", LIFT_URL, Response::json(200, &json!({})));
        let (out, mock) = call(mock, "release_host");
        let out = out.unwrap();
        assert_eq!(out["action"], "lift_containment");
        assert_eq!(out["status"], "lift_containment_pending");
        assert_eq!(posts_to(&mock, LIFT_URL)[0].json(), json!({ "ids": [ID] }));
        for status in ["normal", "lift_containment_pending"] {
            let (out, mock) = call(falcon(status), "release_host");
            assert_eq!(out.unwrap()["already"], true, "{status}");
            assert!(posts_to(&mock, LIFT_URL).is_empty(), "{status}");
        }
    }

    #[test]
    fn unknown_status_is_not_contained_blindly() {
        let (out, mock) = call(falcon("quarantined"), "isolate_host");
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert!(err.message.contains("quarantined"), "{}", err.message);
        assert!(posts_to(&mock, CONTAIN_URL).is_empty());
    }

    #[test]
    fn unauthorized_token_stops_before_any_lookup() {
        let mock = MockHost::new().respond(
            "POST",
            TOKEN_URL,
            Response::json(
                401,
                &json!({"errors": [{"code": 401, "message": "access denied"}]}),
            ),
        );
        let (out, mock) = call(mock, "isolate_host");
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unauthorized);
        assert!(err.message.contains("token"), "{}", err.message);
        assert_eq!(mock.requests().len(), 1);
    }

    #[test]
    fn rate_limited_action_carries_retry_after() {
        let limited = Response::json(429, &json!({})).with_header("Retry-After", "12");
        let mock = falcon("normal").respond("POST", CONTAIN_URL, limited.clone());
        let err = call(mock, "isolate_host").0.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(12_000)))
        );
        let mock = lookup(limited);
        let err = call(mock, "get_host").0.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(12_000)))
        );
    }

    #[test]
    fn vendor_errors_map_to_kinds() {
        for (status, kind) in [
            (503, ErrorKind::Unavailable),
            (500, ErrorKind::Unavailable),
            (403, ErrorKind::Unauthorized),
            (409, ErrorKind::Conflict),
        ] {
            let mock =
                falcon("normal").respond("POST", CONTAIN_URL, Response::json(status, &json!({})));
            let err = call(mock, "isolate_host").0.unwrap_err();
            assert_eq!(err.kind, kind, "status {status}");
        }
        let mock = MockHost::new().respond("POST", TOKEN_URL, Response::bytes(503, ""));
        let err = call(mock, "get_host").0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
    }

    #[test]
    fn missing_host_is_not_found_naming_it() {
        let empty = Response::json(200, &json!({"meta": {}, "errors": [], "resources": []}));
        let gone = Response::json(
            404,
            &json!({"errors": [{"code": 404, "message": "Device not found"}], "resources": []}),
        );
        for answer in [empty, gone] {
            let mock = lookup(answer);
            let (out, mock) = call(mock, "isolate_host");
            let err = out.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);
            assert!(err.message.contains(ID), "{}", err.message);
            assert!(posts_to(&mock, CONTAIN_URL).is_empty());
        }
    }

    #[test]
    fn malformed_json_is_permanent() {
        let mock = lookup(Response::bytes(200, "<html>oops"));
        let err = call(mock, "get_host").0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message.contains("not the expected JSON"),
            "{}",
            err.message
        );
        let mock =
            MockHost::new().respond("POST", TOKEN_URL, Response::json(201, &json!({"x": 1})));
        let err = call(mock, "get_host").0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
    }

    #[test]
    fn bad_input_and_missing_config_send_nothing() {
        let (out, mock) = MockHost::new().config("base_url", BASE).run(|| {
            plugin().call(
                "isolate_host",
                json!({"host_id": "  "}),
                Invocation::for_test("k"),
            )
        });
        assert_eq!(out.unwrap_err().kind, ErrorKind::InvalidInput);
        assert!(mock.requests().is_empty());
        let (out, mock) = MockHost::new().run(|| {
            plugin().call(
                "get_host",
                json!({ "host_id": ID }),
                Invocation::for_test("k"),
            )
        });
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("base_url"), "{}", err.message);
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn host_id_is_encoded_and_base_url_slash_tolerated() {
        let odd = "a b&c";
        let mock = MockHost::new()
            .config("base_url", "https://falcon.test/")
            .respond("POST", TOKEN_URL, token())
            .respond(
                "GET",
                "https://falcon.test/devices/entities/devices/v2?ids=a%20b%26c",
                Response::json(
                    200,
                    &json!({"resources": [{"device_id": odd, "status": "normal"}]}),
                ),
            );
        let (out, _) = mock.run(|| {
            plugin().call(
                "get_host",
                json!({ "host_id": odd }),
                Invocation::for_test("k"),
            )
        });
        assert_eq!(out.unwrap()["host_id"], odd);
    }

    #[test]
    fn manifest_marks_destructive_actions_and_probes() {
        let manifest = plugin().manifest();
        let action = |name: &str| {
            manifest
                .actions
                .iter()
                .find(|a| a.name == name)
                .unwrap()
                .clone()
        };
        let get = action("get_host");
        assert!(!get.destructive && get.idempotent && get.probe.is_none());
        assert_eq!(get.input_schema["required"], json!(["host_id"]));
        assert_eq!(get.input_schema["additionalProperties"], false);
        for name in ["isolate_host", "release_host"] {
            let a = action(name);
            assert!(a.destructive && a.idempotent, "{name}");
            assert_eq!(a.probe.as_deref(), Some("get_host"));
            assert_eq!(a.targets[0].field, "host_id");
            assert_eq!(a.targets[0].kind, TargetKind::Host);
        }
        assert_eq!(manifest.secrets, ["client_id", "client_secret"]);
        assert_eq!(manifest.config_keys, ["base_url"]);
    }
}
