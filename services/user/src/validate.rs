//! Field rules for accounts, reported all at once as RealWorld-style 422 errors.

use soulchat_subjects::error::Validation;

pub const BLANK: &str = "can't be blank";
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const USERNAME_MAX: usize = 32;
pub const EMAIL_MAX: usize = 254;

/// Usernames appear in URLs (`/api/profiles/:username`) and mentions: letters, digits, `_ . -`,
/// with at least one letter or digit (`.`, `..` and `-` would be path segments or nothing).
pub fn username(v: &mut Validation, username: &str) {
    if username.trim().is_empty() {
        v.problem("username", BLANK);
    } else if username.chars().count() > USERNAME_MAX {
        v.problem("username", &format!("is too long (maximum is {USERNAME_MAX} characters)"));
    } else if !username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        v.problem("username", "is invalid (letters, digits, '_', '.' and '-' only)");
    } else if !username.chars().any(|c| c.is_ascii_alphanumeric()) {
        v.problem("username", "is invalid (must contain a letter or digit)");
    }
}

/// An address as RFC 5322 has it (parsed by `email_address`), without a display name or a
/// domain literal (`user@[127.0.0.1]`: mail to an address we do not name), and without
/// characters that mislead when shown: controls (NUL included), bidirectional overrides and
/// isolates, whitespace (the parser lets non-ASCII through as is).
pub fn email(v: &mut Validation, email: &str) {
    let email = email.trim();
    if email.is_empty() {
        v.problem("email", BLANK);
        return;
    }
    let options = email_address::Options::default().without_display_text().without_domain_literal();
    let problem = if email.len() > EMAIL_MAX {
        Some(format!("is too long (maximum is {EMAIL_MAX} characters)"))
    } else if email.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        Some("is invalid (control or bidirectional characters)".to_owned())
    } else if email.chars().any(char::is_whitespace) {
        Some("is invalid (no spaces)".to_owned())
    } else {
        match email_address::EmailAddress::parse_with_options(email, options) {
            Err(e) => Some(parse_problem(&e).to_owned()),
            Ok(parsed) if parsed.domain().parse::<std::net::IpAddr>().is_ok() => {
                Some("is invalid (an address literal is not allowed)".to_owned())
            }
            Ok(_) => None,
        }
    };
    if let Some(problem) = problem {
        v.problem("email", &problem);
    }
}

fn parse_problem(error: &email_address::Error) -> &'static str {
    use email_address::Error as E;
    match error {
        E::DomainTooLong | E::SubDomainTooLong => "is invalid (domain too long)",
        E::UnsupportedDomainLiteral | E::InvalidIPAddress => "is invalid (an address literal is not allowed)",
        E::UnsupportedDisplayName | E::MissingDisplayName | E::MissingEndBracket => {
            "is invalid (an address only, without a name)"
        }
        _ => "is invalid",
    }
}

/// Unicode's explicit directional formatting characters (UAX #9): marks, embeddings,
/// overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

pub fn password(v: &mut Validation, password: &str) {
    let length = password.chars().count();
    if password.is_empty() {
        v.problem("password", BLANK);
    } else if length < PASSWORD_MIN {
        v.problem("password", &format!("is too short (minimum is {PASSWORD_MIN} characters)"));
    } else if length > PASSWORD_MAX {
        v.problem("password", &format!("is too long (maximum is {PASSWORD_MAX} characters)"));
    }
}

/// E.164: a `+`, then 8 to 15 digits.
pub fn phone(v: &mut Validation, phone: &str) {
    let digits = phone.strip_prefix('+').unwrap_or("");
    if phone.is_empty() {
        v.problem("phone", BLANK);
    } else if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        v.problem("phone", "is invalid (E.164, e.g. +4915112345678)");
    }
}

/// The case-insensitive key under which uniqueness is enforced.
pub fn norm(value: &str) -> String {
    value.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(f: impl FnOnce(&mut Validation)) -> Option<std::collections::BTreeMap<String, Vec<String>>> {
        let mut v = Validation::new();
        f(&mut v);
        v.finish().err().map(|e| e.fields)
    }

    #[test]
    fn blank_fields_say_so() {
        let p = problems(|v| {
            username(v, "");
            email(v, " ");
            password(v, "");
        })
        .unwrap();
        assert_eq!(p["username"], [BLANK]);
        assert_eq!(p["email"], [BLANK]);
        assert_eq!(p["password"], [BLANK]);
    }

    #[test]
    fn password_length_is_bounded() {
        assert!(problems(|v| password(v, "1234567")).is_some());
        assert!(problems(|v| password(v, "12345678")).is_none());
        assert!(problems(|v| password(v, &"x".repeat(129))).is_some());
    }

    #[test]
    fn emails_need_one_at_and_no_spaces() {
        assert!(problems(|v| email(v, "celeb_a@b.c")).is_none());
        assert!(problems(|v| email(v, "no-at")).is_some());
        assert!(problems(|v| email(v, "a b@c")).is_some());
        assert!(problems(|v| email(v, "@c")).is_some());
        assert!(problems(|v| email(v, "a@b@c.d")).is_some());
    }

    #[test]
    fn emails_refuse_controls_bidi_and_literals() {
        assert!(problems(|v| email(v, "jürgen@münchen.example")).is_none());
        for bad in [
            "a\0b@example.com",
            "a\u{7}b@example.com",
            "a\u{85}b@example.com",
            "evil\u{202E}moc.elpmaxe@example.com",
            "a\u{2066}b@example.com",
            "user@[127.0.0.1]",
            "user@[IPv6:::1]",
            "user@127.0.0.1",
            "Alice <alice@example.com>",
            "a..b@example.com",
        ] {
            let p = problems(|v| email(v, bad)).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(p["email"][0].starts_with("is invalid"), "{bad:?}: {p:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(problems(|v| email(v, &long)).unwrap()["email"][0].contains("too long"));
    }

    #[test]
    fn usernames_are_url_safe() {
        assert!(problems(|v| username(v, "celeb_Alice-1.x")).is_none());
        assert!(problems(|v| username(v, "_7")).is_none());
        assert!(problems(|v| username(v, "a/b")).is_some());
        assert!(problems(|v| username(v, "ünï")).is_some());
    }

    #[test]
    fn usernames_need_a_letter_or_digit() {
        for bad in [".", "..", "-", "_", "._-"] {
            let p = problems(|v| username(v, bad)).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(p["username"], ["is invalid (must contain a letter or digit)"], "{bad:?}");
        }
    }
}
