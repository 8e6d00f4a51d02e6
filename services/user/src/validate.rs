//! Field rules for accounts, reported all at once as RealWorld-style 422 errors.

use soulchat_subjects::error::Validation;

pub const BLANK: &str = "can't be blank";
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const USERNAME_MAX: usize = 32;
pub const EMAIL_MAX: usize = 254;

/// Usernames appear in URLs (`/api/profiles/:username`) and mentions: letters, digits, `_ . -`.
pub fn username(v: &mut Validation, username: &str) {
    if username.trim().is_empty() {
        v.problem("username", BLANK);
    } else if username.chars().count() > USERNAME_MAX {
        v.problem("username", &format!("is too long (maximum is {USERNAME_MAX} characters)"));
    } else if !username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        v.problem("username", "is invalid (letters, digits, '_', '.' and '-' only)");
    }
}

pub fn email(v: &mut Validation, email: &str) {
    let email = email.trim();
    if email.is_empty() {
        v.problem("email", BLANK);
        return;
    }
    let well_formed = email.len() <= EMAIL_MAX
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if !well_formed {
        v.problem("email", "is invalid");
    }
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
    }

    #[test]
    fn usernames_are_url_safe() {
        assert!(problems(|v| username(v, "celeb_Alice-1.x")).is_none());
        assert!(problems(|v| username(v, "a/b")).is_some());
        assert!(problems(|v| username(v, "ünï")).is_some());
    }
}
