//! Counters reported in `$SRV.STATS` (`nats micro stats soulchat-notification`): what each
//! channel delivered, retried, dead-lettered and skipped for want of configuration.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::channels::{Channel, Channels};

#[derive(Default)]
pub struct ChannelCounters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Deliveries a user's preferences asked for (or an account flow requested) that this
    /// worker skipped because the channel is not configured.
    pub skipped: AtomicU64,
}

#[derive(Default)]
pub struct Stats {
    push: ChannelCounters,
    email: ChannelCounters,
    sms: ChannelCounters,
    pub live_frames: AtomicU64,
    /// Push subscriptions deleted because the push service reported them gone.
    pub push_gone: AtomicU64,
    /// Push subscriptions deleted because their endpoint is, or resolved to, a forbidden address.
    pub push_forbidden: AtomicU64,
}

impl Stats {
    pub fn channel(&self, channel: Channel) -> &ChannelCounters {
        match channel {
            Channel::Push => &self.push,
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        }
    }

    pub fn to_json(&self, channels: &Channels) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for channel in Channel::ALL {
            let c = self.channel(channel);
            out.insert(
                channel.name().to_owned(),
                serde_json::json!({
                    "configured": channels.configured(channel),
                    "sent": c.sent.load(Ordering::Relaxed),
                    "retried": c.retried.load(Ordering::Relaxed),
                    "dead_lettered": c.dead_lettered.load(Ordering::Relaxed),
                    "skipped_unconfigured": c.skipped.load(Ordering::Relaxed),
                }),
            );
        }
        out.insert("live_frames".to_owned(), self.live_frames.load(Ordering::Relaxed).into());
        out.insert("push_subscriptions_gone".to_owned(), self.push_gone.load(Ordering::Relaxed).into());
        out.insert("push_subscriptions_forbidden".to_owned(), self.push_forbidden.load(Ordering::Relaxed).into());
        serde_json::Value::Object(out)
    }
}
