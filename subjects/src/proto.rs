//! The generated protobuf messages, one module per proto package.

#![allow(clippy::all, missing_docs)]

pub mod common {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/soulchat.common.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/soulchat.common.v1.serde.rs"));
    }
}

pub mod user {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/soulchat.user.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/soulchat.user.v1.serde.rs"));
    }
}

pub mod profile {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/soulchat.profile.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/soulchat.profile.v1.serde.rs"));
    }
}

pub mod notification {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/soulchat.notification.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/soulchat.notification.v1.serde.rs"));
    }
}

pub mod chat {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/soulchat.chat.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/soulchat.chat.v1.serde.rs"));
    }
}

pub mod audit {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/soulchat.audit.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/soulchat.audit.v1.serde.rs"));
    }
}
