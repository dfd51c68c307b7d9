//! A real `soar serve` process for end-to-end tests: started in a lab's
//! scratch dir (its config, data dir and vendor credentials), reached over
//! loopback HTTP, stopped with SIGTERM or SIGKILL like an operator or a
//! crash would.

use crate::lab::Lab;
use crate::soar_bin;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its stderr (the request log and progress), for grepping.
    pub log: PathBuf,
}

/// `sha256=<hex HMAC-SHA256 of body>`, as GitHub signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret, body))
}

/// Hex HMAC-SHA256.
pub fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

impl Server {
    /// Starts `soar serve -v` in the lab with `extra` env and waits until it
    /// is ready (`/readyz`), at most 120 s.
    pub fn start(lab: &Lab, extra: &[(&str, &str)]) -> Server {
        let mut env = lab.env();
        env.extend_from_slice(extra);
        Server::start_in(lab.s.path(), &env)
    }

    /// Starts `soar serve -v` in `dir` (its `soar.yaml`, data dir `.soar`)
    /// with `env`, and waits until it is ready, at most 120 s.
    pub fn start_in(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let address = dir.join(".soar").join("server.json");
        let _ = std::fs::remove_file(&address);
        let log = dir.join(format!(
            "serve-{}.log",
            Instant::now().elapsed().as_nanos() ^ std::process::id() as u128 ^ rand_suffix()
        ));
        let mut cmd = Command::new(soar_bin());
        cmd.args(["serve", "-v"])
            .current_dir(dir)
            .env_remove("SOAR_CONFIG")
            .env_remove("SOAR_LOG")
            .env_remove("SOAR_SERVER")
            .env("SOAR_DATA_DIR", dir.join(".soar"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn soar serve");
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("soar serve exited with {status} before it was ready:\n{text}");
            }
            let url = std::fs::read_to_string(&address)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["url"].as_str().map(str::to_string));
            if let Some(url) = url {
                break url;
            }
            assert!(Instant::now() < deadline, "soar serve never became ready");
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child: Some(child),
            url,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGTERM, then waits for the exit (at most `within`).
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("soar serve did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A blocking HTTP answer: status, headers and body.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// Body text.
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics with the text when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
}

/// A blocking client for one server.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    /// A client of an HTTPS `server` whose certificate `ca_pem` signed.
    pub fn with_root(server: &Server, ca_pem: &str) -> Client {
        let root = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("certificate");
        Client {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .add_root_certificate(root)
                .build()
                .expect("client"),
            base: server.url.clone(),
        }
    }

    /// A client of `server`.
    pub fn new(server: &Server) -> Client {
        Client {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            base: server.url.clone(),
        }
    }

    /// `METHOD path` with `headers` and `body`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        self.try_send(method, path, headers, body)
            .unwrap_or_else(|e| panic!("request: {e}"))
    }

    /// [`Client::send`], or the transport error (a server that answers
    /// before reading a body it refuses may reset the connection).
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Answer {
            status,
            retry_after,
            text: resp.text().unwrap_or_default(),
        })
    }

    /// `GET path` as the holder of `token`.
    pub fn get(&self, path: &str, token: &str) -> Answer {
        let auth = format!("Bearer {token}");
        self.send("GET", path, &[("authorization", &auth)], Vec::new())
    }

    /// `POST path` with a JSON body as the holder of `token`.
    pub fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        let auth = format!("Bearer {token}");
        self.send(
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string().into_bytes(),
        )
    }

    /// A delivery to `/hooks/{source}` signed with `secret` (GitHub style).
    pub fn deliver(
        &self,
        source: &str,
        secret: &str,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> Answer {
        let bytes = body.to_string().into_bytes();
        let sig = sign(secret, &bytes);
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-hub-signature-256", sig.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.send("POST", &format!("/hooks/{source}"), &headers, bytes)
    }

    /// Reads the server-sent events of `GET path` (as the holder of
    /// `token`, sending `Last-Event-ID` when given) until `max` events or
    /// the stream's end: each event's `id` and its data as JSON.
    pub fn events(
        &self,
        path: &str,
        token: &str,
        last_event_id: Option<u64>,
        max: Option<usize>,
    ) -> Vec<(u64, Value)> {
        use std::io::BufRead;
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().expect("event stream");
        assert_eq!(resp.status().as_u16(), 200, "event stream");
        let mut out = Vec::new();
        let mut id = None;
        for line in std::io::BufReader::new(resp).lines() {
            let line = line.expect("event stream line");
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().parse::<u64>().expect("numeric id"));
            } else if let Some(v) = line.strip_prefix("data:") {
                let data: Value = serde_json::from_str(v.trim()).expect("JSON data");
                out.push((id.take().expect("an id before the data"), data));
                if max.is_some_and(|m| out.len() >= m) {
                    break;
                }
            }
        }
        out
    }

    /// Polls `GET /api/v1/runs/{run}` until `done` holds for the report, at
    /// most `within`.
    pub fn wait_for(
        &self,
        run: &str,
        token: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let a = self.get(&format!("/api/v1/runs/{run}"), token);
            if a.status == 200 {
                let v = a.json();
                if done(&v) {
                    return v;
                }
                if Instant::now() > deadline {
                    panic!("run {run} never got there: {v}");
                }
            } else if Instant::now() > deadline {
                panic!("run {run}: {} {}", a.status, a.text);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// A bare `soar serve` in `dir` (its `soar.yaml`, data dir `.soar`) with
/// `env`, quiet, for benchmarks: the child and its URL once ready (at most
/// 600 s, the first start compiling the components). The caller kills it.
// The child is handed to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
pub fn spawn_quiet(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let address = dir.join(".soar/server.json");
    let _ = std::fs::remove_file(&address);
    let mut cmd = Command::new(soar_bin());
    cmd.arg("serve")
        .current_dir(dir)
        .env("SOAR_DATA_DIR", dir.join(".soar"))
        .env_remove("SOAR_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn soar serve");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(url) = std::fs::read_to_string(&address)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["url"].as_str().map(str::to_string))
        {
            return (child, url);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("soar serve exited: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server never ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
