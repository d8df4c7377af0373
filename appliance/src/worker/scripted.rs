//! The scripted runtime: a stand-in remote desktop for development, smoke
//! installs and tests, so the broker and the live plane can be exercised
//! without a remote host. Never available in production.
//!
//! Behaviour is chosen by the resource's host name, so a test or a smoke
//! script can provoke each way a real connection ends:
//!
//! | host | behaviour |
//! | --- | --- |
//! | `fail.scripted` | reports `Failed { connection_refused }` at once |
//! | `badpassword.scripted` | reports `Failed { invalid_credentials }` |
//! | `slow.scripted` | connects after 300 ms |
//! | `freeze.scripted` | connects, then never heartbeats again (a wedged worker) |
//! | `panic.scripted` | connects, then panics |
//! | `logoff.scripted` | connects, then ends cleanly after 200 ms |
//! | anything else | connects at once and runs until cancelled |

use std::time::Duration;

use async_trait::async_trait;

use super::{Assignment, SessionEnd, SessionIo, SessionRuntime, WorkerEventKind};

pub struct ScriptedRuntime;

#[async_trait]
impl SessionRuntime for ScriptedRuntime {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn run(&self, assignment: Assignment, io: SessionIo) -> SessionEnd {
        let connected = WorkerEventKind::Connected { width: assignment.width, height: assignment.height };
        match assignment.host.as_str() {
            "fail.scripted" => return SessionEnd::Failed("connection_refused".into()),
            "badpassword.scripted" => return SessionEnd::Failed("invalid_credentials".into()),
            "slow.scripted" => {
                tokio::select! {
                    () = io.cancelled() => return SessionEnd::Cancelled,
                    () = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
            _ => {}
        }
        if io.report(connected).await.is_err() {
            return SessionEnd::Failed("event_queue_full".into());
        }
        match assignment.host.as_str() {
            "freeze.scripted" => {
                io.cancelled().await;
                return SessionEnd::Cancelled;
            }
            #[allow(clippy::panic)]
            "panic.scripted" => panic!("scripted runtime panics as asked"),
            "logoff.scripted" => {
                tokio::select! {
                    () = io.cancelled() => return SessionEnd::Cancelled,
                    () = tokio::time::sleep(Duration::from_millis(200)) => return SessionEnd::Disconnected("remote_logoff".into()),
                }
            }
            _ => {}
        }
        let mut heartbeat = tokio::time::interval(io.heartbeat_interval());
        loop {
            tokio::select! {
                () = io.cancelled() => return SessionEnd::Cancelled,
                _ = heartbeat.tick() => io.heartbeat().await,
                input = io.next_input(Duration::from_secs(60)) => {
                    if let Some(input) = input {
                        tracing::debug!(session_id = %io.session_id, ?input, "Scripted session got input");
                    }
                }
            }
        }
    }
}
