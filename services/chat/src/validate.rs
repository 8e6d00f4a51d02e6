//! Request limits (ARCHITECTURE §5), checked before any database work so a bad request costs
//! nothing and reports every problem at once.

use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::SendRequest;
use soulchat_subjects::error::Validation;
use unicode_segmentation::UnicodeSegmentation;

pub const CONTENT_MAX: usize = 4000;
pub const MAX_MEMBERS: i64 = 1000;
const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 1000;
const CLIENT_ID_MAX: usize = 64;
const URL_MAX: usize = 2000;

/// A page size, as SQL binds it.
pub fn limit(limit: Option<u32>) -> Result<i64, ServiceError> {
    soulchat_subjects::paging::page_size(limit).map(i64::from)
}

pub fn user_id(v: &mut Validation, field: &str, id: &str) {
    if id.trim().is_empty() {
        v.problem(field, "can't be blank");
    } else if id.len() > 64 || id.contains(|c: char| c.is_whitespace() || c == '.' || c == '*' || c == '>') {
        v.problem(field, "is invalid");
    }
}

pub fn name(v: &mut Validation, name: &str) {
    if name.trim().is_empty() {
        v.problem("name", "can't be blank");
    } else if name.chars().count() > NAME_MAX {
        v.problem("name", &format!("is too long (maximum is {NAME_MAX} characters)"));
    }
}

pub fn description(v: &mut Validation, description: &str) {
    if description.chars().count() > DESCRIPTION_MAX {
        v.problem("description", &format!("is too long (maximum is {DESCRIPTION_MAX} characters)"));
    }
}

pub fn content(v: &mut Validation, content: &str, required: bool) {
    if required && content.trim().is_empty() {
        v.problem("content", "can't be blank");
    } else if content.chars().count() > CONTENT_MAX {
        v.problem("content", &format!("is too long (maximum is {CONTENT_MAX} characters)"));
    }
}

pub const DISTINCT_REACTIONS_MAX: i64 = 20;
const SHORTCODE_MAX: usize = 32;

/// One emoji: a single grapheme cluster (not whitespace or a control character), or a
/// `:shortcode:` of at most 32 characters (letters, digits, `_`, `+`, `-` inside the colons).
pub fn emoji(emoji: &str) -> Result<(), ServiceError> {
    let shortcode = |s: &str| {
        s.chars().count() <= SHORTCODE_MAX
            && s.strip_prefix(':').and_then(|s| s.strip_suffix(':')).is_some_and(|name| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
            })
    };
    let mut clusters = emoji.graphemes(true);
    let single = matches!((clusters.next(), clusters.next()), (Some(g), None)
        if g.chars().count() <= SHORTCODE_MAX && !g.chars().any(|c| c.is_whitespace() || c.is_control()));
    if emoji.is_empty() {
        Err(ServiceError::invalid("emoji", "can't be blank"))
    } else if single || shortcode(emoji) {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "emoji",
            &format!("must be one emoji or a :shortcode: of at most {SHORTCODE_MAX} characters"),
        ))
    }
}

pub const MENTIONS_MAX: usize = 50;

/// The users a message mentions: user ids, at most [`MENTIONS_MAX`].
pub fn mentions(v: &mut Validation, mention_ids: &[String]) {
    if mention_ids.len() > MENTIONS_MAX {
        v.problem("mentions", &format!("are too many (maximum is {MENTIONS_MAX})"));
    }
    for id in mention_ids {
        user_id(v, "mentions", id);
    }
}

const METADATA_ENTRIES_MAX: usize = 16;
const METADATA_KEY_MAX: usize = 64;
const METADATA_VALUE_MAX: usize = 256;

/// Normalises `kind` (empty means text) and checks the whole message.
pub fn send(req: &mut SendRequest) -> Result<(), ServiceError> {
    let mut v = Validation::new();
    if req.kind.is_empty() {
        req.kind = "text".to_owned();
    }
    let client_id = req.client_id.trim();
    if client_id.is_empty() {
        v.problem("client_id", "can't be blank");
    } else if client_id.len() > CLIENT_ID_MAX {
        v.problem("client_id", &format!("is too long (maximum is {CLIENT_ID_MAX} characters)"));
    }
    match req.kind.as_str() {
        "text" => {
            content(&mut v, &req.content, true);
            if req.url.is_some() {
                v.problem("url", "is only for image and file messages");
            }
            if req.attachment_id.is_some() {
                v.problem("attachment_id", "is only for image and file messages");
            }
            if !req.metadata.is_empty() {
                v.problem("metadata", "is only for image and file messages");
            }
        }
        "image" | "file" => {
            content(&mut v, &req.content, false);
            match (req.url.as_deref().filter(|u| !u.is_empty()), req.attachment_id.as_deref()) {
                (None, None) => v.problem("url", "can't be blank (or give an attachment_id)"),
                (Some(_), Some(_)) => v.problem("attachment_id", "cannot be combined with url"),
                (Some(url), None) if !is_https(url) => v.problem("url", "must be an https URL"),
                (None, Some(id)) if !is_attachment_id(id) => v.problem("attachment_id", "is invalid"),
                _ => {}
            }
            let fits = |(k, val): (&String, &String)| {
                (1..=METADATA_KEY_MAX).contains(&k.chars().count()) && val.chars().count() <= METADATA_VALUE_MAX
            };
            if req.metadata.len() > METADATA_ENTRIES_MAX || !req.metadata.iter().all(fits) {
                v.problem(
                    "metadata",
                    &format!(
                        "is invalid (at most {METADATA_ENTRIES_MAX} entries, keys 1-{METADATA_KEY_MAX} characters, values at most {METADATA_VALUE_MAX})"
                    ),
                );
            }
        }
        _ => v.problem("kind", "must be text, image or file"),
    }
    if req.reply_to.is_some_and(|r| r < 1) {
        v.problem("reply_to", "is invalid");
    }
    if req.thread_root.is_some_and(|r| r < 1) {
        v.problem("thread_root", "is invalid");
    }
    mentions(&mut v, &req.mention_ids);
    v.finish()
}

