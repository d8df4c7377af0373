//! The session's transfer folder as a redirected drive.
//!
//! IronRDP's native backend serves the files, resolving every path below
//! the folder without following links. This wrapper only makes servers
//! other than Windows understood: xrdp's chansrv sends some paths with `/`
//! where MS-RDPEFS has `\`, which the backend (rightly, for Windows paths)
//! refuses as invalid. Separators are rewritten before the backend's own
//! checks, so nothing it would refuse becomes reachable.

use ironrdp_pdu::PduResult;
use ironrdp_rdpdr::RdpdrBackend;
use ironrdp_rdpdr::pdu::efs::{
    DeviceControlRequest, FileInformationClass, ServerDeviceAnnounceResponse, ServerDriveIoRequest,
};
use ironrdp_rdpdr::pdu::esc::{ScardCall, ScardIoCtlCode};
use ironrdp_rdpdr_native::backend::NixRdpdrBackend;
use ironrdp_svc::SvcMessage;

#[derive(Debug)]
pub struct TransferDrive {
    files: NixRdpdrBackend,
}

ironrdp_core::impl_as_any!(TransferDrive);

impl TransferDrive {
    pub fn new(folder: String) -> Self {
        Self { files: NixRdpdrBackend::new(folder) }
    }
}

fn windows_separators(path: &mut String) {
    if path.contains('/') {
        *path = path.replace('/', "\\");
    }
}

impl RdpdrBackend for TransferDrive {
    fn reset(&mut self) -> PduResult<()> {
        self.files.reset()
    }

    fn handle_server_device_announce_response(&mut self, pdu: ServerDeviceAnnounceResponse) -> PduResult<()> {
        self.files.handle_server_device_announce_response(pdu)
    }

    fn handle_scard_call(
        &mut self,
        req: DeviceControlRequest<ScardIoCtlCode>,
        call: ScardCall,
    ) -> PduResult<Vec<SvcMessage>> {
        self.files.handle_scard_call(req, call)
    }

    fn handle_drive_io_request(&mut self, mut req: ServerDriveIoRequest) -> PduResult<Vec<SvcMessage>> {
        match &mut req {
            ServerDriveIoRequest::ServerCreateDriveRequest(create) => windows_separators(&mut create.path),
            ServerDriveIoRequest::ServerDriveQueryDirectoryRequest(query) => windows_separators(&mut query.path),
            ServerDriveIoRequest::ServerDriveSetInformationRequest(set) => {
                if let FileInformationClass::Rename(rename) = &mut set.set_buffer {
                    windows_separators(&mut rename.file_name);
                }
            }
            _ => {}
        }
        self.files.handle_drive_io_request(req)
    }

    fn poll_deferred_messages(&mut self) -> PduResult<Vec<SvcMessage>> {
        self.files.poll_deferred_messages()
    }
}
