//! The one redaction function every error message and log line of git output passes.
//!
//! Three layers, applied in order: the configured secrets themselves (each token, the
//! base64 of `username:token` that travels in the Basic header, and the token
//! percent-encoded as it would sit in a URL); then the value of any `Authorization:` or
//! `Proxy-Authorization:` header, whatever it holds; then the user info of any URL
//! (`scheme://user:password@` becomes `scheme://***@`). The last two catch secrets the
//! fleet was never told about, such as a token an agent pasted into a URL.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::credentials::{Credential, Credentials};

const MASK: &str = "***";

/// Removes secrets from text: the configured tokens (and their Basic-auth encodings),
/// passwords in URLs, and `Authorization:` header values. Its `Debug` shows how many
/// secrets it holds, never the secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    pub fn new(credentials: &Credentials) -> Self {
        let mut secrets: Vec<String> = credentials
            .iter()
            .flat_map(|(_, credential)| secret_forms(credential))
            .filter(|s| !s.is_empty())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        let out = redact_auth_headers(&out);
        redact_url_userinfo(&out)
    }
}

/// Every spelling of a credential that could end up in text.
fn secret_forms(credential: &Credential) -> Vec<String> {
    let token = credential.token();
    if token.is_empty() {
        return Vec::new();
    }
    let basic = basic_auth_value(&credential.username, token);
    let mut forms = vec![token.to_string(), basic];
    let encoded = percent_encode(token);
    if encoded != token {
        forms.push(encoded);
    }
    forms
}

/// `base64(username:token)`, the value after `Basic ` in the header git sends.
pub fn basic_auth_value(username: &str, token: &str) -> String {
    STANDARD.encode(format!("{username}:{token}"))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces the value of every `Authorization:` (and `Proxy-Authorization:`) header, up to
/// the end of its line, whatever the case of the header name.
fn redact_auth_headers(text: &str) -> String {
    const NAME: &str = "authorization:";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(NAME) {
        let value_start = pos + found + NAME.len();
        let line_end = text[value_start..]
            .find(['\n', '\r'])
            .map_or(text.len(), |i| value_start + i);
        out.push_str(&text[pos..value_start]);
        if !text[value_start..line_end].trim().is_empty() {
            out.push(' ');
            out.push_str(MASK);
        }
        pos = line_end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Masks the user info of every `scheme://user[:password]@host` in the text. A bare user
/// name is kept only for ssh (`ssh://git@host` is how ssh URLs look); anywhere else a lone
/// user name is as likely to be a token (`https://TOKEN@github.com`).
fn redact_url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = text[pos..].find("://") {
        let sep = pos + found;
        let authority_start = sep + 3;
        let scheme_start = text[..sep]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = text[scheme_start..sep].to_ascii_lowercase();
        let authority_end = text[authority_start..]
            .find(|c: char| c.is_whitespace() || c.is_control() || "/?#'\"<>`()[]{}".contains(c))
            .map_or(text.len(), |i| authority_start + i);
        out.push_str(&text[pos..authority_start]);
        let authority = &text[authority_start..authority_end];
        match authority.rfind('@') {
            // A bare ssh user name (`ssh://git@host`) is kept; any other user info goes.
            Some(at) if !scheme.ends_with("ssh") || authority[..at].contains(':') => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        pos = authority_end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{PlainHttp, UrlPrefix};

    fn redactor() -> Redactor {
        let prefix = |p: &str| UrlPrefix::parse(p, PlainHttp::Refused).unwrap();
        let mut credentials = Credentials::default();
        credentials.insert(
            prefix("https://github.com"),
            Credential::new("x-access-token", "ghp_S3cretT0ken"),
        );
        credentials.insert(
            prefix("https://example.com:8443/org"),
            Credential::new("bot", "p@ss/w:rd"),
        );
        credentials.insert(prefix("https://empty.example"), Credential::new("bot", ""));
        Redactor::new(&credentials)
    }

    #[test]
    fn masks_configured_tokens_and_their_basic_encoding() {
        let r = redactor();
        let b64 = basic_auth_value("x-access-token", "ghp_S3cretT0ken");
        let text = format!("token ghp_S3cretT0ken and Basic {b64} end");
        let out = r.redact(&text);
        assert_eq!(out, "token *** and Basic *** end");
        // Percent-encoded as in a URL path or query.
        assert_eq!(r.redact("?t=p%40ss%2Fw%3Ard"), "?t=***");
        assert_eq!(r.redact("raw p@ss/w:rd"), "raw ***");
    }

    #[test]
    fn masks_any_authorization_header_value() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("> Authorization: Bearer abc.def\n> Host: x"),
            "> Authorization: ***\n> Host: x"
        );
        assert_eq!(
            r.redact("http.https://h/.extraheader=AUTHORIZATION: Basic Zm9vOmJhcg=="),
            "http.https://h/.extraheader=AUTHORIZATION: ***"
        );
        assert_eq!(
            r.redact("Proxy-Authorization: x\r\n"),
            "Proxy-Authorization: ***\r\n"
        );
        assert_eq!(r.redact("Authorization:"), "Authorization:");
    }

    #[test]
    fn masks_user_info_in_urls() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("fatal: unable to access 'https://user:hunter2@example.com/r.git/': 403"),
            "fatal: unable to access 'https://***@example.com/r.git/': 403"
        );
        assert_eq!(
            r.redact("https://ghp_tok@github.com/a and http://u:p@h:80"),
            "https://***@github.com/a and http://***@h:80"
        );
        // ssh: a bare user is not a secret; a password is.
        assert_eq!(r.redact("ssh://git@host/x"), "ssh://git@host/x");
        assert_eq!(r.redact("ssh://git:pw@host/x"), "ssh://***@host/x");
        // An @ after the host (in the path) is not user info.
        assert_eq!(r.redact("https://host/a@b"), "https://host/a@b");
        assert_eq!(r.redact("no urls here"), "no urls here");
    }

    #[test]
    fn leaves_text_without_secrets_alone_and_handles_unicode() {
        let r = redactor();
        let text = "error: päth ‘x’ did not match\nhttps://github.com/org/repo ü://y";
        assert_eq!(r.redact(text), text);
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let shown = format!("{:?}", redactor());
        assert!(!shown.contains("S3cret"), "{shown}");
    }

    #[test]
    fn an_empty_token_is_not_a_secret() {
        let r = redactor();
        assert!(r.secrets.iter().all(|s| !s.is_empty()));
        assert_eq!(r.redact("abc"), "abc");
    }
}
