//! Real senders end to end: each vendor's public sample delivery, proven
//! the way that vendor proves it (signature, shared header, URL token,
//! Basic, bearer, Okta's verification GET), mapped by the shipped source
//! definition (`examples/sources/`) into the normalized alert, run by a
//! shipped playbook against the loopback vendor simulator. Every forgery
//! starts nothing and is told what the sender must fix.

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use soar_e2e::lab::{token, Lab};
use soar_e2e::senders::{
    fixture, fixture_json, journal, of_type, result_runs, runs, settle, source,
};
use soar_e2e::serve::{hmac_hex, sign, Client, Server};
use soar_e2e::sim;
use soar_e2e::sns::FakeSns;
use std::time::Duration;

const OKTA_SECRET: &str = "okta-hook-secret-7d1c";
/// The signing secret of the PagerDuty sample (a third-party client's
/// public test value; the sample's real signature was made with it).
const PD_SECRET: &str = "HvPtlQNKMPpHSSqJpCdndXfo7HnGXa1pnH6w5axpxLFn9aRBNBGh4e8/HlonK5mz";
const PD_SIGNATURE: &str = "v1=3e3032b45bbe1801c13f182b0e0a7f4f3f530225cef07e3e90cbc57874d01c49";
const GITHUB_SECRET: &str = "github-hook-secret-2e9a";
const SPLUNK_TOKEN: &str = "splunk-url-token-6b0f93c1d2";
const KIBANA_PASSWORD: &str = "kibana-basic-password-41c7";
const EVENTBRIDGE_PASSWORD: &str = "eventbridge-password-a83e";
const FORWARDER_TOKEN: &str = "falcon-forwarder-token-5d2b";
const WATCHER_TOKEN: &str = "watcher-token-90ab";

const SECRETS: [(&str, &str); 6] = [
    ("OKTA_HOOK_SECRET", OKTA_SECRET),
    ("PAGERDUTY_SIGNING_SECRET", PD_SECRET),
    ("GITHUB_HOOK_SECRET", GITHUB_SECRET),
    ("SPLUNK_HOOK_TOKEN", SPLUNK_TOKEN),
    ("KIBANA_HOOK_PASSWORD", KIBANA_PASSWORD),
    ("EVENTBRIDGE_PASSWORD", EVENTBRIDGE_PASSWORD),
];

fn lab() -> Lab {
    let sources: String = [
        ("falcon", "falcon.yaml"),
        ("okta", "okta-event-hook.yaml"),
        ("pagerduty", "pagerduty.yaml"),
        ("github", "github.yaml"),
        ("splunk", "splunk.yaml"),
        ("kibana", "kibana.yaml"),
        ("eventbridge", "guardduty-eventbridge.yaml"),
    ]
    .iter()
    .map(|(name, file)| source(name, file))
    .collect();
    Lab::new(&format!(
        "principals:\n  forwarder: {{ roles: [ingest], token_sha256: \"{}\" }}\n  watcher: {{ roles: [viewer], token_sha256: \"{}\" }}\nserver:\n  listen: \"127.0.0.1:0\"\nsources:\n{sources}",
        hex::encode(Sha256::digest(FORWARDER_TOKEN)),
        hex::encode(Sha256::digest(WATCHER_TOKEN))
    ))
}

fn post(c: &Client, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let a = c.send("POST", path, headers, body);
    let v = serde_json::from_str(&a.text).unwrap_or(Value::Null);
    (a.status, v)
}

/// The paths (with query) of the simulator's requests.
fn vendor_paths(lab: &Lab) -> Vec<String> {
    lab.requests()
        .iter()
        .map(|r| match r.url.query() {
            Some(q) => format!("{}?{q}", r.url.path()),
            None => r.url.path().to_string(),
        })
        .collect()
}

/// The `run_started` record of `run`.
fn started(c: &Client, run: &str) -> Value {
    journal(c, run)
        .into_iter()
        .find(|r| r["type"] == "run_started")
        .expect("run_started")
}

