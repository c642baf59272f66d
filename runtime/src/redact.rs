//! Passwords out of text that may hold connection strings, before it goes into errors and logs.

/// Replaces the password of every URL-shaped `scheme://user:password@` in `text`, and the
/// value of any `password=` key/value parameter, with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_password_params(&out)
}

fn redact_password_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.to_ascii_lowercase().find("password=") {
        let start = pos + "password=".len();
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c == '&' || c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str("***");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_inside_free_text_and_query_parameters() {
        let text = "failed: postgres://u:pw1@h/d and postgresql://v:pw2@h2:1/e, password=pw3&x=1";
        let r = redact(text);
        for secret in ["pw1", "pw2", "pw3"] {
            assert!(!r.contains(secret), "{r}");
        }
        assert!(r.contains("postgres://u:***@h/d"), "{r}");
        assert!(r.contains("x=1"), "{r}");
    }

    #[test]
    fn urls_without_password_are_unchanged() {
        assert_eq!(redact("postgres://app@host/db"), "postgres://app@host/db");
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
    }
}
