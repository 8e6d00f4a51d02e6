//! Accounts and sessions: `/api/users*` and `/api/user`, answered by the user worker.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use soulchat_subjects::user::{self, messages::*};
use soulchat_subjects::{CallError, ErrorCode, ServiceError, error::Validation};

use crate::auth::AuthUser;
use crate::client::ClientAddr;
use crate::error::ApiResult;
use crate::extract::{JsonBody, Meta, Paging};
use crate::state::AppState;
use crate::views::{
    CodeBody, EmailBody, LoginBody, PhoneBody, RefreshBody, RegisterBody, ResetBody, UpdateBody, UserEnvelope,
    UserView, VerifiedEmail, VerifiedEmailEnvelope, Wrapped,
};

#[utoipa::path(post, path = "/users", tag = "users", request_body = Wrapped<RegisterBody>,
    responses(
        (status = 201, description = "The new account, signed in.", body = UserEnvelope),
        (status = 409, description = "The username or email is taken."),
    ))]
pub async fn register(
    State(state): State<AppState>,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<Wrapped<RegisterBody>>,
) -> ApiResult<(StatusCode, Json<UserEnvelope>)> {
    let b = body.user;
    let reply = state
        .caller
        .call::<user::Register>(&ctx, &RegisterRequest { username: b.username, email: b.email, password: b.password })
        .await?;
    Ok((StatusCode::CREATED, Json(auth_envelope(reply)?)))
}

#[utoipa::path(post, path = "/users/login", tag = "users", request_body = Wrapped<LoginBody>,
    responses(
        (status = 200, description = "Signed in: an access token and a refresh token.", body = UserEnvelope),
        (status = 401, description = "The email or password is wrong."),
        (status = 403, description = "The account is suspended (`account: [\"is suspended until …\"]`)."),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<Wrapped<LoginBody>>,
) -> ApiResult<Json<UserEnvelope>> {
    let b = body.user;
    let counters = state.login_limits.counters(&b.email, client);
    for (key, limit) in &counters {
        if let Some(wait) = state.limiter.blocked(key, *limit).await {
            soulchat_subjects::metrics::limit_refused(soulchat_subjects::metrics::Limit::Login);
            return Err(ServiceError::too_many("login", wait).into());
        }
    }
    let result = state.caller.call::<user::Login>(&ctx, &LoginRequest { email: b.email, password: b.password }).await;
    if matches!(&result, Err(CallError::Service(e)) if e.code == ErrorCode::Unauthorized) {
        // Only failures count: a user who types the password right is never locked out.
        for (key, _) in &counters {
            state.limiter.hit(key, state.login_limits.window).await;
        }
    }
    Ok(Json(auth_envelope(result?)?))
}

#[utoipa::path(get, path = "/user", tag = "users", security(("token" = [])),
    responses(
        (status = 200, description = "The caller's account.", body = UserEnvelope),
        (status = 404, description = "The account is gone."),
    ))]
pub async fn current(State(state): State<AppState>, auth: AuthUser, Meta(ctx): Meta) -> ApiResult<Json<UserEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let reply = state.caller.call::<user::GetCurrent>(&ctx, &GetCurrentRequest {}).await?;
    let user = reply.user.ok_or_else(ServiceError::internal)?;
    Ok(Json(UserEnvelope { user: UserView::new(user, auth.token, None) }))
}

#[utoipa::path(put, path = "/user", tag = "users", security(("token" = [])), request_body = Wrapped<UpdateBody>,
    responses(
        (status = 200, description = "The changed account; a new token when the password changed.", body = UserEnvelope),
        (status = 404, description = "The account is gone."),
        (status = 409, description = "The username or email is taken."),
    ))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<Wrapped<UpdateBody>>,
) -> ApiResult<Json<UserEnvelope>> {
    let b = body.user;
    let changes_password = b.password.is_some();
    let request = UpdateRequest {
        email: b.email,
        username: b.username,
        password: b.password,
        bio: b.bio.map(Option::unwrap_or_default),
        image: b.image.map(Option::unwrap_or_default),
        session_family: auth.claims.fam.clone(),
    };
    let reply = state.caller.call::<user::Update>(&ctx.with_user(auth.id()), &request).await?;
    if changes_password {
        state.auth.sync_revocations().await;
    }
    let user = reply.user.ok_or_else(ServiceError::internal)?;
    let token = reply.token.unwrap_or(auth.token);
    Ok(Json(UserEnvelope { user: UserView::new(user, token, None) }))
}

#[utoipa::path(delete, path = "/user", tag = "users", security(("token" = [])),
    responses(
        (status = 204, description = "The account and everything it owned are being deleted."),
        (status = 404, description = "The account is gone."),
    ))]