/// Checks the alert the shipped GuardDuty map made of the sample finding
/// (the same map whether it came by SNS or EventBridge); the finding.
fn guardduty_mapped(start: &Value) -> Value {
    let finding = fixture_json("guardduty_eventbridge.json")["detail"].clone();
    assert_eq!(start["alert"]["finding"]["uid"], finding["id"]);
    assert_eq!(
        start["alert"]["actor"]["user"]["name"],
        "GeneratedFindingUserName"
    );
    assert_eq!(start["alert"]["src_endpoint"]["ip"], "81.2.69.144");
    finding
}

#[test]
fn okta_event_hook_verifies_then_every_event_of_a_delivery_is_a_run() {
    let lab = lab();
    let server = Server::start(&lab, &SECRETS);
    let c = Client::new(&server);
    // The one-time verification: answered only to the hook's secret.
    let challenge = "X5nA8Xx3sTNU7mq1CN2b0GJbKWSHuwnP";
    let verify = |auth: Option<&str>| {
        let mut h = vec![("x-okta-verification-challenge", challenge)];
        h.extend(auth.map(|a| ("authorization", a)));
        c.send("GET", "/hooks/okta", &h, Vec::new())
    };
    let a = verify(Some(OKTA_SECRET));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), json!({"verification": challenge}));
    for wrong in [
        None,
        Some("okta-hook-secret-7d1"),
        Some("Bearer okta-hook-secret-7d1c"),
    ] {
        let a = verify(wrong);
        assert_eq!(a.status, 401, "{wrong:?}: {}", a.text);
        assert!(!a.text.contains(challenge), "the challenge is not echoed");
    }
    // Another source has no verification GET.
    assert_eq!(c.send("GET", "/hooks/github", &[], Vec::new()).status, 405);

    // Okta's delivery: three System Log events, three runs.
    let body = fixture("okta_event_hook.json");
    let okta = |auth: &str, body: Vec<u8>| {
        post(
            &c,
            "/hooks/okta",
            &[
                ("content-type", "application/json"),
                ("authorization", auth),
            ],
            body,
        )
    };
    let (status, forged) = okta("not-the-secret", body.clone());
    assert_eq!(status, 401, "{forged}");
    assert!(
        forged["message"]
            .as_str()
            .unwrap()
            .contains("header Authorization does not carry the hook's secret"),
        "{forged}"
    );
    assert!(runs(&c).is_empty(), "a forgery starts nothing");
    let (status, answer) = okta(OKTA_SECRET, body.clone());
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["events"], 3, "{answer}");
    assert_eq!(answer["accepted"], 3, "{answer}");
    let ids: Vec<String> = result_runs(&answer)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3
    );
    let events = fixture_json("okta_event_hook.json")["data"]["events"].clone();
    for (i, run) in ids.iter().enumerate() {
        let start = started(&c, run);
        let event = &events[i];
        // The playbook saw the normalized alert; the raw event is kept.
        assert_eq!(start["raw"], *event);
        assert_eq!(
            start["alert"]["actor"]["user"]["name"],
            event["actor"]["alternateId"]
        );
        assert_eq!(
            start["alert"]["src_endpoint"]["ip"],
            event["client"]["ipAddress"]
        );
        assert_eq!(start["alert"]["finding"]["uid"], event["uuid"]);
        assert_eq!(start["alert"]["finding"]["type"], event["eventType"]);
        assert_eq!(start["alert"]["metadata"]["product"]["name"], "Okta");
        assert_eq!(start["alert"]["severity"], "low", "Okta INFO");
        assert!(start["alert"]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(start["inputs"]["user"], event["actor"]["alternateId"]);
        settle(&c, run);
    }
    // credential-abuse looked up each mapped user and IP at the vendors.
    let paths = vendor_paths(&lab);
    for event in events.as_array().unwrap() {
        let login = event["actor"]["alternateId"].as_str().unwrap();
        let encoded = login.replace('@', "%40");
        assert!(
            paths
                .iter()
                .any(|p| p == &format!("/api/v1/users/{encoded}")),
            "{login} not looked up: {paths:?}"
        );
        let ip = event["client"]["ipAddress"].as_str().unwrap();
        assert!(
            paths
                .iter()
                .any(|p| p.ends_with(&format!("/ip_addresses/{ip}"))),
            "{ip}: {paths:?}"
        );
    }
    // Okta redelivers the same events: each joins its own run as evidence.
    let (status, again) = okta(OKTA_SECRET, body);
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["deduplicated"], 3, "{again}");
    let again_ids: Vec<String> = result_runs(&again)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(again_ids, ids);
    for (i, run) in ids.iter().enumerate() {
        let records = journal(&c, run);
        let merged = of_type(&records, "alert_merged");
        assert_eq!(merged.len(), 1, "{run}");
        assert_eq!(merged[0]["raw"], events[i]);
        assert_eq!(merged[0]["by"], "source:okta");
        assert_eq!(merged[0]["count"], 1);
    }
    assert_eq!(runs(&c).len(), 3);
    let log = server.log_text();
    assert!(!log.contains(OKTA_SECRET), "the secret is not logged");
}

