//! The gateway's REST API as the scenarios use it: accounts made for the run, conversations
//! between them, and the message history the chat check reads back. Every failure names the
//! request and carries the gateway's answer, because a benchmark that fails during setup
//! should say why.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::progress::Progress;

/// Every account the tool makes has this password.
pub const PASSWORD: &str = "soulchat-bench-password";

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// An account made for this run, logged in.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub token: String,
}

impl Api {
    /// `connections`: how many requests may share the connection pool at once.
    pub fn new(base: &str, connections: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Api { http, base: base.trim_end_matches('/').to_owned() })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and reads its JSON answer, refusing any status but `expect`.
    async fn call(&self, what: &str, request: RequestBuilder, expect: &[StatusCode]) -> anyhow::Result<Value> {
        let response = request.send().await.with_context(|| format!("{what}: no answer from {}", self.base))?;
        let status = response.status();
        let body = response.text().await.with_context(|| format!("{what}: reading the answer"))?;
        if !expect.contains(&status) {
            bail!("{what}: {status} {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: the answer is not JSON: {body}"))
    }

    /// Registers `name`, then logs in as it: the token of that login.
    pub async fn account(&self, name: &str) -> anyhow::Result<User> {
        let email = format!("{name}@bench.example");
        let body = json!({"user": {"username": name, "email": email, "password": PASSWORD}});
        self.call("register", self.http.post(self.url("/api/users")).json(&body), &[StatusCode::CREATED]).await?;
        let token = self.login(name).await?;
        Ok(User { name: name.to_owned(), token })
    }

    pub async fn login(&self, name: &str) -> anyhow::Result<String> {
        let body = json!({"user": {"email": format!("{name}@bench.example"), "password": PASSWORD}});
        let answer =
            self.call("login", self.http.post(self.url("/api/users/login")).json(&body), &[StatusCode::OK]).await?;
        answer["user"]["token"].as_str().map(str::to_owned).context("login: no token in the answer")
    }

    /// `count` accounts named `<prefix><i>`, `parallel` at a time (argon2 bounds this).
    pub async fn accounts(&self, prefix: &str, count: usize, parallel: usize) -> anyhow::Result<Vec<User>> {
        let made = Arc::new(AtomicU64::new(0));
        let shown = made.clone();
        let _progress =
            Progress::start("accounts", move || format!("{} of {count} made", shown.load(Ordering::Relaxed)));
        futures::stream::iter(0..count)
            .map(|i| {
                let made = &made;
                async move {
                    let user = self.account(&format!("{prefix}{i}")).await?;
                    made.fetch_add(1, Ordering::Relaxed);
                    anyhow::Ok(user)
                }
            })
            .buffered(parallel)
            .try_collect()
            .await
    }

    /// The direct conversation of `me` with `other`: its id.
    pub async fn direct(&self, me: &User, other: &str) -> anyhow::Result<String> {
        let request =
            self.authed(self.http.post(self.url("/api/conversations/direct")), me).json(&json!({"username": other}));
        let answer = self.call("direct conversation", request, &[StatusCode::CREATED, StatusCode::OK]).await?;
        conversation_id(&answer)
    }

    /// A group owned by `owner` with `members` besides: its id.
    pub async fn group(&self, owner: &User, name: &str, members: &[String]) -> anyhow::Result<String> {
        let body = json!({"name": name, "members": members});
        let request = self.authed(self.http.post(self.url("/api/conversations")), owner).json(&body);
        conversation_id(&self.call("group", request, &[StatusCode::CREATED]).await?)
    }

    /// Every message of a conversation as `(seq, client_id)`, ascending, paged 100 at a time.
    pub async fn history(&self, reader: &User, conversation: &str) -> anyhow::Result<Vec<(i64, String)>> {
        let mut messages = Vec::new();
        let mut after = 0i64;
        loop {
            let (page, next) = self.page(reader, conversation, after).await?;
            messages.extend(page);
            match next {
                Some(next) => after = next,
                None => return Ok(messages),
            }
        }
    }

    /// Up to 100 messages of a conversation after seq `after`, and where the next page starts.
    pub async fn page(
        &self,
        reader: &User,
        conversation: &str,
        after: i64,
    ) -> anyhow::Result<(Vec<(i64, String)>, Option<i64>)> {
        let url = self.url(&format!("/api/conversations/{conversation}/messages?after={after}&limit=100"));
        let page = self.call("history", self.authed(self.http.get(url), reader), &[StatusCode::OK]).await?;
        let mut messages = Vec::new();
        for m in page["messages"].as_array().context("history: no messages array")? {
            let seq = m["seq"].as_i64().context("history: a message without seq")?;
            messages.push((seq, m["client_id"].as_str().unwrap_or_default().to_owned()));
        }
        Ok((messages, page["next_cursor"].as_i64()))
    }

    /// A message search as `reader` (`GET /api/search/messages`): how many messages it found.
    pub async fn search(&self, reader: &User, q: &str) -> anyhow::Result<usize> {
        let url = self.url("/api/search/messages");
        let request = self.authed(self.http.get(url).query(&[("q", q), ("limit", "20")]), reader);
        let found = self.call("search", request, &[StatusCode::OK]).await?;
        Ok(found["messages"].as_array().context("search: no messages array")?.len())
    }

    fn authed(&self, request: RequestBuilder, user: &User) -> RequestBuilder {
        request.header("Authorization", format!("Token {}", user.token))
    }
}

fn conversation_id(answer: &Value) -> anyhow::Result<String> {
    answer["conversation"]["id"].as_str().map(str::to_owned).context("no conversation id in the answer")
}

/// A prefix that makes this run's usernames unique: `b<8 hex>_`.
pub fn run_prefix() -> String {
    format!("b{:08x}_", rand::random::<u32>())
}
