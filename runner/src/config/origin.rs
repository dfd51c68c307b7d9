//! Network origins (scheme, host, port): the unit in which the operator
//! grants hosts to plugins and secrets. Both grants and request URLs are
//! normalised the same way so `HTTPS://API.Example.com.:443` cannot slip by.

use url::Url;

/// `scheme://host:port`, normalised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host, IDNA-encoded, without a trailing dot; IPv6 in brackets.
    pub host: String,
    /// Explicit or default port.
    pub port: u16,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    /// The origin of a request URL; refuses schemes other than http(s) and
    /// URLs carrying credentials.
    pub fn of_url(url: &Url) -> Result<Self, String> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "scheme `{scheme}` is not allowed (http or https only)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not allowed".into());
        }
        let host = url
            .host_str()
            .ok_or_else(|| "URL has no host".to_string())?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err("URL has no host".into());
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| "URL has no port".to_string())?;
        Ok(Self {
            scheme: scheme.to_string(),
            host,
            port,
        })
    }

    /// A grant from the config: `https://host[:port]`, with no path.
    pub fn parse_grant(text: &str) -> Result<Self, String> {
        let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{text}` must be an origin like `https://api.example.com` or `http://127.0.0.1:8080`, without a path"
            ));
        }
        Self::of_url(&url).map_err(|e| format!("`{text}`: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_trailing_dot_and_default_port() {
        let grant = Origin::parse_grant("HTTPS://API.Example.com.").unwrap();
        let url = Url::parse("https://api.example.com:443/x?y=1").unwrap();
        assert_eq!(grant, Origin::of_url(&url).unwrap());
        assert_eq!(grant.to_string(), "https://api.example.com:443");
    }

    #[test]
    fn distinguishes_scheme_and_port() {
        let grant = Origin::parse_grant("https://api.example.com").unwrap();
        for other in [
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "https://api.example.com.evil.test/",
        ] {
            assert_ne!(
                grant,
                Origin::of_url(&Url::parse(other).unwrap()).unwrap(),
                "{other}"
            );
        }
    }

    #[test]
    fn refuses_paths_credentials_and_other_schemes() {
        assert!(Origin::parse_grant("https://api.example.com/v1").is_err());
        assert!(Origin::parse_grant("ftp://example.com").is_err());
        assert!(Origin::of_url(&Url::parse("https://u:p@example.com/").unwrap()).is_err());
        assert!(Origin::parse_grant("not a url").is_err());
    }
}