#[test]
fn falcon_ndjson_from_a_forwarder_maps_both_event_generations() {
    let lab = lab();
    let server = Server::start(&lab, &SECRETS);
    let c = Client::new(&server);
    let compact = |name: &str| fixture_json(name).to_string();
    let body = format!(
        "{}\n{}\n{{\"metadata\": truncated\n",
        compact("falcon_detection.json"),
        compact("falcon_alert.json")
    );
    let auth = format!("Bearer {FORWARDER_TOKEN}");
    let send = |auth: &str, kind: &str| {
        post(
            &c,
            "/hooks/falcon",
            &[("content-type", kind), ("authorization", auth)],
            body.clone().into_bytes(),
        )
    };
    let (status, v) = send("Bearer nope", "application/x-ndjson");
    assert_eq!(status, 401, "{v}");
    let told = v["message"].as_str().unwrap();
    assert!(
        told.contains("`ingest` role") && !told.contains("SOAR_TOKEN"),
        "{v}"
    );
    let (status, v) = send(&format!("Bearer {WATCHER_TOKEN}"), "application/x-ndjson");
    assert_eq!(status, 403, "a viewer is no ingest principal: {v}");
    let (status, v) = send(&auth, "text/csv");
    assert_eq!(status, 415, "{v}");
    let (status, answer) = send(&auth, "application/x-ndjson");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (
            answer["events"].as_u64(),
            answer["accepted"].as_u64(),
            answer["invalid"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{answer}"
    );
    let bad = &answer["results"][2];
    assert_eq!(bad["error"], "invalid_alert");
    assert!(
        bad["problems"][0]
            .as_str()
            .unwrap()
            .contains("line 3 is not JSON"),
        "{bad}"
    );
    let ids = result_runs(&answer);
    let detection = fixture_json("falcon_detection.json");
    let alert = fixture_json("falcon_alert.json");
    let first = started(&c, ids[0].as_ref().unwrap());
    assert_eq!(first["started_by"], "forwarder");
    assert_eq!(
        first["alert"]["device"]["uid"],
        detection["event"]["SensorId"]
    );
    assert_eq!(first["alert"]["device"]["hostname"], "ELASTICHOST");
    assert_eq!(
        first["alert"]["finding"]["uid"],
        detection["event"]["DetectId"]
    );
    assert_eq!(first["alert"]["severity"], "low");
    assert_eq!(first["alert"]["severity_id"], 2);
    assert_eq!(first["alert"]["time"], "2023-06-15T16:06:52.400Z");
    let second = started(&c, ids[1].as_ref().unwrap());
    assert_eq!(second["alert"]["device"]["uid"], alert["event"]["AgentId"]);
    assert_eq!(second["alert"]["device"]["hostname"], "CISO-DUMMY-CSDEV");
    assert_eq!(
        second["alert"]["finding"]["uid"],
        alert["event"]["CompositeId"]
    );
    assert_eq!(second["alert"]["finding"]["title"], "Suspicious Activity");
    for run in ids.iter().flatten() {
        settle(&c, run);
    }
    // malware-containment asked the EDR about each mapped host and
    // VirusTotal about each mapped file.
    let paths = vendor_paths(&lab);
    for (host, sha) in [
        (
            &detection["event"]["SensorId"],
            &detection["event"]["SHA256String"],
        ),
        (&alert["event"]["AgentId"], &alert["event"]["SHA256String"]),
    ] {
        let host = host.as_str().unwrap();
        assert!(
            paths
                .iter()
                .any(|p| p.contains("/devices/entities/devices/v2") && p.contains(host)),
            "{host}: {paths:?}"
        );
        let sha = sha.as_str().unwrap();
        assert!(
            paths.iter().any(|p| p.ends_with(&format!("/files/{sha}"))),
            "{sha}: {paths:?}"
        );
    }
}

#[test]
fn pagerduty_signs_its_real_delivery_and_rotation_sends_two_signatures() {
    let lab = lab();
    let server = Server::start(&lab, &SECRETS);
    let c = Client::new(&server);
    let body = fixture("pagerduty_v3_incident_triggered.json");
    let deliver = |sig: &str, id: &str, body: Vec<u8>| {
        post(
            &c,
            "/hooks/pagerduty",
            &[
                ("content-type", "application/json"),
                ("x-pagerduty-signature", sig),
                ("x-webhook-id", id),
            ],
            body,
        )
    };
    // The sample exactly as PagerDuty signed it.
    let (status, answer) = deliver(PD_SIGNATURE, "wh-1", body.clone());
    assert_eq!(status, 202, "{answer}");
    let run = answer["run_id"].as_str().unwrap().to_string();
    let start = started(&c, &run);
    assert_eq!(start["alert"]["finding"]["title"], "Test");
    assert_eq!(start["alert"]["finding"]["type"], "incident.triggered");
    assert_eq!(
        start["alert"]["case"]["uid"],
        start["raw"]["event"]["data"]["id"]
    );
    let report = settle(&c, &run);
    assert_eq!(report["status"], "succeeded", "{report}");
    let case = lab
        .requests()
        .into_iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path() == "/api/v1/case")
        .expect("a case was opened");
    let case: Value = serde_json::from_slice(&case.body).unwrap();
    assert_eq!(case["title"], "PagerDuty: Test");

    // During a secret rotation the header carries an old and a new value.
    let old = format!("v1={}", hmac_hex("the-previous-secret", &body));
    let (status, v) = deliver(&format!("{old},{PD_SIGNATURE}"), "wh-2", body.clone());
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["deduplicated"], true, "the same incident: merged, {v}");
    assert_eq!(of_type(&journal(&c, &run), "alert_merged").len(), 1);
    // Only the old secret, a changed body, or no prefix: refused, and the
    // refusal says what PagerDuty's header must hold.
    let mut changed = body.clone();
    changed.extend_from_slice(b" ");
    for (sig, body, want) in [
        (
            old.as_str(),
            body.clone(),
            "no signature in header X-PagerDuty-Signature matches",
        ),
        (
            PD_SIGNATURE,
            changed,
            "no signature in header X-PagerDuty-Signature matches",
        ),
        (
            &PD_SIGNATURE[3..],
            body.clone(),
            "expected header X-PagerDuty-Signature with v1=<hex HMAC-SHA256>",
        ),
    ] {
        let (status, v) = deliver(sig, "wh-3", body);
        assert_eq!(status, 401, "{v}");
        assert!(v["message"].as_str().unwrap().contains(want), "{v}");
        assert!(
            !v.to_string().contains("SOAR_TOKEN"),
            "no CLI advice to a sender"
        );
    }
    assert_eq!(runs(&c).len(), 1);
}

