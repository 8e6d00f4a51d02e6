//! Users travel between workers as ids and reach clients as usernames: the chat worker keeps no
//! copy of names, so a rename never leaves a stale one behind. `Names` asks the profile worker
//! for the names of every id an answer mentions, in one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// Mentions looked up per message, at most (the chat worker takes no more).
const MAX_MENTIONS: usize = 50;

/// The user ids of the people a message's `@username`s name; a name without an account is
/// plain text, not an error.
pub async fn mentioned(caller: &Caller, ctx: &CallContext, content: &str) -> Result<Vec<String>, ServiceError> {
    let usernames = mentions(content);
    if usernames.is_empty() {
        return Ok(Vec::new());
    }
    let request = LookupRequest { user_ids: Vec::new(), usernames: usernames.clone() };
    let list = caller.call::<profile::Lookup>(ctx, &request).await?;
    let by_name: HashMap<String, String> =
        list.profiles.into_iter().map(|p| (p.username.to_lowercase(), p.user_id)).collect();
    // In the order the message names them.
    Ok(usernames.iter().filter_map(|name| by_name.get(name).cloned()).collect())
}

/// The distinct `@username`s in a message, lowercased (usernames: ASCII letters, digits, `_`,
/// `.`, `-`; a trailing `.` is taken for the end of a sentence, and an `@` inside a word, as in
/// an email address, mentions nobody).
fn mentions(content: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut found: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in content.char_indices() {
        if c == '@' && !previous.is_some_and(is_name) {
            let name: String = content[i + 1..].chars().take_while(|c| is_name(*c)).collect();
            let name = name.trim_end_matches('.').to_lowercase();
            if !name.is_empty() && !found.contains(&name) && found.len() < MAX_MENTIONS {
                found.push(name);
            }
        }
        previous = Some(c);
    }
    found
}

/// Recently resolved names, for the WebSocket fan-out, which renders every committed event: a
/// rename shows in live frames within [`ttl`] (30-45 s) of the next frame that names the user.
///
/// An entry past its TTL is still served, and refreshed in the background, for up to
/// [`NAME_STALE_MAX`] more: the fan-out renders events one after another, and entries that were
/// filled together (every socket of a busy run opens within a second) would otherwise expire
/// together and make each event wait for the profile worker in turn. Clones share the cache.
#[derive(Clone)]
pub struct NameCache {
    entries: Arc<Mutex<HashMap<String, CachedName>>>,
}

struct CachedName {
    /// `None`: the id has no profile (a deleted account).
    name: Option<String>,
    at: Instant,
    /// A background look-up for it is under way.
    refreshing: bool,
}

const NAME_TTL: Duration = Duration::from_secs(30);
const NAME_STALE_MAX: Duration = Duration::from_secs(600);
const NAME_CACHE_MAX: usize = 100_000;

impl NameCache {
    pub fn new() -> Self {
        NameCache { entries: Arc::default() }
    }

    pub async fn names(&self, caller: &Caller, ids: Vec<String>) -> Result<Names, ServiceError> {
        let now = Instant::now();
        let mut known = HashMap::new();
        let mut missing = Vec::new();
        let mut stale = Vec::new();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids.into_iter().filter(|id| !id.is_empty()) {
                match entries.get_mut(&id) {
                    Some(entry) if now.duration_since(entry.at) < NAME_TTL + NAME_STALE_MAX => {
                        if now.duration_since(entry.at) >= ttl(&id) && !entry.refreshing {
                            entry.refreshing = true;
                            stale.push(id.clone());
                        }
                        if let Some(name) = &entry.name {
                            known.insert(id, name.clone());
                        }
                    }
                    _ => missing.push(id),
                }
            }
        }
        if !stale.is_empty() {
            let (entries, caller) = (self.entries.clone(), caller.clone());
            tokio::spawn(async move {
                let found = Names::of_ids(&caller, &CallContext::internal(), stale.iter().map(String::as_str)).await;
                let mut entries = entries.lock().unwrap_or_else(|p| p.into_inner());
                match found {
                    Ok(found) => store(&mut entries, stale, &found, Instant::now()),
                    // Served stale a while longer; the next read tries again.
                    Err(_) => {
                        for id in &stale {
                            if let Some(entry) = entries.get_mut(id) {
                                entry.refreshing = false;
                            }
                        }
                    }
                }
            });
        }
        if !missing.is_empty() {
            let found = Names::of_ids(caller, &CallContext::internal(), missing.iter().map(String::as_str)).await?;
            for id in &missing {
                if let Some(name) = found.get(id) {
                    known.insert(id.clone(), name);
                }
            }
            store(&mut self.entries.lock().unwrap_or_else(|p| p.into_inner()), missing, &found, now);
        }
        Ok(Names(known))
    }
}

/// An id's time to live: [`NAME_TTL`] plus up to half of it again, spread by the id, so that
/// names fetched together are refreshed apart.
fn ttl(user_id: &str) -> Duration {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let spread = NAME_TTL.as_millis() as u64 / 2;
    NAME_TTL + Duration::from_millis(BuildHasherDefault::<DefaultHasher>::default().hash_one(user_id) % spread)
}

/// Records what a look-up of `ids` found (an id it did not find has no profile).
fn store(entries: &mut HashMap<String, CachedName>, ids: Vec<String>, found: &Names, at: Instant) {
    if entries.len() > NAME_CACHE_MAX {
        entries.retain(|_, e| at.duration_since(e.at) < NAME_TTL);
    }
    for id in ids {
        let name = found.get(&id);
        entries.insert(id, CachedName { name, at, refreshing: false });
    }
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn finds_mentions() {
        assert_eq!(mentions("hi @Bob and @carol.x, see @bob."), vec!["bob", "carol.x"]);
        assert!(mentions("mail me at a@example.com").is_empty());
        assert!(mentions("@ alone").is_empty());
    }
}
