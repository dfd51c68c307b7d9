//! A loopback vendor simulator speaking six vendor API shapes (VirusTotal v3,
//! CrowdStrike Falcon, Okta, Cloudflare, TheHive 5, Slack; see
//! `../shared/vendor-specs/`), with in-memory state: a contained host stays
//! contained, a created rule or case exists. Used by the demo and by tests.

mod cloudflare;
mod okta;
mod slack;
mod thehive;

pub use cloudflare::{
    CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_ALLOWED_IP, CLOUDFLARE_ALLOW_RULE_ID,
    CLOUDFLARE_DOMAIN_LIST_ID, CLOUDFLARE_LISTED_DOMAIN, CLOUDFLARE_TOKEN,
};
pub use okta::{
    OKTA_ADMIN_ID, OKTA_ADMIN_LOGIN, OKTA_SUSPENDED_ID, OKTA_SUSPENDED_LOGIN, OKTA_TOKEN,
    OKTA_USER_ID, OKTA_USER_LOGIN,
};
pub use slack::{
    SLACK_ARCHIVED_CHANNEL, SLACK_BOT_TOKEN, SLACK_CHANNEL, SLACK_CHANNEL_ID, SLACK_FOREIGN_CHANNEL,
};
pub use thehive::{THEHIVE_API_KEY, THEHIVE_CASE_ID, THEHIVE_CASE_NUMBER};

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Credentials the simulator accepts.
pub const VT_API_KEY: &str = "demo-virustotal-key";
/// Falcon OAuth2 client id.
pub const FALCON_CLIENT_ID: &str = "demo-falcon-client";
/// Falcon OAuth2 client secret.
pub const FALCON_CLIENT_SECRET: &str = "demo-falcon-secret";
/// The EICAR test file's SHA-256: every engine calls it malicious.
pub const MALICIOUS_SHA256: &str =
    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
/// A host the simulated EDR knows.
pub const HOST_ID: &str = "0a1b2c3d4e5f4a5b8c7d6e5f4a3b2c1d";
/// A domain controller's device id: its name, DC01, is what configs protect.
pub const DC_HOST_ID: &str = "dc0001d4e5f4a5b8c7d6e5f4a3b2c1de";

const TOKEN: &str = "sim-access-token";

#[derive(Default)]
struct State {
    /// device_id -> status
    hosts: BTreeMap<String, String>,
    okta: okta::State,
    slack: slack::State,
    /// Injected faults, consumed in order by matching requests.
    faults: Vec<Fault>,
    cloudflare: cloudflare::State,
    thehive: thehive::State,
}

#[derive(Clone)]
struct Simulator {
    state: Arc<Mutex<State>>,
}

fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn vt_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

