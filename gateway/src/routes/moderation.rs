//! Reports and moderation: a member reports a message (`/api/conversations/{id}/messages/{seq}/report`),
//! administrators (`SOULCHAT_ADMIN_USER_IDS`) list open reports, resolve them, and suspend
//! accounts (`/api/admin/*`). Reports are the chat worker's; suspensions the user worker's.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use soulchat_subjects::chat::{self, messages as cm};
use soulchat_subjects::time::parse_rfc3339_ms;
use soulchat_subjects::user::{self, messages as um};
use soulchat_subjects::{CallContext, ServiceError};

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::extract::{JsonBody, Meta, Paging, Path};
use crate::people::{self, Names};
use crate::state::AppState;
use crate::views::moderation::*;

/// 403 `user: ["is not an administrator"]` unless the caller is one.
pub fn require_admin(state: &AppState, auth: &AuthUser) -> Result<(), ServiceError> {
    if state.admins.iter().any(|a| a == auth.id()) {
        Ok(())
    } else {
        Err(ServiceError::forbidden("user", "is not an administrator"))
    }
}

#[utoipa::path(post, path = "/conversations/{id}/messages/{seq}/report", tag = "moderation", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("seq" = i64, Path, description = "The message's number in its conversation.")), request_body = ReportBody,
    responses(
        (status = 201, description = "The report, open until an administrator resolves it.", body = ReportEnvelope),
        (status = 404, description = "No such message, or the caller is not a member."),
        (status = 409, description = "The caller reported this message already."),
        (status = 422, description = "A blank or too long `reason`, or the caller's own message."),
    ))]
pub async fn report(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq)): Path<(String, String)>,
    JsonBody(body): JsonBody<ReportBody>,
) -> ApiResult<(StatusCode, Json<ReportEnvelope>)> {
    let ctx = ctx.with_user(auth.id());
    let seq = seq.parse::<i64>().map_err(|_| ServiceError::not_found("message"))?;
    let request = cm::ReportRequest { conversation_id: id, seq, reason: body.reason };
    let reply = state.caller.call::<chat::Report>(&ctx, &request).await?;
    Ok((StatusCode::CREATED, Json(envelope(&state, &ctx, reply).await?)))
}

#[utoipa::path(get, path = "/admin/reports", tag = "moderation", security(("token" = [])),
    params(("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses(
        (status = 200, description = "Open reports with their messages, oldest first.", body = ReportList),
        (status = 403, description = "The caller is not an administrator."),
    ))]
pub async fn list_reports(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    paging: Paging,
) -> ApiResult<Json<ReportList>> {
    require_admin(&state, &auth)?;
    let ctx = ctx.with_user(auth.id());
    let request = cm::ListReportsRequest { cursor: paging.cursor, limit: paging.limit };
    let list = state.caller.call::<chat::ListReports>(&ctx, &request).await?;
    let ids = list.reports.iter().flat_map(|r| [r.reporter_id.as_str(), r.author_id.as_str()]);
    let names = Names::of_ids(&state.caller, &ctx, ids).await?;
    Ok(Json(ReportList {
        reports: list.reports.into_iter().map(|r| ReportView::new(r, &names)).collect(),
        next_cursor: Some(list.next_cursor).filter(|c| !c.is_empty()),
    }))
}

#[utoipa::path(post, path = "/admin/reports/{id}/resolve", tag = "moderation", security(("token" = [])), params(("id" = String, Path, description = "The report.")), request_body = ResolveBody,
    responses(
        (status = 200, description = "The report, resolved with every other open report of its message.", body = ReportEnvelope),
        (status = 403, description = "The caller is not an administrator."),
        (status = 404, description = "No such report."),
        (status = 409, description = "The report is resolved already."),
        (status = 422, description = "An unknown `action`; for `suspend`, a missing or past `until` or a blank `reason`."),
    ))]
pub async fn resolve_report(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ResolveBody>,
) -> ApiResult<Json<ReportEnvelope>> {
    require_admin(&state, &auth)?;
    let ctx = ctx.with_user(auth.id());
    let until_ms = match (body.action.as_str(), body.until.as_deref()) {
        ("suspend", until) => until_ms(until.unwrap_or_default())?,
        _ => 0,
    };
    let request =
        cm::ResolveReportRequest { id, action: body.action, until_ms, reason: body.reason.unwrap_or_default() };
    let reply = state.caller.call::<chat::ResolveReport>(&ctx, &request).await?;
    Ok(Json(envelope(&state, &ctx, reply).await?))
}

#[utoipa::path(post, path = "/admin/users/{username}/suspend", tag = "moderation", security(("token" = [])), params(("username" = String, Path, description = "Whose account.")), request_body = SuspendBody,
    responses(
        (status = 200, description = "Suspended: every session of the account ended, and login answers 403 `account` until then.", body = SuspensionEnvelope),
        (status = 403, description = "The caller is not an administrator."),
        (status = 404, description = "No such user."),
        (status = 422, description = "A missing, malformed or past `until`, or a blank or too long `reason`."),
    ))]
pub async fn suspend(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<SuspendBody>,
) -> ApiResult<Json<SuspensionEnvelope>> {
    require_admin(&state, &auth)?;
    let ctx = ctx.with_user(auth.id());
    let until_ms = until_ms(&body.until)?;
    let user_id = people::ids_of(&state.caller, &ctx, "user", &[username]).await?.remove(0);
    let request = um::SuspendRequest { user_id, until_ms, reason: body.reason };
    let reply = state.caller.call::<user::Suspend>(&ctx, &request).await?;
    Ok(Json(SuspensionEnvelope { suspension: reply.into() }))
}

fn until_ms(until: &str) -> Result<i64, ServiceError> {
    if until.trim().is_empty() {
        return Err(ServiceError::invalid("until", "can't be blank"));
    }
    parse_rfc3339_ms(until)
        .ok_or_else(|| ServiceError::invalid("until", "is invalid (RFC 3339 in UTC, e.g. 2030-01-01T00:00:00Z)"))
}

async fn envelope(state: &AppState, ctx: &CallContext, reply: cm::ReportReply) -> Result<ReportEnvelope, ServiceError> {
    let r = reply.report.ok_or_else(ServiceError::internal)?;
    let names = Names::of_ids(&state.caller, ctx, [r.reporter_id.as_str(), r.author_id.as_str()]).await?;
    Ok(ReportEnvelope { report: ReportView::new(r, &names) })
}
