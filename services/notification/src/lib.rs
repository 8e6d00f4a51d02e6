//! The notification worker: in-app notifications in the `notification_service` database it
//! alone owns. For now it stores the welcome notification of the registration saga and removes
//! a deleted user's notifications when `user.deleted` arrives; listing and delivery channels
//! (WebSocket, Web Push, email, SMS) come with the notifications issue.

mod store;

use std::sync::Arc;

use soulchat_runtime::consumer::{self, EventHandler};
use soulchat_runtime::database::internal;
use soulchat_runtime::{Database, Migrations, RequestContext, WorkerBuilder};
use soulchat_subjects::ServiceError;
use soulchat_subjects::notification::{self, messages::*};
use soulchat_subjects::user::{self, messages::UserEvent};
use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("../../migrations/notification/sqlite"),
    mysql: sqlx::migrate!("../../migrations/notification/mysql"),
};

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
}

struct Notifications {
    store: store::Store,
}

/// Runs the notification worker until `shutdown`.
pub async fn run(config: Config, client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = Database::connect(&config.database_url, &MIGRATIONS).await?;
    let js = async_nats::jetstream::new(client.clone());
    soulchat_subjects::streams::declare(&js).await?;
    let state = Arc::new(Notifications { store: store::Store::new(db.clone()) });
    let deletions = consumer::spawn::<user::Deleted, _>(
        js,
        db.clone(),
        "notification-user-deleted",
        state.clone(),
        shutdown.clone(),
    );
    let worker = WorkerBuilder::new(notification::SERVICE, env!("CARGO_PKG_VERSION"), state)
        .handle::<notification::Welcome, _, _>(welcome)
        .start(client, shutdown)
        .await?;
    worker.run_until_shutdown().await;
    let _ = deletions.await;
    db.close().await;
    Ok(())
}

async fn welcome(
    n: Arc<Notifications>,
    _ctx: RequestContext,
    req: WelcomeRequest,
) -> Result<WelcomeReply, ServiceError> {
    if req.user_id.is_empty() {
        return Err(ServiceError::invalid("user_id", "can't be blank"));
    }
    let id = n
        .store
        .insert_once(
            &req.user_id,
            "welcome",
            "welcome",
            "Welcome to SoulChat",
            &format!("Hi {}, welcome to SoulChat!", req.username),
        )
        .await
        .map_err(internal)?;
    Ok(WelcomeReply { notification_id: id })
}

/// `user.deleted`: the user's notifications go with the account.
impl EventHandler<user::Deleted> for Notifications {
    type Effect = ();

    async fn handle(&self, conn: &mut AnyConnection, event: UserEvent) -> anyhow::Result<()> {
        store::Store::delete_for_user(conn, &event.user_id).await?;
        Ok(())
    }
}
