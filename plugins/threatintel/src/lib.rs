//! `threatintel`: VirusTotal API v3 lookups of file hashes, IPs and domains,
//! normalised to one verdict so playbooks need not know VirusTotal's shape.

use soar_plugin_sdk::http::{encode, join, Request};
use soar_plugin_sdk::{
    export_plugin, Action, Context, Deserialize, Error, ErrorKind, JsonSchema, Plugin, Result,
    Serialize, TargetKind, Value,
};

/// The connector's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "threatintel",
        env!("CARGO_PKG_VERSION"),
        "VirusTotal API v3: reputation of file hashes, IP addresses and domains",
    )
    .secret("api_key")
    .config_key("base_url")
    .action(
        Action::new(
            "lookup_hash",
            "File report by SHA-256, SHA-1 or MD5",
            lookup_hash,
        )
        .idempotent(),
    )
    .action(
        Action::new("lookup_ip", "IP address report", lookup_ip)
            .idempotent()
            .target("ip", TargetKind::Ip),
    )
    .action(
        Action::new("lookup_domain", "Domain report", lookup_domain)
            .idempotent()
            .target("domain", TargetKind::Domain),
    )
}

export_plugin!(plugin);

/// Input of `lookup_hash`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashInput {
    /// SHA-256, SHA-1 or MD5, hex.
    #[schemars(regex(pattern = r"^([0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"))]
    pub hash: String,
}

/// Input of `lookup_ip`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpInput {
    /// IPv4 or IPv6 address.
    pub ip: String,
}

/// Input of `lookup_domain`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// Domain name.
    pub domain: String,
}

/// Normalised verdict.
#[derive(Debug, Serialize, JsonSchema, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one engine says malicious.
    Malicious,
    /// Only suspicious detections.
    Suspicious,
    /// Analysed, nothing found.
    Clean,
    /// VirusTotal has never seen it.
    Unknown,
}

/// Engine counts from `last_analysis_stats`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Clone)]
pub struct Stats {
    /// Engines flagging it malicious.
    #[serde(default)]
    pub malicious: u32,
    /// Engines flagging it suspicious.
    #[serde(default)]
    pub suspicious: u32,
    /// Engines that found nothing.
    #[serde(default)]
    pub undetected: u32,
    /// Engines that call it harmless.
    #[serde(default)]
    pub harmless: u32,
}

/// Output of every lookup.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Report {
    /// What was looked up.
    pub indicator: String,
    /// Normalised verdict.
    pub verdict: Verdict,
    /// Engine counts (zero when unknown).
    pub stats: Stats,
    /// VirusTotal's reputation score, when given.
    pub reputation: Option<i64>,
    /// The raw `data` object VirusTotal returned, as evidence (null when unknown).
    pub evidence: Value,
}

fn verdict(stats: &Stats) -> Verdict {
    if stats.malicious > 0 {
        Verdict::Malicious
    } else if stats.suspicious > 0 {
        Verdict::Suspicious
    } else if stats.harmless + stats.undetected > 0 {
        Verdict::Clean
    } else {
        Verdict::Unknown
    }
}

fn lookup(ctx: &Context, collection: &str, indicator: &str) -> Result<Report> {
    if indicator.trim().is_empty() {
        return Err(Error::invalid_input("indicator must not be empty"));
    }
    let base = ctx.config("base_url")?;
    let url = join(&base, &format!("api/v3/{collection}/{}", encode(indicator)));
    let response = Request::get(url)
        .secret_header("x-apikey", "api_key")
        .header("accept", "application/json")
        .send()?;
    let unknown = || Report {
        indicator: indicator.to_string(),
        verdict: Verdict::Unknown,
        stats: Stats::default(),
        reputation: None,
        evidence: Value::Null,
    };
    match response.error_for_status() {
        Ok(response) => {
            let body: Value = response.json_body()?;
            let data = body
                .get("data")
                .cloned()
                .ok_or_else(|| Error::permanent("VirusTotal answer has no `data` object"))?;
            let attributes = data.get("attributes").cloned().unwrap_or(Value::Null);
            let stats: Stats = match attributes.get("last_analysis_stats") {
                Some(s) => serde_json_stats(s)?,
                None => Stats::default(),
            };
            Ok(Report {
                indicator: indicator.to_string(),
                verdict: verdict(&stats),
                reputation: attributes.get("reputation").and_then(Value::as_i64),
                stats,
                evidence: data,
            })
        }
        // VirusTotal has never seen it: that is an answer, not a failure.
        Err(e) if e.kind == ErrorKind::NotFound => Ok(unknown()),
        Err(e) => Err(e),
    }
}

fn serde_json_stats(value: &Value) -> Result<Stats> {
    soar_plugin_sdk::serde_json::from_value(value.clone())
        .map_err(|e| Error::permanent(format!("`last_analysis_stats` is malformed: {e}")))
}

fn lookup_hash(input: HashInput, ctx: &Context) -> Result<Report> {
    let ok = matches!(input.hash.len(), 32 | 40 | 64)
        && input.hash.chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(Error::invalid_input(format!(
            "`{}` is not an MD5, SHA-1 or SHA-256 hex digest",
            input.hash
        )));
    }
    lookup(ctx, "files", &input.hash.to_ascii_lowercase())
}

fn lookup_ip(input: IpInput, ctx: &Context) -> Result<Report> {
    if input.ip.parse::<std::net::IpAddr>().is_err() {
        return Err(Error::invalid_input(format!(
            "`{}` is not an IP address",
            input.ip
        )));
    }
    lookup(ctx, "ip_addresses", &input.ip)
}