const QUERY_MAX: usize = 200;
const QUERY_WORDS_MAX: usize = 10;
/// The shortest word searched for: MariaDB's FULLTEXT index holds none shorter (its
/// `innodb_ft_min_token_size`), and both backends answer alike.
const SEARCH_WORD_MIN: usize = 3;
/// How deep search results page: relevance order has no cheap keyset, so the cursor is an offset.
pub const SEARCH_OFFSET_MAX: i64 = 1000;

/// The words a search looks for: the query's runs of letters and digits, lower-cased, those of
/// at least [`SEARCH_WORD_MIN`] characters, each once.
pub fn search_words(v: &mut Validation, q: &str) -> Vec<String> {
    if q.chars().count() > QUERY_MAX {
        v.problem("q", &format!("is too long (maximum is {QUERY_MAX} characters)"));
        return Vec::new();
    }
    let mut words: Vec<String> = Vec::new();
    for word in q.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() >= SEARCH_WORD_MIN && !words.contains(&word) {
            words.push(word);
        }
    }
    if words.is_empty() {
        v.problem("q", &format!("needs a word of at least {SEARCH_WORD_MIN} letters or digits"));
    } else if words.len() > QUERY_WORDS_MAX {
        v.problem("q", &format!("has too many words (maximum is {QUERY_WORDS_MAX})"));
    }
    words
}

/// A search page's offset, from the previous page's `next_cursor` (empty: the first page).
pub fn search_cursor(v: &mut Validation, cursor: &str) -> i64 {
    if cursor.is_empty() {
        return 0;
    }
    match cursor.parse::<i64>() {
        Ok(offset) if (1..=SEARCH_OFFSET_MAX).contains(&offset) => offset,
        _ => {
            v.problem("cursor", &format!("is invalid (results page at most {SEARCH_OFFSET_MAX} deep)"));
            0
        }
    }
}

/// What the gateway names uploads with (a UUID), loosely: never a subject wildcard or separator.
fn is_attachment_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_https(url: &str) -> bool {
    url.len() <= URL_MAX
        && url.strip_prefix("https://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !url.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https() {
        assert!(is_https("https://cdn.example/a.png"));
        assert!(!is_https("http://cdn.example/a.png"));
        assert!(!is_https("https:///a.png"));
        assert!(!is_https("https://x y"));
    }

    #[test]
    fn search_words_are_folded_deduplicated_and_long_enough() {
        let mut v = Validation::new();
        assert_eq!(search_words(&mut v, "Hello, hello wörld! to \"x*\" 2026"), ["hello", "wörld", "2026"]);
        assert!(v.finish().is_ok());
        for bad in
            ["", "a b to", "\"*\" OR -", &"x".repeat(201), "one two three four five six seven eight nine ten eleven"]
        {
            let mut v = Validation::new();
            search_words(&mut v, bad);
            assert!(v.finish().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn search_cursors_are_bounded_offsets() {
        let mut v = Validation::new();
        assert_eq!((search_cursor(&mut v, ""), search_cursor(&mut v, "50")), (0, 50));
        assert!(v.finish().is_ok());
        for bad in ["-1", "0", "1001", "x"] {
            let mut v = Validation::new();
            search_cursor(&mut v, bad);
            assert!(v.finish().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_emoji_is_one_grapheme_or_a_shortcode() {
        for ok in ["👍", "👨‍👩‍👧‍👦", "🇫🇷", "👍🏽", "é", ":tada:", ":+1:", ":a_very_long_shortcode_of_30c:"]
        {
            assert!(emoji(ok).is_ok(), "{ok}");
        }
        for bad in ["", "👍👍", "ab", " ", "\n", ":tada", "::", ":no spaces:", ":way_too_long_a_shortcode_to_be_ok:"]
        {
            assert_eq!(emoji(bad).unwrap_err().fields.keys().collect::<Vec<_>>(), ["emoji"], "{bad:?}");
        }
    }

    #[test]
    fn limits_default_and_bound() {
        assert_eq!(limit(None).unwrap(), 50);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
