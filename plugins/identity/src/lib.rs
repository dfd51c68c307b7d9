//! `identity`: Okta Management API user actions for incident response: look a
//! user up, reset their password, revoke their sessions, suspend them.
//!
//! Every request carries `Authorization: SSWS {api_token}`, the token named as
//! a secret and filled in by the host. Destructive actions look the user up
//! first (a GET, allowed in dry runs): that resolves a login to the Okta id,
//! names a missing user before anything is written, and lets `suspend_user`
//! skip a user who is already suspended.

use soar_plugin_sdk::http::{encode, join, Part, Request, Response};
use soar_plugin_sdk::{
    export_plugin, Action, Context, Deserialize, Error, ErrorKind, JsonSchema, LogLevel, Plugin,
    Result, Serialize, TargetKind,
};

/// The connector's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "identity",
        env!("CARGO_PKG_VERSION"),
        "Okta: user status, password reset, session revocation and suspension",
    )
    .secret("api_token")
    .config_key("base_url")
    .action(
        Action::new(
            "get_user",
            "User status and profile by Okta id or login",
            get_user,
        )
        .idempotent()
        .target("user_id", TargetKind::User),
    )
    .action(
        // Not idempotent: every call issues a new one-time reset token (and
        // e-mail), and no user state tells that *this* call's reset happened.
        Action::new(
            "reset_password",
            "Start a password reset: the user cannot sign in until they complete it",
            reset_password,
        )
        .destructive()
        .target("user_id", TargetKind::User),
    )
    .action(
        // Revoking twice is harmless, so a retry after an unknown outcome is safe.
        Action::new(
            "revoke_sessions",
            "Revoke all of a user's Okta sessions, optionally their OAuth tokens too",
            revoke_sessions,
        )
        .destructive()
        .idempotent()
        .target("user_id", TargetKind::User),
    )
    .action(
        Action::new(
            "suspend_user",
            "Suspend an ACTIVE user; nothing is sent when the user is already suspended",
            suspend_user,
        )
        .destructive()
        .idempotent()
        .probe("get_user")
        .target("user_id", TargetKind::User),
    )
}

export_plugin!(plugin);

/// Input of `get_user` and `suspend_user`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Okta user id (`00u...`), login (`j.doe@example.com`) or unambiguous
    /// login short name.
    #[schemars(length(min = 1))]
    pub user_id: String,
}

/// Input of `reset_password`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordInput {
    /// Okta user id, login or unambiguous login short name.
    #[schemars(length(min = 1))]
    pub user_id: String,
    /// E-mail the reset link to the user (default). When false, Okta returns
    /// the link instead and this action outputs it as `reset_password_url`:
    /// it is a credential, and it is journaled like any other output.
    #[serde(default = "yes")]
    pub send_email: bool,
}

/// Input of `revoke_sessions`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeSessionsInput {
    /// Okta user id, login or unambiguous login short name.
    #[schemars(length(min = 1))]
    pub user_id: String,
    /// Also revoke the OpenID Connect and OAuth refresh and access tokens
    /// issued to the user (default false).
    #[serde(default)]
    pub oauth_tokens: bool,
}

fn yes() -> bool {
    true
}

/// A user's lifecycle status as Okta reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    /// Can sign in.
    Active,
    /// Created, activation not started.
    Staged,
    /// Activation started, not completed by the user.
    Provisioned,
    /// A password reset is in progress: cannot sign in until it completes.
    Recovery,
    /// Must change the password at next sign-in.
    PasswordExpired,
    /// Locked out after too many failed sign-ins.
    LockedOut,
    /// Suspended by an administrator: cannot sign in.
    Suspended,
    /// Deactivated.
    Deprovisioned,
    /// A status this connector does not know, kept verbatim.
    #[serde(untagged)]
    Other(String),
}

