//! Simulated Okta Management API users endpoints (`okta-users.yaml`): get a
//! user by id, login or short name; reset the password; suspend; revoke
//! sessions. State is kept: a suspended user stays suspended, a reset leaves
//! the user in `RECOVERY`, and resets and revocations are counted.

use super::{header, json_response, query};
use serde_json::{json, Value};
use wiremock::{Request, ResponseTemplate};

/// The API token the simulator accepts (`Authorization: SSWS {token}`).
pub const OKTA_TOKEN: &str = "demo-okta-token";
/// An ACTIVE user: the usual target of the demo's containment playbook.
pub const OKTA_USER_ID: &str = "00u1abcd2EFGH3ijk4l5";
/// The login of [`OKTA_USER_ID`].
pub const OKTA_USER_LOGIN: &str = "j.doe@example.com";
/// An ACTIVE administrator, a natural "protected asset" for policy demos.
pub const OKTA_ADMIN_ID: &str = "00u9admn8ZYXW7vut6s5";
/// The login of [`OKTA_ADMIN_ID`].
pub const OKTA_ADMIN_LOGIN: &str = "it.admin@example.com";
/// A user who is already SUSPENDED: suspending again sends nothing.
pub const OKTA_SUSPENDED_ID: &str = "00u2susp3QRST4uvw5x6";
/// The login of [`OKTA_SUSPENDED_ID`].
pub const OKTA_SUSPENDED_LOGIN: &str = "c.contractor@example.com";

/// One simulated user and what was done to it.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) id: String,
    pub(super) login: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    /// `ACTIVE`, `SUSPENDED`, `RECOVERY`...
    pub(super) status: String,
    /// Active Okta sessions (revoking sets it to 0).
    pub(super) sessions: u32,
    /// Password resets started.
    pub(super) password_resets: u32,
    /// Session revocations received.
    pub(super) session_revocations: u32,
}

impl User {
    fn new(id: &str, login: &str, first: &str, last: &str, status: &str) -> Self {
        Self {
            id: id.into(),
            login: login.into(),
            first_name: first.into(),
            last_name: last.into(),
            status: status.into(),
            sessions: 2,
            password_resets: 0,
            session_revocations: 0,
        }
    }

    /// The user object as `GET /api/v1/users/{id}` returns it.
    fn to_json(&self, origin: &str) -> Value {
        let href = format!("{origin}/api/v1/users/{}", self.id);
        let mut links = json!({"self": {"href": href}});
        let lifecycle =
            |op: &str| json!({"href": format!("{href}/lifecycle/{op}"), "method": "POST"});
        match self.status.as_str() {
            "ACTIVE" => {
                links["suspend"] = lifecycle("suspend");
                links["resetPassword"] = lifecycle("reset_password");
                links["deactivate"] = lifecycle("deactivate");
            }
            "SUSPENDED" => {
                links["unsuspend"] = lifecycle("unsuspend");
                links["deactivate"] = lifecycle("deactivate");
            }
            _ => {
                links["deactivate"] = lifecycle("deactivate");
            }
        }
        json!({
            "id": self.id,
            "status": self.status,
            "created": "2024-03-04T09:15:00.000Z",
            "activated": "2024-03-04T09:16:00.000Z",
            "statusChanged": "2026-11-20T08:00:00.000Z",
            "lastLogin": "2026-11-27T08:41:07.000Z",
            "lastUpdated": "2026-11-20T08:00:00.000Z",
            "passwordChanged": "2026-09-01T12:00:00.000Z",
            "type": {"id": "oty1simdefault0000x7"},
            "profile": {
                "login": self.login,
                "email": self.login,
                "firstName": self.first_name,
                "lastName": self.last_name,
                "displayName": format!("{} {}", self.first_name, self.last_name),
                "userType": "Employee"
            },
            "credentials": {
                "password": {},
                "provider": {"type": "OKTA", "name": "OKTA"}
            },
            "_links": links
        })
    }
}

/// The simulated org's users.
pub(super) struct State {
    users: Vec<User>,
    /// Numbers reset tokens and error ids.
    counter: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            users: vec![
                User::new(OKTA_USER_ID, OKTA_USER_LOGIN, "Jane", "Doe", "ACTIVE"),
                User::new(OKTA_ADMIN_ID, OKTA_ADMIN_LOGIN, "Ida", "Admin", "ACTIVE"),
                User::new(
                    OKTA_SUSPENDED_ID,
                    OKTA_SUSPENDED_LOGIN,
                    "Carl",
                    "Contractor",
                    "SUSPENDED",
                ),
            ],
            counter: 0,
        }
    }
}

// Read by the demo and the end-to-end tests to check what a run changed.
#[allow(dead_code)]
impl State {
    /// The user with this id or login.
    pub(super) fn user(&self, key: &str) -> Option<&User> {
        self.find(key).map(|i| &self.users[i])
    }

    /// All users.
    pub(super) fn users(&self) -> &[User] {
        &self.users
    }
}

