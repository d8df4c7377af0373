//! The remote session state machine, as plain data.
//!
//! ```text
//! pending ─assign─▶ starting ─connected─▶ active ◀─attach/takeover─┐
//!    │                 ▲ │                  │  ─detach/transport lost─▶ detached ◀─recover (restart)─ active
//!    │                 │ │                  │                             │
//!    │                 └─┼──────────────────┼────── resume (no worker) ───┘
//!    └────────┬──────────┴──────────────────┴──────────────┬──────────────┘
//!             ▼                                             ▼
//!        terminated (terminate)                   failed (worker failure, lease lost)
//! ```
//!
//! `recover` is the appliance's own restart: a session that was `active`
//! or `detached` keeps its row but no connection. Its next attach or
//! takeover `resume`s it: a new worker and a new connection to the same
//! host, where the host's own session persistence brings the desktop back.
//!
//! Only the broker applies these, and each application is one database
//! transaction with its audit event, conditional on the state it was
//! computed from (so two racing commands cannot both win).

pub use rap_storage::types::SessionState;

/// What can happen to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The assignment was queued to a worker.
    Assign,
    /// The worker reports the remote desktop is up.
    Connected,
    /// A client attaches as controller (first attach or reattach).
    Attach,
    /// Another client becomes the controller.
    Takeover,
    /// The controller leaves (by request, or its transport was lost).
    Detach,
    Terminate,
    Fail,
    /// The appliance restarted: the session lost its connection, not its row.
    Recover,
    /// A detached session without a connection gets a worker again.
    Resume,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assign => "assign",
            Self::Connected => "connected",
            Self::Attach => "attach",
            Self::Takeover => "takeover",
            Self::Detach => "detach",
            Self::Terminate => "terminate",
            Self::Fail => "fail",
            Self::Recover => "recover",
            Self::Resume => "resume",
        }
    }
}

/// The states `command` may start from, and the state it leads to.
pub fn rule(command: Command) -> (&'static [SessionState], SessionState) {
    use SessionState::*;
    match command {
        Command::Assign => (&[Pending], Starting),
        Command::Connected => (&[Starting], Active),
        // Attaching while active reconnects the controller's transport.
        Command::Attach => (&[Active, Detached], Active),
        Command::Takeover => (&[Active, Detached], Active),
        Command::Detach => (&[Active], Detached),
        Command::Terminate => (&[Pending, Starting, Active, Detached], Terminated),
        Command::Fail => (&[Pending, Starting, Active, Detached], Failed),
        Command::Recover => (&[Active, Detached], Detached),
        Command::Resume => (&[Detached], Starting),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a session that is {}", .command.as_str(), .state.as_str())]
pub struct IllegalTransition {
    pub state: SessionState,
    pub command: Command,
}

/// The state after `command`, or why it cannot happen now.
pub fn next(state: SessionState, command: Command) -> Result<SessionState, IllegalTransition> {
    let (from, to) = rule(command);
    if from.contains(&state) { Ok(to) } else { Err(IllegalTransition { state, command }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMANDS: [Command; 9] = [
        Command::Assign,
        Command::Connected,
        Command::Attach,
        Command::Takeover,
        Command::Detach,
        Command::Terminate,
        Command::Fail,
        Command::Recover,
        Command::Resume,
    ];

    /// Every state × every command: the resulting state's initial, or `.`
    /// where the command is illegal.
    #[test]
    fn the_transition_table() {
        let table: Vec<String> = SessionState::ALL
            .iter()
            .map(|state| {
                let row: String = COMMANDS
                    .iter()
                    .map(|command| match next(*state, *command) {
                        Ok(SessionState::Detached) => 'D',
                        Ok(to) => to.as_str().chars().next().map_or('?', |c| c.to_ascii_uppercase()),
                        Err(_) => '.',
                    })
                    .collect();
                format!("{:<10} {row}", state.as_str())
            })
            .collect();
        // columns: assign connected attach takeover detach terminate fail recover resume
        assert_eq!(
            table,
            [
                "pending    S....TF..",
                "starting   .A...TF..",
                "active     ..AADTFD.",
                "detached   ..AA.TFDS",
                "terminated .........",
                "failed     .........",
            ]
        );
    }

    #[test]
    fn names_round_trip_and_terminal_states_are_final() {
        for &state in SessionState::ALL {
            if state.is_terminal() {
                assert!(COMMANDS.iter().all(|command| next(state, *command).is_err()));
            }
        }
        let error = next(SessionState::Terminated, Command::Detach).expect_err("illegal");
        assert_eq!(error.to_string(), "cannot detach a session that is terminated");
    }
}