#[test]
fn github_ping_and_unlisted_events_are_answered_and_start_nothing() {
    let lab = lab();
    let server = Server::start(&lab, &SECRETS);
    let c = Client::new(&server);
    let deliver = |event: &str, body: Vec<u8>, secret: &str| {
        let sig = sign(secret, &body);
        post(
            &c,
            "/hooks/github",
            &[
                ("content-type", "application/json"),
                ("x-github-event", event),
                ("x-github-delivery", event),
                ("x-hub-signature-256", &sig),
            ],
            body,
        )
    };
    let (status, v) = deliver("ping", fixture("github_ping.json"), GITHUB_SECRET);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ignored"], "ping");
    let (status, v) = deliver(
        "push",
        br#"{"ref":"refs/heads/main"}"#.to_vec(),
        GITHUB_SECRET,
    );
    assert_eq!((status, v["ignored"].as_str()), (200, Some("push")), "{v}");
    // A forged ping is refused before the filter.
    let (status, _) = deliver("ping", fixture("github_ping.json"), "wrong");
    assert_eq!(status, 401);
    assert!(runs(&c).is_empty());
    let body = fixture("github_code_scanning_alert.json");
    let (status, v) = deliver("code_scanning_alert", body, GITHUB_SECRET);
    assert_eq!(status, 202, "{v}");
    let run = v["run_id"].as_str().unwrap();
    let start = started(&c, run);
    assert_eq!(start["alert"]["resource"]["name"], "Codertocat/Hello-World");
    assert_eq!(start["alert"]["severity"], "high");
    assert_eq!(settle(&c, run)["status"], "succeeded");
    assert_eq!(runs(&c).len(), 1);
}