pub async fn delete(State(state): State<AppState>, auth: AuthUser, Meta(ctx): Meta) -> ApiResult<StatusCode> {
    state.caller.call::<user::Delete>(&ctx.with_user(auth.id()), &DeleteRequest {}).await?;
    state.auth.sync_revocations().await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/users/refresh", tag = "users", request_body = RefreshBody,
    responses(
        (status = 200, description = "A new access token and the next refresh token (the old one is spent).", body = UserEnvelope),
        (status = 401, description = "The refresh token is invalid, expired or revoked (a reused one revokes its whole session)."),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<Json<UserEnvelope>> {
    let mut v = Validation::new();
    if body.refresh_token.trim().is_empty() {
        v.problem("refresh_token", "can't be blank");
    }
    v.finish()?;
    let result = state.caller.call::<user::Refresh>(&ctx, &RefreshRequest { refresh_token: body.refresh_token }).await;
    if result.is_err() {
        // A reused token revoked its family: make that visible here before answering.
        state.auth.sync_revocations().await;
    }
    Ok(Json(auth_envelope(result?)?))
}

#[utoipa::path(post, path = "/users/logout", tag = "users", security(("token" = [])),
    responses((status = 204, description = "The session's tokens are revoked.")))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser, Meta(ctx): Meta) -> ApiResult<StatusCode> {
    let request = LogoutRequest {
        jti: auth.claims.jti.clone(),
        expires_at_ms: (auth.claims.exp as i64) * 1000,
        session_family: auth.claims.fam.clone(),
    };
    state.caller.call::<user::Logout>(&ctx.with_user(auth.id()), &request).await?;
    state.auth.sync_revocations().await;
    Ok(StatusCode::NO_CONTENT)
}

fn auth_envelope(reply: AuthReply) -> Result<UserEnvelope, ServiceError> {
    let (Some(user), Some(session)) = (reply.user, reply.session) else {
        return Err(ServiceError::internal());
    };
    Ok(UserEnvelope { user: UserView::new(user, session.token, Some(session.refresh_token)) })
}

/// `POST /api/user/email/verify`: emails the caller a verification link.
#[utoipa::path(post, path = "/user/email/verify", tag = "users", security(("token" = [])),
    responses(
        (status = 204, description = "A verification link is on its way."),
        (status = 404, description = "The account is gone."),
    ))]
pub async fn request_email_verification(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
) -> ApiResult<StatusCode> {
    state
        .caller
        .call::<user::RequestEmailVerification>(&ctx.with_user(auth.id()), &RequestEmailVerificationRequest {})
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/user/email/verify?token=`: the link in the email (opened without a session).
#[utoipa::path(get, path = "/user/email/verify", tag = "users",
    params(("token" = String, Query, description = "The token from the emailed link.")),
    responses(
        (status = 200, description = "The address is verified.", body = VerifiedEmailEnvelope),
        (status = 401, description = "The token is invalid or expired."),
        (status = 404, description = "The account is gone."),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    Meta(ctx): Meta,
    paging: Paging,
) -> ApiResult<Json<VerifiedEmailEnvelope>> {
    let token = paging.param("token").unwrap_or_default();
    let reply = state.caller.call::<user::VerifyEmail>(&ctx, &VerifyEmailRequest { token }).await?;
    let user = reply.user.ok_or_else(ServiceError::internal)?;
    Ok(Json(VerifiedEmailEnvelope {
        user: VerifiedEmail { username: user.username, email: user.email, email_verified: user.email_verified },
    }))
}

/// `PUT /api/user/phone {phone}`: sends a code to the new number.
#[utoipa::path(put, path = "/user/phone", tag = "users", security(("token" = [])), request_body = PhoneBody,
    responses(
        (status = 204, description = "A code is on its way to the number."),
        (status = 404, description = "The account is gone."),
        (status = 409, description = "The number belongs to another account."),
    ))]
pub async fn set_phone(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<PhoneBody>,
) -> ApiResult<StatusCode> {
    state.caller.call::<user::SetPhone>(&ctx.with_user(auth.id()), &SetPhoneRequest { phone: body.phone }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/user/phone/verify {code}`.
#[utoipa::path(post, path = "/user/phone/verify", tag = "users", security(("token" = [])), request_body = CodeBody,
    responses(
        (status = 200, description = "The number is verified.", body = UserEnvelope),
        (status = 404, description = "The account is gone."),
        (status = 409, description = "The number belongs to another account."),
    ))]
pub async fn verify_phone(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<CodeBody>,
) -> ApiResult<Json<UserEnvelope>> {
    let reply = state
        .caller
        .call::<user::VerifyPhone>(&ctx.with_user(auth.id()), &VerifyPhoneRequest { code: body.code })
        .await?;
    let user = reply.user.ok_or_else(ServiceError::internal)?;
    Ok(Json(UserEnvelope { user: UserView::new(user, auth.token, None) }))
}

/// `POST /api/users/password/forgot {email}`: 204 whether or not the email has an account.
#[utoipa::path(post, path = "/users/password/forgot", tag = "users", request_body = EmailBody,
    responses((status = 204, description = "If the address has an account, a reset link is on its way.")))]
pub async fn forgot_password(
    State(state): State<AppState>,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<EmailBody>,
) -> ApiResult<StatusCode> {
    state.caller.call::<user::RequestPasswordReset>(&ctx, &RequestPasswordResetRequest { email: body.email }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/users/password/reset {token, password}`: every session of the account ends.
#[utoipa::path(post, path = "/users/password/reset", tag = "users", request_body = ResetBody,
    responses(
        (status = 204, description = "The password is changed and every session ended."),
        (status = 401, description = "The reset token is invalid or expired."),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<ResetBody>,
) -> ApiResult<StatusCode> {
    let request = ResetPasswordRequest { token: body.token, password: body.password };
    state.caller.call::<user::ResetPassword>(&ctx, &request).await?;
    state.auth.sync_revocations().await;
    Ok(StatusCode::NO_CONTENT)
}
