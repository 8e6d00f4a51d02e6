//! The profile service contract (`soulchat.profile.v1.*`).

crate::service! {
    SERVICE = "soulchat-profile", "soulchat.profile.v1", "Profiles and the follow graph";
}