#[test]
fn splunk_posts_to_its_url_token_which_is_never_logged_or_journaled() {
    let lab = lab();
    let server = Server::start(&lab, &SECRETS);
    let c = Client::new(&server);
    let json = [("content-type", "application/json")];
    // Splunk's documented payload: `result` holds whatever the search
    // output, here no user or IP, so the playbook's inputs are missing and
    // the sender is told which.
    let doc = fixture("splunk_webhook_alert.json");
    let (status, v) = post(&c, &format!("/hooks/splunk/{SPLUNK_TOKEN}"), &json, doc);
    assert_eq!(status, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("user"), "{v}");
    // The same payload from a search that outputs the fields the map reads.
    let mut sample = fixture_json("splunk_webhook_alert.json");
    sample["search_name"] = json!("Okta impossible travel");
    sample["result"] = json!({"_time": "1764237600", "user": "j.doe@example.com", "src": "203.0.113.66",
        "detection": "impossible_travel", "severity": "high", "host": "okta"});
    let body = sample.to_string().into_bytes();
    for path in [
        "/hooks/splunk",
        "/hooks/splunk/not-the-token",
        "/hooks/github/x",
    ] {
        let (status, v) = post(&c, path, &json, body.clone());
        assert_eq!(status, 401, "{path}: {v}");
    }
    let (status, v) = post(&c, "/hooks/splunk", &json, body.clone());
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("/hooks/<source>/<token>"),
        "{v}"
    );
    assert_eq!(status, 401);
    let (status, v) = post(&c, &format!("/hooks/splunk/{SPLUNK_TOKEN}"), &json, body);
    assert_eq!(status, 202, "{v}");
    let run = v["run_id"].as_str().unwrap().to_string();
    let start = started(&c, &run);
    assert_eq!(start["alert"]["time"], "2025-11-27T10:00:00.000Z");
    assert_eq!(start["inputs"]["source_ip"], "203.0.113.66");
    // A real user from a malicious IP: the lead approves, and containment
    // reaches Okta.
    c.wait_for(&run, token("alice"), Duration::from_secs(120), |v| {
        v["status"] == "waiting_approval"
    });
    assert!(
        lab.destructive_requests().is_empty(),
        "nothing before the vote"
    );
    let a = c.post(
        &format!("/api/v1/runs/{run}/steps/approve/approve?wait=true"),
        token("alice"),
        &json!({"reason": "confirmed with the user: not them"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(settle(&c, &run)["status"], "succeeded");
    let contained: Vec<String> = lab
        .destructive_requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert!(
        contained
            .iter()
            .any(|r| r.starts_with("DELETE") && r.contains(sim::OKTA_USER_ID)),
        "{contained:?}"
    );
    // The token is in no log line and no record.
    assert!(
        !server.log_text().contains(SPLUNK_TOKEN),
        "the token is logged"
    );
    assert!(
        server.log_text().contains("/hooks/{source}/{token}"),
        "the route is"
    );
    let records = serde_json::to_string(&journal(&c, &run)).unwrap();
    assert!(!records.contains(SPLUNK_TOKEN));
    let metrics = c.send("GET", "/metrics", &[], Vec::new()).text;
    assert!(!metrics.contains(SPLUNK_TOKEN));
}

#[test]
fn kibana_and_eventbridge_prove_themselves_with_basic_auth() {
    let lab = lab();
    let server = Server::start(&lab, &SECRETS);
    let c = Client::new(&server);
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let send = |path: &str, auth: &str, body: Vec<u8>| {
        post(
            &c,
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", auth),
            ],
            body,
        )
    };
    let kibana = fixture("kibana_webhook.json");
    for wrong in [
        basic("kibana", "nope"),
        basic("elastic", KIBANA_PASSWORD),
        format!("Bearer {KIBANA_PASSWORD}"),
    ] {
        let (status, v) = send("/hooks/kibana", &wrong, kibana.clone());
        assert_eq!(status, 401, "{wrong}: {v}");
    }
    let (status, v) = send("/hooks/kibana", &basic("kibana", KIBANA_PASSWORD), kibana);
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["events"], 1, "the rule's alerts are split: {v}");
    let run = result_runs(&v)[0].clone().unwrap();
    let start = started(&c, &run);
    assert_eq!(
        start["alert"]["device"]["hostname"],
        "siem-linux-release-sec-bis"
    );
    assert_eq!(
        start["alert"]["finding"]["title"],
        "Malicious Behavior Prevention Alert: Empire Stager Execution"
    );
    assert_eq!(start["alert"]["confidence"], 73);
    assert_eq!(settle(&c, &run)["status"], "succeeded");

    let gd = fixture("guardduty_eventbridge.json");
    let (status, _) = send("/hooks/eventbridge", &basic("eventbridge", "x"), gd.clone());
    assert_eq!(status, 401);
    let (status, v) = send(
        "/hooks/eventbridge",
        &basic("eventbridge", EVENTBRIDGE_PASSWORD),
        gd,
    );
    assert_eq!(status, 202, "{v}");
    let run = v["run_id"].as_str().unwrap().to_string();
    let start = started(&c, &run);
    guardduty_mapped(&start);
    assert_eq!(start["alert"]["severity"], "medium", "GuardDuty 5.0");
    settle(&c, &run);
    let paths = vendor_paths(&lab);
    assert!(
        paths
            .iter()
            .any(|p| p == "/api/v1/users/GeneratedFindingUserName"),
        "{paths:?}"
    );
}

