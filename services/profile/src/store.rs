//! The profile database: profiles and follow edges. Every change to a profile row raises its
//! `version` (see `cache`), in the same statement. Reads take any [`Reads`] (a read connection,
//! or the write transaction they belong to); writes take the [`WriteTx`] they belong to.

use soulchat_runtime::{Database, Reads, WriteTx};
use soulchat_subjects::profile::messages::Profile;
use soulchat_subjects::time::now_ms;
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow)]
pub struct ProfileRow {
    pub user_id: String,
    pub username: String,
    pub bio: Option<String>,
    pub image: Option<String>,
    pub followers_count: i64,
    pub following_count: i64,
    pub version: i64,
}

impl ProfileRow {
    pub fn to_profile(&self, following: bool) -> Profile {
        Profile {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            bio: self.bio.clone(),
            image: self.image.clone(),
            following,
            followers_count: self.followers_count,
            following_count: self.following_count,
            blocked: false,
        }
    }
}

/// A page of profiles and the key to continue after it.
pub struct Page {
    pub rows: Vec<ProfileRow>,
    pub next: Option<String>,
}

/// Versions grow by at least one per change and track the clock in microseconds, so a profile
/// recreated under a once-used name still outranks that name's old cache entries.
const NEXT_VERSION: &str = "CASE WHEN version + 1 > ? THEN version + 1 ELSE ? END";

pub fn now_micros() -> i64 {
    now_ms() * 1000
}

pub async fn by_username(r: &mut impl Reads, username: &str) -> sqlx::Result<Option<ProfileRow>> {
    r.fetch_optional(
        sqlx::query_as(
            "SELECT user_id, username, bio, image, followers_count, following_count, version \
                 FROM profiles WHERE username_norm = ?",
        )
        .bind(username.trim().to_lowercase()),
    )
    .await
}

pub async fn by_user(r: &mut impl Reads, user_id: &str) -> sqlx::Result<Option<ProfileRow>> {
    r.fetch_optional(
        sqlx::query_as(
            "SELECT user_id, username, bio, image, followers_count, following_count, version \
                 FROM profiles WHERE user_id = ?",
        )
        .bind(user_id),
    )
    .await
}

