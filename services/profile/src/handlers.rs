//! One function per `soulchat.profile.v1` operation.

use std::slice;
use std::sync::Arc;

use anyhow::Context;
use soulchat_runtime::{Error, Reads, RequestContext, Result};
use soulchat_subjects::ServiceError;
use soulchat_subjects::paging::page_size;
use soulchat_subjects::profile::{self, messages::*};
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::time::now_ms;

use crate::Profiles;
use crate::cache::Cached;
use crate::store::{self, Page, ProfileRow};

const BIO_MAX: usize = 1000;
const IMAGE_MAX: usize = 2000;

/// What a row read back in the transaction that just wrote it cannot be without.
const VANISHED: &str = "profile vanished inside its own transaction";

pub async fn create(p: Arc<Profiles>, _ctx: RequestContext, req: CreateRequest) -> Result<ProfileReply> {
    let mut tx = p.db.begin().await?;
    if let Some(existing) = store::by_user(&mut tx, &req.user_id).await? {
        // A retried saga step: the profile is already there.
        return Ok(reply(existing.to_profile(false)));
    }
    if let Err(e) = store::insert(&mut tx, &req.user_id, &req.username).await {
        let error = Error::taken_if_unique(e, "username");
        if matches!(error, Error::Refused(_)) {
            // Lost a race with a retry of the same step, or the name is held by a profile
            // whose removal is still on its way. Read again outside this transaction: on MySQL
            // its snapshot predates the other step's commit.
            tx.rollback().await?;
            if let Some(existing) = store::by_user(&mut p.db.reads().await?, &req.user_id).await? {
                return Ok(reply(existing.to_profile(false)));
            }
        }
        return Err(error);
    }
    let row = store::by_user(&mut tx, &req.user_id).await?.context(VANISHED)?;
    tx.commit().await?;
    p.cache.put(&row).await;
    Ok(reply(row.to_profile(false)))
}

pub async fn delete(p: Arc<Profiles>, _ctx: RequestContext, req: DeleteRequest) -> Result<Empty> {
    let mut tx = p.db.begin().await?;
    let removed = store::remove(&mut tx, &req.user_id).await?;
    tx.commit().await?;
    if let Some((row, touched)) = removed {
        after_removal(&p, &row, &touched).await;
    }
    Ok(Empty {})
}

pub async fn get(p: Arc<Profiles>, ctx: RequestContext, req: GetRequest) -> Result<ProfileReply> {
    let row = by_username(&p, &req.username).await?;
    let (following, blocked) = match &ctx.call.user_id {
        Some(viewer) if *viewer != row.user_id => {
            let mut r = p.db.reads().await?;
            let following = store::is_following(&mut r, viewer, &row.user_id).await?;
            let blocked = !store::blocks_among(&mut r, viewer, slice::from_ref(&row.user_id), true).await?.is_empty();
            (following, blocked)
        }
        _ => (false, false),
    };
    Ok(reply(Profile { blocked, ..row.to_profile(following) }))
}

pub async fn get_by_user(p: Arc<Profiles>, _ctx: RequestContext, req: GetByUserRequest) -> Result<ProfileReply> {
    let row = store::by_user(&mut p.db.reads().await?, &req.user_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("profile"))?;
    Ok(reply(row.to_profile(false)))
}

pub async fn update(p: Arc<Profiles>, _ctx: RequestContext, req: UpdateRequest) -> Result<ProfileReply> {
    let mut v = soulchat_subjects::error::Validation::new();
    if req.bio.as_ref().is_some_and(|b| b.chars().count() > BIO_MAX) {
        v.problem("bio", &format!("is too long (maximum is {BIO_MAX} characters)"));
    }
    let bad_image = |i: &str| i.len() > IMAGE_MAX || !i.starts_with("https://") || i.contains(char::is_whitespace);
    if req.image.as_deref().is_some_and(|i| !i.is_empty() && bad_image(i)) {
        v.problem("image", "must be an https URL");
    }
    v.finish()?;
    let mut tx = p.db.begin().await?;
    let before = store::by_user(&mut tx, &req.user_id).await?.ok_or_else(|| ServiceError::not_found("profile"))?;
    let username = req.username.as_deref().filter(|u| *u != before.username);
    store::update(&mut tx, &req.user_id, username, req.bio.as_deref(), req.image.as_deref())
        .await
        .map_err(|e| Error::taken_if_unique(e, "username"))?;
    let after = store::by_user(&mut tx, &req.user_id).await?.context(VANISHED)?;
    let event = ProfileEvent { profile: Some(after.to_profile(false)), at_ms: now_ms() };
    p.outbox.record::<profile::Updated>(&mut tx, &event).await?;
    tx.commit().await?;
    if username.is_some() && !before.username.eq_ignore_ascii_case(&after.username) {
        p.cache.tombstone(&before.username, after.version).await;
    }
    p.cache.put(&after).await;
    Ok(reply(after.to_profile(false)))
}