const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";

#[test]
fn sns_confirms_its_subscription_and_only_sns_signed_messages_start_runs() {
    let lab = Lab::new(&format!(
        "server:\n  listen: \"127.0.0.1:0\"\nsources:\n{}",
        source("guardduty", "guardduty-sns.yaml")
    ));
    let sns = FakeSns::start(lab.s.path());
    let env: Vec<(&str, String)> = sns.env().to_vec();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&lab, &env);
    let c = Client::new(&server);
    let deliver = |envelope: &Value| {
        post(
            &c,
            "/hooks/guardduty",
            &[
                ("content-type", "text/plain; charset=UTF-8"),
                ("x-amz-sns-message-type", "Notification"),
            ],
            envelope.to_string().into_bytes(),
        )
    };

    // The handshake: confirmed by fetching SubscribeURL, once it is proven.
    let mut confirm = fixture_json("sns_subscription_confirmation.json");
    let token = confirm["Token"].as_str().unwrap().to_string();
    let confirm_path = format!("/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}");
    confirm["SubscribeURL"] = sns.url("us-west-2", &confirm_path).into();
    sns.sign_envelope(&mut confirm, "us-west-2", 1);
    let (status, v) = deliver(&confirm);
    assert_eq!((status, &v["confirmed"]), (200, &json!(TOPIC)), "{v}");
    let confirmed = |hits: &[String]| {
        hits.iter()
            .filter(|h| h.contains("Action=ConfirmSubscription"))
            .count()
    };
    assert_eq!(confirmed(&sns.hits()), 1, "{:?}", sns.hits());

    // A SubscribeURL outside SNS's hosts of the topic's region is never
    // fetched, even in a validly signed message.
    for elsewhere in [
        sns.url("eu-west-1", &format!("{confirm_path}&forged=1")),
        format!(
            "https://127.0.0.1:{}{confirm_path}&forged=2",
            sns.addr.port()
        ),
        format!(
            "http://sns.us-west-2.amazonaws.com:{}{confirm_path}&forged=3",
            sns.addr.port()
        ),
    ] {
        let mut forged = fixture_json("sns_subscription_confirmation.json");
        forged["SubscribeURL"] = elsewhere.clone().into();
        sns.sign_envelope(&mut forged, "us-west-2", 1);
        let (status, v) = deliver(&forged);
        assert_eq!(status, 422, "{elsewhere}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("SubscribeURL must be an https URL on an SNS host"),
            "{v}"
        );
    }
    assert!(
        sns.hits().iter().all(|h| !h.contains("forged")),
        "{:?}",
        sns.hits()
    );

    // The GuardDuty finding, as EventBridge publishes it to the topic.
    let mut note = fixture_json("sns_notification_guardduty.json");
    note["TopicArn"] = TOPIC.into();
    sns.sign_envelope(&mut note, "us-west-2", 1);
    let pem_fetches = |hits: &[String]| hits.iter().filter(|h| h.ends_with(".pem")).count();
    let fetched = pem_fetches(&sns.hits());
    let forgeries: Vec<(&str, Value)> = vec![
        ("the message changed after signing", {
            let mut e = note.clone();
            e["Message"] = e["Message"]
                .as_str()
                .unwrap()
                .replace("GeneratedFindingUserName", "someone-else")
                .into();
            e
        }),
        ("a certificate from a host that is not SNS", {
            let mut e = note.clone();
            e["SigningCertURL"] = format!("https://127.0.0.1:{}/cert.pem", sns.addr.port()).into();
            e
        }),
        ("a certificate from another region", {
            let mut e = note.clone();
            sns.sign_envelope(&mut e, "eu-west-1", 1);
            e
        }),
        ("another topic", {
            let mut e = note.clone();
            e["TopicArn"] = "arn:aws:sns:us-west-2:123456789012:Other".into();
            sns.sign_envelope(&mut e, "us-west-2", 1);
            e
        }),
        ("an unknown signature version", {
            let mut e = note.clone();
            e["SignatureVersion"] = "3".into();
            e
        }),
        ("no signature", {
            let mut e = note.clone();
            e.as_object_mut().unwrap().remove("Signature");
            e
        }),
        (
            "a validly signed message older than the delivery window (a replay)",
            {
                let mut e = note.clone();
                e["Timestamp"] = "2012-05-02T00:54:06.655Z".into();
                sns.sign_as_is(&mut e, "us-west-2", 1);
                e
            },
        ),
    ];
    for (why, forged) in forgeries {
        let (status, v) = deliver(&forged);
        assert_eq!(status, 401, "{why}: {v}");
    }
    assert_eq!(
        pem_fetches(&sns.hits()),
        fetched,
        "no certificate fetched for a forgery"
    );
    assert!(runs(&c).is_empty());
    // A certificate soar cannot fetch is SNS's to deliver again (503), and
    // the same URL is not fetched again at once.
    let mut unreachable = note.clone();
    sns.sign_envelope(&mut unreachable, "us-west-2", 1);
    unreachable["SigningCertURL"] = sns
        .url("us-west-2", "/SimpleNotificationService-missing.pem")
        .into();
    for _ in 0..2 {
        let a = c.send(
            "POST",
            "/hooks/guardduty",
            &[("content-type", "text/plain")],
            unreachable.to_string().into_bytes(),
        );
        assert_eq!(a.status, 503, "{}", a.text);
        assert!(a.retry_after.is_some());
    }
    let missing = sns.hits().iter().filter(|h| h.contains("missing")).count();
    assert_eq!(missing, 1, "{:?}", sns.hits());

    let (status, v) = deliver(&note);
    assert_eq!(status, 202, "{v}");
    let run = v["run_id"].as_str().unwrap().to_string();
    let start = started(&c, &run);
    let finding = guardduty_mapped(&start);
    assert_eq!(
        start["raw"]["detail"]["id"], finding["id"],
        "the raw event is the message"
    );
    // SignatureVersion 2 (SHA256withRSA), a new MessageId: the same finding,
    // so it merges; and SNS's own redelivery (same MessageId) merges too.
    let mut v2 = note.clone();
    v2["MessageId"] = "3f1b5e4c-0000-4c2c-8f9d-bdfb0c7bf324".into();
    sns.sign_envelope(&mut v2, "us-west-2", 2);
    for again in [&v2, &note] {
        let (status, v) = deliver(again);
        assert_eq!(
            (status, v["deduplicated"].as_bool()),
            (202, Some(true)),
            "{v}"
        );
        assert_eq!(v["run_id"], run.as_str());
    }
    let merged = of_type(&journal(&c, &run), "alert_merged").len();
    assert_eq!(merged, 2);
    assert_eq!(runs(&c).len(), 1);
    settle(&c, &run);
    let log = server.log_text();
    assert!(
        log.contains("SOAR_TEST_SNS_ADDR is set"),
        "the override is loud"
    );
}
