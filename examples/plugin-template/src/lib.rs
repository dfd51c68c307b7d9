//! `template`: a copyable soar connector for the fictional Acme Blocklist API,
//! with one read action, one destructive action and native tests.

use soar_plugin_sdk::http::{encode, join, Request};
use soar_plugin_sdk::{
    export_plugin, Action, Context, Deserialize, Error, ErrorKind, JsonSchema, LogLevel, Plugin,
    Result, Serialize, TargetKind,
};

/// The connector's declaration: name, secrets, config keys and actions.
pub fn plugin() -> Plugin {
    Plugin::new(
        "template",
        env!("CARGO_PKG_VERSION"),
        "Acme Blocklist API (fictional): look up and block IP addresses",
    )
    .secret("api_key")
    .config_key("base_url")
    .action(
        Action::new("get_block", "Whether an IP address is blocked", get_block)
            .idempotent()
            .target("ip", TargetKind::Ip),
    )
    .action(
        Action::new("block_ip", "Block an IP address", block_ip)
            .destructive()
            .idempotent()
            .probe("get_block")
            .target("ip", TargetKind::Ip),
    )
}

export_plugin!(plugin);

/// Input of `get_block`. Unknown fields are allowed so that, as the probe of
/// `block_ip`, it also accepts `block_ip`'s input.
#[derive(Deserialize, JsonSchema)]
pub struct IpInput {
    /// IPv4 or IPv6 address.
    pub ip: String,
}

/// Input of `block_ip`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockInput {
    /// IPv4 or IPv6 address.
    pub ip: String,
    /// Why, shown in the vendor's console.
    #[schemars(length(min = 1, max = 200))]
    pub reason: String,
}

/// Output of both actions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BlockState {
    /// The address.
    pub ip: String,
    /// True when the address is blocked (or, in a dry run, would stay as it is).
    pub blocked: bool,
    /// The reason recorded with the block, when blocked.
    pub reason: Option<String>,
    /// Present and true in a dry run: the block was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// The vendor's block object (unknown fields are ignored).
#[derive(Deserialize)]
struct VendorBlock {
    reason: Option<String>,
}

/// The address, or invalid input before anything is sent.
fn parse_ip(ip: &str) -> Result<String> {
    ip.trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| Error::invalid_input(format!("`{ip}` is not an IP address")))
}

/// `{base_url}/v1/blocks/{ip}`.
fn block_url(ctx: &Context, ip: &str) -> Result<String> {
    Ok(join(
        &ctx.config("base_url")?,
        &format!("v1/blocks/{}", encode(ip)),
    ))
}

fn get_block(input: IpInput, ctx: &Context) -> Result<BlockState> {
    let ip = parse_ip(&input.ip)?;
    // The connector names the secret; the host fills it in for granted origins.
    let response = Request::get(block_url(ctx, &ip)?)
        .bearer_secret("api_key")
        .send()?;
    match response.error_for_status() {
        Ok(response) => {
            let block: VendorBlock = response.json_body()?;
            Ok(BlockState {
                ip,
                blocked: true,
                reason: block.reason,
                planned: None,
            })
        }
        // Not blocked is an answer, not a failure.
        Err(e) if e.kind == ErrorKind::NotFound => Ok(BlockState {
            ip,
            blocked: false,
            reason: None,
            planned: None,
        }),
        Err(e) => Err(e),
    }
}

fn block_ip(input: BlockInput, ctx: &Context) -> Result<BlockState> {
    let ip = parse_ip(&input.ip)?;
    if ctx.dry_run() {
        // The host would refuse the PUT anyway; say what would happen instead.
        return Ok(BlockState {
            ip,
            blocked: false,
            reason: Some(input.reason),
            planned: Some(true),
        });
    }
    // PUT is idempotent at Acme; the key also lets it drop duplicate requests.
    Request::put(block_url(ctx, &ip)?)
        .bearer_secret("api_key")
        .header("idempotency-key", ctx.idempotency_key())
        .json(&soar_plugin_sdk::json!({ "reason": input.reason }))
        .send()?
        .error_for_status()?;
    ctx.log(LogLevel::Info, "blocked", &[("ip", &ip)]);
    Ok(BlockState {
        ip,
        blocked: true,
        reason: Some(input.reason),
        planned: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_plugin_sdk::http::Response;
    use soar_plugin_sdk::testing::MockHost;
    use soar_plugin_sdk::{json, Invocation};

    const URL: &str = "https://acme.test/v1/blocks/198.51.100.7";

    #[test]
    fn get_block_maps_found_and_not_found() {
        let mock = MockHost::new()
            .config("base_url", "https://acme.test")
            .respond(
                "GET",
                URL,
                Response::json(404, &json!({"error": "no block"})),
            );
        let (out, mock) = mock.run(|| {
            plugin().call(
                "get_block",
                json!({"ip": "198.51.100.7"}),
                Invocation::for_test("k1"),
            )
        });
        assert_eq!(out.unwrap()["blocked"], false);
        let sent = &mock.requests()[0];
        assert_eq!(
            sent.header("authorization"),
            Some("Bearer {{secret:api_key}}")
        );

        let found = json!({"ip": "198.51.100.7", "reason": "phishing"});
        let mock = MockHost::new()
            .config("base_url", "https://acme.test")
            .respond("GET", URL, Response::json(200, &found));
        let (out, _) = mock.run(|| {
            plugin().call(
                "get_block",
                json!({"ip": "198.51.100.7"}),
                Invocation::for_test("k1"),
            )
        });
        assert_eq!(out.unwrap()["reason"], "phishing");
    }

    #[test]
    fn block_ip_sends_one_put_and_nothing_in_a_dry_run() {
        let input = json!({"ip": "198.51.100.7", "reason": "phishing"});
        let mock = MockHost::new()
            .config("base_url", "https://acme.test")
            .respond("PUT", URL, Response::json(201, &json!({})));
        let (out, mock) =
            mock.run(|| plugin().call("block_ip", input.clone(), Invocation::for_test("k1")));
        assert_eq!(out.unwrap()["blocked"], true);
        assert_eq!(mock.requests().len(), 1);
        assert_eq!(mock.requests()[0].json(), json!({"reason": "phishing"}));
        assert_eq!(mock.requests()[0].header("idempotency-key"), Some("k1"));

        let dry = Invocation {
            dry_run: true,
            ..Invocation::for_test("k1")
        };
        let mock = MockHost::new().config("base_url", "https://acme.test");
        let (out, mock) = mock.run(|| plugin().call("block_ip", input, dry));
        assert_eq!(out.unwrap()["planned"], true);
        assert!(mock.requests().is_empty());
    }
}