pub async fn follow(p: Arc<Profiles>, ctx: RequestContext, req: FollowRequest) -> Result<ProfileReply> {
    change_follow(&p, &ctx, &req.username, true).await
}

pub async fn unfollow(p: Arc<Profiles>, ctx: RequestContext, req: FollowRequest) -> Result<ProfileReply> {
    change_follow(&p, &ctx, &req.username, false).await
}

async fn change_follow(p: &Profiles, ctx: &RequestContext, username: &str, follow: bool) -> Result<ProfileReply> {
    let viewer = ctx.user_id()?;
    let target = by_username(p, username).await?;
    if target.user_id == viewer {
        return Err(ServiceError::invalid("profile", "cannot follow yourself").into());
    }
    let mut tx = p.db.begin().await?;
    let me = store::by_user(&mut tx, viewer).await?.ok_or_else(|| ServiceError::not_found("user"))?;
    let changed = if follow {
        store::follow(&mut tx, viewer, &target.user_id).await?
    } else {
        store::unfollow(&mut tx, viewer, &target.user_id).await?
    };
    if changed {
        let event = FollowEvent {
            follower_id: me.user_id.clone(),
            follower_username: me.username.clone(),
            followee_id: target.user_id.clone(),
            followee_username: target.username.clone(),
            at_ms: now_ms(),
        };
        if follow {
            p.outbox.record::<profile::Followed>(&mut tx, &event).await?;
        } else {
            p.outbox.record::<profile::Unfollowed>(&mut tx, &event).await?;
        }
    }
    let after = store::by_user(&mut tx, &target.user_id).await?.context(VANISHED)?;
    let me_after = store::by_user(&mut tx, viewer).await?.context(VANISHED)?;
    tx.commit().await?;
    if changed {
        p.cache.put(&after).await;
        p.cache.put(&me_after).await;
    }
    Ok(reply(after.to_profile(follow)))
}

pub async fn followers(p: Arc<Profiles>, ctx: RequestContext, req: ListRequest) -> Result<ProfileList> {
    list_edges(&p, &ctx, req, true).await
}

pub async fn following(p: Arc<Profiles>, ctx: RequestContext, req: ListRequest) -> Result<ProfileList> {
    list_edges(&p, &ctx, req, false).await
}

async fn list_edges(p: &Profiles, ctx: &RequestContext, req: ListRequest, followers: bool) -> Result<ProfileList> {
    let limit = page_size(req.limit)?;
    let after = edge_cursor(&req.cursor)?;
    let owner = by_username(p, &req.username).await?;
    let mut r = p.db.reads().await?;
    let page = store::edges(&mut r, &owner.user_id, followers, after, limit).await?;
    to_list(&mut r, ctx, page).await
}

/// An edge list's cursor: the id of the last edge of the previous page.
fn edge_cursor(cursor: &str) -> Result<i64> {
    if cursor.is_empty() {
        return Ok(0);
    }
    Ok(cursor.parse::<i64>().map_err(|_| ServiceError::invalid("cursor", "is invalid"))?)
}

pub async fn block(p: Arc<Profiles>, ctx: RequestContext, req: BlockRequest) -> Result<ProfileReply> {
    change_block(&p, &ctx, &req.username, true).await
}

pub async fn unblock(p: Arc<Profiles>, ctx: RequestContext, req: BlockRequest) -> Result<ProfileReply> {
    change_block(&p, &ctx, &req.username, false).await
}

/// A change of block is an event: the chat worker keeps a copy of blocks for its send path.
async fn change_block(p: &Profiles, ctx: &RequestContext, username: &str, block: bool) -> Result<ProfileReply> {
    let viewer = ctx.user_id()?;
    let target = by_username(p, username).await?;
    if target.user_id == viewer {
        return Err(ServiceError::invalid("profile", "cannot block yourself").into());
    }
    let mut tx = p.db.begin().await?;
    store::by_user(&mut tx, viewer).await?.ok_or_else(|| ServiceError::not_found("user"))?;
    let changed = if block {
        store::block(&mut tx, viewer, &target.user_id).await?
    } else {
        store::unblock(&mut tx, viewer, &target.user_id).await?
    };
    if changed {
        let event = BlockEvent {
            blocker_id: viewer.to_owned(),
            blocked_id: target.user_id.clone(),
            blocked: block,
            at_ms: now_ms(),
        };
        p.outbox.record::<profile::BlockChanged>(&mut tx, &event).await?;
    }
    let following = store::is_following(&mut tx, viewer, &target.user_id).await?;
    tx.commit().await?;
    Ok(reply(Profile { blocked: block, ..target.to_profile(following) }))
}