impl State {
    /// Index of the user named by id, login (case-insensitive) or unambiguous
    /// login short name, as Okta's `{id}` path parameter allows.
    fn find(&self, key: &str) -> Option<usize> {
        if let Some(i) = self.users.iter().position(|u| u.id == key) {
            return Some(i);
        }
        if let Some(i) = self
            .users
            .iter()
            .position(|u| u.login.eq_ignore_ascii_case(key))
        {
            return Some(i);
        }
        let short: Vec<usize> = (0..self.users.len())
            .filter(|&i| {
                let login = &self.users[i].login;
                login
                    .split_once('@')
                    .is_some_and(|(local, _)| local.eq_ignore_ascii_case(key))
            })
            .collect();
        match short.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Okta's error envelope.
    fn error(
        &mut self,
        status: u16,
        code: &str,
        summary: &str,
        causes: &[&str],
    ) -> ResponseTemplate {
        let id = format!("oaeSim{:016}", self.next());
        json_response(
            status,
            json!({
                "errorCode": code,
                "errorSummary": summary,
                "errorLink": code,
                "errorId": id,
                "errorCauses": causes.iter().map(|c| json!({"errorSummary": c})).collect::<Vec<_>>()
            }),
        )
    }

    fn not_found(&mut self, key: &str) -> ResponseTemplate {
        self.error(
            404,
            "E0000007",
            &format!("Not found: Resource not found: {key} (User)"),
            &[],
        )
    }
}

/// Decodes `%XX` escapes of one path segment (Okta wants logins URL-encoded).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Routes `/api/v1/users/...` like Okta.
pub(super) fn respond(state: &mut State, request: &Request) -> ResponseTemplate {
    if header(request, "authorization") != format!("SSWS {OKTA_TOKEN}") {
        return state.error(401, "E0000011", "Invalid token provided", &[]);
    }
    let path = request.url.path();
    let rest = path.strip_prefix("/api/v1/users/").unwrap_or("");
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    // Links point back at this server as the client addressed it.
    let origin = match header(request, "host") {
        "" => request.url.origin().ascii_serialization(),
        host => format!("{}://{host}", request.url.scheme()),
    };
    let method = request.method.as_str();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segs.as_slice()) {
        ("GET", [key]) if !key.is_empty() => match state.find(key) {
            Some(i) => json_response(200, state.users[i].to_json(&origin)),
            None => state.not_found(key),
        },
        ("POST", [key, "lifecycle", "suspend"]) => suspend(state, key),
        ("POST", [key, "lifecycle", "reset_password"]) => {
            reset_password(state, request, key, &origin)
        }
        // The sessions endpoint takes an id only, not a login.
        ("DELETE", [id, "sessions"]) => match state.users.iter().position(|u| u.id == *id) {
            Some(i) => {
                let user = &mut state.users[i];
                user.sessions = 0;
                user.session_revocations += 1;
                ResponseTemplate::new(204)
            }
            None => state.not_found(id),
        },
        (_, [_]) | (_, [_, "lifecycle", "suspend" | "reset_password"]) | (_, [_, "sessions"]) => {
            state.error(
                405,
                "E0000022",
                "The endpoint does not support the provided HTTP method",
                &[],
            )
        }
        _ => state.error(
            404,
            "E0000007",
            &format!("Not found: Resource not found: {path} (Endpoint)"),
            &[],
        ),
    }
}

/// Only an ACTIVE user can be suspended; the answer is 200 with no body.
fn suspend(state: &mut State, key: &str) -> ResponseTemplate {
    let Some(i) = state.find(key) else {
        return state.not_found(key);
    };
    if state.users[i].status != "ACTIVE" {
        return state.error(
            400,
            "E0000001",
            "Api validation failed: suspendUser",
            &["Cannot suspend a user that is not active"],
        );
    }
    state.users[i].status = "SUSPENDED".into();
    ResponseTemplate::new(200)
}

/// `sendEmail` is required. The user moves to RECOVERY; with
/// `sendEmail=false` the answer carries the one-time reset link.
fn reset_password(
    state: &mut State,
    request: &Request,
    key: &str,
    origin: &str,
) -> ResponseTemplate {
    let send_email = match query(request, "sendEmail").as_deref() {
        Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return state.error(
                400,
                "E0000001",
                "Api validation failed: sendEmail",
                &["sendEmail: must be true or false"],
            )
        }
        None => {
            return state.error(
                400,
                "E0000028",
                "The request is missing a required parameter.",
                &["sendEmail"],
            )
        }
    };
    let Some(i) = state.find(key) else {
        return state.not_found(key);
    };
    if matches!(
        state.users[i].status.as_str(),
        "SUSPENDED" | "DEPROVISIONED"
    ) {
        return state.error(
            403,
            "E0000038",
            "This operation is not allowed in the user's current status.",
            &[],
        );
    }
    let token = format!("XE6wSim{:013}", state.next());
    let user = &mut state.users[i];
    user.status = "RECOVERY".into();
    user.password_resets += 1;
    if query(request, "revokeSessions").as_deref() == Some("true") {
        user.sessions = 0;
        user.session_revocations += 1;
    }
    if send_email {
        json_response(200, json!({}))
    } else {
        json_response(
            200,
            json!({"resetPasswordUrl": format!("{origin}/reset_password/{token}")}),
        )
    }
}