impl UserStatus {
    /// Okta's spelling, for messages.
    fn as_str(&self) -> &str {
        match self {
            Self::Active => "ACTIVE",
            Self::Staged => "STAGED",
            Self::Provisioned => "PROVISIONED",
            Self::Recovery => "RECOVERY",
            Self::PasswordExpired => "PASSWORD_EXPIRED",
            Self::LockedOut => "LOCKED_OUT",
            Self::Suspended => "SUSPENDED",
            Self::Deprovisioned => "DEPROVISIONED",
            Self::Other(s) => s,
        }
    }
}

/// Output of `get_user`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct User {
    /// Okta user id.
    pub id: String,
    /// Lifecycle status.
    pub status: UserStatus,
    /// `profile.login`, when reported.
    pub login: Option<String>,
    /// `profile.email`, when reported.
    pub email: Option<String>,
    /// `profile.displayName`, when reported.
    pub display_name: Option<String>,
    /// Last sign-in (RFC 3339), when reported.
    pub last_login: Option<String>,
    /// When the status last changed (RFC 3339), when reported.
    pub status_changed: Option<String>,
    /// The probe answer for crash reconciliation: whether the effect of each
    /// destructive action this probe covers is already in place.
    pub effects: Effects,
}

/// Whether a destructive action's effect is in place for this user.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Effects {
    /// The user is `SUSPENDED`.
    pub suspend_user: bool,
}

/// Output of `suspend_user`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Suspension {
    /// Okta user id.
    pub user_id: String,
    /// `profile.login`, when reported.
    pub login: Option<String>,
    /// True when the user was already suspended: nothing was sent.
    pub already: bool,
    /// Present and true in a dry run: the suspension was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
    /// The status after the call (or the current one, when nothing was sent).
    pub status: UserStatus,
}

/// Output of `reset_password`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PasswordReset {
    /// Okta user id.
    pub user_id: String,
    /// `profile.login`, when reported.
    pub login: Option<String>,
    /// Whether Okta was asked to e-mail the reset link to the user.
    pub send_email: bool,
    /// Present and true in a dry run: the reset was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
    /// The status after the call (`RECOVERY`), or the current one in a dry run.
    pub status: UserStatus,
    /// The one-time reset link, only when `send_email` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_password_url: Option<String>,
}

/// Output of `revoke_sessions`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionRevocation {
    /// Okta user id.
    pub user_id: String,
    /// `profile.login`, when reported.
    pub login: Option<String>,
    /// Whether OAuth and OpenID Connect tokens were revoked too.
    pub oauth_tokens: bool,
    /// Present and true in a dry run: the revocation was planned, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
}

/// Okta's user object (only what we use).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaUser {
    id: String,
    status: UserStatus,
    #[serde(default)]
    profile: OktaProfile,
    last_login: Option<String>,
    status_changed: Option<String>,
}

/// `profile` of an Okta user (only what we use).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OktaProfile {
    login: Option<String>,
    email: Option<String>,
    display_name: Option<String>,
}

/// Okta's error body: `{"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaError {
    error_code: String,
    #[serde(default)]
    error_summary: String,
    #[serde(default)]
    error_id: String,
    #[serde(default)]
    error_causes: Vec<OktaErrorCause>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaErrorCause {
    #[serde(default)]
    error_summary: String,
}

/// `reset_password`'s answer: a link only when `sendEmail=false`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ResetPasswordToken {
    reset_password_url: Option<String>,
}

/// Okta's "operation not allowed in the user's current status": a state
/// conflict, although Okta answers it with HTTP 403.
const NOT_ALLOWED_IN_STATUS: &str = "E0000038";

/// The typed error for a non-2xx Okta answer: the kind from its status (429
/// reads `X-Rate-Limit-Reset`), the message from Okta's error body.
fn okta_error(response: &Response, doing: &str) -> Error {
    let (kind, detail) = okta_detail(response);
    let hint = if response.status == 401 {
        " (check the `api_token` secret granted to this connector)"
    } else {
        ""
    };
    Error::new(kind, format!("Okta refused to {doing}: {detail}{hint}"))
}

