//! The user service contract: accounts, credentials and sessions (`soulchat.user.v1.*`) and the
//! account lifecycle events (`soulchat.events.user.*`).

use crate::proto::common::v1::Empty;
pub use crate::proto::user::v1 as messages;
use messages::*;

crate::service! {
    SERVICE = "user", "Accounts, credentials and sessions";
    v1 {
        /// Creates an account and its first session.
        Register = "register": RegisterRequest => AuthReply, by [Gateway];
        /// Exchanges email and password for a session. Unknown email and wrong password answer alike.
        Login = "login": LoginRequest => AuthReply, by [Gateway];
        /// The caller's account.
        GetCurrent = "get_current": GetCurrentRequest => UserReply, by [Gateway];
        /// Changes email, username, password, bio or image.
        Update = "update": UpdateRequest => UpdateReply, by [Gateway];
        /// Deletes the caller's account.
        Delete = "delete": DeleteRequest => Empty, by [Gateway];
        /// Rotates a refresh token; reuse of a rotated one revokes its family.
        Refresh = "refresh": RefreshRequest => AuthReply, by [Gateway];
        /// Revokes the access token and its refresh family.
        Logout = "logout": LogoutRequest => Empty, by [Gateway];
        /// Emails the caller a link that verifies the account's email.
        RequestEmailVerification = "request_email_verification": RequestEmailVerificationRequest => Empty, by [Gateway];
        /// Verifies an email with the token from its link.
        VerifyEmail = "verify_email": VerifyEmailRequest => UserReply, by [Gateway];
        /// Sends a verification code by SMS to a new phone number for the caller.
        SetPhone = "set_phone": SetPhoneRequest => Empty, by [Gateway];
        /// Verifies the caller's new phone number with its code.
        VerifyPhone = "verify_phone": VerifyPhoneRequest => UserReply, by [Gateway];
        /// Emails a password-reset link (answers alike whether the account exists).
        RequestPasswordReset = "request_password_reset": RequestPasswordResetRequest => Empty, by [Gateway];
        /// Sets a new password with a reset token and ends every session.
        ResetPassword = "reset_password": ResetPasswordRequest => Empty, by [Gateway];
        /// A user's verified contact points (for the notification worker).
        Contact = "contact": ContactRequest => ContactReply, by [];
        /// Suspends an account until a time and ends its sessions (admins, through the gateway
        /// or a resolved report).
        Suspend = "suspend": SuspendRequest => SuspendReply, by [Gateway, Chat];
    }
}

crate::events! {
    /// An account was registered and activated (after its profile exists).
    Created = "soulchat.events.user.created" => UserEvent;
    /// A username, email or verified contact point changed (`previous_username` on a rename).
    Updated = "soulchat.events.user.updated" => UserEvent;
    /// An account was deleted: every worker forgets the user.
    Deleted = "soulchat.events.user.deleted" => UserEvent;
}
