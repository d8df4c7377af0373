//! Ids as types. Every id in the appliance is a UUID, so as plain `Uuid`s
//! an organization's id fits where a session's belongs and a call like
//! `membership_of(user_id, organization_id)` compiles. Each kind of id the
//! domains pass to each other gets its own type: swapping two is a compile
//! error. They are stored, serialized and displayed exactly as the UUID
//! (hyphenated text), so the schema and the API do not change.
//!
//! Ids that never leave one repository (memberships, attachments, leases,
//! grants, refresh tokens) stay `Uuid`: there is nothing to confuse them with.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7: listings by id are creation order).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Names a UUID as this kind of id. The one place a kind is
            /// asserted rather than checked: use where the UUID's meaning is
            /// known (a verified token's claim, a column of this kind).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }
    };
}

id_type! {
    /// An organization (tenant).
    OrgId
}
id_type! {
    /// A person who can log in.
    UserId
}
id_type! {
    /// A published desktop (or other remote resource).
    ResourceId
}
id_type! {
    /// A remote session: one connection to a resource, across attaches.
    SessionId
}
id_type! {
    /// A client device a user logs in from.
    DeviceId
}
id_type! {
    /// One login (a refresh-token family): not a remote session.
    AuthSessionId
}
id_type! {
    /// A worker slot that runs remote sessions.
    WorkerId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_write_and_serialize_as_their_uuid() {
        let uuid = Uuid::now_v7();
        let id = SessionId::from_uuid(uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(uuid.to_string().parse::<SessionId>().expect("valid"), id);
        assert_eq!(serde_json::to_string(&id).expect("valid"), serde_json::to_string(&uuid).expect("valid"));
        assert_eq!(serde_json::from_str::<SessionId>(&format!("\"{uuid}\"")).expect("valid"), id);
        assert!("not-a-uuid".parse::<OrgId>().is_err());
    }
}
