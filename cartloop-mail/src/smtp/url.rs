//! Parsing `SMTP_URL`: `smtp://[user:pass@]host[:port][?tls=...]` and `smtps://...`.

use std::fmt;
use std::net::Ipv6Addr;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plain TCP, no encryption: for a relay on the same host or network. Default port 25.
    None,
    /// Plain TCP upgraded with `STARTTLS`, which the server must offer: the email is never
    /// sent unencrypted. Default port 587.
    StartTls,
    /// TLS from the first byte ("implicit TLS", `smtps`). Default port 465.
    Implicit,
}

impl TlsMode {
    /// The port used when the URL names none: 25, 587 or 465.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Implicit => 465,
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "tls",
        })
    }
}

/// Why an SMTP URL or option was refused. The messages never repeat the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailConfigError {
    /// The scheme is neither `smtp` nor `smtps`.
    #[error("unsupported SMTP URL scheme {0:?}: expected smtp:// or smtps://")]
    UnsupportedScheme(String),
    /// The URL is malformed: no host, a bad port, a path, bad percent-encoding, an unknown
    /// query parameter.
    #[error("invalid SMTP URL: {0}")]
    InvalidUrl(String),
    /// The `tls` parameter is unknown, or contradicts the scheme (`smtps://...?tls=none`).
    #[error("invalid TLS mode: {0}")]
    InvalidTls(String),
    /// TLS could not be set up for the host.
    #[error("cannot set up TLS for {host}: {reason}")]
    Tls {
        /// The server's host name.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// An option of [`SmtpOptions`](crate::SmtpOptions) is out of range.
    #[error("invalid SMTP option: {0}")]
    InvalidOption(String),
}

/// A parsed SMTP URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SmtpUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: TlsMode,
    /// User name and password, percent-decoded.
    pub(crate) credentials: Option<(String, String)>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

impl SmtpUrl {
    /// Parses `smtp://[user:pass@]host[:port][/][?tls=none|starttls|required|tls]` and
    /// `smtps://[user:pass@]host[:port][/]`. An IPv6 host is written in brackets.
    pub(crate) fn parse(url: &str) -> Result<Self, MailConfigError> {
        let invalid = |m: &str| MailConfigError::InvalidUrl(m.to_owned());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected smtp://host:port or smtps://host:port"))?;
        let scheme_tls = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => None,
            "smtps" => Some(TlsMode::Implicit),
            _ => return Err(MailConfigError::UnsupportedScheme(scheme.to_owned())),
        };
        if rest.contains('#') {
            return Err(invalid("a fragment (#...) is not allowed"));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = match rest.split_once('/') {
            Some((authority, "")) => authority,
            Some(_) => return Err(invalid("a path is not allowed")),
            None => rest,
        };
        // The last '@' ends the user info: a password may hold an unencoded '@'.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let credentials = userinfo.map(parse_userinfo).transpose()?;
        let (host, port) = parse_hostport(hostport)?;

        let query_tls = parse_query(query)?;
        let tls = match (scheme_tls, query_tls) {
            (Some(TlsMode::Implicit), Some(mode)) if mode != TlsMode::Implicit => {
                return Err(MailConfigError::InvalidTls(format!(
                    "smtps:// is implicit TLS, but tls={mode} was given"
                )))
            }
            (scheme, query) => query.or(scheme).unwrap_or(TlsMode::None),
        };
        Ok(Self {
            host,
            port: port.unwrap_or_else(|| tls.default_port()),
            tls,
            credentials,
        })
    }
}

fn parse_userinfo(userinfo: &str) -> Result<(String, String), MailConfigError> {
    let (user, pass) = userinfo.split_once(':').ok_or_else(|| {
        MailConfigError::InvalidUrl("credentials must be user:password".to_owned())
    })?;
    let user = percent_decode(user, "user name")?;
    if user.is_empty() {
        return Err(MailConfigError::InvalidUrl("empty user name".to_owned()));
    }
    Ok((user, percent_decode(pass, "password")?))
}

