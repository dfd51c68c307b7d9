//! The operator's safety policy for destructive actions, from `soar.yaml`:
//! who may approve (name, roles, token hash), which assets are never acted
//! on, and how many targets one run may touch per action.

use super::{problem, ConfigProblem};
use crate::plugin_host::TargetKind;
use crate::yaml::{Pos, Spanned};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprovals {
    #[serde(default)]
    allow_self_approval: bool,
    #[serde(default)]
    approvers: BTreeMap<String, Spanned<RawApprover>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprover {
    #[serde(default)]
    roles: Vec<String>,
    token_sha256: Spanned<String>,
    #[serde(default)]
    slack: Option<SlackUser>,
}

/// `principals.NAME.slack`: the Slack user whose button clicks are this
/// principal's votes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackUser {
    /// Slack's `user.id` (e.g. `U024BE7LH`).
    pub user_id: String,
    /// Slack's `team.id` (e.g. `T024BE7LD`): a user id alone is not unique
    /// across workspaces.
    pub team_id: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProtected {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    ips: Vec<Spanned<String>>,
    #[serde(default)]
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlastCap {
    #[serde(default)]
    max_targets: Option<u32>,
    #[serde(default)]
    max_targets_single_approver: Option<u32>,
}

/// A principal: a person or system with a token and roles (approvers are
/// principals whose roles approval steps ask for). Only a hash of their token is
/// kept: the config file never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// Name used with `--as`.
    pub name: String,
    /// Roles an approval step may ask for.
    pub roles: Vec<String>,
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
    /// The Slack user who votes as this principal, if any.
    pub slack: Option<SlackUser>,
}

impl Approver {
    /// Whether this principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether `token` is this approver's (constant time in the token hash).
    pub fn token_matches(&self, token: &str) -> bool {
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        let digest: [u8; 32] = sha2::Sha256::digest(token.trim().as_bytes()).into();
        digest.ct_eq(&self.token_sha256).into()
    }
}

/// Assets no destructive action may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedAssets {
    /// Host ids and host names (compared case-insensitively).
    pub hosts: Vec<String>,
    /// User ids, logins and e-mail addresses (case-insensitive).
    pub users: Vec<String>,
    /// Addresses and CIDR ranges.
    pub ips: Vec<IpNet>,
    /// Domains; their subdomains are protected too.
    pub domains: Vec<String>,
}

/// Which protected entry a target value hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedHit {
    /// The value in the action's input or plan.
    pub value: String,
    /// The config entry it matched.
    pub entry: String,
}

impl ProtectedAssets {
    /// The protected entry `value` (a target of `kind`) falls under, if any.
    pub fn hit(&self, kind: TargetKind, value: &str) -> Option<ProtectedHit> {
        let v = value.trim();
        let found = |entry: &str| {
            Some(ProtectedHit {
                value: value.to_string(),
                entry: entry.to_string(),
            })
        };
        match kind {
            // A short name matches the FQDN it starts (`dc01` and
            // `dc01.corp.example`), in either direction.
            TargetKind::Host => {
                let v = v.trim_end_matches('.');
                let short = |name: &str| name.split('.').next().unwrap_or(name).to_string();
                self.hosts
                    .iter()
                    .find(|h| {
                        let h = h.trim_end_matches('.');
                        h.eq_ignore_ascii_case(v)
                            || (!h.contains('.') && h.eq_ignore_ascii_case(&short(v)))
                            || (!v.contains('.') && v.eq_ignore_ascii_case(&short(h)))
                    })
                    .and_then(|h| found(h))
            }
            TargetKind::User => self
                .users
                .iter()
                .find(|u| u.eq_ignore_ascii_case(v))
                .and_then(|u| found(u)),
            TargetKind::Ip => {
                // A value that is not an address cannot match; the guard
                // blocks such targets before asking (fail closed).
                // `::ffff:10.1.2.3` is the IPv4 address 10.1.2.3.
                let addr: IpAddr = v
                    .parse::<IpAddr>()
                    .or_else(|_| v.parse::<IpNet>().map(|n| n.network()))
                    .ok()?
                    .to_canonical();
                let net: Option<IpNet> = v.parse().ok();
                self.ips
                    .iter()
                    .find(|p| match net {
                        // A range target is protected if it overlaps a protected range.
                        Some(n) => p.contains(&n.network()) || n.contains(&p.network()),
                        None => p.contains(&addr),
                    })
                    .and_then(|p| found(&p.to_string()))
            }
            TargetKind::Domain => {
                let d = v.trim_end_matches('.').to_ascii_lowercase();
                self.domains
                    .iter()
                    .find(|p| {
                        // A subdomain of a protected domain, or a parent of
                        // one (blocking `org` blocks `example.org` too).
                        let p = p.trim_end_matches('.').to_ascii_lowercase();
                        d == p || d.ends_with(&format!(".{p}")) || p.ends_with(&format!(".{d}"))
                    })
                    .and_then(|p| found(p))
            }
        }
    }

