//! Test support: a browser's push keys, and starting this crate's worker with its channels
//! configured against a testkit mesh (the SMTP receiver and HTTP endpoints are the testkit's).

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use soulchat_subjects::notification::messages::{ListRequest, Notification, NotificationList};
use soulchat_subjects::{CallContext, Caller, notification};
use soulchat_testkit::{Mesh, Role};

pub const PASSWORD: &str = "correct horse battery";

pub use soulchat_testkit::user_id;

/// Registers `name`: its token and user id.
pub async fn register(mesh: &Mesh, name: &str) -> (String, String) {
    let user = mesh.api.register(name, PASSWORD).await;
    let token = user["token"].as_str().unwrap().to_owned();
    let id = user_id(&token);
    (token, id)
}

pub async fn caller(mesh: &Mesh) -> Caller {
    Caller::new(mesh.client().await, Duration::from_secs(5))
}

pub fn as_user(id: &str) -> CallContext {
    CallContext::internal().with_user(id)
}

pub async fn list(caller: &Caller, user: &str, unread_only: bool) -> NotificationList {
    caller.call::<notification::List>(&as_user(user), &ListRequest { unread_only, ..Default::default() }).await.unwrap()
}

/// Waits (up to 20 s) until the user has a notification of `kind`; returns it.
pub async fn notification_of(caller: &Caller, user: &str, kind: &str) -> Notification {
    eventually(|| async { list(caller, user, false).await.notifications.into_iter().find(|n| n.kind == kind) }).await
}

/// Polls `check` until it yields something, for up to 20 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "condition not met within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Restarts the mesh's notification worker configured by `config` (its database and NATS are
/// the mesh's); it stops with the mesh.
pub async fn start_worker(mesh: &mut Mesh, config: soulchat_notification::Config) {
    mesh.stop_role(Role::Notification).await;
    mesh.options.notification = config;
    mesh.start_role(Role::Notification).await;
}

/// A browser's push subscription keys (RFC 8291): a P-256 key pair and an auth secret.
pub struct Browser {
    keys: Box<dyn ece::LocalKeyPair>,
    auth: [u8; 16],
}

impl Browser {
    pub fn new() -> Browser {
        let (keys, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        Browser { keys, auth }
    }

    pub fn p256dh(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.keys.pub_as_raw().unwrap())
    }

    pub fn auth(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.auth)
    }

    /// Decrypts an `aes128gcm` push message body with the subscription's private key.
    pub fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        ece::decrypt(&self.keys.raw_components().unwrap(), &self.auth, body).expect("a payload encrypted for us")
    }
}

/// A fresh VAPID private key: base64url of the raw 32-byte P-256 scalar.
pub fn vapid_key() -> String {
    let (keys, _) = ece::generate_keypair_and_auth_secret().unwrap();
    let scalar = keys.raw_components().unwrap().private_key().to_vec();
    let mut raw = vec![0u8; 32 - scalar.len()];
    raw.extend(scalar);
    URL_SAFE_NO_PAD.encode(raw)
}
