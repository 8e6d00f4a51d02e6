//! Publishing live frames. A ready frame for a user goes to `soulchat.deliver.<user_id>` on core
//! NATS, where whichever gateway holds the user's sockets picks it up (`ws::deliveries` is that
//! side): read receipts, typing and presence reach every replica this way. Not persisted: a user
//! with no open socket misses the frame and reads the state over REST.

use bytes::Bytes;
use soulchat_subjects::streams;

/// Publishes `frame` to every gateway holding sockets of `user_ids`.
pub async fn publish(client: &async_nats::Client, user_ids: &[String], frame: Bytes) {
    for user_id in user_ids {
        if let Err(e) = client.publish(streams::deliver(user_id), frame.clone()).await {
            tracing::warn!(user = %user_id, "live delivery: {e}");
        }
    }
}
