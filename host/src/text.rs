//! Text from plugins and events is data: how it is made safe wherever AER shows it.
//! Control characters are escaped in logs and terminal tables (no forged log lines, no
//! clear-screen or carriage-return tricks), and Slack's markup characters in messages
//! AER builds (no `<!channel>` pings or disguised links).

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1: newlines, carriage returns, escape
/// sequences) and the Unicode line and paragraph separators and bidirectional overrides
/// written as `\u{..}` escapes (`\n`, `\r`, `\t` as themselves), so it prints on one
/// line exactly as it reads.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `code` if it reads as an error code from another system (Slack's `invalid_auth`):
/// at most 64 ASCII letters, digits and underscores. Anything else from outside is
/// not repeated to a tenant.
pub fn error_code(code: &str) -> Option<&str> {
    (!code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then_some(code)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with Slack's markup characters escaped as Slack documents (`&` → `&amp;`,
/// `<` → `&lt;`, `>` → `&gt;`), so `<!channel>`, `<@U123>` and `<https://x|label>`
/// from a plugin show as text instead of pinging or linking.
pub fn escape_slack(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: plugin log messages forged lines in the daemon's text log, and CLI
    // tables printed clear-screen and carriage-return sequences raw.
    #[test]
    fn control_characters_are_escaped_and_plain_text_is_untouched() {
        let forged = "ok\n2026-01-01T00:00:00Z INFO aer: admin logged in\r\x1b[2J\x07\u{202e}";
        let escaped = escape_control(forged);
        assert_eq!(
            escaped,
            "ok\\n2026-01-01T00:00:00Z INFO aer: admin logged in\\r\\u{1b}[2J\\u{7}\\u{202e}"
        );
        assert!(!escaped.chars().any(char::is_control));
        assert!(matches!(
            escape_control("W01ALICE ünïcode"),
            Cow::Borrowed(_)
        ));
    }

    // Regression: a finding subject `<!channel> <https://evil.example|Re-authenticate>`
    // was posted verbatim to Slack.
    #[test]
    fn slack_markup_is_escaped() {
        assert_eq!(
            escape_slack("<!channel> <https://evil.example|Re-authenticate> & co"),
            "&lt;!channel&gt; &lt;https://evil.example|Re-authenticate&gt; &amp; co"
        );
        assert!(matches!(escape_slack("W01ALICE *bold*"), Cow::Borrowed(_)));
    }
}
