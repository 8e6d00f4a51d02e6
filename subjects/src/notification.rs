//! The notification service contract (`soulchat.notification.v1.*`).

pub use crate::proto::notification::v1 as messages;
use messages::*;

crate::service! {
    SERVICE = "soulchat-notification", "soulchat.notification.v1", "In-app, push, email and SMS notifications";
    /// Registration saga step: the welcome notification (idempotent per user).
    Welcome = "welcome": WelcomeRequest => WelcomeReply;
}