/// The error kind of a non-2xx Okta answer and a one-line account of it:
/// `HTTP 404 E0000007: Not found: ... [errorId ...]`.
fn okta_detail(response: &Response) -> (ErrorKind, String) {
    let generic = Error::from_response(response);
    let Ok(body) = serde_json::from_slice::<OktaError>(&response.body) else {
        return (generic.kind, generic.message);
    };
    let kind = if body.error_code == NOT_ALLOWED_IN_STATUS {
        ErrorKind::Conflict
    } else {
        generic.kind
    };
    let mut detail = format!(
        "HTTP {} {}: {}",
        response.status, body.error_code, body.error_summary
    );
    let causes: Vec<&str> = body
        .error_causes
        .iter()
        .map(|c| c.error_summary.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    if !causes.is_empty() {
        detail.push_str(&format!(" ({})", causes.join("; ")));
    }
    if !body.error_id.is_empty() {
        detail.push_str(&format!(" [errorId {}]", body.error_id));
    }
    (kind, detail)
}

/// The configured Okta org.
struct Okta {
    base: String,
}

impl Okta {
    fn new(ctx: &Context) -> Result<Self> {
        Ok(Self {
            base: ctx.config("base_url")?,
        })
    }

    /// A request to `path` with the SSWS token named, never held.
    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, join(&self.base, path))
            .header_parts(
                "authorization",
                vec![Part::Text("SSWS ".into()), Part::Secret("api_token".into())],
            )
            .header("accept", "application/json")
    }

    /// The user `key` (id, login or short name); a 404 is not-found naming it.
    fn user(&self, key: &str) -> Result<User> {
        let response = self
            .request("GET", &format!("api/v1/users/{}", encode(key)))
            .send()?;
        if response.status == 404 {
            let (_, detail) = okta_detail(&response);
            return Err(Error::not_found(format!(
                "Okta has no user `{key}` ({detail})"
            )));
        }
        if !response.is_success() {
            return Err(okta_error(&response, &format!("look up user `{key}`")));
        }
        let user: OktaUser = response.json_body()?;
        Ok(User {
            effects: Effects {
                suspend_user: user.status == UserStatus::Suspended,
            },
            id: user.id,
            status: user.status,
            login: user.profile.login,
            email: user.profile.email,
            display_name: user.profile.display_name,
            last_login: user.last_login,
            status_changed: user.status_changed,
        })
    }

    /// Sends a write; any 2xx is accepted, anything else is a typed error.
    fn write(&self, method: &str, path: &str, doing: &str) -> Result<Response> {
        let response = self.request(method, path).send()?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(okta_error(&response, doing))
        }
    }
}

/// The trimmed user key, or invalid input before anything is sent.
fn user_key(user_id: &str) -> Result<&str> {
    let key = user_id.trim();
    if key.is_empty() {
        return Err(Error::invalid_input("`user_id` must not be empty"));
    }
    // Okta cannot look a login up when it contains `/` (its docs say so):
    // such users can only be addressed by id, which never contains one.
    if key.contains('/') {
        return Err(Error::invalid_input(format!(
            "`{key}` contains `/`: Okta can look such a login up only by the user's id (00u...)"
        )));
    }
    Ok(key)
}

fn get_user(input: UserInput, ctx: &Context) -> Result<User> {
    let key = user_key(&input.user_id)?;
    Okta::new(ctx)?.user(key)
}

fn suspend_user(input: UserInput, ctx: &Context) -> Result<Suspension> {
    let key = user_key(&input.user_id)?;
    let okta = Okta::new(ctx)?;
    let user = okta.user(key)?;
    let output = |already: bool, planned: Option<bool>, status: UserStatus| Suspension {
        user_id: user.id.clone(),
        login: user.login.clone(),
        already,
        planned,
        status,
    };
    match &user.status {
        UserStatus::Suspended => {
            ctx.log(
                LogLevel::Info,
                "user already suspended; nothing sent",
                &[("user_id", &user.id)],
            );
            return Ok(output(true, None, UserStatus::Suspended));
        }
        UserStatus::Active => {}
        other => {
            return Err(Error::conflict(format!(
                "user `{key}` is {}: Okta suspends only ACTIVE users, so nothing was sent \
                 (suspend before resetting the password, or deactivate the user instead)",
                other.as_str()
            )))
        }
    }
    if ctx.dry_run() {
        return Ok(output(false, Some(true), user.status.clone()));
    }
    let path = format!("api/v1/users/{}/lifecycle/suspend", encode(&user.id));
    okta.write("POST", &path, &format!("suspend user `{key}`"))
        .map_err(|e| match e.kind {
            // The user left ACTIVE between our read and the write.
            ErrorKind::InvalidInput => Error::conflict(e.message),
            _ => e,
        })?;
    ctx.log(
        LogLevel::Info,
        "Okta suspended the user",
        &[("user_id", &user.id)],
    );
    Ok(output(false, None, UserStatus::Suspended))
}

