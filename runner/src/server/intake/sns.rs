//! AWS SNS over HTTPS: the envelope, its signature (SignatureVersion 1 is
//! SHA1withRSA, 2 is SHA256withRSA) checked against the certificate at
//! `SigningCertURL`, fetched over HTTPS only from an SNS host of an allowed
//! region and cached; and the subscription handshake (`SubscribeURL`
//! fetched under the same host rule).
//!
//! Tests reach a loopback "SNS" through two environment variables that the
//! config cannot set: `SOAR_TEST_SNS_ADDR` (a loopback address every SNS
//! host resolves to) and `SOAR_TEST_SNS_CA` (a PEM CA trusted besides the
//! public roots). They are ignored unless the address is loopback, and only
//! then may an SNS URL carry a port. `soar serve` warns when they are set.

use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Certificates kept (one per SNS signing key in use; AWS rotates rarely).
const CACHE_CAP: usize = 32;
/// Largest certificate read.
const MAX_CERT_BYTES: usize = 16 << 10;
/// Certificate fetches at once.
const MAX_FETCHES: usize = 4;
/// How long a URL whose certificate could not be had is not tried again.
const FAILED_FOR: Duration = Duration::from_secs(60);

/// The fields of an SNS message soar reads (SNS's own names).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    pub r#type: String,
    /// SNS's id of the message (the same on every redelivery).
    pub message_id: String,
    /// The topic.
    pub topic_arn: String,
    /// Subject of a notification, if the publisher gave one.
    #[serde(default)]
    pub subject: Option<String>,
    /// The payload (for GuardDuty via EventBridge, a JSON string).
    pub message: String,
    /// When SNS sent it.
    pub timestamp: String,
    /// `1` or `2`.
    pub signature_version: String,
    /// Base64 RSA signature.
    pub signature: String,
    /// Where the signing certificate is.
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    /// Confirmation token (confirmations only).
    #[serde(default)]
    pub token: Option<String>,
    /// The URL that confirms the subscription (confirmations only).
    #[serde(default, rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
}

/// Why an SNS message is refused (401 unless said otherwise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// Not an SNS envelope.
    #[error("not an SNS message: {0}")]
    Envelope(String),
    /// A URL outside SNS's hosts of the allowed regions.
    #[error("{0}")]
    Host(String),
    /// The certificate could not be fetched or read.
    #[error("the signing certificate could not be used: {0}")]
    Certificate(String),
    /// The message is older than the source's delivery window, or from
    /// the future.
    #[error("the message's Timestamp `{0}` is outside the source's delivery window")]
    Stale(String),
    /// The signature does not verify.
    #[error("the SNS signature does not verify with the certificate at SigningCertURL")]
    Signature,
    /// The topic is not the source's.
    #[error("topic {0} is not one of this source's topic_arns")]
    Topic(String),
    /// The confirmation GET failed.
    #[error("the subscription could not be confirmed: {0}")]
    Confirm(String),
}

impl Envelope {
    /// Reads an envelope from the raw body.
    pub fn parse(body: &[u8]) -> Result<Self, SnsError> {
        serde_json::from_slice(body).map_err(|e| SnsError::Envelope(e.to_string()))
    }

