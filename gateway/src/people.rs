//! Users travel between workers as ids and reach clients as usernames: the chat worker keeps no
//! copy of names, so a rename never leaves a stale one behind. `Names` asks the profile worker
//! for the names of every id an answer mentions, in one call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use soulchat_subjects::profile::{self, messages::LookupRequest};
use soulchat_subjects::{CallContext, Caller, ServiceError};

/// The usernames of a set of user ids; an id without a profile (a deleted account) has none.
#[derive(Debug, Default)]
pub struct Names(HashMap<String, String>);

impl Names {
    pub async fn of_ids<'a>(
        caller: &Caller,
        ctx: &CallContext,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Names, ServiceError> {
        let mut user_ids: Vec<String> = ids.into_iter().filter(|id| !id.is_empty()).map(str::to_owned).collect();
        user_ids.sort();
        user_ids.dedup();
        if user_ids.is_empty() {
            return Ok(Names::default());
        }
        let list = caller.call::<profile::Lookup>(ctx, &LookupRequest { user_ids, usernames: Vec::new() }).await?;
        Ok(Names(list.profiles.into_iter().map(|p| (p.user_id, p.username)).collect()))
    }

    pub fn get(&self, user_id: &str) -> Option<String> {
        self.0.get(user_id).cloned()
    }
}

/// The user ids of `usernames`, in order; an unknown name is 404 `<field>: ["not found"]`.
pub async fn ids_of(
    caller: &Caller,
    ctx: &CallContext,
    field: &str,
    usernames: &[String],
) -> Result<Vec<String>, ServiceError> {
    if usernames.is_empty() {
        return Ok(Vec::new());
    }
    let request = LookupRequest { user_ids: Vec::new(), usernames: usernames.to_vec() };
    let list = caller.call::<profile::Lookup>(ctx, &request).await?;
    let by_name: HashMap<String, String> =
        list.profiles.into_iter().map(|p| (p.username.to_lowercase(), p.user_id)).collect();
    usernames
        .iter()
        .map(|name| by_name.get(&name.trim().to_lowercase()).cloned().ok_or_else(|| ServiceError::not_found(field)))
        .collect()
}

/// Recently resolved names, for the WebSocket fan-out, which renders every committed event: a
/// rename shows in live frames within [`NAME_TTL`].
pub struct NameCache {
    entries: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

const NAME_TTL: Duration = Duration::from_secs(30);
const NAME_CACHE_MAX: usize = 100_000;

impl NameCache {
    pub fn new() -> Self {
        NameCache { entries: Mutex::new(HashMap::new()) }
    }

    pub async fn names(&self, caller: &Caller, ids: Vec<String>) -> Result<Names, ServiceError> {
        let now = Instant::now();
        let mut known = HashMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids.into_iter().filter(|id| !id.is_empty()) {
                match entries.get(&id) {
                    Some((name, at)) if now.duration_since(*at) < NAME_TTL => {
                        if let Some(name) = name {
                            known.insert(id.clone(), name.clone());
                        }
                    }
                    _ => missing.push(id),
                }
            }
        }
        if !missing.is_empty() {
            let found = Names::of_ids(caller, &CallContext::internal(), missing.iter().map(String::as_str)).await?;
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() > NAME_CACHE_MAX {
                entries.retain(|_, (_, at)| now.duration_since(*at) < NAME_TTL);
            }
            for id in missing {
                let name = found.get(&id);
                if let Some(name) = &name {
                    known.insert(id.clone(), name.clone());
                }
                entries.insert(id, (name, now));
            }
        }
        Ok(Names(known))
    }
}
