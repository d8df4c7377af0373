//! The session's transfer folder as a redirected drive.
//!
//! IronRDP's native backend serves the files, resolving every path below
//! the folder without following links. This wrapper only makes servers
//! other than Windows understood: xrdp's chansrv sends some paths with `/`
//! where MS-RDPEFS has `\`, which the backend (rightly, for Windows paths)
//! refuses as invalid. Separators are rewritten before the backend's own
//! checks, so nothing it would refuse becomes reachable. It also holds the
//! remote side to the folder's quota: writes past it get `STATUS_DISK_FULL`.

use ironrdp_pdu::PduResult;
use ironrdp_rdpdr::RdpdrBackend;
use ironrdp_rdpdr::pdu::RdpdrPdu;
use ironrdp_rdpdr::pdu::efs::{
    DeviceControlRequest, DeviceIoResponse, DeviceWriteResponse, FileInformationClass, NtStatus,
    ServerDeviceAnnounceResponse, ServerDriveIoRequest,
};
use ironrdp_rdpdr::pdu::esc::{ScardCall, ScardIoCtlCode};
use ironrdp_rdpdr_native::backend::NixRdpdrBackend;
use ironrdp_svc::SvcMessage;

/// Bytes the remote may write between two measurements of the folder.
const WRITES_BETWEEN_CHECKS: u64 = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct TransferDrive {
    files: NixRdpdrBackend,
    folder: std::path::PathBuf,
    /// The folder's size when last measured, and what was written since.
    measured: Option<u64>,
    written_since: u64,
}

ironrdp_core::impl_as_any!(TransferDrive);

impl TransferDrive {
    pub fn new(folder: String) -> Self {
        Self { folder: folder.clone().into(), files: NixRdpdrBackend::new(folder), measured: None, written_since: 0 }
    }

    /// Whether `length` more bytes fit the quota, counting every write as
    /// growth (an overwrite is corrected at the next measurement).
    fn fits(&mut self, length: u64) -> bool {
        if self.measured.is_none() || self.written_since + length > WRITES_BETWEEN_CHECKS {
            self.measured = Some(crate::transfer::used_bytes(&self.folder));
            self.written_since = 0;
        }
        let used = self.measured.unwrap_or_default() + self.written_since;
        if used + length > crate::transfer::SESSION_QUOTA_BYTES {
            return false;
        }
        self.written_since += length;
        true
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
        if let ServerDriveIoRequest::DeviceWriteRequest(write) = &req
            && !self.fits(write.write_data.len() as u64)
        {
            let reply = DeviceIoResponse::new(write.device_io_request.clone(), NtStatus::DISK_FULL);
            let full = DeviceWriteResponse { device_io_reply: reply, length: 0 };
            return Ok(vec![SvcMessage::from(RdpdrPdu::DeviceWriteResponse(full))]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_side_is_held_to_the_folder_quota() {
        let folder = tempfile::tempdir().expect("temp dir");
        let filler = std::fs::File::create(folder.path().join("filler.bin")).expect("create");
        filler.set_len(crate::transfer::SESSION_QUOTA_BYTES - 10).expect("size");
        let mut drive = TransferDrive::new(folder.path().to_string_lossy().into_owned());
        assert!(drive.fits(10), "up to the quota");
        assert!(!drive.fits(1), "not a byte more");
        filler.set_len(0).expect("size");
        // Freed space counts again once the folder is measured anew.
        assert!(drive.fits(WRITES_BETWEEN_CHECKS));
    }

    #[test]
    fn slashes_become_windows_separators() {
        let mut path = String::from("/ToClient/a.txt");
        windows_separators(&mut path);
        assert_eq!(path, "\\ToClient\\a.txt");
    }
}