fn falcon_error(status: u16, message: &str) -> ResponseTemplate {
    json_response(
        status,
        json!({"meta": {"query_time": 0.0}, "errors": [{"code": status, "message": message}], "resources": []}),
    )
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn query(request: &Request, key: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

impl Simulator {
    fn virustotal(&self, request: &Request, rest: &str) -> ResponseTemplate {
        if header(request, "x-apikey") != VT_API_KEY {
            return vt_error(401, "WrongCredentialsError", "Wrong API key");
        }
        let (kind, id) = rest.split_once('/').unwrap_or((rest, ""));
        let malicious = matches!(
            (kind, id),
            ("files", MALICIOUS_SHA256)
                | ("ip_addresses", "203.0.113.66")
                | ("domains", "evil.example")
        );
        let clean = matches!(
            (kind, id),
            ("ip_addresses", "8.8.8.8") | ("domains", "example.com")
        );
        let stats = if malicious {
            json!({"malicious": 61, "suspicious": 2, "undetected": 7, "harmless": 0})
        } else if clean {
            json!({"malicious": 0, "suspicious": 0, "undetected": 20, "harmless": 70})
        } else {
            return vt_error(404, "NotFoundError", &format!("{id} not found"));
        };
        let vt_type = match kind {
            "files" => "file",
            "ip_addresses" => "ip_address",
            _ => "domain",
        };
        json_response(
            200,
            json!({"data": {"id": id, "type": vt_type,
                "links": {"self": format!("https://www.virustotal.com/api/v3/{kind}/{id}")},
                "attributes": {"last_analysis_stats": stats, "reputation": if malicious { -87 } else { 12 }}}}),
        )
    }

    fn falcon(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        if path == "/oauth2/token" && request.method.as_str() == "POST" {
            let form: BTreeMap<String, String> = url_form(&request.body);
            let ok = form.get("client_id").map(String::as_str) == Some(FALCON_CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(FALCON_CLIENT_SECRET);
            return if ok {
                json_response(
                    201,
                    json!({"access_token": TOKEN, "expires_in": 1799, "token_type": "bearer"}),
                )
            } else {
                falcon_error(401, "access denied, invalid client credentials")
            };
        }
        if header(request, "authorization") != format!("Bearer {TOKEN}") {
            return falcon_error(401, "access denied, invalid bearer token");
        }
        let mut state = self.state.lock().expect("simulator state");
        match (request.method.as_str(), path) {
            ("GET", "/devices/entities/devices/v2") => {
                let id = query(request, "ids").unwrap_or_default();
                match state.hosts.get(&id) {
                    Some(status) => json_response(
                        200,
                        json!({"meta": {"query_time": 0.01}, "errors": [], "resources": [{
                            "device_id": id, "hostname": if id == DC_HOST_ID { "DC01" } else { "FIN-WS-042" }, "status": status,
                            "platform_name": "Windows", "os_version": "Windows 11",
                            "last_seen": "2026-11-27T09:00:00Z", "local_ip": "10.20.30.42"}]}),
                    ),
                    None => falcon_error(404, "device not found"),
                }
            }
            ("POST", "/devices/entities/devices-actions/v2") => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let ids: Vec<String> = body["ids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let new_status = match query(request, "action_name").as_deref() {
                    Some("contain") => "contained",
                    Some("lift_containment") => "normal",
                    _ => return falcon_error(400, "unsupported action_name"),
                };
                if ids.is_empty() || ids.iter().any(|id| !state.hosts.contains_key(id)) {
                    return falcon_error(404, "device not found");
                }
                for id in &ids {
                    state.hosts.insert(id.clone(), new_status.to_string());
                }
                json_response(
                    202,
                    json!({"meta": {"query_time": 0.02}, "errors": [], "resources": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}),
                )
            }
            _ => falcon_error(404, "no such endpoint"),
        }
    }
}

fn url_form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A fault the simulator injects into the next `times` requests whose path
/// starts with `path_prefix`: an error status (with `Retry-After` for 429),
/// a slow answer, or both. `POST /_sim/faults` with this as JSON sets one
/// over HTTP (for the demo and for people); `DELETE /_sim/faults` clears them.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Fault {
    /// Requests whose path starts with this are affected.
    pub path_prefix: String,
    /// How many requests (each consumes one).
    #[serde(default = "one")]
    pub times: u32,
    /// Answer with this status instead of the real answer (0: keep it).
    #[serde(default)]
    pub status: u16,
    /// Seconds for `Retry-After` (429/503 only).
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    /// Delay before answering.
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// `times` answers of `status` to requests under `path_prefix`.
    pub fn status(path_prefix: &str, status: u16, times: u32) -> Self {
        Fault {
            path_prefix: path_prefix.into(),
            times,
            status,
            retry_after_s: None,
            delay_ms: 0,
        }
    }
}

/// A running simulator and a handle to inject faults into it.
pub struct Sim {
    /// The server (its `uri()` and `received_requests()`).
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl Sim {
    /// Adds a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.state
            .lock()
            .expect("simulator state")
            .faults
            .push(fault);
    }
}

impl std::ops::Deref for Sim {
    type Target = MockServer;
    fn deref(&self) -> &MockServer {
        &self.server
    }
}

impl Simulator {
    /// The control endpoint, or the fault a request consumes, if any.
    fn control_or_fault(&self, request: &Request) -> Option<ResponseTemplate> {
        let path = request.url.path();
        let mut state = self.state.lock().expect("simulator state");
        if path == "/_sim/faults" {
            return Some(match request.method.as_str() {
                "POST" => match serde_json::from_slice::<Fault>(&request.body) {
                    Ok(f) => {
                        state.faults.push(f);
                        json_response(201, json!({"faults": state.faults}))
                    }
                    Err(e) => json_response(400, json!({"error": e.to_string()})),
                },
                "DELETE" => {
                    state.faults.clear();
                    ResponseTemplate::new(204)
                }
                _ => json_response(200, json!({"faults": state.faults})),
            });
        }
        let i = state
            .faults
            .iter()
            .position(|f| f.times > 0 && path.starts_with(&f.path_prefix))?;
        let fault = state.faults[i].clone();
        state.faults[i].times -= 1;
        if state.faults[i].times == 0 {
            state.faults.remove(i);
        }
        drop(state);
        let answer = if fault.status == 0 {
            self.answer(request)
        } else {
            let mut t = json_response(
                fault.status,
                json!({"error": format!("injected fault: HTTP {}", fault.status)}),
            );
            if let Some(s) = fault.retry_after_s {
                t = t.insert_header("retry-after", s.to_string().as_str());
            }
            t
        };
        Some(answer.set_delay(std::time::Duration::from_millis(fault.delay_ms)))
    }

    /// The vendor's answer, by path.
    fn answer(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        if let Some(rest) = path.strip_prefix("/api/v3/") {
            return self.virustotal(request, rest);
        }
        let mut state = self.state.lock().expect("simulator state");
        if path.starts_with("/api/v1/users/") {
            okta::respond(&mut state.okta, request)
        } else if path.starts_with("/api/v1/") {
            thehive::respond(&mut state.thehive, request)
        } else if path.starts_with("/client/v4/") {
            cloudflare::respond(&mut state.cloudflare, request)
        } else if path.starts_with("/api/") {
            slack::respond(&mut state.slack, request)
        } else {
            drop(state);
            self.falcon(request)
        }
    }
}

impl Respond for Simulator {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.control_or_fault(request)
            .unwrap_or_else(|| self.answer(request))
    }
}

/// Starts the simulator on `127.0.0.1:port` (0 for any free port).
pub async fn start(port: u16) -> std::io::Result<MockServer> {
    start_sim(port).await.map(|sim| sim.server)
}

/// [`start`], keeping the handle that injects faults.
pub async fn start_sim(port: u16) -> std::io::Result<Sim> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let server = MockServer::builder().listener(listener).start().await;
    let mut state = State::default();
    for id in [HOST_ID, DC_HOST_ID] {
        state.hosts.insert(id.to_string(), "normal".to_string());
    }
    let state = Arc::new(Mutex::new(state));
    Mock::given(any())
        .respond_with(Simulator {
            state: state.clone(),
        })
        .mount(&server)
        .await;
    Ok(Sim { server, state })
}
