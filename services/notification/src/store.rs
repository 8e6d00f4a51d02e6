//! The notification database: per-user notifications, the shared system alerts with per-user
//! read state, preferences and mutes, push subscriptions, and contact points. Reads take anything
//! that implements [`Reads`] (so triggers run them inside the transaction that records the event),
//! writes a [`WriteTx`].

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};
use soulchat_runtime::{Database, Reads, WriteTx};
use soulchat_subjects::notification::messages::{Notification, Preferences};
use soulchat_subjects::time::now_ms;
use sqlx::{Any, QueryBuilder};

/// A position in the newest-first list: `(created_at_ms, id)` of the last item shown.
pub type Cursor = (i64, String);

type NotificationRow = (String, String, String, String, Option<String>, Option<i64>, i64);
type AlertRow = (String, String, String, Option<i64>, i64);

/// One push subscription: id, endpoint, p256dh, auth.
pub type Subscription = (String, String, String, String);

/// Stores the welcome notification once per user; the existing one on a repeat, with
/// whether this call stored it. A unique-key violation fails only its statement (SQLite and
/// InnoDB alike), so the transaction goes on to read the notification that was there first.
pub async fn insert_once(
    tx: &mut WriteTx<'_>,
    user_id: &str,
    kind: &str,
    dedup_key: &str,
    title: &str,
    body: &str,
) -> sqlx::Result<(Notification, bool)> {
    let notification = Notification {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.to_owned(),
        title: title.to_owned(),
        body: body.to_owned(),
        created_at_ms: now_ms(),
        ..Default::default()
    };
    match insert(tx, user_id, dedup_key, &notification).await {
        Ok(()) => Ok((notification, true)),
        Err(e) if Database::is_unique_violation(&e) => {
            let row: NotificationRow = tx
                .fetch_one(
                    sqlx::query_as(
                        "SELECT id, kind, title, body, data, read_at_ms, created_at_ms FROM notifications \
                         WHERE user_id = ? AND dedup_key = ?",
                    )
                    .bind(user_id)
                    .bind(dedup_key),
                )
                .await?;
            Ok((notification_of(row), false))
        }
        Err(e) => Err(e),
    }
}