    /// The text SNS signed: `Key\nvalue\n` for each signed key, in SNS's order.
    pub fn string_to_sign(&self) -> Result<String, SnsError> {
        let mut pairs: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.r#type.as_str() {
            "Notification" => {
                if let Some(s) = &self.subject {
                    pairs.push(("Subject", s));
                }
                pairs.extend([
                    ("Timestamp", self.timestamp.as_str()),
                    ("TopicArn", &self.topic_arn),
                ]);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let url = self
                    .subscribe_url
                    .as_deref()
                    .ok_or_else(|| SnsError::Envelope("no SubscribeURL".into()))?;
                let token = self
                    .token
                    .as_deref()
                    .ok_or_else(|| SnsError::Envelope("no Token".into()))?;
                pairs.extend([
                    ("SubscribeURL", url),
                    ("Timestamp", self.timestamp.as_str()),
                    ("Token", token),
                    ("TopicArn", &self.topic_arn),
                ]);
            }
            other => return Err(SnsError::Envelope(format!("unknown Type `{other}`"))),
        }
        pairs.push(("Type", &self.r#type));
        Ok(pairs.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect())
    }
}

/// The region of an SNS host name, if `host` is one.
fn sns_region(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sns.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    let ok = region.len() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(region)
}

/// Fetches certificates and confirmations from SNS, and remembers keys.
pub struct Sns {
    client: reqwest::Client,
    /// Set only by the loopback test override: SNS URLs may carry a port.
    ports_allowed: bool,
    keys: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    failed: Mutex<HashMap<String, Instant>>,
    fetches: tokio::sync::Semaphore,
}

/// The loopback override, if the environment sets one.
fn test_override() -> Result<Option<(SocketAddr, reqwest::Certificate)>, String> {
    let Ok(addr) = std::env::var("SOAR_TEST_SNS_ADDR") else {
        return Ok(None);
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("SOAR_TEST_SNS_ADDR `{addr}` is not an address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "SOAR_TEST_SNS_ADDR `{addr}` is not loopback: it is for tests only"
        ));
    }
    // Half an override (ports allowed, no CA to trust) is refused whole.
    let path = std::env::var("SOAR_TEST_SNS_CA")
        .map_err(|_| "SOAR_TEST_SNS_ADDR is set without SOAR_TEST_SNS_CA".to_string())?;
    let ca = std::fs::read(&path)
        .ok()
        .and_then(|pem| reqwest::Certificate::from_pem(&pem).ok())
        .ok_or_else(|| format!("SOAR_TEST_SNS_CA `{path}` is not a readable PEM certificate"))?;
    Ok(Some((addr, ca)))
}

