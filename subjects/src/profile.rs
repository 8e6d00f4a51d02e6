//! The profile service contract: public profiles and the follow graph (`soulchat.profile.v1.*`)
//! and its events (`soulchat.events.profile.*`).

use crate::proto::common::v1::Empty;
pub use crate::proto::profile::v1 as messages;
use messages::*;

crate::service! {
    SERVICE = "profile", "Profiles and the follow graph";
    v1 {
        /// Registration saga step: a profile for a new user (idempotent).
        Create = "create": CreateRequest => ProfileReply, by [User];
        /// Registration compensation: removes a profile and its edges (idempotent).
        Delete = "delete": DeleteRequest => Empty, by [User];
        /// A profile by username, with `following` for the caller.
        Get = "get": GetRequest => ProfileReply, by [Gateway];
        /// A profile by user id (the user worker's view of bio and image).
        GetByUser = "get_by_user": GetByUserRequest => ProfileReply, by [User];
        /// Rename saga step and bio/image changes.
        Update = "update": UpdateRequest => ProfileReply, by [User];
        /// The caller follows a profile (idempotent).
        Follow = "follow": FollowRequest => ProfileReply, by [Gateway];
        /// The caller unfollows a profile (idempotent).
        Unfollow = "unfollow": FollowRequest => ProfileReply, by [Gateway];
        /// Who follows a profile, oldest follow first.
        Followers = "followers": ListRequest => ProfileList, by [Gateway];
        /// Whom a profile follows, oldest follow first.
        Following = "following": ListRequest => ProfileList, by [Gateway];
        /// Profiles by user ids and usernames, unknown ones left out.
        Lookup = "lookup": LookupRequest => ProfileList, by [Gateway, Notification];
        /// Profiles whose username starts with a prefix.
        Search = "search": SearchRequest => ProfileList, by [Gateway];
        /// The caller blocks a profile (idempotent).
        Block = "block": BlockRequest => ProfileReply, by [Gateway];
        /// The caller unblocks a profile (idempotent).
        Unblock = "unblock": BlockRequest => ProfileReply, by [Gateway];
        /// The profiles the caller blocks, oldest block first.
        ListBlocks = "list_blocks": ListBlocksRequest => ProfileList, by [Gateway];
        /// Among some users, whom a user blocks and who blocks that user (typing, pushes).
        BlockedAmong = "blocked_among": BlockedAmongRequest => BlockedAmongReply, by [Gateway, Notification];
    }
}

crate::events! {
    /// Someone followed someone.
    Followed = "soulchat.events.profile.followed" => FollowEvent;
    /// Someone unfollowed someone.
    Unfollowed = "soulchat.events.profile.unfollowed" => FollowEvent;
    /// A profile's username, bio or image changed.
    Updated = "soulchat.events.profile.updated" => ProfileEvent;
    /// Someone blocked or unblocked someone (the chat worker keeps a copy for its send path).
    BlockChanged = "soulchat.events.profile.block_changed" => BlockEvent;
}

crate::consumers! {
    /// Removes a deleted user's profile and follow edges.
    USER_DELETED: crate::user::Deleted = "profile-user-deleted";
}
