//! One function per `soulchat.profile.v1` operation.

use std::sync::Arc;

use soulchat_runtime::database::internal;
use soulchat_runtime::{Database, RequestContext, now_ms};
use soulchat_subjects::ServiceError;
use soulchat_subjects::paging::page_size;
use soulchat_subjects::profile::{self, messages::*};
use soulchat_subjects::proto::common::v1::Empty;

use crate::Profiles;
use crate::cache::Cached;
use crate::store::{Page, ProfileRow, Store};

const BIO_MAX: usize = 1000;
const IMAGE_MAX: usize = 2000;

pub async fn create(p: Arc<Profiles>, _ctx: RequestContext, req: CreateRequest) -> Result<ProfileReply, ServiceError> {
    let mut conn = p.store.db().pool().acquire().await.map_err(internal)?;
    if let Some(existing) = Store::by_user(&mut conn, &req.user_id).await.map_err(internal)? {
        // A retried saga step: the profile is already there.
        return Ok(reply(existing.to_profile(false)));
    }
    match Store::insert(&mut conn, &req.user_id, &req.username).await {
        Err(e) if Database::is_unique_violation(&e) => {
            // Lost a race with a retry of the same step, or the name is held by a profile
            // whose removal is still on its way.
            match Store::by_user(&mut conn, &req.user_id).await.map_err(internal)? {
                Some(existing) => return Ok(reply(existing.to_profile(false))),
                None => return Err(ServiceError::taken("username")),
            }
        }
        Err(e) => return Err(internal(e)),
        Ok(()) => {}
    }
    let row = Store::by_user(&mut conn, &req.user_id).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    p.cache.put(&row).await;
    Ok(reply(row.to_profile(false)))
}

pub async fn delete(p: Arc<Profiles>, _ctx: RequestContext, req: DeleteRequest) -> Result<Empty, ServiceError> {
    let mut tx = p.store.db().begin().await.map_err(internal)?;
    let removed = Store::remove(&mut tx, &req.user_id).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    if let Some((row, touched)) = removed {
        after_removal(&p, &row, &touched).await;
    }
    Ok(Empty {})
}

pub async fn get(p: Arc<Profiles>, ctx: RequestContext, req: GetRequest) -> Result<ProfileReply, ServiceError> {
    let row = by_username(&p, &req.username).await?;
    let following = match &ctx.call.user_id {
        Some(viewer) if *viewer != row.user_id => p.store.is_following(viewer, &row.user_id).await.map_err(internal)?,
        _ => false,
    };
    Ok(reply(row.to_profile(following)))
}

pub async fn get_by_user(
    p: Arc<Profiles>,
    _ctx: RequestContext,
    req: GetByUserRequest,
) -> Result<ProfileReply, ServiceError> {
    let mut conn = p.store.db().pool().acquire().await.map_err(internal)?;
    let row = Store::by_user(&mut conn, &req.user_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ServiceError::not_found("profile"))?;
    Ok(reply(row.to_profile(false)))
}

pub async fn update(p: Arc<Profiles>, _ctx: RequestContext, req: UpdateRequest) -> Result<ProfileReply, ServiceError> {
    let mut v = soulchat_subjects::error::Validation::new();
    if req.bio.as_ref().is_some_and(|b| b.chars().count() > BIO_MAX) {
        v.problem("bio", &format!("is too long (maximum is {BIO_MAX} characters)"));
    }
    let bad_image = |i: &str| i.len() > IMAGE_MAX || !i.starts_with("https://") || i.contains(char::is_whitespace);
    if req.image.as_deref().is_some_and(|i| !i.is_empty() && bad_image(i)) {
        v.problem("image", "must be an https URL");
    }
    v.finish()?;
    let mut tx = p.store.db().begin().await.map_err(internal)?;
    let before = Store::by_user(&mut tx, &req.user_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ServiceError::not_found("profile"))?;
    let username = req.username.as_deref().filter(|u| *u != before.username);
    Store::update(&mut tx, &req.user_id, username, req.bio.as_deref(), req.image.as_deref())
        .await
        .map_err(|e| if Database::is_unique_violation(&e) { ServiceError::taken("username") } else { internal(e) })?;
    let after = Store::by_user(&mut tx, &req.user_id).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    let event = ProfileEvent { profile: Some(after.to_profile(false)), at_ms: now_ms() };
    p.outbox.record::<profile::Updated>(&mut tx, &event).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    p.outbox.wake();
    if username.is_some() && !before.username.eq_ignore_ascii_case(&after.username) {
        p.cache.tombstone(&before.username, after.version).await;
    }
    p.cache.put(&after).await;
    Ok(reply(after.to_profile(false)))
}

pub async fn follow(p: Arc<Profiles>, ctx: RequestContext, req: FollowRequest) -> Result<ProfileReply, ServiceError> {
    change_follow(&p, &ctx, &req.username, true).await
}

pub async fn unfollow(p: Arc<Profiles>, ctx: RequestContext, req: FollowRequest) -> Result<ProfileReply, ServiceError> {
    change_follow(&p, &ctx, &req.username, false).await
}