impl Sns {
    /// A client for the regions of every SNS source.
    pub fn new(regions: &[String]) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        let over = test_override()?;
        if let Some((addr, ca)) = &over {
            tracing::warn!(%addr, "SOAR_TEST_SNS_ADDR is set: every SNS host resolves to this loopback address (tests only)");
            for region in regions {
                builder = builder.resolve(&format!("sns.{region}.amazonaws.com"), *addr);
            }
            builder = builder.add_root_certificate(ca.clone());
        }
        Ok(Sns {
            // Without its https-only, no-redirect, timeout client, SNS is
            // not checked at all: refuse to start rather than fall back.
            client: builder
                .build()
                .map_err(|e| format!("cannot build the SNS client: {e}"))?,
            ports_allowed: over.is_some(),
            keys: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            fetches: tokio::sync::Semaphore::new(MAX_FETCHES),
        })
    }

    /// `url` if it is HTTPS on an SNS host of one of `regions`.
    fn sns_url(&self, url: &str, what: &str, regions: &[String]) -> Result<url::Url, SnsError> {
        let refuse = || {
            SnsError::Host(format!("{what} must be an https URL on an SNS host (sns.REGION.amazonaws.com) of the source's regions ({})", regions.join(", ")))
        };
        let parsed = url::Url::parse(url).map_err(|_| refuse())?;
        let region = parsed.host_str().and_then(sns_region).ok_or_else(refuse)?;
        let ok = parsed.scheme() == "https"
            && parsed.username().is_empty()
            && parsed.password().is_none()
            && (parsed.port().is_none() || self.ports_allowed)
            && regions.iter().any(|r| r == region);
        ok.then_some(parsed).ok_or_else(refuse)
    }

    /// `SigningCertURL` on an SNS host, naming a certificate the way SNS
    /// does (`/SimpleNotificationService-<hex>.pem`): an unsigned request
    /// cannot send soar fetching arbitrary paths.
    fn cert_url(&self, url: &str, regions: &[String]) -> Result<url::Url, SnsError> {
        let parsed = self.sns_url(url, "SigningCertURL", regions)?;
        let name = parsed.path().strip_prefix("/SimpleNotificationService-");
        let ok = name.and_then(|n| n.strip_suffix(".pem")).is_some_and(|h| {
            !h.is_empty() && h.len() <= 64 && h.chars().all(|c| c.is_ascii_alphanumeric())
        }) && parsed.query().is_none();
        ok.then_some(parsed).ok_or_else(|| {
            SnsError::Host("SigningCertURL must name a certificate as SNS does: /SimpleNotificationService-<id>.pem".into())
        })
    }

    /// Checks the envelope's topic, age, signature (cheap checks first:
    /// a request that fails them fetches nothing).
    pub async fn verify(
        &self,
        env: &Envelope,
        topics: &[String],
        regions: &[String],
        window: Duration,
    ) -> Result<(), SnsError> {
        if !topics.contains(&env.topic_arn) {
            return Err(SnsError::Topic(env.topic_arn.clone()));
        }
        let algorithm: &dyn ring::signature::VerificationAlgorithm =
            match env.signature_version.as_str() {
                "1" => &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                v => {
                    return Err(SnsError::Envelope(format!(
                        "SignatureVersion `{v}` is not 1 or 2"
                    )))
                }
            };
        fresh(&env.timestamp, window)?;
        let signature =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &env.signature)
                .map_err(|_| SnsError::Signature)?;
        let text = env.string_to_sign()?;
        let url = self.cert_url(&env.signing_cert_url, regions)?;
        let key = self.public_key(&url).await?;
        ring::signature::UnparsedPublicKey::new(algorithm, key.as_slice())
            .verify(text.as_bytes(), &signature)
            .map_err(|_| SnsError::Signature)
    }

    /// The RSA public key of the certificate at `url`, cached. A URL that
    /// failed is not fetched again for a minute, and at most
    /// [`MAX_FETCHES`] fetches run at once: requests that are not yet
    /// proven cannot turn soar into a stream of requests to AWS.
    async fn public_key(&self, url: &url::Url) -> Result<Arc<Vec<u8>>, SnsError> {
        if let Some(k) = lock(&self.keys).get(url.as_str()) {
            return Ok(k.clone());
        }
        if let Some(when) = lock(&self.failed).get(url.as_str()) {
            if when.elapsed() < FAILED_FOR {
                return Err(SnsError::Certificate(
                    "it could not be fetched a moment ago; SNS will deliver again".into(),
                ));
            }
        }
        let _turn = self
            .fetches
            .acquire()
            .await
            .map_err(|_| SnsError::Certificate("the server is stopping".into()))?;
        let fetched = self.fetch(url).await.and_then(|pem| rsa_key(&pem));
        match fetched {
            Ok(key) => {
                let key = Arc::new(key);
                let mut keys = lock(&self.keys);
                if keys.len() >= CACHE_CAP {
                    keys.clear();
                }
                keys.insert(url.as_str().to_string(), key.clone());
                Ok(key)
            }
            Err(e) => {
                let mut failed = lock(&self.failed);
                if failed.len() >= CACHE_CAP {
                    failed.clear();
                }
                failed.insert(url.as_str().to_string(), Instant::now());
                Err(e)
            }
        }
    }

    /// The body at `url`, read no further than [`MAX_CERT_BYTES`].
    async fn fetch(&self, url: &url::Url) -> Result<Vec<u8>, SnsError> {
        let fail = |e: String| SnsError::Certificate(e);
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!(
                "the certificate host answered {}",
                response.status()
            )));
        }
        let mut pem = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?
        {
            if pem.len() + chunk.len() > MAX_CERT_BYTES {
                return Err(fail("the certificate is too large".into()));
            }
            pem.extend_from_slice(&chunk);
        }
        Ok(pem)
    }

    /// Confirms a subscription by fetching its `SubscribeURL`, only on an
    /// SNS host of an allowed region and for one of the source's topics.
    pub async fn confirm(&self, env: &Envelope, regions: &[String]) -> Result<(), SnsError> {
        let url = env.subscribe_url.as_deref().unwrap_or("");
        let parsed = self.sns_url(url, "SubscribeURL", regions)?;
        let names_topic = parsed
            .query_pairs()
            .any(|(k, v)| k == "TopicArn" && v == env.topic_arn);
        if !names_topic {
            return Err(SnsError::Host(
                "SubscribeURL does not confirm the message's TopicArn".into(),
            ));
        }
        let response = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(|e| SnsError::Confirm(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(SnsError::Confirm(format!(
                "SNS answered {}",
                response.status()
            )));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// SNS's `Timestamp`, within `window` of now (a captured message replayed
/// after its MessageId is forgotten is refused), and not ahead of the
/// clock by more than a little skew.
fn fresh(timestamp: &str, window: Duration) -> Result<(), SnsError> {
    let stale = || SnsError::Stale(timestamp.chars().take(40).collect());
    let sent = humantime::parse_rfc3339_weak(timestamp).map_err(|_| stale())?;
    let now = std::time::SystemTime::now();
    match now.duration_since(sent) {
        Ok(age) if age <= window => Ok(()),
        Ok(_) => Err(stale()),
        Err(ahead) if ahead.duration() <= Duration::from_secs(300) => Ok(()),
        Err(_) => Err(stale()),
    }
}

/// The RSA public key (PKCS#1 DER, as ring wants it) of a PEM certificate.
fn rsa_key(pem: &[u8]) -> Result<Vec<u8>, SnsError> {
    let fail = |e: String| SnsError::Certificate(e);
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| fail(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| fail(e.to_string()))?;
    let now = x509_parser::time::ASN1Time::now();
    if !cert.validity().is_valid_at(now) {
        return Err(fail("the certificate is expired or not yet valid".into()));
    }
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_hosts_of_allowed_regions_pass() {
        let sns = Sns::new(&[]).unwrap();
        let regions = vec!["us-east-1".to_string()];
        let ok = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem";
        assert!(sns.sns_url(ok, "SigningCertURL", &regions).is_ok());
        assert!(sns.cert_url(ok, &regions).is_ok());
        for path in [
            "/x.pem",
            "/SimpleNotificationService-.pem",
            "/SimpleNotificationService-a/../b.pem",
            "/SimpleNotificationService-abc.pem?x=1",
        ] {
            let url = format!("https://sns.us-east-1.amazonaws.com{path}");
            assert!(sns.cert_url(&url, &regions).is_err(), "{path}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.eu-west-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://s3.amazonaws.com/x.pem",
            "not a url",
        ] {
            let err = sns.sns_url(bad, "SigningCertURL", &regions).unwrap_err();
            assert!(
                err.to_string()
                    .contains("SigningCertURL must be an https URL on an SNS host"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_signed_text_follows_sns_order_per_type() {
        let env = Envelope {
            r#type: "Notification".into(),
            message_id: "m".into(),
            topic_arn: "arn:aws:sns:us-east-1:1:t".into(),
            subject: None,
            message: "hello".into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            token: None,
            subscribe_url: None,
        };
        assert_eq!(
            env.string_to_sign().unwrap(),
            "Message\nhello\nMessageId\nm\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n"
        );
        let mut with_subject = env.clone();
        with_subject.subject = Some("s".into());
        assert!(with_subject
            .string_to_sign()
            .unwrap()
            .contains("MessageId\nm\nSubject\ns\nTimestamp"));
        let mut confirm = env;
        confirm.r#type = "SubscriptionConfirmation".into();
        assert!(
            confirm.string_to_sign().is_err(),
            "a confirmation without SubscribeURL and Token"
        );
        confirm.subscribe_url = Some("u".into());
        confirm.token = Some("k".into());
        assert!(confirm
            .string_to_sign()
            .unwrap()
            .contains("SubscribeURL\nu\nTimestamp\n2026-01-01T00:00:00.000Z\nToken\nk\n"));
    }
}
