//! Attachments: uploads the gateway stores in the `soulchat_attachments` object store, each
//! naming its uploader in its metadata. The chat worker decides their lifecycle because it alone
//! knows which messages carry one: a send may carry only the sender's own upload, a member of a
//! conversation where one was sent may read it ([`access`]), and an attachment goes when the
//! last message that carried it is deleted ([`release`], right after the deletion commits) or
//! when it was never sent within the unused period ([`spawn_sweep`], which also catches a release
//! that failed). An upload cut off (past the size limit, or its client gone) leaves chunks that
//! no object names: the sweep purges those once it has seen them unnamed for the unused period,
//! far longer than any upload still under way takes.
//!
//! An upload sent at the very moment the sweep finds it a day old may be deleted under the new
//! message, which then shows a missing attachment (404): the period makes that a client that
//! held an upload a whole day.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::object_store::ObjectStore;
use async_nats::jetstream::stream::Stream;
use futures::TryStreamExt;
use soulchat_runtime::{RequestContext, Result, pruner};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::AttachmentAccessRequest;
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::streams::{ATTACHMENT_TYPE, ATTACHMENT_UPLOADER, ATTACHMENTS_BUCKET};
use soulchat_subjects::time::now_ms;
use tokio_util::sync::CancellationToken;

use crate::Chat;
use crate::store::{AttachmentUse, Store};

/// How long an upload may wait to be sent unless configured.
pub const DEFAULT_UNUSED: Duration = Duration::from_secs(24 * 3600);

/// Checks that a message of `kind` may carry `attachment_id` for `user_id`: an upload of theirs
/// that is still there, and an image (as sniffed) for an image message.
pub async fn check_send(attachments: &ObjectStore, attachment_id: &str, user_id: &str, kind: &str) -> Result<()> {
    use async_nats::jetstream::object_store::InfoErrorKind;
    let info = match attachments.info(attachment_id).await {
        Ok(info) if !info.deleted && info.metadata.get(ATTACHMENT_UPLOADER).is_some_and(|u| u == user_id) => info,
        Ok(_) => return Err(ServiceError::invalid("attachment_id", "not found").into()),
        Err(e) if matches!(e.kind(), InfoErrorKind::NotFound | InfoErrorKind::InvalidName) => {
            return Err(ServiceError::invalid("attachment_id", "not found").into());
        }
        Err(e) => return Err(anyhow::Error::from(e).into()),
    };
    if kind == "image" && !info.metadata.get(ATTACHMENT_TYPE).is_some_and(|t| t.starts_with("image/")) {
        return Err(ServiceError::invalid("attachment_id", "is not an image (send it as a file)").into());
    }
    Ok(())
}

pub async fn access(chat: Arc<Chat>, ctx: RequestContext, req: AttachmentAccessRequest) -> Result<Empty> {
    let me = ctx.user_id()?;
    let mut conn = chat.store.db().reads().await?;
    if Store::attachment_readable(&mut conn, &req.attachment_id, me).await? {
        Ok(Empty {})
    } else {
        Err(ServiceError::not_found("attachment").into())
    }
}

/// Deletes the attachment if no message shows it any more. A failure is only logged: the sweep
/// deletes it later.
pub async fn release(chat: &Chat, attachment_id: &str) {
    let released = async {
        let used = Store::attachment_use(&mut chat.store.db().reads().await?, attachment_id).await?;
        if used == AttachmentUse::Released {
            chat.attachments.delete(attachment_id).await?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = released.await {
        tracing::warn!(attachment_id, "deleting a released attachment: {e:#}");
    }
}

/// Sweeps the attachments every so often (often enough that an unused period shortened for a
/// test is kept to), until `stop`.
pub fn spawn_sweep(
    store: Store,
    bucket: Bucket,
    unused: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let every = (unused / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
    let orphans = Arc::new(Mutex::new(HashMap::new()));
    pruner::spawn("attachments", every, stop, move || sweep(store.clone(), bucket.clone(), unused, orphans.clone()))
}

/// The object store, and the stream behind it (for the chunks no object names).
#[derive(Clone)]
pub struct Bucket {
    pub objects: ObjectStore,
    pub stream: Stream,
}

/// Chunk subjects no object named, with when a sweep first saw them so.
type Orphans = Arc<Mutex<HashMap<String, i64>>>;

/// Deletes every attachment that was released, or never sent and older than `unused`, and the
/// chunks left unnamed that long.
async fn sweep(store: Store, bucket: Bucket, unused: Duration, orphans: Orphans) -> anyhow::Result<bool> {
    let attachments = &bucket.objects;
    let stale_before_ms = now_ms() - unused.as_millis() as i64;
    let mut named = HashSet::new();
    let mut objects = attachments.list().await?;
    let mut conn = store.db().reads().await?;
    while let Some(info) = objects.try_next().await? {
        if info.deleted {
            continue;
        }
        named.insert(info.nuid.clone());
        let stale = info.modified.is_some_and(|at| ((at.unix_timestamp_nanos() / 1_000_000) as i64) < stale_before_ms);
        let gone = match Store::attachment_use(&mut conn, &info.name).await? {
            AttachmentUse::Shown => false,
            AttachmentUse::Released => true,
            AttachmentUse::Unsent => stale,
        };
        if gone {
            attachments.delete(&info.name).await?;
        }
    }
    drop(conn);
    let mut chunks = bucket.stream.info_with_subjects(format!("$O.{ATTACHMENTS_BUCKET}.C.>")).await?;
    let mut unnamed = HashSet::new();
    while let Some((subject, _)) = chunks.try_next().await? {
        if subject.rsplit('.').next().is_some_and(|nuid| !named.contains(nuid)) {
            unnamed.insert(subject);
        }
    }
    let now = now_ms();
    let expired: Vec<String> = {
        let mut seen = orphans.lock().expect("the orphans lock is never poisoned");
        seen.retain(|subject, _| unnamed.contains(subject));
        for subject in unnamed {
            seen.entry(subject).or_insert(now);
        }
        seen.iter().filter(|(_, first)| **first < stale_before_ms).map(|(s, _)| s.clone()).collect()
    };
    for subject in expired {
        bucket.stream.purge().filter(&subject).await?;
        orphans.lock().expect("the orphans lock is never poisoned").remove(&subject);
    }
    Ok(false)
}
