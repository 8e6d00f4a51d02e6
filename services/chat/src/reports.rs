//! Reports of messages and their resolution. A member reports a message of their conversation;
//! administrators (the gateway checks `SOULCHAT_ADMIN_USER_IDS`) list the open reports with
//! their messages and resolve one by deleting the message, dismissing it, or suspending the
//! author through the user worker (`soulchat.user.v1.suspend`). Resolving a report resolves
//! every open report of the same message alike.

use std::sync::Arc;

use soulchat_runtime::{Error, Reads, RequestContext, Result};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::*;
use soulchat_subjects::error::Validation;
use soulchat_subjects::time::now_ms;
use soulchat_subjects::user::{self, messages::SuspendRequest};

use crate::store::{MessageRow, OPEN, ReportRow, Store};
use crate::{Chat, access, attachments, messages, validate};

/// A report's reason, at most.
const REASON_MAX: usize = 1000;

pub async fn report(chat: Arc<Chat>, ctx: RequestContext, req: ReportRequest) -> Result<ReportReply> {
    let me = ctx.user_id()?;
    let reason = req.reason.trim();
    let mut v = Validation::new();
    if reason.is_empty() {
        v.problem("reason", "can't be blank");
    } else if reason.chars().count() > REASON_MAX {
        v.problem("reason", &format!("is too long (maximum is {REASON_MAX} characters)"));
    }
    v.finish()?;
    let mut tx = chat.store.db().begin().await?;
    let (conversation, _) = access::membership(&mut tx, &req.conversation_id, me).await?;
    let message = Store::message(&mut tx, &conversation.id, req.seq)
        .await?
        .filter(|m| m.deleted == 0)
        .ok_or_else(|| ServiceError::not_found("message"))?;
    if message.sender_id == me {
        return Err(ServiceError::invalid("message", "is your own").into());
    }
    let row = ReportRow {
        position: 0,
        id: uuid::Uuid::now_v7().to_string(),
        conversation_id: conversation.id,
        seq: message.seq,
        reporter_id: me.to_owned(),
        author_id: message.sender_id.clone(),
        reason: reason.to_owned(),
        status: OPEN.to_owned(),
        created_at_ms: now_ms(),
        resolved_at_ms: None,
        resolved_by: None,
    };
    Store::insert_report(&mut tx, &row).await.map_err(|e| Error::taken_if_unique(e, "report"))?;
    tx.commit().await?;
    Ok(ReportReply { report: Some(with_message(&row, &message)) })
}

pub async fn list_reports(chat: Arc<Chat>, _ctx: RequestContext, req: ListReportsRequest) -> Result<ReportList> {
    let limit = validate::limit(req.limit)?;
    let after = match req.cursor.as_str() {
        "" => 0,
        cursor => cursor.parse::<i64>().map_err(|_| ServiceError::invalid("cursor", "is invalid"))?,
    };
    let mut r = chat.store.db().reads().await?;
    // One row more than asked says whether another page follows.
    let mut rows = Store::open_reports(&mut r, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor =
        if more { rows.last().map(|row| row.position.to_string()).unwrap_or_default() } else { String::new() };
    let mut reports = Vec::with_capacity(rows.len());
    for row in &rows {
        reports.push(view(&mut r, row).await?);
    }
    Ok(ReportList { reports, next_cursor })
}

pub async fn resolve_report(chat: Arc<Chat>, ctx: RequestContext, req: ResolveReportRequest) -> Result<ReportReply> {
    let me = ctx.user_id()?;
    let status = match req.action.as_str() {
        "delete" => "deleted",
        "dismiss" => "dismissed",
        "suspend" => "suspended",
        _ => return Err(ServiceError::invalid("action", "must be delete, dismiss or suspend").into()),
    };
    let found = Store::report(&mut chat.store.db().reads().await?, &req.id)
        .await?
        .ok_or_else(|| ServiceError::not_found("report"))?;
    if found.status != OPEN {
        return Err(ServiceError::conflict("report", "is already resolved").into());
    }
    if status == "suspended" {
        // Suspended first: if the user worker refuses (a past `until`, no reason), the report
        // stays open.
        let request = SuspendRequest { user_id: found.author_id.clone(), until_ms: req.until_ms, reason: req.reason };
        chat.caller.call::<user::Suspend>(&ctx.call, &request).await?;
    }
    let mut tx = chat.store.db().begin().await?;
    // Resolved first, in the writer's turn: of two administrators resolving at once, the second
    // finds nothing open and deletes nothing.
    if !Store::resolve_reports(&mut tx, &found.conversation_id, found.seq, status, now_ms(), me).await? {
        return Err(ServiceError::conflict("report", "is already resolved").into());
    }
    let mut released = None;
    if status == "deleted"
        && let Some(message) = Store::message(&mut tx, &found.conversation_id, found.seq).await?
    {
        messages::remove(&chat.store, &mut tx, &message, me).await?;
        released = message.attachment_id;
    }
    let resolved = Store::report(&mut tx, &found.id).await?.ok_or_else(|| ServiceError::not_found("report"))?;
    let report = view(&mut tx, &resolved).await?;
    tx.commit().await?;
    if let Some(id) = released {
        attachments::release(&chat, &id).await;
    }
    Ok(ReportReply { report: Some(report) })
}

/// A report with its message as it is now.
async fn view(r: &mut impl Reads, row: &ReportRow) -> sqlx::Result<Report> {
    Ok(match Store::message(r, &row.conversation_id, row.seq).await? {
        Some(message) => with_message(row, &message),
        None => row.to_proto(),
    })
}

fn with_message(row: &ReportRow, message: &MessageRow) -> Report {
    Report { message: Some(message.to_proto()), ..row.to_proto() }
}
