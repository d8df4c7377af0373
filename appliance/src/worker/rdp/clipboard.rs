//! Clipboard text over the cliprdr channel, under the resource's policy.
//!
//! The channel's backend callbacks run inside `ActiveStage::process`; they
//! only queue what happened, and the session loop acts on it afterwards
//! (answering the server, reporting remote text to the broker).

use std::sync::mpsc;

use ironrdp_cliprdr::Client;
use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest, FileContentsResponse,
    FormatDataRequest, FormatDataResponse, LockDataId, OwnedFormatDataResponse,
};
use ironrdp_cliprdr::{CliprdrClient, CliprdrSvcMessages};

use crate::resource::PolicyMode;
use crate::worker::ClipboardText;

/// Largest remote clipboard text passed on, in bytes.
const MAX_TEXT_BYTES: usize = 512 * 1024;

#[derive(Debug)]
pub enum Event {
    /// The server asks for our formats (also the channel's start).
    FormatListRequested,
    /// The server's clipboard changed; whether it holds text.
    RemoteCopy { text: bool },
    /// The server pastes our clipboard in this format.
    DataRequested(ClipboardFormatId),
    /// The server's clipboard text we asked for, if it sent any.
    Data(Option<String>),
}

#[derive(Debug)]
pub struct Backend {
    events: mpsc::Sender<Event>,
}

ironrdp_core::impl_as_any!(Backend);

impl Backend {
    pub fn new() -> (Self, mpsc::Receiver<Event>) {
        let (events, received) = mpsc::channel();
        (Self { events }, received)
    }

    fn tell(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

impl CliprdrBackend for Backend {
    fn temporary_directory(&self) -> &str {
        "."
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {}

    fn on_request_format_list(&mut self) {
        self.tell(Event::FormatListRequested);
    }

    fn on_process_negotiated_capabilities(&mut self, _capabilities: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        let text = available_formats.iter().any(|format| format.id() == ClipboardFormatId::CF_UNICODETEXT);
        self.tell(Event::RemoteCopy { text });
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.tell(Event::DataRequested(request.format));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let text = (!response.is_error() && response.data().len() <= MAX_TEXT_BYTES * 2)
            .then(|| response.to_unicode_string().ok())
            .flatten()
            .map(|text| text.trim_end_matches('\0').to_owned());
        self.tell(Event::Data(text));
    }

    fn on_file_contents_request(&mut self, _request: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _response: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _data_id: LockDataId) {}

    fn on_unlock(&mut self, _data_id: LockDataId) {}
}

/// The session's clipboard state: the policy, the viewer's last text, and
/// what came from the server.
pub struct Clipboard {
    pub mode: PolicyMode,
    local: Option<ClipboardText>,
    remote_sequence: u64,
}

fn text_format() -> [ClipboardFormat; 1] {
    [ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)]
}

impl Clipboard {
    pub fn new(mode: PolicyMode) -> Self {
        Self { mode, local: None, remote_sequence: 0 }
    }

    /// The viewer copied text: offer it to the server.
    pub fn offer(&mut self, channel: &mut CliprdrClient, text: ClipboardText) -> Option<CliprdrSvcMessages<Client>> {
        if !self.mode.allows_client_to_server() {
            return None;
        }
        self.local = Some(text);
        channel.initiate_copy(&text_format()).ok()
    }

    /// Answers one channel event; a remote text for the viewer comes out in
    /// the second slot.
    pub fn on_event(
        &mut self,
        channel: &mut CliprdrClient,
        event: Event,
    ) -> (Option<CliprdrSvcMessages<Client>>, Option<ClipboardText>) {
        match event {
            Event::FormatListRequested => {
                let formats: &[ClipboardFormat] =
                    if self.local.is_some() && self.mode.allows_client_to_server() { &text_format() } else { &[] };
                (channel.initiate_copy(formats).ok(), None)
            }
            Event::RemoteCopy { text: true } if self.mode.allows_server_to_client() && channel.is_ready() => {
                (channel.initiate_paste(ClipboardFormatId::CF_UNICODETEXT).ok(), None)
            }
            Event::RemoteCopy { .. } => (None, None),
            Event::DataRequested(format) => {
                let response = match (
                    &self.local,
                    format == ClipboardFormatId::CF_UNICODETEXT && self.mode.allows_client_to_server(),
                ) {
                    (Some(local), true) => OwnedFormatDataResponse::new_unicode_string(&local.text),
                    _ => OwnedFormatDataResponse::new_error(),
                };
                (channel.submit_format_data(response).ok(), None)
            }
            Event::Data(Some(text)) if self.mode.allows_server_to_client() => {
                let content_hash = ClipboardText::hash_of(&text);
                // The viewer's own text coming back is not news.
                if self.local.as_ref().is_some_and(|local| local.content_hash == content_hash) {
                    return (None, None);
                }
                self.remote_sequence += 1;
                (
                    None,
                    Some(ClipboardText {
                        text,
                        sequence_id: self.remote_sequence,
                        origin: "server".into(),
                        content_hash,
                    }),
                )
            }
            Event::Data(_) => (None, None),
        }
    }
}