fn lookup_domain(input: DomainInput, ctx: &Context) -> Result<Report> {
    let domain = input
        .domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty() || domain.contains('/') || domain.contains(' ') {
        return Err(Error::invalid_input(format!(
            "`{}` is not a domain name",
            input.domain
        )));
    }
    lookup(ctx, "domains", &domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_plugin_sdk::http::Response;
    use soar_plugin_sdk::testing::MockHost;
    use soar_plugin_sdk::{json, Invocation, RetryAfter};

    const SHA: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    const BASE: &str = "https://vt.test";

    fn url() -> String {
        format!("{BASE}/api/v3/files/{SHA}")
    }

    fn call(mock: MockHost) -> (Result<Value>, MockHost) {
        mock.config("base_url", BASE).run(|| {
            plugin().call(
                "lookup_hash",
                json!({ "hash": SHA }),
                Invocation::for_test("k1"),
            )
        })
    }

    #[test]
    fn malicious_file_is_normalised_and_sends_the_key_by_name() {
        let body = json!({"data": {"id": SHA, "type": "file", "attributes": {
            "last_analysis_stats": {"malicious": 60, "suspicious": 1, "undetected": 5, "harmless": 0},
            "reputation": -100}}});
        let (out, mock) = call(MockHost::new().respond("GET", &url(), Response::json(200, &body)));
        let out = out.unwrap();
        assert_eq!(out["verdict"], "malicious");
        assert_eq!(out["stats"]["malicious"], 60);
        assert_eq!(out["reputation"], -100);
        assert_eq!(out["evidence"]["id"], SHA);
        assert_eq!(
            mock.requests()[0].header("x-apikey"),
            Some("{{secret:api_key}}")
        );
    }

    #[test]
    fn clean_and_suspicious_verdicts() {
        for (stats, expected) in [
            (
                json!({"malicious": 0, "suspicious": 2, "undetected": 5, "harmless": 1}),
                "suspicious",
            ),
            (
                json!({"malicious": 0, "suspicious": 0, "undetected": 50, "harmless": 10}),
                "clean",
            ),
        ] {
            let body = json!({"data": {"id": SHA, "type": "file", "attributes": {"last_analysis_stats": stats}}});
            let (out, _) = call(MockHost::new().respond("GET", &url(), Response::json(200, &body)));
            assert_eq!(out.unwrap()["verdict"], expected);
        }
    }

    #[test]
    fn not_found_means_unknown_not_failure() {
        let body = json!({"error": {"code": "NotFoundError", "message": "not found"}});
        let (out, _) = call(MockHost::new().respond("GET", &url(), Response::json(404, &body)));
        let out = out.unwrap();
        assert_eq!(out["verdict"], "unknown");
        assert_eq!(out["evidence"], Value::Null);
    }

    #[test]
    fn quota_exceeded_is_rate_limited_with_retry_after() {
        let body = json!({"error": {"code": "QuotaExceededError", "message": "quota"}});
        let response = Response::json(429, &body).with_header("Retry-After", "7");
        let (out, _) = call(MockHost::new().respond("GET", &url(), response));
        assert_eq!(
            out.unwrap_err().kind,
            ErrorKind::RateLimited(Some(RetryAfter::DelayMs(7000)))
        );
    }

    #[test]
    fn vendor_errors_map_to_kinds() {
        for (status, kind) in [
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Unauthorized),
            (503, ErrorKind::Unavailable),
            (500, ErrorKind::Unavailable),
        ] {
            let (out, _) =
                call(MockHost::new().respond("GET", &url(), Response::json(status, &json!({}))));
            assert_eq!(out.unwrap_err().kind, kind, "status {status}");
        }
    }

    #[test]
    fn malformed_json_is_a_permanent_error_naming_the_problem() {
        let (out, _) =
            call(MockHost::new().respond("GET", &url(), Response::bytes(200, "<html>oops")));
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message.contains("not the expected JSON"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_input_is_rejected_before_any_request() {
        let (out, mock) = MockHost::new().config("base_url", BASE).run(|| {
            plugin().call(
                "lookup_hash",
                json!({"hash": "not-a-hash"}),
                Invocation::for_test("k"),
            )
        });
        assert_eq!(out.unwrap_err().kind, ErrorKind::InvalidInput);
        assert!(mock.requests().is_empty());
        let (out, _) = MockHost::new().config("base_url", BASE).run(|| {
            plugin().call(
                "lookup_ip",
                json!({"ip": "999.1.1.1"}),
                Invocation::for_test("k"),
            )
        });
        assert_eq!(out.unwrap_err().kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn ip_and_domain_paths_follow_the_api() {
        let body = json!({"data": {"id": "x", "type": "t", "attributes": {"last_analysis_stats": {"harmless": 3}}}});
        let mock = MockHost::new()
            .config("base_url", "https://vt.test/")
            .respond(
                "GET",
                "https://vt.test/api/v3/ip_addresses/198.51.100.7",
                Response::json(200, &body),
            )
            .respond(
                "GET",
                "https://vt.test/api/v3/domains/evil.example",
                Response::json(200, &body),
            );
        let (out, mock) = mock.run(|| {
            let p = plugin();
            (
                p.call(
                    "lookup_ip",
                    json!({"ip": "198.51.100.7"}),
                    Invocation::for_test("k"),
                ),
                p.call(
                    "lookup_domain",
                    json!({"domain": "Evil.Example."}),
                    Invocation::for_test("k"),
                ),
            )
        });
        assert_eq!(out.0.unwrap()["verdict"], "clean");
        assert_eq!(out.1.unwrap()["indicator"], "evil.example");
        assert_eq!(mock.requests().len(), 2);
    }
}
