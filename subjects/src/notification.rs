//! The notification service contract (`soulchat.notification.v1.*`) and its delivery jobs.

use crate::proto::common::v1::Empty;
pub use crate::proto::notification::v1 as messages;
use messages::*;

crate::service! {
    SERVICE = "notification", "In-app, push, email and SMS notifications";
    v1 {
        /// Registration saga step: the welcome notification (idempotent per user).
        Welcome = "welcome": WelcomeRequest => WelcomeReply, by [User];
        /// The caller's notifications and the system alerts, newest first, with the unread count.
        List = "list": ListRequest => NotificationList, by [Gateway];
        /// Marks some or all of the caller's notifications read.
        MarkRead = "mark_read": MarkReadRequest => Empty, by [Gateway];
        /// The caller's channel opt-ins and muted conversations.
        GetPreferences = "get_preferences": GetPreferencesRequest => Preferences, by [Gateway];
        /// Replaces the caller's preferences.
        PutPreferences = "put_preferences": Preferences => Preferences, by [Gateway];
        /// The VAPID public key browsers subscribe with; 404 when Web Push is off.
        PushKey = "push_key": PushKeyRequest => PushKeyReply, by [Gateway];
        /// Registers a Web Push subscription for the caller.
        SubscribePush = "subscribe_push": SubscribePushRequest => SubscribePushReply, by [Gateway];
        /// Removes one of the caller's Web Push subscriptions.
        UnsubscribePush = "unsubscribe_push": UnsubscribePushRequest => Empty, by [Gateway];
        /// A system alert for every user (the gateway checks admin rights).
        Alert = "alert": AlertRequest => Notification, by [Gateway];
        /// Queues an account email (no preference check).
        SendEmail = "send_email": SendEmailRequest => DeliveryReply, by [User];
        /// Queues an account SMS (no preference check).
        SendSms = "send_sms": SendSmsRequest => DeliveryReply, by [User];
    }
}

crate::events! {
    STREAM = crate::streams::DELIVERIES_STREAM;
    /// A queued Web Push delivery (a work queue: a job leaves when delivered or dead-lettered).
    PushJob = concat!(crate::streams::deliveries_prefix!(), ".push") => Delivery;
    /// A queued email.
    EmailJob = concat!(crate::streams::deliveries_prefix!(), ".email") => Delivery;
    /// A queued SMS.
    SmsJob = concat!(crate::streams::deliveries_prefix!(), ".sms") => Delivery;
    /// Every queued delivery, whatever its channel: what the delivery consumer takes.
    AnyJob = crate::streams::DELIVERIES_SUBJECTS => Delivery;
}

crate::consumers! {
    /// Learns a new account's verified contact points.
    USER_CREATED: crate::user::Created = "notification-user-created";
    /// Learns changed contact points.
    USER_UPDATED: crate::user::Updated = "notification-user-updated";
    /// Removes everything kept about a deleted user.
    USER_DELETED: crate::user::Deleted = "notification-user-deleted";
    /// Tells a user about a new follower.
    PROFILE_FOLLOWED: crate::profile::Followed = "notification-profile-followed";
    /// Messages for users with no live socket, mentions, being added to a group.
    CHAT: crate::chat::Committed = "notification-chat";
    /// Delivers queued push, email and SMS jobs, with retries and dead letters.
    DELIVERIES: AnyJob = "notification-deliveries";
}