pub async fn insert(tx: &mut WriteTx<'_>, user_id: &str, dedup_key: &str, n: &Notification) -> sqlx::Result<()> {
    let data = (!n.data.is_empty()).then(|| serde_json::to_string(&n.data).unwrap_or_default());
    sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, dedup_key, title, body, data, created_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&n.id)
    .bind(user_id)
    .bind(&n.kind)
    .bind(dedup_key)
    .bind(&n.title)
    .bind(&n.body)
    .bind(data)
    .bind(n.created_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn exists(r: &mut impl Reads, user_id: &str, dedup_key: &str) -> sqlx::Result<bool> {
    let found: Option<(String,)> = r
        .fetch_optional(
            sqlx::query_as("SELECT id FROM notifications WHERE user_id = ? AND dedup_key = ?")
                .bind(user_id)
                .bind(dedup_key),
        )
        .await?;
    Ok(found.is_some())
}

/// Up to `limit` of the user's notifications and the alerts, newest first, after `cursor`.
pub async fn page(
    r: &mut impl Reads,
    user_id: &str,
    unread_only: bool,
    cursor: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<Notification>> {
    let mut mine = QueryBuilder::<Any>::new(
        "SELECT id, kind, title, body, data, read_at_ms, created_at_ms FROM notifications WHERE user_id = ",
    );
    mine.push_bind(user_id.to_owned());
    if unread_only {
        mine.push(" AND read_at_ms IS NULL");
    }
    if let Some((at, id)) = cursor {
        mine.push(" AND (created_at_ms < ").push_bind(*at);
        mine.push(" OR (created_at_ms = ").push_bind(*at).push(" AND id < ").push_bind(id.clone()).push("))");
    }
    mine.push(" ORDER BY created_at_ms DESC, id DESC LIMIT ").push_bind(limit);
    let rows: Vec<NotificationRow> = r.fetch_all(mine.build_query_as()).await?;

    let mut alerts = QueryBuilder::<Any>::new(
        "SELECT a.id, a.title, a.body, r.read_at_ms, a.created_at_ms FROM alerts a \
         LEFT JOIN alert_reads r ON r.alert_id = a.id AND r.user_id = ",
    );
    alerts.push_bind(user_id.to_owned()).push(" WHERE 1 = 1");
    if unread_only {
        alerts.push(" AND r.read_at_ms IS NULL");
    }
    if let Some((at, id)) = cursor {
        alerts.push(" AND (a.created_at_ms < ").push_bind(*at);
        alerts.push(" OR (a.created_at_ms = ").push_bind(*at).push(" AND a.id < ").push_bind(id.clone()).push("))");
    }
    alerts.push(" ORDER BY a.created_at_ms DESC, a.id DESC LIMIT ").push_bind(limit);
    let alert_rows: Vec<AlertRow> = r.fetch_all(alerts.build_query_as()).await?;

    let mut merged: Vec<Notification> = rows.into_iter().map(notification_of).collect();
    merged.extend(alert_rows.into_iter().map(|(id, title, body, read_at, created_at_ms)| Notification {
        id,
        kind: "alert".to_owned(),
        title,
        body,
        data: HashMap::new(),
        read: read_at.is_some(),
        created_at_ms,
    }));
    merged.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
    merged.truncate(limit as usize);
    Ok(merged)
}

/// Unread notifications of the user plus alerts the user has not read.
pub async fn unread_count(r: &mut impl Reads, user_id: &str) -> sqlx::Result<i64> {
    let (mine,): (i64,) = r
        .fetch_one(
            sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read_at_ms IS NULL").bind(user_id),
        )
        .await?;
    let (alerts,): (i64,) = r
        .fetch_one(
            sqlx::query_as(
                "SELECT COUNT(*) FROM alerts a WHERE NOT EXISTS \
             (SELECT 1 FROM alert_reads r WHERE r.alert_id = a.id AND r.user_id = ?)",
            )
            .bind(user_id),
        )
        .await?;
    Ok(mine + alerts)
}

/// Marks `ids` (or, when `None`, everything) read for the user; ids of other users'
/// notifications match nothing.
pub async fn mark_read(tx: &mut WriteTx<'_>, user_id: &str, ids: Option<&[String]>) -> sqlx::Result<()> {
    let now = now_ms();
    let mut update = QueryBuilder::<Any>::new("UPDATE notifications SET read_at_ms = ");
    update.push_bind(now).push(" WHERE read_at_ms IS NULL AND user_id = ").push_bind(user_id.to_owned());
    let mut unread_alerts = QueryBuilder::<Any>::new(
        "SELECT a.id FROM alerts a WHERE NOT EXISTS \
         (SELECT 1 FROM alert_reads r WHERE r.alert_id = a.id AND r.user_id = ",
    );
    unread_alerts.push_bind(user_id.to_owned()).push(")");
    if let Some(ids) = ids {
        for query in [&mut update, &mut unread_alerts] {
            query.push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id.clone());
            }
            query.push(")");
        }
    }
    update.build().execute(&mut **tx).await?;
    let alerts: Vec<(String,)> = tx.fetch_all(unread_alerts.build_query_as()).await?;
    for (alert_id,) in alerts {
        let marked = sqlx::query("INSERT INTO alert_reads (alert_id, user_id, read_at_ms) VALUES (?, ?, ?)")
            .bind(&alert_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut **tx)
            .await;
        match marked {
            // A concurrent mark_read of the same user got there first: read either way.
            Err(e) if Database::is_unique_violation(&e) => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

pub async fn insert_alert(tx: &mut WriteTx<'_>, alert: &Notification) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO alerts (id, title, body, created_at_ms) VALUES (?, ?, ?, ?)")
        .bind(&alert.id)
        .bind(&alert.title)
        .bind(&alert.body)
        .bind(alert.created_at_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The user's preferences, the defaults when the user never chose.
pub async fn preferences(r: &mut impl Reads, user_id: &str) -> sqlx::Result<Preferences> {
    let row: Option<(i64, i64, i64, i64)> = r
        .fetch_optional(
            sqlx::query_as("SELECT in_app, push, email, sms FROM preferences WHERE user_id = ?").bind(user_id),
        )
        .await?;
    let muted: Vec<(String,)> = r
        .fetch_all(
            sqlx::query_as(
                "SELECT conversation_id FROM muted_conversations WHERE user_id = ? ORDER BY conversation_id",
            )
            .bind(user_id),
        )
        .await?;
    let (in_app, push, email, sms) =
        row.map_or((true, true, true, false), |(a, p, e, s)| (a != 0, p != 0, e != 0, s != 0));
    Ok(Preferences { in_app, push, email, sms, muted_conversations: muted.into_iter().map(|(c,)| c).collect() })
}

pub async fn put_preferences(tx: &mut WriteTx<'_>, user_id: &str, p: &Preferences) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM preferences WHERE user_id = ?").bind(user_id).execute(&mut **tx).await?;
    sqlx::query("INSERT INTO preferences (user_id, in_app, push, email, sms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(user_id)
        .bind(i64::from(p.in_app))
        .bind(i64::from(p.push))
        .bind(i64::from(p.email))
        .bind(i64::from(p.sms))
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM muted_conversations WHERE user_id = ?").bind(user_id).execute(&mut **tx).await?;
    for conversation in &p.muted_conversations {
        sqlx::query("INSERT INTO muted_conversations (user_id, conversation_id) VALUES (?, ?)")
            .bind(user_id)
            .bind(conversation)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub async fn subscriptions(r: &mut impl Reads, user_id: &str) -> sqlx::Result<Vec<Subscription>> {
    r.fetch_all(
        sqlx::query_as("SELECT id, endpoint, p256dh, auth FROM push_subscriptions WHERE user_id = ? ORDER BY id")
            .bind(user_id),
    )
    .await
}

/// Registers (or takes over and re-keys) the subscription with this endpoint; its id.
pub async fn subscribe(
    tx: &mut WriteTx<'_>,
    user_id: &str,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
) -> sqlx::Result<String> {
    let hash = endpoint_hash(endpoint);
    let existing: Option<(String,)> = tx
        .fetch_optional(sqlx::query_as("SELECT id FROM push_subscriptions WHERE endpoint_hash = ?").bind(&hash))
        .await?;
    if let Some((id,)) = existing {
        sqlx::query("UPDATE push_subscriptions SET user_id = ?, p256dh = ?, auth = ? WHERE id = ?")
            .bind(user_id)
            .bind(p256dh)
            .bind(auth)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        return Ok(id);
    }
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO push_subscriptions (id, user_id, endpoint, endpoint_hash, p256dh, auth, created_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(endpoint)
    .bind(&hash)
    .bind(p256dh)
    .bind(auth)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Removes a subscription: the user's own (`Some(user)`), or whoever's the push service
/// reported gone (`None`).
pub async fn unsubscribe(tx: &mut WriteTx<'_>, user_id: Option<&str>, endpoint: &str) -> sqlx::Result<u64> {
    let done = match user_id {
        Some(user) => {
            sqlx::query("DELETE FROM push_subscriptions WHERE endpoint_hash = ? AND user_id = ?")
                .bind(endpoint_hash(endpoint))
                .bind(user)
                .execute(&mut **tx)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM push_subscriptions WHERE endpoint_hash = ?")
                .bind(endpoint_hash(endpoint))
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(done.rows_affected())
}

/// Records where the user may be reached (from the user worker's events): the email only
/// once verified, the phone only once verified (the user worker sends no other).
pub async fn set_contacts(
    tx: &mut WriteTx<'_>,
    user_id: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> sqlx::Result<()> {
    let updated = sqlx::query("UPDATE contacts SET email = ?, phone = ?, updated_at_ms = ? WHERE user_id = ?")
        .bind(email)
        .bind(phone)
        .bind(now_ms())
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO contacts (user_id, email, phone, updated_at_ms) VALUES (?, ?, ?, ?)")
            .bind(user_id)
            .bind(email)
            .bind(phone)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The user's email and phone, where known.
pub async fn contacts(r: &mut impl Reads, user_id: &str) -> sqlx::Result<(Option<String>, Option<String>)> {
    let row: Option<(Option<String>, Option<String>)> =
        r.fetch_optional(sqlx::query_as("SELECT email, phone FROM contacts WHERE user_id = ?").bind(user_id)).await?;
    Ok(row.unwrap_or((None, None)))
}

/// Everything the service keeps about a user goes with the account.
pub async fn delete_for_user(tx: &mut WriteTx<'_>, user_id: &str) -> sqlx::Result<()> {
    for sql in [
        "DELETE FROM notifications WHERE user_id = ?",
        "DELETE FROM alert_reads WHERE user_id = ?",
        "DELETE FROM preferences WHERE user_id = ?",
        "DELETE FROM muted_conversations WHERE user_id = ?",
        "DELETE FROM push_subscriptions WHERE user_id = ?",
        "DELETE FROM contacts WHERE user_id = ?",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut **tx).await?;
    }
    Ok(())
}

fn notification_of((id, kind, title, body, data, read_at, created_at_ms): NotificationRow) -> Notification {
    let data: BTreeMap<String, String> = data.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default();
    Notification { id, kind, title, body, data: data.into_iter().collect(), read: read_at.is_some(), created_at_ms }
}

fn endpoint_hash(endpoint: &str) -> String {
    Sha256::digest(endpoint.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
