//! The session's transfer folder as a redirected drive.
//!
//! IronRDP's native backend serves the files, resolving every path below
//! the folder without following links. This wrapper only makes servers
//! other than Windows understood: xrdp's chansrv sends some paths with `/`
//! where MS-RDPEFS has `\`, which the backend (rightly, for Windows paths)
//! refuses as invalid. Separators are rewritten before the backend's own
//! checks, so nothing it would refuse becomes reachable. It also holds the
//! remote side to the folder's quota: writes past it get `STATUS_DISK_FULL`.
//!
//! And it answers every information class MS-RDPEFS requires of a drive,
//! where the backend knows only some: directory listings in
//! `FileDirectoryInformation`, `FileFullDirectoryInformation` and
//! `FileNamesInformation` (xrdp lists with the first) are the backend's
//! `FileBothDirectoryInformation` entries re-encoded, and the volume's
//! `FileFsDeviceInformation` (a mounted remote disk) is answered here.

use ironrdp_core::ReadCursor;
use ironrdp_pdu::PduResult;
use ironrdp_rdpdr::RdpdrBackend;
use ironrdp_rdpdr::pdu::RdpdrPdu;
use ironrdp_rdpdr::pdu::efs::{
    Characteristics, ClientDriveQueryDirectoryResponse, ClientDriveQueryVolumeInformationResponse,
    DeviceControlRequest, DeviceIoResponse, DeviceWriteResponse, FileBothDirectoryInformation,
    FileDirectoryInformation, FileFsDeviceInformation, FileFullDirectoryInformation, FileInformationClass,
    FileInformationClassLevel, FileNamesInformation, FileSystemInformationClass, FileSystemInformationClassLevel,
    MajorFunction, MinorFunction, NtStatus, ServerDeviceAnnounceResponse, ServerDriveIoRequest,
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

/// MS-FSCC `FILE_DEVICE_DISK`.
const FILE_DEVICE_DISK: u32 = 0x0000_0007;

/// A directory entry the backend gave as `FileBothDirectoryInformation`,
/// in the class the server asked for. Replies without an entry (the end of
/// a listing, errors) pass unchanged.
fn relisted(reply: SvcMessage, class: FileInformationClassLevel) -> PduResult<SvcMessage> {
    let bytes = reply.encode_unframed_pdu().map_err(|error| ironrdp_pdu::pdu_other_err!("relisted", source: error))?;
    let both = match decode_listing(&bytes) {
        Some(ClientDriveQueryDirectoryResponse {
            device_io_reply,
            buffer: Some(FileInformationClass::BothDirectory(entry)),
        }) => (device_io_reply, entry),
        _ => return Ok(reply),
    };
    let (device_io_reply, entry) = both;
    let FileBothDirectoryInformation {
        creation_time,
        last_access_time,
        last_write_time,
        change_time,
        end_of_file,
        file_attributes,
        file_name,
        ..
    } = entry;
    let buffer = if class == FileInformationClassLevel::FILE_NAMES_INFORMATION {
        FileInformationClass::Names(FileNamesInformation::new(file_name))
    } else if class == FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION {
        FileInformationClass::FullDirectory(FileFullDirectoryInformation::new(
            creation_time,
            last_access_time,
            last_write_time,
            change_time,
            end_of_file,
            file_attributes,
            file_name,
        ))
    } else {
        FileInformationClass::Directory(FileDirectoryInformation::new(
            creation_time,
            last_access_time,
            last_write_time,
            change_time,
            end_of_file,
            file_attributes,
            file_name,
        ))
    };
    Ok(SvcMessage::from(RdpdrPdu::ClientDriveQueryDirectoryResponse(ClientDriveQueryDirectoryResponse {
        device_io_reply,
        buffer: Some(buffer),
    })))
}

/// A query-directory completion as encoded (header, I/O reply, body).
fn decode_listing(bytes: &[u8]) -> Option<ClientDriveQueryDirectoryResponse> {
    let mut src = ReadCursor::new(bytes);
    if src.len() < 4 {
        return None;
    }
    src.read_slice(4); // RDPDR_HEADER: the completion's component and packet id
    let device_io_reply = DeviceIoResponse::decode(&mut src).ok()?;
    match RdpdrPdu::decode_io_completion(
        MajorFunction::DirectoryControl,
        MinorFunction::IRP_MN_QUERY_DIRECTORY,
        Some(FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION),
        None,
        device_io_reply,
        &mut src,
    ) {
        Ok(RdpdrPdu::ClientDriveQueryDirectoryResponse(response)) => Some(response),
        _ => None,
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
        if let ServerDriveIoRequest::ServerDriveQueryVolumeInformationRequest(query) = &req
            && query.fs_info_class_lvl == FileSystemInformationClassLevel::FILE_FS_DEVICE_INFORMATION
        {
            return Ok(vec![SvcMessage::from(RdpdrPdu::ClientDriveQueryVolumeInformationResponse(
                ClientDriveQueryVolumeInformationResponse {
                    device_io_reply: DeviceIoResponse::new(query.device_io_request.clone(), NtStatus::SUCCESS),
                    buffer: Some(FileSystemInformationClass::FileFsDeviceInformation(FileFsDeviceInformation {
                        device_type: FILE_DEVICE_DISK,
                        characteristics: Characteristics::FILE_REMOTE_DEVICE | Characteristics::FILE_DEVICE_IS_MOUNTED,
                    })),
                },
            ))]);
        }
        let mut listed_as = None;
        match &mut req {
            ServerDriveIoRequest::ServerDriveQueryDirectoryRequest(query)
                if [
                    FileInformationClassLevel::FILE_DIRECTORY_INFORMATION,
                    FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION,
                    FileInformationClassLevel::FILE_NAMES_INFORMATION,
                ]
                .contains(&query.file_info_class_lvl) =>
            {
                listed_as = Some(query.file_info_class_lvl.clone());
                query.file_info_class_lvl = FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION;
                windows_separators(&mut query.path);
            }
            ServerDriveIoRequest::ServerCreateDriveRequest(create) => windows_separators(&mut create.path),
            ServerDriveIoRequest::ServerDriveQueryDirectoryRequest(query) => windows_separators(&mut query.path),
            ServerDriveIoRequest::ServerDriveSetInformationRequest(set) => {
                if let FileInformationClass::Rename(rename) = &mut set.set_buffer {
                    windows_separators(&mut rename.file_name);
                }
            }
            _ => {}
        }
        let replies = self.files.handle_drive_io_request(req)?;
        match listed_as {
            Some(class) => replies.into_iter().map(|reply| relisted(reply, class.clone())).collect(),
            None => Ok(replies),
        }
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

    use ironrdp_rdpdr::pdu::efs::{
        CreateDisposition, CreateOptions, DesiredAccess, DeviceCreateRequest, DeviceIoRequest, FileAttributes,
        ServerDriveQueryDirectoryRequest, ServerDriveQueryVolumeInformationRequest, SharedAccess,
    };

    fn request(file_id: u32, major_function: MajorFunction, minor_function: MinorFunction) -> DeviceIoRequest {
        DeviceIoRequest { device_id: 1, file_id, completion_id: 7, major_function, minor_function }
    }

    /// The one completion `messages` holds, decoded as the server would.
    fn completion(
        messages: Vec<SvcMessage>,
        major: MajorFunction,
        minor: MinorFunction,
        class: Option<FileInformationClassLevel>,
        volume: Option<FileSystemInformationClassLevel>,
    ) -> RdpdrPdu {
        assert_eq!(messages.len(), 1);
        let bytes = messages[0].encode_unframed_pdu().expect("encode");
        let mut src = ReadCursor::new(&bytes);
        src.read_slice(4);
        let reply = DeviceIoResponse::decode(&mut src).expect("io reply");
        RdpdrPdu::decode_io_completion(major, minor, class, volume, reply, &mut src).expect("decode")
    }

    /// Opens the drive's root as a directory; returns its file id.
    fn open_root(drive: &mut TransferDrive) -> u32 {
        let create = DeviceCreateRequest {
            device_io_request: request(0, MajorFunction::Create, MinorFunction::from(0)),
            desired_access: DesiredAccess::FILE_READ_DATA_OR_FILE_LIST_DIRECTORY,
            allocation_size: 0,
            file_attributes: FileAttributes::empty(),
            shared_access: SharedAccess::FILE_SHARE_READ,
            create_disposition: CreateDisposition::FILE_OPEN,
            create_options: CreateOptions::FILE_DIRECTORY_FILE,
            path: String::from("\\"),
        };
        let replies =
            drive.handle_drive_io_request(ServerDriveIoRequest::ServerCreateDriveRequest(create)).expect("create");
        match completion(replies, MajorFunction::Create, MinorFunction::from(0), None, None) {
            RdpdrPdu::DeviceCreateResponse(created) => {
                assert_eq!(created.device_io_reply.io_status, NtStatus::SUCCESS);
                created.file_id
            }
            other => panic!("{other:?}"),
        }
    }

    /// Lists the root in `class` the way a server does: an initial query,
    /// then follow-ups until `NO_MORE_FILES`; returns (name, size) pairs.
    fn list(drive: &mut TransferDrive, file_id: u32, class: FileInformationClassLevel) -> Vec<(String, Option<i64>)> {
        let mut entries = Vec::new();
        for initial in std::iter::once(1).chain(std::iter::repeat(0)).take(50) {
            let query = ServerDriveQueryDirectoryRequest {
                device_io_request: request(
                    file_id,
                    MajorFunction::DirectoryControl,
                    MinorFunction::IRP_MN_QUERY_DIRECTORY,
                ),
                file_info_class_lvl: class.clone(),
                initial_query: initial,
                path: if initial == 1 { String::from("\\*") } else { String::new() },
            };
            let replies = drive
                .handle_drive_io_request(ServerDriveIoRequest::ServerDriveQueryDirectoryRequest(query))
                .expect("query");
            let decoded = completion(
                replies,
                MajorFunction::DirectoryControl,
                MinorFunction::IRP_MN_QUERY_DIRECTORY,
                Some(class.clone()),
                None,
            );
            let RdpdrPdu::ClientDriveQueryDirectoryResponse(response) = decoded else { panic!("{decoded:?}") };
            if response.device_io_reply.io_status == NtStatus::NO_MORE_FILES {
                return entries;
            }
            assert_eq!(response.device_io_reply.io_status, NtStatus::SUCCESS, "{class:?}");
            entries.push(match response.buffer.expect("an entry") {
                FileInformationClass::Directory(entry) => (entry.file_name, Some(entry.end_of_file)),
                FileInformationClass::FullDirectory(entry) => (entry.file_name, Some(entry.end_of_file)),
                FileInformationClass::BothDirectory(entry) => (entry.file_name, Some(entry.end_of_file)),
                FileInformationClass::Names(entry) => (entry.file_name, None),
                other => panic!("a listing entry, got {other:?}"),
            });
        }
        panic!("the listing never ended")
    }

    /// Every directory class MS-RDPEFS requires lists the same entries; the
    /// volume answers as a mounted remote disk.
    #[test]
    fn listings_answer_in_every_directory_information_class() {
        let folder = tempfile::tempdir().expect("temp dir");
        std::fs::write(folder.path().join("report.txt"), b"twelve bytes").expect("write");
        std::fs::create_dir(folder.path().join("ToClient")).expect("mkdir");
        let mut drive = TransferDrive::new(folder.path().to_string_lossy().into_owned());
        let root = open_root(&mut drive);
        let classes = [
            FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION,
            FileInformationClassLevel::FILE_DIRECTORY_INFORMATION,
            FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION,
            FileInformationClassLevel::FILE_NAMES_INFORMATION,
        ];
        for class in classes {
            let mut entries = list(&mut drive, root, class.clone());
            entries.sort();
            let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
            assert!(names.contains(&"report.txt") && names.contains(&"ToClient"), "{class:?}: {names:?}");
            if class != FileInformationClassLevel::FILE_NAMES_INFORMATION {
                let report = entries.iter().find(|(name, _)| name == "report.txt").expect("report");
                assert_eq!(report.1, Some(12), "{class:?} carries the size");
            }
        }

        let volume = ServerDriveQueryVolumeInformationRequest {
            device_io_request: request(root, MajorFunction::QueryVolumeInformation, MinorFunction::from(0)),
            fs_info_class_lvl: FileSystemInformationClassLevel::FILE_FS_DEVICE_INFORMATION,
        };
        let replies = drive
            .handle_drive_io_request(ServerDriveIoRequest::ServerDriveQueryVolumeInformationRequest(volume))
            .expect("volume");
        let decoded = completion(
            replies,
            MajorFunction::QueryVolumeInformation,
            MinorFunction::from(0),
            None,
            Some(FileSystemInformationClassLevel::FILE_FS_DEVICE_INFORMATION),
        );
        let RdpdrPdu::ClientDriveQueryVolumeInformationResponse(response) = decoded else { panic!("{decoded:?}") };
        match response.buffer {
            Some(FileSystemInformationClass::FileFsDeviceInformation(device)) => {
                assert_eq!(device.device_type, FILE_DEVICE_DISK)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slashes_become_windows_separators() {
        let mut path = String::from("/ToClient/a.txt");
        windows_separators(&mut path);
        assert_eq!(path, "\\ToClient\\a.txt");
    }
}
