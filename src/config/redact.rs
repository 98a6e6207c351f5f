//! Secrets in free text: the password of a URI's user-info (`postgres://user:PASSWORD@host`) and the
//! value of any `password=` parameter (a URI query or a libpq `key=value` string), replaced by `***`.
//!
//! Applied to whatever may carry a catalog URI to a reader: `check-config` (text and JSON), config
//! errors, startup and pass errors, log lines and `/status`. It works on text, not on a parsed URI,
//! so a URI embedded in an error message, quoted or not, is redacted as well.

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// `text` with every URI user-info password and `password=` value replaced by [`MASK`].
pub fn secrets(text: &str) -> String {
    password_params(&userinfo_passwords(text))
}

/// Characters that end a URI inside free text.
fn ends_uri(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>')
}

fn userinfo_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority runs to the first '/', '?', '#' or the end of the URI; user-info ends at its
        // last '@' (an unencoded '@' in a password is tolerated, as libpq does).
        let end = tail.find(|c: char| ends_uri(c) || matches!(c, '/' | '?' | '#')).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@').map(|at| (&authority[..at], at)) {
            Some((userinfo, at)) if userinfo.contains(':') => {
                let colon = userinfo.find(':').unwrap_or(0);
                out.push_str(&userinfo[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn password_params(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY) {
        let start = from + found;
        let value = start + KEY.len();
        // Any key ending in `password` (`sslpassword=`, `db_password=`): masking too much is harmless.
        let len = text[value..]
            .find(|c: char| ends_uri(c) || matches!(c, '&' | '#' | ';'))
            .unwrap_or(text.len() - value);
        if len > 0 {
            out.push_str(&text[copied..value]);
            out.push_str(MASK);
            copied = value + len;
        }
        from = value.max(copied);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::secrets;

    #[test]
    fn userinfo_passwords_and_password_parameters_are_masked() {
        let cases = [
            ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:s3cr@t@h:5432/db?sslmode=require", "postgres://u:***@h:5432/db?sslmode=require"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            (
                "postgres://h/db?user=u&password=hunter2&sslmode=verify-full",
                "postgres://h/db?user=u&password=***&sslmode=verify-full",
            ),
            ("postgres://h/db?PASSWORD=hunter2", "postgres://h/db?PASSWORD=***"),
            ("host=h password=hunter2 dbname=x", "host=h password=*** dbname=x"),
            ("postgres://h/db?sslpassword=k", "postgres://h/db?sslpassword=***"),
            (
                "config error: schema.catalog_uri = \"mysql://root:toor@db/x\": expected …",
                "config error: schema.catalog_uri = \"mysql://root:***@db/x\": expected …",
            ),
            ("two: a://x:1@h b://y:2@h", "two: a://x:***@h b://y:***@h"),
            ("sqlite:.data/catalog.db?mode=rwc", "sqlite:.data/catalog.db?mode=rwc"),
            ("no secrets, password=", "no secrets, password="),
            ("", ""),
            ("password=password=x", "password=***"),
        ];
        for (text, redacted) in cases {
            assert_eq!(secrets(text), redacted, "{text}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_never_keeps_a_password() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let parts = ["://", "u:", "pw", "@", "/", "?", "&", "password=", "é", " ", "\"", "#", "h"];
        for _ in 0..5_000 {
            let n = rng.random_range(0..12);
            let text: String = (0..n).map(|_| parts[rng.random_range(0..parts.len())]).collect();
            let _ = secrets(&text);
        }
        let text = format!("x postgres://u:{}@h/d?password={} y", "pw", "pw2");
        assert!(!secrets(&text).contains("pw"), "{}", secrets(&text));
    }
}
