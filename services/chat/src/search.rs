//! Message search: full-text over the messages of the caller's conversations, best match first,
//! paged by an offset cursor (see `validate::search_cursor`). The index is written in the same
//! transaction as the message, its edit or its deletion (`store::search`), so a result never
//! shows what was already changed.

use std::sync::Arc;

use soulchat_runtime::{RequestContext, Result};
use soulchat_subjects::chat::messages::*;
use soulchat_subjects::error::Validation;

use crate::store::{MessageRow, Store};
use crate::{Chat, access, validate};

pub async fn search(chat: Arc<Chat>, ctx: RequestContext, req: SearchRequest) -> Result<SearchReply> {
    let me = ctx.user_id()?;
    let mut v = Validation::new();
    let words = validate::search_words(&mut v, &req.q);
    let offset = validate::search_cursor(&mut v, &req.cursor);
    v.finish()?;
    let limit = validate::limit(req.limit)?;
    let mut conn = chat.store.db().reads().await?;
    if let Some(id) = &req.conversation_id {
        access::membership(&mut conn, id, me).await?;
    }
    // One row more than asked says whether another page follows.
    let mut rows = chat.store.search(&mut conn, me, &words, req.conversation_id.as_deref(), offset, limit + 1).await?;
    let more = rows.len() as i64 > limit && offset + limit <= validate::SEARCH_OFFSET_MAX;
    rows.truncate(limit as usize);
    let mut messages: Vec<Message> = rows.iter().map(MessageRow::to_proto).collect();
    Store::attach(&mut conn, Some(me), &mut messages).await?;
    Ok(SearchReply { messages, next_cursor: if more { (offset + limit).to_string() } else { String::new() } })
}