async fn change_follow(
    p: &Profiles,
    ctx: &RequestContext,
    username: &str,
    follow: bool,
) -> Result<ProfileReply, ServiceError> {
    let viewer = ctx.user_id()?;
    let target = by_username(p, username).await?;
    if target.user_id == viewer {
        return Err(ServiceError::invalid("profile", "cannot follow yourself"));
    }
    let mut tx = p.store.db().begin().await.map_err(internal)?;
    let me = Store::by_user(&mut tx, viewer).await.map_err(internal)?.ok_or_else(|| ServiceError::not_found("user"))?;
    let changed = if follow {
        Store::follow(&mut tx, viewer, &target.user_id).await
    } else {
        Store::unfollow(&mut tx, viewer, &target.user_id).await
    }
    .map_err(internal)?;
    if changed {
        let event = FollowEvent {
            follower_id: me.user_id.clone(),
            follower_username: me.username.clone(),
            followee_id: target.user_id.clone(),
            followee_username: target.username.clone(),
            at_ms: now_ms(),
        };
        if follow {
            p.outbox.record::<profile::Followed>(&mut tx, &event).await
        } else {
            p.outbox.record::<profile::Unfollowed>(&mut tx, &event).await
        }
        .map_err(internal)?;
    }
    let after = Store::by_user(&mut tx, &target.user_id).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    let me_after = Store::by_user(&mut tx, viewer).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    tx.commit().await.map_err(internal)?;
    if changed {
        p.outbox.wake();
        p.cache.put(&after).await;
        p.cache.put(&me_after).await;
    }
    Ok(reply(after.to_profile(follow)))
}

pub async fn followers(p: Arc<Profiles>, ctx: RequestContext, req: ListRequest) -> Result<ProfileList, ServiceError> {
    list_edges(&p, &ctx, req, true).await
}

pub async fn following(p: Arc<Profiles>, ctx: RequestContext, req: ListRequest) -> Result<ProfileList, ServiceError> {
    list_edges(&p, &ctx, req, false).await
}

async fn list_edges(
    p: &Profiles,
    ctx: &RequestContext,
    req: ListRequest,
    followers: bool,
) -> Result<ProfileList, ServiceError> {
    let limit = page_size(req.limit)?;
    let after = if req.cursor.is_empty() {
        0
    } else {
        req.cursor.parse::<i64>().map_err(|_| ServiceError::invalid("cursor", "is invalid"))?
    };
    let owner = by_username(p, &req.username).await?;
    let page = p.store.edges(&owner.user_id, followers, after, limit).await.map_err(internal)?;
    to_list(p, ctx, page).await
}

pub async fn lookup(p: Arc<Profiles>, ctx: RequestContext, req: LookupRequest) -> Result<ProfileList, ServiceError> {
    const MAX: usize = 1000;
    if req.user_ids.len() > MAX || req.usernames.len() > MAX {
        return Err(ServiceError::invalid("lookup", &format!("at most {MAX} ids and {MAX} usernames")));
    }
    let names: Vec<String> = req.usernames.iter().map(|n| n.trim().to_lowercase()).collect();
    let rows = p.store.lookup(&req.user_ids, &names).await.map_err(internal)?;
    to_list(&p, &ctx, Page { rows, next: None }).await
}

pub async fn search(p: Arc<Profiles>, ctx: RequestContext, req: SearchRequest) -> Result<ProfileList, ServiceError> {
    let limit = page_size(req.limit)?;
    let query = req.query.trim();
    if query.is_empty() {
        return Err(ServiceError::invalid("q", "can't be blank"));
    }
    let page = p.store.search(query, &req.cursor, limit).await.map_err(internal)?;
    to_list(&p, &ctx, page).await
}

async fn to_list(p: &Profiles, ctx: &RequestContext, page: Page) -> Result<ProfileList, ServiceError> {
    let followed = match &ctx.call.user_id {
        Some(viewer) => {
            let ids: Vec<String> = page.rows.iter().map(|r| r.user_id.clone()).collect();
            p.store.followed_among(viewer, &ids).await.map_err(internal)?
        }
        None => Vec::new(),
    };
    Ok(ProfileList {
        profiles: page.rows.iter().map(|r| r.to_profile(followed.contains(&r.user_id))).collect(),
        next_cursor: page.next.unwrap_or_default(),
    })
}

/// A profile by name, through the cache when there is one.
async fn by_username(p: &Profiles, username: &str) -> Result<ProfileRow, ServiceError> {
    match p.cache.get(username).await {
        Cached::Found(row) => return Ok(row),
        Cached::Gone => return Err(ServiceError::not_found("profile")),
        Cached::Unknown => {}
    }
    let row =
        p.store.by_username(username).await.map_err(internal)?.ok_or_else(|| ServiceError::not_found("profile"))?;
    p.cache.put(&row).await;
    Ok(row)
}

/// Cache upkeep once a removal has committed.
pub async fn after_removal(p: &Profiles, removed: &ProfileRow, touched: &[String]) {
    p.cache.tombstone(&removed.username, crate::store::now_micros()).await;
    for user_id in touched {
        let Ok(mut conn) = p.store.db().pool().acquire().await else { return };
        if let Ok(Some(row)) = Store::by_user(&mut conn, user_id).await {
            p.cache.put(&row).await;
        }
    }
}

fn reply(profile: Profile) -> ProfileReply {
    ProfileReply { profile: Some(profile) }
}