    /// True when nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.users.is_empty()
            && self.ips.is_empty()
            && self.domains.is_empty()
    }
}

/// How many distinct targets one run may act on with one action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlastCap {
    /// Never more than this.
    pub max_targets: Option<u32>,
    /// More than this needs approvals from at least two people.
    pub max_targets_single_approver: Option<u32>,
}

/// Everything that decides whether a destructive action may run.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Approvers by name.
    pub approvers: BTreeMap<String, Approver>,
    /// Whoever started a run may approve it (single-person teams only).
    pub allow_self_approval: bool,
    /// Never-touch assets.
    pub protected: ProtectedAssets,
    /// Caps by `plugin.action`.
    pub blast_radius: BTreeMap<String, BlastCap>,
}

/// One principal, or its problems: a name in the safe alphabet, unique once
/// normalised, a token hash no one else has, and at least one role.
fn principal(
    key: &str,
    given: &str,
    spanned: &Spanned<RawApprover>,
    implicit: &[&str],
    known: &BTreeMap<String, Approver>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Approver> {
    let raw = &spanned.value;
    let name = match crate::names::normalise(given) {
        Ok(n) => n,
        Err(e) => {
            problem(problems, Pos::of(spanned), key.to_string(), e.to_string());
            return None;
        }
    };
    if known.contains_key(&name) {
        problem(
            problems,
            Pos::of(spanned),
            key.to_string(),
            format!("`{given}` is the same name as another principal once normalised (`{name}`)"),
        );
        return None;
    }
    let hex_text = raw.token_sha256.value.trim().to_ascii_lowercase();
    let mut hash = [0u8; 32];
    if hex::decode_to_slice(&hex_text, &mut hash).is_err() {
        problem(
            problems,
            Pos::of(&raw.token_sha256),
            format!("{key}.token_sha256"),
            "must be 64 hex digits: the SHA-256 of the principal's token (e.g. `printf %s \"$TOKEN\" | sha256sum`), never the token itself",
        );
        return None;
    }
    if let Some(other) = known.values().find(|a| a.token_sha256 == hash) {
        // A token names exactly one identity: the server knows who called
        // from the token alone.
        problem(
            problems,
            Pos::of(&raw.token_sha256),
            format!("{key}.token_sha256"),
            format!(
                "`{}` has the same token; give each principal its own",
                other.name
            ),
        );
        return None;
    }
    if raw.roles.is_empty() {
        problem(
            problems,
            Pos::of(spanned),
            format!("{key}.roles"),
            "list at least one role (ingest, operator, viewer, or a role approval steps ask for)",
        );
    }
    let mut roles = raw.roles.clone();
    for r in implicit {
        if !roles.iter().any(|have| have == r) {
            roles.push(r.to_string());
        }
    }
    if let Some(slack) = &raw.slack {
        if let Some(other) = known.values().find(|a| a.slack.as_ref() == Some(slack)) {
            problem(
                problems,
                Pos::of(spanned),
                format!("{key}.slack"),
                format!("`{}` is already that Slack user", other.name),
            );
            return None;
        }
    }
    Some(Approver {
        name,
        roles,
        token_sha256: hash,
        slack: raw.slack.clone(),
    })
}

/// Built-in roles (see `docs/configuration.md`): start runs, cancel and
/// resolve, read runs. Approval steps ask for any other role by name.
pub mod roles {
    /// Start runs (`POST /api/v1/runs`, bearer webhooks, `soar run`).
    pub const INGEST: &str = "ingest";
    /// Cancel runs and resolve in-doubt steps.
    pub const OPERATOR: &str = "operator";
    /// Read runs, journals and pending approvals.
    pub const VIEWER: &str = "viewer";
}

/// What an `approvals.approvers` entry (the config before `principals:`)
/// could do: everything but the approval roles it lists.
const LEGACY_APPROVER_ROLES: [&str; 3] = [roles::INGEST, roles::OPERATOR, roles::VIEWER];

pub(super) fn resolve(
    approvals: &RawApprovals,
    principals: &BTreeMap<String, Spanned<RawApprover>>,
    protected: &RawProtected,
    blast: &BTreeMap<String, Spanned<RawBlastCap>>,
    problems: &mut Vec<ConfigProblem>,
) -> Policy {
    let mut approvers = BTreeMap::new();
    for (given, spanned) in principals {
        let key = format!("principals.{given}");
        if let Some(p) = principal(&key, given, spanned, &[], &approvers, problems) {
            approvers.insert(p.name.clone(), p);
        }
    }
    for (given, spanned) in &approvals.approvers {
        let key = format!("approvals.approvers.{given}");
        let implicit = LEGACY_APPROVER_ROLES;
        if let Some(p) = principal(&key, given, spanned, &implicit, &approvers, problems) {
            approvers.insert(p.name.clone(), p);
        }
    }
    let mut ips = Vec::new();
    for (i, ip) in protected.ips.iter().enumerate() {
        let text = ip.value.trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
        match net {
            Ok(n) => ips.push(n),
            Err(_) => problem(
                problems,
                Pos::of(ip),
                format!("protected.ips[{i}]"),
                format!("`{text}` is neither an IP address nor a CIDR range"),
            ),
        }
    }
    let mut blast_radius = BTreeMap::new();
    for (action, cap) in blast {
        if action
            .split_once('.')
            .is_none_or(|(p, a)| p.is_empty() || a.is_empty())
        {
            problem(
                problems,
                Pos::of(cap),
                format!("blast_radius.{action}"),
                "keys are `plugin.action`, e.g. `edr.isolate_host`",
            );
            continue;
        }
        blast_radius.insert(
            action.clone(),
            BlastCap {
                max_targets: cap.value.max_targets,
                max_targets_single_approver: cap.value.max_targets_single_approver,
            },
        );
    }
    Policy {
        approvers,
        allow_self_approval: approvals.allow_self_approval,
        protected: ProtectedAssets {
            hosts: protected.hosts.clone(),
            users: protected.users.clone(),
            ips,
            domains: protected.domains.clone(),
        },
        blast_radius,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets() -> ProtectedAssets {
        ProtectedAssets {
            hosts: vec!["DC01".into(), "0a1b".into()],
            users: vec!["ceo@example.com".into()],
            ips: vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
            ],
            domains: vec!["example.com".into()],
        }
    }

    #[test]
    fn protected_matching_by_kind() {
        let a = assets();
        assert!(a.hit(TargetKind::Host, "dc01").is_some());
        assert!(a.hit(TargetKind::Host, "dc02").is_none());
        assert!(a.hit(TargetKind::User, "CEO@example.com").is_some());
        assert!(a.hit(TargetKind::Ip, "10.20.30.40").is_some());
        assert!(a.hit(TargetKind::Ip, "192.0.2.7").is_some());
        assert!(a.hit(TargetKind::Ip, "192.0.2.8").is_none());
        // A range that overlaps a protected one is protected.
        assert!(a.hit(TargetKind::Ip, "10.1.0.0/16").is_some());
        assert!(a.hit(TargetKind::Ip, "0.0.0.0/0").is_some());
        assert!(a.hit(TargetKind::Domain, "mail.Example.com.").is_some());
        assert!(a.hit(TargetKind::Domain, "example.com").is_some());
        assert!(a.hit(TargetKind::Domain, "notexample.com").is_none());
        assert!(a.hit(TargetKind::Domain, "com").is_some());
        assert!(a.hit(TargetKind::Ip, "::ffff:10.1.2.3").is_some());
        assert!(a.hit(TargetKind::Host, "DC01.corp.example.").is_some());
        assert!(a.hit(TargetKind::Host, "dc011.corp.example").is_none());
        // The same text under another kind is not a hit.
        assert!(a.hit(TargetKind::User, "dc01").is_none());
    }

    #[test]
    fn token_is_compared_by_hash() {
        use sha2::Digest;
        let approver = Approver {
            name: "alice".into(),
            roles: vec!["soc-lead".into()],
            token_sha256: sha2::Sha256::digest(b"s3cret").into(),
            slack: None,
        };
        assert!(approver.token_matches("s3cret"));
        assert!(approver.token_matches("s3cret\n"));
        assert!(!approver.token_matches("s3cre"));
        assert!(!approver.token_matches(""));
    }
}
