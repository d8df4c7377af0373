//! The domain's closed vocabularies as types: stored as the same text as
//! before (the API's and the schema's words), compared as values, so a
//! misspelt state or role cannot compile.

/// A value with a fixed set of text forms.
pub trait TextEnum: Sized + Copy + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|value| value.as_str() == text)
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant),+
        }

        impl TextEnum for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl $name {
            pub const ALL: &'static [Self] = <Self as TextEnum>::ALL;

            pub fn as_str(self) -> &'static str {
                <Self as TextEnum>::as_str(self)
            }

            pub fn parse(text: &str) -> Option<Self> {
                <Self as TextEnum>::parse(text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// A remote session's state (the broker's state machine moves it).
    pub enum SessionState {
        Pending = "pending",
        Starting = "starting",
        Active = "active",
        Detached = "detached",
        Terminated = "terminated",
        Failed = "failed",
    }
}

impl SessionState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Terminated | Self::Failed)
    }
}

text_enum! {
    /// Which way clipboard text or files may cross (a resource's
    /// `clipboard_mode` and `file_transfer_mode`).
    pub enum PolicyMode {
        Disabled = "disabled",
        ClientToServer = "client_to_server",
        ServerToClient = "server_to_client",
        Bidirectional = "bidirectional",
    }
}

impl PolicyMode {
    pub fn allows_client_to_server(self) -> bool {
        matches!(self, Self::ClientToServer | Self::Bidirectional)
    }

    pub fn allows_server_to_client(self) -> bool {
        matches!(self, Self::ServerToClient | Self::Bidirectional)
    }
}

text_enum! {
    /// How a resource is reached.
    pub enum Protocol {
        Rdp = "rdp",
        Vnc = "vnc",
        Ssh = "ssh",
    }
}

impl Protocol {
    /// The port a resource of this protocol listens on unless it says.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Rdp => 3389,
            Self::Vnc => 5900,
            Self::Ssh => 22,
        }
    }
}

text_enum! {
    /// Whether a resource's certificate is checked (`strict`, the default).
    pub enum CertificateMode {
        Strict = "strict",
        Ignore = "ignore",
    }
}

text_enum! {
    /// A role in an organization, most powerful first.
    pub enum OrgRole {
        OrgOwner = "org_owner",
        OrgAdmin = "org_admin",
        OrgOperator = "org_operator",
        OrgMember = "org_member",
        OrgViewer = "org_viewer",
    }
}

text_enum! {
    /// Whether a membership counts.
    pub enum MembershipStatus {
        Active = "active",
        /// Kept, granting nothing.
        Disabled = "disabled",
    }
}

text_enum! {
    /// What an attachment to a session may do.
    pub enum AttachmentRole {
        /// Sends input; one per session at a time.
        Controller = "controller",
        /// Watches read-only.
        Viewer = "viewer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: TextEnum + std::fmt::Debug + PartialEq + serde::Serialize + serde::de::DeserializeOwned>() {
        for value in T::ALL {
            assert_eq!(T::parse(value.as_str()), Some(*value));
            let json = serde_json::to_string(value).expect("json");
            assert_eq!(json, format!("\"{}\"", value.as_str()), "serde uses the same text");
            assert_eq!(serde_json::from_str::<T>(&json).expect("back"), *value);
        }
        assert_eq!(T::parse("no such value"), None);
    }

    #[test]
    fn every_vocabulary_round_trips_through_its_text() {
        round_trips::<SessionState>();
        round_trips::<PolicyMode>();
        round_trips::<Protocol>();
        round_trips::<CertificateMode>();
        round_trips::<OrgRole>();
        round_trips::<MembershipStatus>();
        round_trips::<AttachmentRole>();
    }
}