pub async fn insert(tx: &mut WriteTx<'_>, user_id: &str, username: &str) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO profiles (user_id, username, username_norm, version, created_at_ms, updated_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(username)
    .bind(username.to_lowercase())
    .bind(now_micros())
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies the given changes (`Some("")` clears bio or image).
pub async fn update(
    tx: &mut WriteTx<'_>,
    user_id: &str,
    username: Option<&str>,
    bio: Option<&str>,
    image: Option<&str>,
) -> sqlx::Result<bool> {
    let sql = format!(
        "UPDATE profiles SET \
           username = COALESCE(?, username), username_norm = COALESCE(?, username_norm), \
           bio = CASE WHEN ? THEN ? ELSE bio END, image = CASE WHEN ? THEN ? ELSE image END, \
           version = {NEXT_VERSION}, updated_at_ms = ? WHERE user_id = ?"
    );
    let v = now_micros();
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(username)
        .bind(username.map(str::to_lowercase))
        .bind(bio.is_some())
        .bind(bio.filter(|b| !b.is_empty()))
        .bind(image.is_some())
        .bind(image.filter(|i| !i.is_empty()))
        .bind(v)
        .bind(v)
        .bind(now_ms())
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Adds the edge; `false` when it already existed.
pub async fn follow(tx: &mut WriteTx<'_>, follower: &str, followee: &str) -> sqlx::Result<bool> {
    let inserted = sqlx::query("INSERT INTO follows (follower_id, followee_id, created_at_ms) VALUES (?, ?, ?)")
        .bind(follower)
        .bind(followee)
        .bind(now_ms())
        .execute(&mut **tx)
        .await;
    match inserted {
        Err(e) if Database::is_unique_violation(&e) => return Ok(false),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    count_edge(tx, follower, followee, 1).await?;
    Ok(true)
}

/// Removes the edge; `false` when there was none.
pub async fn unfollow(tx: &mut WriteTx<'_>, follower: &str, followee: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM follows WHERE follower_id = ? AND followee_id = ?")
        .bind(follower)
        .bind(followee)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    count_edge(tx, follower, followee, -1).await?;
    Ok(true)
}

/// Moves both counts of an edge, locking the two rows in id order so that crossing follows
/// (a→b while b→a) cannot deadlock on MySQL.
async fn count_edge(tx: &mut WriteTx<'_>, follower: &str, followee: &str, delta: i64) -> sqlx::Result<()> {
    let mut rows = [(follower, "following_count"), (followee, "followers_count")];
    rows.sort_by_key(|(id, _)| *id);
    for (id, column) in rows {
        count(tx, id, column, delta).await?;
    }
    Ok(())
}

async fn count(tx: &mut WriteTx<'_>, user_id: &str, column: &'static str, delta: i64) -> sqlx::Result<()> {
    let sql = format!("UPDATE profiles SET {column} = {column} + ?, version = {NEXT_VERSION} WHERE user_id = ?");
    let v = now_micros();
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(delta).bind(v).bind(v).bind(user_id).execute(&mut **tx).await?;
    Ok(())
}

pub async fn is_following(r: &mut impl Reads, follower: &str, followee: &str) -> sqlx::Result<bool> {
    let row: Option<(i64,)> = r
        .fetch_optional(
            sqlx::query_as("SELECT id FROM follows WHERE follower_id = ? AND followee_id = ?")
                .bind(follower)
                .bind(followee),
        )
        .await?;
    Ok(row.is_some())
}

/// Which of `candidates` the viewer follows.
pub async fn followed_among(r: &mut impl Reads, viewer: &str, candidates: &[String]) -> sqlx::Result<Vec<String>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sqlx::QueryBuilder::<sqlx::Any>::new("SELECT followee_id FROM follows WHERE follower_id = ");
    q.push_bind(viewer).push(" AND followee_id IN (");
    let mut ids = q.separated(", ");
    for c in candidates {
        ids.push_bind(c.clone());
    }
    q.push(")");
    let rows: Vec<(String,)> = r.fetch_all(q.build_query_as()).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Profiles whose user id is in `ids` or whose lowercased username is in `names`.
pub async fn lookup(r: &mut impl Reads, ids: &[String], names: &[String]) -> sqlx::Result<Vec<ProfileRow>> {
    if ids.is_empty() && names.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sqlx::QueryBuilder::<sqlx::Any>::new(
        "SELECT user_id, username, bio, image, followers_count, following_count, version FROM profiles WHERE ",
    );
    let mut any = false;
    for (column, values) in [("user_id", ids), ("username_norm", names)] {
        if values.is_empty() {
            continue;
        }
        if any {
            q.push(" OR ");
        }
        any = true;
        q.push(column).push(" IN (");
        let mut list = q.separated(", ");
        for v in values {
            list.push_bind(v.clone());
        }
        q.push(")");
    }
    r.fetch_all(q.build_query_as()).await
}

/// Followers (`followers = true`) or followees of `user_id`, oldest edge first, after `after`.
pub async fn edges(r: &mut impl Reads, user_id: &str, followers: bool, after: i64, limit: u32) -> sqlx::Result<Page> {
    let sql = if followers {
        "SELECT f.id AS edge, p.user_id, p.username, p.bio, p.image, p.followers_count, p.following_count, p.version \
         FROM follows f JOIN profiles p ON p.user_id = f.follower_id \
         WHERE f.followee_id = ? AND f.id > ? ORDER BY f.id LIMIT ?"
    } else {
        "SELECT f.id AS edge, p.user_id, p.username, p.bio, p.image, p.followers_count, p.following_count, p.version \
         FROM follows f JOIN profiles p ON p.user_id = f.followee_id \
         WHERE f.follower_id = ? AND f.id > ? ORDER BY f.id LIMIT ?"
    };
    let rows = r.fetch_all(sqlx::query(sql).bind(user_id).bind(after).bind(i64::from(limit) + 1)).await?;
    edge_page(&rows, limit)
}

/// Profiles whose username starts with `prefix`, in username order, after `after`.
pub async fn search(r: &mut impl Reads, prefix: &str, after: &str, limit: u32) -> sqlx::Result<Page> {
    let escaped: String = prefix
        .to_lowercase()
        .chars()
        .flat_map(|c| if matches!(c, '%' | '_' | '!') { vec!['!', c] } else { vec![c] })
        .collect();
    let mut rows: Vec<ProfileRow> = r
        .fetch_all(
            sqlx::query_as(
                "SELECT user_id, username, bio, image, followers_count, following_count, version FROM profiles \
                 WHERE username_norm LIKE ? ESCAPE '!' AND username_norm > ? ORDER BY username_norm LIMIT ?",
            )
            .bind(format!("{escaped}%"))
            .bind(after)
            .bind(i64::from(limit) + 1),
        )
        .await?;
    let next = (rows.len() > limit as usize).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.username.to_lowercase()).unwrap_or_default()
    });
    Ok(Page { rows, next })
}

