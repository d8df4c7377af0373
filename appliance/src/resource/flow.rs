//! What may cross a session's boundary: clipboard text and files, each
//! way, decided as one pure function of who asks, the session's state and
//! the resource's policy. The gateway (for what clients send and receive)
//! and the broker (for what workers report) both ask it, so the rule is
//! written once.

use rap_storage::types::{PolicyMode, SessionState};

/// Something crossing, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A viewer's clipboard text, for the remote desktop.
    ClipboardIn,
    /// The remote desktop's clipboard text, for the controller.
    ClipboardOut,
    /// A file from the viewer to the remote desktop.
    Upload,
    /// A file from the remote desktop to the viewer.
    Download,
}

impl Flow {
    fn client_to_server(self) -> bool {
        matches!(self, Self::ClipboardIn | Self::Upload)
    }
}

/// What the decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// The asking socket controls the session (for worker-reported flows:
    /// the one it would go to).
    pub controller: bool,
    pub state: SessionState,
    /// The resource's mode for this kind of flow (clipboard or files).
    pub mode: PolicyMode,
}

/// Why not, in the order a person should hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotController,
    NotActive,
    PolicyDenied,
}

impl Refusal {
    /// The reason code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotController => "not_controller",
            Self::NotActive => "not_active",
            Self::PolicyDenied => "policy_denied",
        }
    }
}

/// May `flow` cross now? Only the controller, only while the session is
/// `active`, only in a direction the policy allows.
pub fn may(flow: Flow, crossing: Crossing) -> Result<(), Refusal> {
    if !crossing.controller {
        return Err(Refusal::NotController);
    }
    if crossing.state != SessionState::Active {
        return Err(Refusal::NotActive);
    }
    let allowed = if flow.client_to_server() {
        crossing.mode.allows_client_to_server()
    } else {
        crossing.mode.allows_server_to_client()
    };
    if allowed { Ok(()) } else { Err(Refusal::PolicyDenied) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flow × mode for an active controller, then who and when.
    #[test]
    fn the_whole_table() {
        let flows = [Flow::ClipboardIn, Flow::ClipboardOut, Flow::Upload, Flow::Download];
        let table: Vec<String> = PolicyMode::ALL
            .iter()
            .map(|&mode| {
                let row: String = flows
                    .iter()
                    .map(|&flow| match may(flow, Crossing { controller: true, state: SessionState::Active, mode }) {
                        Ok(()) => 'Y',
                        Err(Refusal::PolicyDenied) => 'p',
                        Err(_) => '?',
                    })
                    .collect();
                format!("{:<16} {row}", mode.as_str())
            })
            .collect();
        // columns: clipboard in, clipboard out, upload, download
        assert_eq!(
            table,
            ["disabled         pppp", "client_to_server Y.Y.", "server_to_client .Y.Y", "bidirectional    YYYY"]
                .map(|row| row.replace('.', "p"))
        );
        for &state in SessionState::ALL {
            for flow in flows {
                let crossing = Crossing { controller: true, state, mode: PolicyMode::Bidirectional };
                let expected = if state == SessionState::Active { Ok(()) } else { Err(Refusal::NotActive) };
                assert_eq!(may(flow, crossing), expected, "{flow:?} while {state}");
                let viewer = Crossing { controller: false, ..crossing };
                assert_eq!(
                    may(flow, viewer),
                    Err(Refusal::NotController),
                    "a viewer is told first that it does not control"
                );
            }
        }
    }
}
