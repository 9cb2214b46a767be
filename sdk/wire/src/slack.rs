//! Slack's identifiers, as the host and plugins both check them.

/// Whether `id` reads as a Slack id starting with one of `prefixes` (`U123ABC` a user,
/// `W...` an Enterprise user, `A...` an app, `E...`/`T...` an organisation or workspace):
/// that letter, then 1 to 63 upper-case letters and digits. Ids that reach Slack's URLs
/// and bodies are checked with it, so nothing else can.
pub fn is_id(id: &str, prefixes: &[char]) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| prefixes.contains(&c))
        && (2..=64).contains(&id.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::is_id;

    #[test]
    fn slack_ids_of_the_named_kinds_only() {
        assert!(is_id("U0ALICE", &['U', 'W']));
        assert!(is_id("W04DAVE", &['U', 'W']));
        assert!(!is_id("A0APP", &['U', 'W']), "an app is not a user");
        assert!(!is_id("U", &['U']), "too short");
        assert!(!is_id(&format!("U{}", "1".repeat(64)), &['U']), "too long");
        assert!(!is_id("U0alice", &['U']), "lower case");
        assert!(!is_id("U0/../x", &['U']), "path characters");
        assert!(!is_id("192.0.2.66", &['U', 'W']));
    }
}
