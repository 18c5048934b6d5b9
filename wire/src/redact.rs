//! Credentials never appear in logs or `Debug` output.

/// Hides the credentials of a Redis URL: `redis://user:secret@host` →
/// `redis://user:***@host`, `redis://secret@host` → `redis://***@host`, and the `pass`
/// / `password` query parameters of `redis+unix://` URLs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_query(url);
    };
    // The credentials end at the *last* `@`: a password may hold unencoded `/`, `?`, `#`
    // or `@`, so the authority cannot be cut at the first of those.
    match rest.rsplit_once('@') {
        Some((userinfo, after)) => {
            let shown = match userinfo.split_once(':') {
                Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:***"),
                _ => "***".to_owned(),
            };
            format!("{scheme}://{shown}@{}", redact_query(after))
        }
        None => format!("{scheme}://{}", redact_query(rest)),
    }
}

/// Hides `pass=` / `password=` query parameters (`redis+unix://` URLs).
fn redact_query(s: &str) -> String {
    let Some((main, query)) = s.split_once('?') else {
        return s.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
            {
                format!("{k}=***")
            }
            _ => kv.to_owned(),
        })
        .collect();
    format!("{main}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        for (url, shown) in [
            (
                "redis://alice:s3cret@host:6380/2",
                "redis://alice:***@host:6380/2",
            ),
            ("redis://:s3cret@host", "redis://:***@host"),
            ("rediss://s3cret@host", "rediss://***@host"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=s3cret",
                "redis+unix:///tmp/r.sock?db=1&pass=***",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://app:pa/ss#x@127.0.0.1:1",
                "redis://app:***@127.0.0.1:1",
            ),
            (
                "redis://app:p?a@s@h:1/0?protocol=resp3",
                "redis://app:***@h:1/0?protocol=resp3",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }
}