/// Removes a profile and its edges, fixing the counts of everyone it touched. Returns the
/// removed profile and the ids whose counts changed.
pub async fn remove(tx: &mut WriteTx<'_>, user_id: &str) -> sqlx::Result<Option<(ProfileRow, Vec<String>)>> {
    let Some(row) = by_user(tx, user_id).await? else { return Ok(None) };
    let followees: Vec<(String,)> =
        tx.fetch_all(sqlx::query_as("SELECT followee_id FROM follows WHERE follower_id = ?").bind(user_id)).await?;
    let followers: Vec<(String,)> =
        tx.fetch_all(sqlx::query_as("SELECT follower_id FROM follows WHERE followee_id = ?").bind(user_id)).await?;
    for (id,) in &followees {
        count(tx, id, "followers_count", -1).await?;
    }
    for (id,) in &followers {
        count(tx, id, "following_count", -1).await?;
    }
    sqlx::query("DELETE FROM follows WHERE follower_id = ? OR followee_id = ?")
        .bind(user_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM blocks WHERE blocker_id = ? OR blocked_id = ?")
        .bind(user_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM profiles WHERE user_id = ?").bind(user_id).execute(&mut **tx).await?;
    let touched = followees.into_iter().chain(followers).map(|(id,)| id).collect();
    Ok(Some((row, touched)))
}

/// Adds the block; `false` when it already existed.
pub async fn block(tx: &mut WriteTx<'_>, blocker: &str, blocked: &str) -> sqlx::Result<bool> {
    let inserted = sqlx::query("INSERT INTO blocks (blocker_id, blocked_id, created_at_ms) VALUES (?, ?, ?)")
        .bind(blocker)
        .bind(blocked)
        .bind(now_ms())
        .execute(&mut **tx)
        .await;
    match inserted {
        Err(e) if Database::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
        Ok(_) => Ok(true),
    }
}

/// Removes the block; `false` when there was none.
pub async fn unblock(tx: &mut WriteTx<'_>, blocker: &str, blocked: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
        .bind(blocker)
        .bind(blocked)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Which of `candidates` `user_id` blocks (`blocking`), or which of them block `user_id`.
pub async fn blocks_among(
    r: &mut impl Reads,
    user_id: &str,
    candidates: &[String],
    blocking: bool,
) -> sqlx::Result<Vec<String>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let (mine, theirs) = if blocking { ("blocker_id", "blocked_id") } else { ("blocked_id", "blocker_id") };
    let mut q = sqlx::QueryBuilder::<sqlx::Any>::new(format!("SELECT {theirs} FROM blocks WHERE {mine} = "));
    q.push_bind(user_id.to_owned()).push(format!(" AND {theirs} IN ("));
    let mut ids = q.separated(", ");
    for c in candidates {
        ids.push_bind(c.clone());
    }
    q.push(")");
    let rows: Vec<(String,)> = r.fetch_all(q.build_query_as()).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The profiles `user_id` blocks, oldest block first, after `after`.
pub async fn blocks(r: &mut impl Reads, user_id: &str, after: i64, limit: u32) -> sqlx::Result<Page> {
    let rows = r
        .fetch_all(
            sqlx::query(
                "SELECT b.id AS edge, p.user_id, p.username, p.bio, p.image, p.followers_count, p.following_count, \
                 p.version FROM blocks b JOIN profiles p ON p.user_id = b.blocked_id \
                 WHERE b.blocker_id = ? AND b.id > ? ORDER BY b.id LIMIT ?",
            )
            .bind(user_id)
            .bind(after)
            .bind(i64::from(limit) + 1),
        )
        .await?;
    edge_page(&rows, limit)
}

/// A page of profiles from rows that carry their edge's id as `edge` (one more than `limit` when
/// another page follows); the last edge's id continues it.
fn edge_page(rows: &[sqlx::any::AnyRow], limit: u32) -> sqlx::Result<Page> {
    use sqlx::Row;
    let mut page = Vec::with_capacity(rows.len());
    let mut last_edge = 0;
    for row in rows.iter().take(limit as usize) {
        last_edge = row.try_get::<i64, _>("edge")?;
        page.push(ProfileRow::from_row(row)?);
    }
    let next = (rows.len() > limit as usize).then(|| last_edge.to_string());
    Ok(Page { rows: page, next })
}
