//! Secrets: a wrapper whose `Debug`/`Display` never show the value, and a
//! masking helper for the few places that must hint at which secret is set.

use std::fmt;

/// A secret string (token, client secret). Only [`Secret::expose`] reveals it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The raw value; call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// A masked rendering safe to print: never more than the last 4 characters,
    /// and nothing at all for short secrets.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Mask a secret for display: `****abcd` for long values, `****` otherwise.
pub fn mask(s: &str) -> String {
    let n = s.chars().count();
    if n >= 16 {
        let tail: String = s.chars().skip(n - 4).collect();
        format!("****{tail}")
    } else {
        "****".to_string()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.masked())
    }
}

/// Remove any occurrence of the given secrets from a text (error bodies can echo
/// what was sent).
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.0.len() >= 4 {
            out = out.replace(&s.0, &s.masked());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("dapi0123456789abcdef0123");
        assert!(!format!("{s:?}").contains("dapi0123"));
        assert!(!format!("{s}").contains("dapi0123"));
        assert_eq!(s.masked(), "****0123");
        assert_eq!(Secret::new("short").masked(), "****");
    }

    #[test]
    fn scrub_replaces_echoed_secrets() {
        let s = Secret::new("dapi0123456789abcdef0123");
        let t = scrub("bad token dapi0123456789abcdef0123 here", &[&s]);
        assert!(!t.contains("dapi0123456789"));
    }
}
