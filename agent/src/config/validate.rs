//! The checks a configuration's names and values must pass, in one place: what a slug is (list,
//! source and entity names, `--entity` of the import commands). Pure functions over their
//! arguments; each caller words the refusal for where the name was written.

/// Whether `s` is a slug: not empty, only lowercase ASCII letters, digits, `-` and `_`.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "uk-2025_x", "0"] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in ["", "A", "a b", "é", "a.b", "a/b"] {
            assert!(!is_slug(bad), "{bad}");
        }
    }
}
