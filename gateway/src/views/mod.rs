//! The JSON shapes clients see, built from the workers' messages. Request bodies are read
//! into the `*Body` types here, responses are written from the `*View` types. Accounts and
//! profiles live here, conversations and messages in [`chat`], notifications in
//! [`notifications`], WebSocket frames (both ways) in [`frames`].

pub mod chat;
pub mod frames;
pub mod moderation;
pub mod notifications;

use serde::{Deserialize, Serialize};
use soulchat_subjects::ServiceError;
use soulchat_subjects::profile::messages::{Profile, ProfileReply};
use soulchat_subjects::user::messages::User;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub email: String,
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub username: String,
    #[schema(required = true)]
    pub bio: Option<String>,
    #[schema(required = true)]
    pub image: Option<String>,
    pub email_verified: bool,
    /// Set once verified by SMS code.
    #[schema(required = true)]
    pub phone: Option<String>,
}

impl UserView {
    pub fn new(user: User, token: String, refresh_token: Option<String>) -> Self {
        UserView {
            email: user.email,
            token,
            refresh_token,
            username: user.username,
            bio: user.bio,
            image: user.image,
            email_verified: user.email_verified,
            phone: user.phone,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: UserView,
}

/// RealWorld's envelope of an account request: `{"user": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Wrapped<T> {
    pub user: T,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(required = true, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")]
    #[serde(default)]
    pub username: String,
    #[schema(required = true, format = Email)]
    #[serde(default)]
    pub email: String,
    #[schema(required = true, min_length = 8, max_length = 128)]
    #[serde(default)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(required = true, format = Email)]
    #[serde(default)]
    pub email: String,
    #[schema(required = true)]
    #[serde(default)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateBody {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    pub bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub image: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    #[schema(required = true)]
    #[serde(default)]
    pub refresh_token: String,
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A public profile: RealWorld's four fields, plus the follow counts and the caller's block.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    pub username: String,
    #[schema(required = true)]
    pub bio: Option<String>,
    #[schema(required = true)]
    pub image: Option<String>,
    pub following: bool,
    pub followers_count: i64,
    pub following_count: i64,
    /// Whether the caller blocks this profile.
    pub blocked: bool,
}

impl From<Profile> for ProfileView {
    fn from(p: Profile) -> Self {
        ProfileView {
            username: p.username,
            bio: p.bio,
            image: p.image,
            following: p.following,
            followers_count: p.followers_count,
            following_count: p.following_count,
            blocked: p.blocked,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileEnvelope {
    pub profile: ProfileView,
}

impl ProfileEnvelope {
    pub fn from_reply(reply: ProfileReply) -> Result<Self, ServiceError> {
        let profile = reply.profile.ok_or_else(ServiceError::internal)?;
        Ok(ProfileEnvelope { profile: profile.into() })
    }
}

/// A page of profiles; `next_cursor` is `null` on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    pub profiles: Vec<ProfileView>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneBody {
    #[schema(required = true, pattern = "^\\+[0-9]{8,15}$")]
    #[serde(default)]
    pub phone: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeBody {
    #[schema(required = true, pattern = "^[0-9]{6}$")]
    #[serde(default)]
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailBody {
    #[schema(required = true, format = Email)]
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetBody {
    #[schema(required = true)]
    #[serde(default)]
    pub token: String,
    #[schema(required = true, min_length = 8, max_length = 128)]
    #[serde(default)]
    pub password: String,
}

/// `GET /api/user/email/verify`: the account whose address the link verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedEmailEnvelope {
    pub user: VerifiedEmail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedEmail {
    pub username: String,
    pub email: String,
    pub email_verified: bool,
}

/// A single-use WebSocket ticket, valid for 30 s: `GET /ws?ticket=…`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    pub ticket: String,
}

/// `GET /healthz`: the process is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /readyz`: whether every worker answers its health operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `unavailable` when a worker does not answer.
    pub status: &'static str,
    /// Each worker's state, `up` or `down`, by service name.
    pub services: std::collections::BTreeMap<&'static str, &'static str>,
}
