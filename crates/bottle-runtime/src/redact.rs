//! User-info in an endpoint URL (`ssh://user:password@host`) as it may be
//! shown or logged: the password never is.

use std::borrow::Cow;

/// `url` with the password of its user-info replaced by `***`
/// (`ssh://u:***@h`); anything else unchanged.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(url);
    };
    let Some(colon) = authority[..at].find(':') else {
        return Cow::Borrowed(url);
    };
    Cow::Owned(format!(
        "{}***{}",
        &url[..start + colon + 1],
        &url[start + at..]
    ))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        assert_eq!(redact_url("ssh://u:hunter2@h:22/s"), "ssh://u:***@h:22/s");
        assert_eq!(redact_url("tcp://:pw@h"), "tcp://:***@h");
        assert_eq!(redact_url("ssh://a:b:c@d@h"), "ssh://a:***@h");
        for same in ["ssh://u@h:22/s", "unix:///a:b@c", "tcp://h:1", "h:p@x", ""] {
            assert_eq!(redact_url(same), same);
        }
    }
}
