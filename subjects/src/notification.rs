//! The notification service contract (`soulchat.notification.v1.*`).

crate::service! {
    SERVICE = "soulchat-notification", "soulchat.notification.v1", "In-app, push, email and SMS notifications";
}
