//! Request limits (ARCHITECTURE §5), checked before any database work so a bad request costs
//! nothing and reports every problem at once.

use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::SendRequest;
use soulchat_subjects::error::Validation;

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
            if !req.metadata.is_empty() {
                v.problem("metadata", "is only for image and file messages");
            }
        }
        "image" | "file" => {
            content(&mut v, &req.content, false);
            match req.url.as_deref() {
                None | Some("") => v.problem("url", "can't be blank"),
                Some(url) if !is_https(url) => v.problem("url", "must be an https URL"),
                Some(_) => {}
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
    v.finish()
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
    fn limits_default_and_bound() {
        assert_eq!(limit(None).unwrap(), 50);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
