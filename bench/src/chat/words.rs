//! The words of prefilled messages, so that message search (`--searches`) runs over text with
//! a realistic spread: [`VOCABULARY`] made-up words, each message a few of them chosen by a hash
//! of its number, so every word is in about the same share of the history.

/// Distinct words: with ~12 words a message, each word is in about 1 message in 700.
pub const VOCABULARY: u64 = 8000;
const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ne", "su", "ta", "ve", "ro", "pi", "da", "go", "fe", "hu", "zo", "bi", "ri", "wa", "ly", "qu",
    "ex",
];

/// The `i`th word of the vocabulary: three syllables.
pub fn word(i: u64) -> String {
    let s = |k: u64| SYLLABLES[(k % 20) as usize];
    format!("{}{}{}", s(i), s(i / 20), s(i / 400))
}

/// A stable pseudo-random number from `seed` (splitmix64).
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// At least `len` bytes of vocabulary words for message `n` of a sender `salt`.
pub fn text(salt: u64, n: u64, len: usize) -> String {
    let mut text = String::with_capacity(len + 8);
    let mut k = 0;
    while text.len() < len {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&word(mix(salt ^ (n << 8) ^ k) % VOCABULARY));
        k += 1;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_and_texts_stable() {
        let words: std::collections::HashSet<String> = (0..VOCABULARY).map(word).collect();
        assert_eq!(words.len() as u64, VOCABULARY);
        assert_eq!(text(1, 2, 80), text(1, 2, 80));
        assert_ne!(text(1, 2, 80), text(1, 3, 80));
        assert!(text(1, 2, 80).len() >= 80);
    }
}