fn reset_password(input: ResetPasswordInput, ctx: &Context) -> Result<PasswordReset> {
    let key = user_key(&input.user_id)?;
    let okta = Okta::new(ctx)?;
    let user = okta.user(key)?;
    let output = |planned: Option<bool>, status: UserStatus, url: Option<String>| PasswordReset {
        user_id: user.id.clone(),
        login: user.login.clone(),
        send_email: input.send_email,
        planned,
        status,
        reset_password_url: url,
    };
    if ctx.dry_run() {
        return Ok(output(Some(true), user.status.clone(), None));
    }
    // `sendEmail` is a required parameter: always send it.
    let path = format!(
        "api/v1/users/{}/lifecycle/reset_password?sendEmail={}",
        encode(&user.id),
        input.send_email
    );
    let response = okta.write(
        "POST",
        &path,
        &format!("reset the password of user `{key}`"),
    )?;
    // The reset happened: a body we cannot read must not turn it into a failure.
    let token: ResetPasswordToken = serde_json::from_slice(&response.body).unwrap_or_default();
    if !input.send_email && token.reset_password_url.is_none() {
        ctx.log(
            LogLevel::Warn,
            "Okta started the reset but returned no resetPasswordUrl",
            &[("user_id", &user.id)],
        );
    }
    ctx.log(
        LogLevel::Info,
        "Okta started a password reset",
        &[
            ("user_id", &user.id),
            ("send_email", &input.send_email.to_string()),
        ],
    );
    let url = if input.send_email {
        None
    } else {
        token.reset_password_url
    };
    Ok(output(None, UserStatus::Recovery, url))
}

