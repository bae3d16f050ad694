//! Object names made from OpenStack IDs and names: readable, stable across builds and Rust
//! versions (they are compared with names written before), valid DNS labels.

use std::hash::Hasher;

/// FNV-1a: tiny, and its output never changes (std's hashers may between Rust versions).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A hash of `parts` (each ended by a NUL, so `["ab", "c"]` and `["a", "bc"]` differ).
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    for part in parts {
        hash.write(part.as_bytes());
        hash.write(&[0]);
    }
    hash.finish()
}

/// `text` as the start of a DNS label: lower case, every run of other characters one `-`, at
/// most `max` characters, no `-` at either end (empty when nothing is left).
pub(crate) fn dns_label_part(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => out.push(c),
            _ if !out.is_empty() && !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

/// The first `n` letters and digits of an ID, lower case (`67e2c3a8` for an image UUID).
pub(crate) fn short_id(id: &str, n: usize) -> String {
    id.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(n)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_parts_are_lower_case_runs_of_letters_and_digits() {
        assert_eq!(
            dns_label_part("Windows Server 2022 (eval)", 40),
            "windows-server-2022-eval"
        );
        assert_eq!(dns_label_part("golden-ubuntu-24.04", 40), "golden-ubuntu-24-04");
        assert_eq!(dns_label_part("--Ünïcode--", 40), "n-code");
        assert_eq!(dns_label_part("a very long name that is cut", 7), "a-very");
        assert_eq!(dns_label_part("...", 40), "");
        assert_eq!(short_id("67E2C3A8-7dfe-425f", 8), "67e2c3a8");
    }

    #[test]
    fn the_hash_is_pinned() {
        assert_eq!(stable_hash(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
    }
}
