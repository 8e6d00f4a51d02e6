//! The user service contract: accounts, credentials and sessions (`soulchat.user.v1.*`) and the
//! account lifecycle events (`soulchat.events.user.*`).

use crate::proto::common::v1::Empty;
pub use crate::proto::user::v1 as messages;
use messages::*;

crate::service! {
    SERVICE = "user", "Accounts, credentials and sessions";
    v1 {
        /// Creates an account and its first session.
        Register = "register": RegisterRequest => AuthReply;
        /// Exchanges email and password for a session. Unknown email and wrong password answer alike.
        Login = "login": LoginRequest => AuthReply;
        /// The caller's account.
        GetCurrent = "get_current": GetCurrentRequest => UserReply;
        /// Changes email, username, password, bio or image.
        Update = "update": UpdateRequest => UpdateReply;
        /// Deletes the caller's account.
        Delete = "delete": DeleteRequest => Empty;
        /// Rotates a refresh token; reuse of a rotated one revokes its family.
        Refresh = "refresh": RefreshRequest => AuthReply;
        /// Revokes the access token and its refresh family.
        Logout = "logout": LogoutRequest => Empty;
        /// Emails the caller a link that verifies the account's email.
        RequestEmailVerification = "request_email_verification": RequestEmailVerificationRequest => Empty;
        /// Verifies an email with the token from its link.
        VerifyEmail = "verify_email": VerifyEmailRequest => UserReply;
        /// Sends a verification code by SMS to a new phone number for the caller.
        SetPhone = "set_phone": SetPhoneRequest => Empty;
        /// Verifies the caller's new phone number with its code.
        VerifyPhone = "verify_phone": VerifyPhoneRequest => UserReply;
        /// Emails a password-reset link (answers alike whether the account exists).
        RequestPasswordReset = "request_password_reset": RequestPasswordResetRequest => Empty;
        /// Sets a new password with a reset token and ends every session.
        ResetPassword = "reset_password": ResetPasswordRequest => Empty;
        /// A user's verified contact points (for the notification worker).
        Contact = "contact": ContactRequest => ContactReply;
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