pub async fn list_blocks(p: Arc<Profiles>, ctx: RequestContext, req: ListBlocksRequest) -> Result<ProfileList> {
    let viewer = ctx.user_id()?;
    let limit = page_size(req.limit)?;
    let after = edge_cursor(&req.cursor)?;
    let mut r = p.db.reads().await?;
    let page = store::blocks(&mut r, viewer, after, limit).await?;
    to_list(&mut r, &ctx, page).await
}

pub async fn blocked_among(
    p: Arc<Profiles>,
    _ctx: RequestContext,
    req: BlockedAmongRequest,
) -> Result<BlockedAmongReply> {
    const MAX: usize = 1000;
    if req.among.len() > MAX {
        return Err(ServiceError::invalid("among", &format!("at most {MAX} ids")).into());
    }
    let mut r = p.db.reads().await?;
    Ok(BlockedAmongReply {
        blocked: store::blocks_among(&mut r, &req.user_id, &req.among, true).await?,
        blocked_by: store::blocks_among(&mut r, &req.user_id, &req.among, false).await?,
    })
}

pub async fn lookup(p: Arc<Profiles>, ctx: RequestContext, req: LookupRequest) -> Result<ProfileList> {
    const MAX: usize = 1000;
    if req.user_ids.len() > MAX || req.usernames.len() > MAX {
        return Err(ServiceError::invalid("lookup", &format!("at most {MAX} ids and {MAX} usernames")).into());
    }
    let names: Vec<String> = req.usernames.iter().map(|n| n.trim().to_lowercase()).collect();
    let mut r = p.db.reads().await?;
    let rows = store::lookup(&mut r, &req.user_ids, &names).await?;
    to_list(&mut r, &ctx, Page { rows, next: None }).await
}

pub async fn search(p: Arc<Profiles>, ctx: RequestContext, req: SearchRequest) -> Result<ProfileList> {
    let limit = page_size(req.limit)?;
    let query = req.query.trim();
    if query.is_empty() {
        return Err(ServiceError::invalid("q", "can't be blank").into());
    }
    let mut r = p.db.reads().await?;
    let page = store::search(&mut r, query, &req.cursor, limit).await?;
    to_list(&mut r, &ctx, page).await
}

async fn to_list(r: &mut impl Reads, ctx: &RequestContext, page: Page) -> Result<ProfileList> {
    let (followed, blocked) = match &ctx.call.user_id {
        Some(viewer) => {
            let ids: Vec<String> = page.rows.iter().map(|r| r.user_id.clone()).collect();
            (store::followed_among(r, viewer, &ids).await?, store::blocks_among(r, viewer, &ids, true).await?)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(ProfileList {
        profiles: page
            .rows
            .iter()
            .map(|r| Profile { blocked: blocked.contains(&r.user_id), ..r.to_profile(followed.contains(&r.user_id)) })
            .collect(),
        next_cursor: page.next.unwrap_or_default(),
    })
}

/// A profile by name, through the cache when there is one.
async fn by_username(p: &Profiles, username: &str) -> Result<ProfileRow> {
    match p.cache.get(username).await {
        Cached::Found(row) => return Ok(row),
        Cached::Gone => return Err(ServiceError::not_found("profile").into()),
        Cached::Unknown => {}
    }
    let row = store::by_username(&mut p.db.reads().await?, username)
        .await?
        .ok_or_else(|| ServiceError::not_found("profile"))?;
    p.cache.put(&row).await;
    Ok(row)
}

/// Cache upkeep once a removal has committed.
pub async fn after_removal(p: &Profiles, removed: &ProfileRow, touched: &[String]) {
    p.cache.tombstone(&removed.username, store::now_micros()).await;
    if touched.is_empty() {
        return;
    }
    let Ok(mut r) = p.db.reads().await else { return };
    for user_id in touched {
        if let Ok(Some(row)) = store::by_user(&mut r, user_id).await {
            p.cache.put(&row).await;
        }
    }
}

fn reply(profile: Profile) -> ProfileReply {
    ProfileReply { profile: Some(profile) }
}