fn parse_hostport(hostport: &str) -> Result<(String, Option<u16>), MailConfigError> {
    let invalid = |m: String| MailConfigError::InvalidUrl(m);
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("unclosed '[' in the host".to_owned()))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid(format!("invalid IPv6 address [{host}]")));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| invalid("unexpected text after the IPv6 address".to_owned()))?,
            ),
        };
        (host, port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host".to_owned()));
    }
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    if !host.chars().all(valid_char) {
        return Err(invalid(format!("invalid host {host:?}")));
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port != 0 => Ok(port),
            _ => Err(invalid(format!("invalid port {p:?}"))),
        })
        .transpose()?;
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_query(query: &str) -> Result<Option<TlsMode>, MailConfigError> {
    let mut tls = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "tls" {
            return Err(MailConfigError::InvalidUrl(format!(
                "unknown parameter {key:?} (only tls=none|starttls|tls is supported)"
            )));
        }
        let mode = match value.to_ascii_lowercase().as_str() {
            "none" => TlsMode::None,
            "starttls" | "required" => TlsMode::StartTls,
            "tls" | "implicit" => TlsMode::Implicit,
            _ => {
                return Err(MailConfigError::InvalidTls(format!(
                    "unknown tls={value:?} (expected none, starttls, required or tls)"
                )))
            }
        };
        if tls.is_some_and(|t| t != mode) {
            return Err(MailConfigError::InvalidTls("tls given twice".to_owned()));
        }
        tls = Some(mode);
    }
    Ok(tls)
}

/// Decodes `%XX` escapes; the result must be UTF-8. `what` names the part in errors, since
/// the value itself (a password) must not be echoed.
fn percent_decode(text: &str, what: &str) -> Result<String, MailConfigError> {
    let invalid = || MailConfigError::InvalidUrl(format!("invalid percent-encoding in the {what}"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(invalid)?;
            let hex = std::str::from_utf8(hex).map_err(|_| invalid())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> SmtpUrl {
        SmtpUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn plain_smtp_with_and_without_port() {
        let url = parse("smtp://mail.example.com:2525");
        assert_eq!(
            (url.host.as_str(), url.port, url.tls),
            ("mail.example.com", 2525, TlsMode::None)
        );
        assert_eq!(url.credentials, None);
        assert_eq!(parse("smtp://localhost").port, 25);
        assert_eq!(parse("SMTP://Localhost/").host, "localhost");
    }

    #[test]
    fn tls_modes_and_their_default_ports() {
        let cases = [
            ("smtp://h?tls=none", TlsMode::None, 25),
            ("smtp://h?tls=starttls", TlsMode::StartTls, 587),
            ("smtp://h?tls=required", TlsMode::StartTls, 587),
            ("smtp://h:25?tls=STARTTLS", TlsMode::StartTls, 25),
            ("smtp://h?tls=tls", TlsMode::Implicit, 465),
            ("smtps://h", TlsMode::Implicit, 465),
            ("smtps://h:2465/?tls=tls", TlsMode::Implicit, 2465),
        ];
        for (url, tls, port) in cases {
            let parsed = parse(url);
            assert_eq!((parsed.tls, parsed.port), (tls, port), "{url}");
        }
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let url = parse(
            "smtp://user%40shop.example:p%3Ass%2Fw%C3%B6rd@mail.example.com:587?tls=starttls",
        );
        assert_eq!(
            url.credentials,
            Some(("user@shop.example".into(), "p:ss/wörd".into()))
        );
        assert_eq!(url.host, "mail.example.com");
        // An unencoded '@' in the password: the last '@' ends the user info.
        let url = parse("smtp://me:p@ss@localhost:25");
        assert_eq!(url.credentials, Some(("me".into(), "p@ss".into())));
        let url = parse("smtp://me:@localhost");
        assert_eq!(url.credentials, Some(("me".into(), String::new())));
    }

    #[test]
    fn ipv6_hosts() {
        let url = parse("smtp://[::1]:2525");
        assert_eq!((url.host.as_str(), url.port), ("::1", 2525));
        assert_eq!(parse("smtp://[::1]").port, 25);
    }

    #[test]
    fn bad_urls_are_refused() {
        let cases = [
            ("http://localhost:25", "scheme"),
            ("localhost:25", "expected smtp"),
            ("smtp://", "no host"),
            ("smtp://:25", "no host"),
            ("smtp://host:0", "port"),
            ("smtp://host:99999", "port"),
            ("smtp://host:abc", "port"),
            ("smtp://host/path", "path"),
            ("smtp://host#frag", "fragment"),
            ("smtp://host?tls=maybe", "tls"),
            ("smtp://host?tls=none&tls=tls", "twice"),
            ("smtp://host?pool=4", "parameter"),
            ("smtps://host?tls=none", "implicit"),
            ("smtps://host?tls=starttls", "implicit"),
            ("smtp://user@host", "user:password"),
            ("smtp://:pw@host", "user name"),
            ("smtp://u:%zz@host", "password"),
            ("smtp://u:%ff@host", "password"),
            ("smtp://[::1", "unclosed"),
            ("smtp://[nope]:25", "IPv6"),
            ("smtp://ho st:25", "host"),
        ];
        for (url, needle) in cases {
            let err = SmtpUrl::parse(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let err = SmtpUrl::parse("smtp://u:s3cr%zzet@host").unwrap_err();
        assert!(!err.to_string().contains("s3cr"));
        let url = parse("smtp://u:s3cret@host");
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