fn revoke_sessions(input: RevokeSessionsInput, ctx: &Context) -> Result<SessionRevocation> {
    let key = user_key(&input.user_id)?;
    let okta = Okta::new(ctx)?;
    // The sessions endpoint takes only an id: resolve a login first.
    let user = okta.user(key)?;
    let output = |planned: Option<bool>| SessionRevocation {
        user_id: user.id.clone(),
        login: user.login.clone(),
        oauth_tokens: input.oauth_tokens,
        planned,
    };
    if ctx.dry_run() {
        return Ok(output(Some(true)));
    }
    let path = format!(
        "api/v1/users/{}/sessions?oauthTokens={}",
        encode(&user.id),
        input.oauth_tokens
    );
    okta.write(
        "DELETE",
        &path,
        &format!("revoke the sessions of user `{key}`"),
    )?;
    ctx.log(
        LogLevel::Info,
        "Okta revoked the user's sessions",
        &[
            ("user_id", &user.id),
            ("oauth_tokens", &input.oauth_tokens.to_string()),
        ],
    );
    Ok(output(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_plugin_sdk::http::HttpError;
    use soar_plugin_sdk::testing::{MockHost, RecordedRequest};
    use soar_plugin_sdk::{json, Invocation, RetryAfter, Value};

    const BASE: &str = "https://acme.okta.test";
    const ID: &str = "00u1abcd2EFGH3ijk4l5";
    const LOGIN: &str = "j.doe@example.com";
    const USER_URL: &str = "https://acme.okta.test/api/v1/users/00u1abcd2EFGH3ijk4l5";
    const LOGIN_URL: &str = "https://acme.okta.test/api/v1/users/j.doe%40example.com";
    const SUSPEND_URL: &str =
        "https://acme.okta.test/api/v1/users/00u1abcd2EFGH3ijk4l5/lifecycle/suspend";
    const RESET_URL: &str = "https://acme.okta.test/api/v1/users/00u1abcd2EFGH3ijk4l5/lifecycle/reset_password?sendEmail=true";
    const RESET_NO_EMAIL_URL: &str = "https://acme.okta.test/api/v1/users/00u1abcd2EFGH3ijk4l5/lifecycle/reset_password?sendEmail=false";
    const SESSIONS_URL: &str =
        "https://acme.okta.test/api/v1/users/00u1abcd2EFGH3ijk4l5/sessions?oauthTokens=false";

    fn user(status: &str) -> Response {
        Response::json(
            200,
            &json!({
                "id": ID,
                "status": status,
                "created": "2024-01-10T09:00:00.000Z",
                "statusChanged": "2026-05-01T10:00:00.000Z",
                "lastLogin": "2026-05-02T08:30:00.000Z",
                "profile": {
                    "login": LOGIN,
                    "email": "jane.doe@example.com",
                    "displayName": "Jane Doe",
                    "firstName": "Jane",
                    "lastName": "Doe"
                },
                "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
                "_links": {"self": {"href": USER_URL}}
            }),
        )
    }

    fn okta_error_body(status: u16, code: &str, summary: &str) -> Response {
        Response::json(
            status,
            &json!({
                "errorCode": code,
                "errorSummary": summary,
                "errorLink": code,
                "errorId": "oaeTESTabc123",
                "errorCauses": []
            }),
        )
    }

    /// A host that reports the user with `status` (looked up by id).
    fn okta(status: &str) -> MockHost {
        MockHost::new().respond("GET", USER_URL, user(status))
    }

    fn call_with(
        mock: MockHost,
        action: &str,
        input: Value,
        invocation: Invocation,
    ) -> (Result<Value>, MockHost) {
        mock.config("base_url", BASE)
            .run(|| plugin().call(action, input, invocation))
    }

    fn call(mock: MockHost, action: &str, input: Value) -> (Result<Value>, MockHost) {
        call_with(mock, action, input, Invocation::for_test("k1"))
    }

    fn dry_run() -> Invocation {
        Invocation {
            dry_run: true,
            ..Invocation::for_test("k1")
        }
    }

    fn writes(mock: &MockHost) -> Vec<&RecordedRequest> {
        mock.requests()
            .iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    #[test]
    fn get_user_sends_the_ssws_token_by_name_and_maps_the_profile() {
        let (out, mock) = call(okta("ACTIVE"), "get_user", json!({ "user_id": ID }));
        assert_eq!(
            out.unwrap(),
            json!({
                "id": ID,
                "status": "ACTIVE",
                "login": LOGIN,
                "email": "jane.doe@example.com",
                "display_name": "Jane Doe",
                "last_login": "2026-05-02T08:30:00.000Z",
                "status_changed": "2026-05-01T10:00:00.000Z",
                "effects": {"suspend_user": false}
            })
        );
        assert_eq!(mock.requests().len(), 1);
        let get = &mock.requests()[0];
        assert_eq!((get.method.as_str(), get.url.as_str()), ("GET", USER_URL));
        assert_eq!(
            get.header("authorization"),
            Some("SSWS {{secret:api_token}}")
        );
        assert_eq!(get.header("accept"), Some("application/json"));
        assert!(get.body.is_empty());
    }

    #[test]
    fn get_user_by_login_encodes_it_and_reports_suspension_as_effect() {
        let mock = MockHost::new().respond("GET", LOGIN_URL, user("SUSPENDED"));
        let (out, _) = call(
            mock,
            "get_user",
            json!({ "user_id": " j.doe@example.com " }),
        );
        let out = out.unwrap();
        assert_eq!(out["id"], ID);
        assert_eq!(out["effects"], json!({"suspend_user": true}));
        let body = json!({"id": ID, "status": "ACTIVATING_SOMEHOW", "profile": {}});
        let mock = MockHost::new().respond("GET", USER_URL, Response::json(200, &body));
        let out = call(mock, "get_user", json!({ "user_id": ID })).0.unwrap();
        assert_eq!(out["status"], "ACTIVATING_SOMEHOW");
        assert_eq!(out["login"], Value::Null);
    }

    #[test]
    fn unknown_user_is_not_found_naming_it_and_nothing_is_written() {
        let gone = okta_error_body(
            404,
            "E0000007",
            "Not found: Resource not found: nobody@example.com (User)",
        );
        let url = "https://acme.okta.test/api/v1/users/nobody%40example.com";
        for action in [
            "get_user",
            "suspend_user",
            "revoke_sessions",
            "reset_password",
        ] {
            let mock = MockHost::new().respond("GET", url, gone.clone());
            let (out, mock) = call(mock, action, json!({ "user_id": "nobody@example.com" }));
            let err = out.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound, "{action}");
            assert!(
                err.message.contains("nobody@example.com"),
                "{}",
                err.message
            );
            assert!(err.message.contains("E0000007"), "{}", err.message);
            assert!(writes(&mock).is_empty(), "{action}");
        }
    }

    #[test]
    fn bad_token_is_unauthorized_with_a_hint() {
        let mock = MockHost::new().respond(
            "GET",
            USER_URL,
            okta_error_body(401, "E0000011", "Invalid token provided"),
        );
        let (out, mock) = call(mock, "suspend_user", json!({ "user_id": ID }));
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unauthorized);
        assert!(err.message.contains("E0000011"), "{}", err.message);
        assert!(err.message.contains("api_token"), "{}", err.message);
        assert!(err.message.contains("oaeTESTabc123"), "{}", err.message);
        assert_eq!(mock.requests().len(), 1);
    }

    #[test]
    fn rate_limit_carries_okta_reset_time() {
        let limited = okta_error_body(
            429,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )
        .with_header("X-Rate-Limit-Limit", "600")
        .with_header("X-Rate-Limit-Remaining", "0")
        .with_header("X-Rate-Limit-Reset", "1767225660");
        let mock = MockHost::new().respond("GET", USER_URL, limited.clone());
        let err = call(mock, "get_user", json!({ "user_id": ID }))
            .0
            .unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::AtUnixSeconds(1_767_225_660)))
        );
        let mock = okta("ACTIVE").respond("POST", SUSPEND_URL, limited);
        let err = call(mock, "suspend_user", json!({ "user_id": ID }))
            .0
            .unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited(Some(RetryAfter::AtUnixSeconds(1_767_225_660)))
        );
    }

    #[test]
    fn vendor_errors_map_to_kinds() {
        for (status, kind) in [
            (500, ErrorKind::Unavailable),
            (503, ErrorKind::Unavailable),
            (403, ErrorKind::Unauthorized),
        ] {
            let mock = okta("ACTIVE").respond("POST", SUSPEND_URL, Response::bytes(status, ""));
            let err = call(mock, "suspend_user", json!({ "user_id": ID }))
                .0
                .unwrap_err();
            assert_eq!(err.kind, kind, "status {status}");
            assert!(err.message.contains("suspend user"), "{}", err.message);
        }
        let mock = MockHost::new().fail("GET", USER_URL, HttpError::Timeout);
        let err = call(mock, "get_user", json!({ "user_id": ID }))
            .0
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        let mock = MockHost::new().respond("GET", USER_URL, Response::bytes(200, "<html>"));
        let err = call(mock, "get_user", json!({ "user_id": ID }))
            .0
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
    }

    #[test]
    fn suspend_active_user_sends_one_post_with_the_resolved_id() {
        let mock = MockHost::new()
            .respond("GET", LOGIN_URL, user("ACTIVE"))
            .respond("POST", SUSPEND_URL, Response::bytes(200, ""));
        let (out, mock) = call(mock, "suspend_user", json!({ "user_id": LOGIN }));
        assert_eq!(
            out.unwrap(),
            json!({"user_id": ID, "login": LOGIN, "already": false, "status": "SUSPENDED"})
        );
        let writes = writes(&mock);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].url, SUSPEND_URL);
        assert_eq!(
            writes[0].header("authorization"),
            Some("SSWS {{secret:api_token}}")
        );
        assert!(writes[0].body.is_empty());
    }

    #[test]
    fn suspend_already_suspended_user_sends_nothing() {
        let (out, mock) = call(okta("SUSPENDED"), "suspend_user", json!({ "user_id": ID }));
        assert_eq!(
            out.unwrap(),
            json!({"user_id": ID, "login": LOGIN, "already": true, "status": "SUSPENDED"})
        );
        assert!(writes(&mock).is_empty());
        assert_eq!(mock.requests().len(), 1);
    }

    #[test]
    fn suspend_non_active_user_is_a_conflict_without_a_write() {
        for status in ["RECOVERY", "DEPROVISIONED", "STAGED", "SOMETHING_NEW"] {
            let (out, mock) = call(okta(status), "suspend_user", json!({ "user_id": ID }));
            let err = out.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Conflict, "{status}");
            assert!(err.message.contains(status), "{}", err.message);
            assert!(writes(&mock).is_empty(), "{status}");
        }
    }

    #[test]
    fn suspend_racing_a_status_change_is_a_conflict() {
        let refused = Response::json(
            400,
            &json!({"errorCode": "E0000001", "errorSummary": "Api validation failed: suspendUser",
                "errorLink": "E0000001", "errorId": "x",
                "errorCauses": [{"errorSummary": "Cannot suspend a user that is not active"}]}),
        );
        let mock = okta("ACTIVE").respond("POST", SUSPEND_URL, refused);
        let err = call(mock, "suspend_user", json!({ "user_id": ID }))
            .0
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert!(err.message.contains("not active"), "{}", err.message);
    }

    #[test]
    fn dry_run_plans_every_write_without_sending_it() {
        for (action, input) in [
            ("suspend_user", json!({ "user_id": ID })),
            ("reset_password", json!({ "user_id": ID })),
            ("revoke_sessions", json!({ "user_id": ID })),
        ] {
            let (out, mock) = call_with(okta("ACTIVE"), action, input, dry_run());
            let out = out.unwrap();
            assert_eq!(out["planned"], true, "{action}");
            assert_eq!(out["user_id"], ID, "{action}");
            assert!(writes(&mock).is_empty(), "{action}");
            assert_eq!(mock.requests().len(), 1, "{action}");
        }
        let (out, _) = call_with(
            okta("SUSPENDED"),
            "suspend_user",
            json!({ "user_id": ID }),
            dry_run(),
        );
        let out = out.unwrap();
        assert_eq!(out["already"], true);
        assert_eq!(out.get("planned"), None);
    }

    #[test]
    fn reset_password_always_sends_send_email() {
        let mock = okta("ACTIVE").respond("POST", RESET_URL, Response::json(200, &json!({})));
        let (out, mock) = call(mock, "reset_password", json!({ "user_id": ID }));
        assert_eq!(
            out.unwrap(),
            json!({"user_id": ID, "login": LOGIN, "send_email": true, "status": "RECOVERY"})
        );
        let writes = writes(&mock);
        assert_eq!(writes.len(), 1);
        assert_eq!(
            (writes[0].method.as_str(), writes[0].url.as_str()),
            ("POST", RESET_URL)
        );
        assert_eq!(
            writes[0].header("authorization"),
            Some("SSWS {{secret:api_token}}")
        );
    }

    #[test]
    fn reset_password_without_email_returns_the_link() {
        let link = "https://acme.okta.test/reset_password/XE6wE17zmphl3KqAPFxO";
        let mock = okta("ACTIVE").respond(
            "POST",
            RESET_NO_EMAIL_URL,
            Response::json(200, &json!({ "resetPasswordUrl": link })),
        );
        let (out, mock) = call(
            mock,
            "reset_password",
            json!({ "user_id": ID, "send_email": false }),
        );
        let out = out.unwrap();
        assert_eq!(out["reset_password_url"], link);
        assert_eq!(out["send_email"], false);
        assert_eq!(writes(&mock)[0].url, RESET_NO_EMAIL_URL);
    }

    #[test]
    fn reset_password_not_allowed_in_status_is_a_conflict() {
        let mock = okta("SUSPENDED").respond(
            "POST",
            RESET_URL,
            okta_error_body(
                403,
                "E0000038",
                "This operation is not allowed in the user's current status.",
            ),
        );
        let err = call(mock, "reset_password", json!({ "user_id": ID }))
            .0
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert!(err.message.contains("current status"), "{}", err.message);
    }

    #[test]
    fn revoke_sessions_resolves_the_login_and_sends_a_delete() {
        let tokens_url =
            "https://acme.okta.test/api/v1/users/00u1abcd2EFGH3ijk4l5/sessions?oauthTokens=true";
        let mock = MockHost::new()
            .respond("GET", LOGIN_URL, user("ACTIVE"))
            .respond("DELETE", SESSIONS_URL, Response::bytes(204, ""))
            .respond("DELETE", tokens_url, Response::bytes(204, ""));
        let (out, mock) = call(mock, "revoke_sessions", json!({ "user_id": LOGIN }));
        assert_eq!(
            out.unwrap(),
            json!({"user_id": ID, "login": LOGIN, "oauth_tokens": false})
        );
        let sent = writes(&mock);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].method.as_str(), sent[0].url.as_str()),
            ("DELETE", SESSIONS_URL)
        );
        assert_eq!(
            sent[0].header("authorization"),
            Some("SSWS {{secret:api_token}}")
        );
        let mock = okta("ACTIVE").respond("DELETE", tokens_url, Response::bytes(204, ""));
        let (out, mock) = call(
            mock,
            "revoke_sessions",
            json!({ "user_id": ID, "oauth_tokens": true }),
        );
        assert_eq!(out.unwrap()["oauth_tokens"], true);
        assert_eq!(writes(&mock)[0].url, tokens_url);
    }

    #[test]
    fn bad_input_and_missing_config_send_nothing() {
        for input in [
            json!({"user_id": "  "}),
            json!({"user_id": "ou=people/j.doe"}),
            json!({"user_id": ID, "extra": 1}),
            json!({}),
        ] {
            let (out, mock) = call(MockHost::new(), "suspend_user", input.clone());
            assert_eq!(out.unwrap_err().kind, ErrorKind::InvalidInput, "{input}");
            assert!(mock.requests().is_empty());
        }
        let (out, mock) = MockHost::new().run(|| {
            plugin().call(
                "get_user",
                json!({ "user_id": ID }),
                Invocation::for_test("k"),
            )
        });
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("base_url"), "{}", err.message);
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn manifest_marks_actions_targets_and_probe() {
        let manifest = plugin().manifest();
        let action = |name: &str| {
            manifest
                .actions
                .iter()
                .find(|a| a.name == name)
                .unwrap()
                .clone()
        };
        let flags = |name: &str| {
            let a = action(name);
            (a.destructive, a.idempotent, a.probe)
        };
        assert_eq!(flags("get_user"), (false, true, None));
        assert_eq!(flags("reset_password"), (true, false, None));
        assert_eq!(flags("revoke_sessions"), (true, true, None));
        assert_eq!(flags("suspend_user"), (true, true, Some("get_user".into())));
        for a in &manifest.actions {
            assert_eq!(a.targets.len(), 1, "{}", a.name);
            assert_eq!(a.targets[0].field, "user_id");
            assert_eq!(a.targets[0].kind, TargetKind::User);
            assert_eq!(a.input_schema["additionalProperties"], false, "{}", a.name);
        }
        let reset = action("reset_password");
        assert_eq!(reset.input_schema["required"], json!(["user_id"]));
        assert_eq!(
            reset.input_schema["properties"]["send_email"]["default"],
            true
        );
        // The probe must accept the input of the action it probes.
        assert_eq!(
            action("get_user").input_schema["properties"],
            action("suspend_user").input_schema["properties"]
        );
        assert_eq!(manifest.secrets, ["api_token"]);
        assert_eq!(manifest.config_keys, ["base_url"]);
    }
}
