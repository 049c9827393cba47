//! The write-ahead log: what makes an acknowledged write durable.
//!
//! A write is acknowledged once its *group* — every mutation one group
//! commit made, as row images — is appended to the log and `fdatasync`ed.
//! The B-tree (redb) catches up later, at checkpoints ([`super::checkpoint`]),
//! so a group commit costs one sequential append and one sync, whatever the
//! rows.
//!
//! The log is a series of segment files, `wal-<first lsn>.log`. Each group
//! is framed as
//!
//! ```text
//! magic u32 | payload length u32 | crc32c(lsn ++ payload) u32 | lsn u64 | payload
//! ```
//!
//! with a payload of mutations, each `key length u32 | key | value length
//! u32 (u32::MAX: the key is removed) | value`. Group numbers (LSNs) rise by
//! one. A checkpoint starts a new segment, and the segments wholly before the
//! checkpoint are deleted once the B-tree holds them.
//!
//! Reading a log back ([`replay`]):
//! - a group cut short at the end of the last segment (a crash during the
//!   append; nothing after it is valid) is a *torn tail*: it was never
//!   acknowledged, so it is discarded and the file truncated there;
//! - anything else that does not check out — a bad checksum or frame with a
//!   valid group after it, or in an earlier segment, or an LSN out of
//!   sequence — is *corruption*, and the store refuses to open, naming the
//!   file and the offset. Nothing is ever skipped silently.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Marks the start of a group.
const MAGIC: u32 = 0x504D_574C; // "PMWL"
/// magic, length, crc, lsn.
const HEADER: usize = 4 + 4 + 4 + 8;
/// The largest payload a group may have (a sanity bound for reading).
pub(crate) const MAX_PAYLOAD: usize = 256 * 1024 * 1024;
/// A value length that means "the key is removed".
const REMOVED: u32 = u32::MAX;

/// One change a group makes: a key set to a value, or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mutation {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Why the log cannot be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A record that does not check out, with valid data after it.
    #[error(
        "{path} is corrupt at offset {offset}: {problem}; refusing to open rather than lose what follows"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

/// Encodes a group's mutations as a payload.
pub(crate) fn encode(mutations: &[Mutation], out: &mut Vec<u8>) {
    for m in mutations {
        out.extend_from_slice(&(m.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&m.key);
        match &m.value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&REMOVED.to_le_bytes()),
        }
    }
}

/// Decodes a payload (already checksummed) into mutations.
fn decode(mut payload: &[u8]) -> Option<Vec<Mutation>> {
    let mut out = Vec::new();
    let take = |payload: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let (head, rest) = payload.split_at_checked(n)?;
        *payload = rest;
        Some(head.to_vec())
    };
    let u32_of = |b: Vec<u8>| b.try_into().ok().map(u32::from_le_bytes);
    while !payload.is_empty() {
        let key_len = u32_of(take(&mut payload, 4)?)? as usize;
        let key = take(&mut payload, key_len)?;
        let value = match u32_of(take(&mut payload, 4)?)? {
            REMOVED => None,
            len => Some(take(&mut payload, len as usize)?),
        };
        out.push(Mutation { key, value });
    }
    Some(out)
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&lsn.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// The name of the segment whose first group is `lsn`.
pub(crate) fn segment_path(dir: &Path, lsn: u64) -> PathBuf {
    dir.join(format!("wal-{lsn:020}.log"))
}

/// The segments in `dir`, oldest first, with their first LSNs.
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(lsn) = name
            .to_str()
            .and_then(|n| n.strip_prefix("wal-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((lsn, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// One group as read back.
pub(crate) struct Group {
    pub lsn: u64,
    pub mutations: Vec<Mutation>,
}

/// What a segment holds: its valid groups, and where they end.
struct Scan {
    groups: Vec<Group>,
    /// The length of the valid prefix.
    valid: u64,
    /// Where the first bad record starts, and what is wrong with it.
    bad: Option<(u64, String)>,
}

/// Reads the groups of one segment up to the first that does not check out.
fn scan(bytes: &[u8]) -> Scan {
    let mut groups = Vec::new();
    let mut at = 0usize;
    loop {
        if at == bytes.len() {
            return Scan { groups, valid: at as u64, bad: None };
        }
        match frame_at(bytes, at) {
            Ok((group, next)) => {
                groups.push(group);
                at = next;
            }
            Err(problem) => return Scan { groups, valid: at as u64, bad: Some((at as u64, problem)) },
        }
    }
}

/// The group framed at `at`, and where the next begins.
fn frame_at(bytes: &[u8], at: usize) -> Result<(Group, usize), String> {
    let header = bytes.get(at..at + HEADER).ok_or("a group header cut short")?;
    let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != MAGIC {
        return Err("no group starts here".into());
    }
    let len = word(4) as usize;
    if len > MAX_PAYLOAD {
        return Err(format!("a group of {len} bytes"));
    }
    let crc = word(8);
    let lsn = u64::from_le_bytes(header[12..20].try_into().map_err(|_| "header")?);
    let payload = bytes.get(at + HEADER..at + HEADER + len).ok_or("a group cut short")?;
    if checksum(lsn, payload) != crc {
        return Err("checksum mismatch".into());
    }
    let mutations = decode(payload).ok_or("a payload that does not decode")?;
    Ok((Group { lsn, mutations }, at + HEADER + len))
}

/// True when a valid group starts anywhere after `from`.
fn valid_group_after(bytes: &[u8], from: usize) -> bool {
    let magic = MAGIC.to_le_bytes();
    (from + 1..bytes.len().saturating_sub(HEADER - 1))
        .filter(|&i| bytes[i..i + 4] == magic)
        .any(|i| frame_at(bytes, i).is_ok())
}

/// Reads every group after `after` (the LSN the B-tree already holds), in
/// order, from the segments in `dir`. A torn tail of the last segment is
/// truncated away; any other damage is an error naming the file and offset.
/// Returns the groups and the LSN the next group gets.
pub(crate) fn replay(dir: &Path, after: u64) -> Result<(Vec<Group>, u64), LogError> {
    let segments = segments(dir)?;
    let mut out = Vec::new();
    let mut expected = None;
    for (index, (first, path)) in segments.iter().enumerate() {
        let last_segment = index + 1 == segments.len();
        let mut bytes = Vec::new();
        File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_error(path))?;
        let scanned = scan(&bytes);
        if let Some((offset, problem)) = &scanned.bad {
            let torn = last_segment && !valid_group_after(&bytes, *offset as usize);
            if !torn {
                return Err(LogError::Corrupt {
                    path: path.clone(),
                    offset: *offset,
                    problem: problem.clone(),
                });
            }
            tracing::warn!(
                file = %path.display(),
                offset,
                discarded = bytes.len() as u64 - offset,
                "discarding a torn last group of the log (a crash during its write; it was never acknowledged)"
            );
            let file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
            file.set_len(scanned.valid).and_then(|()| file.sync_all()).map_err(io_error(path))?;
        }
        for (i, group) in scanned.groups.into_iter().enumerate() {
            let offset_hint = || format!("group {i} of the segment");
            match expected {
                Some(lsn) if group.lsn != lsn => {
                    return Err(LogError::Corrupt {
                        path: path.clone(),
                        offset: 0,
                        problem: format!("{}: LSN {} where {lsn} was expected", offset_hint(), group.lsn),
                    });
                }
                None if i == 0 && group.lsn != *first => {
                    return Err(LogError::Corrupt {
                        path: path.clone(),
                        offset: 0,
                        problem: format!("the segment of LSN {first} starts with LSN {}", group.lsn),
                    });
                }
                _ => {}
            }
            expected = Some(group.lsn + 1);
            if group.lsn > after {
                out.push(group);
            }
        }
        // An empty segment still sets where the sequence continues.
        if expected.is_none() {
            expected = Some(*first);
        }
    }
    let next = expected.unwrap_or(after + 1).max(after + 1);
    Ok((out, next))
}

/// The segment being appended to.
pub(crate) struct Log {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    /// The LSN the next group gets.
    next: u64,
    /// How many bytes of the segment are valid (a failed append is cut back
    /// to this).
    len: u64,
    /// Set after an append could not be undone: nothing more may be written.
    broken: Option<String>,
    buf: Vec<u8>,
}

impl Log {
    /// Starts a new segment whose first group will be `next`.
    pub(crate) fn create(dir: &Path, next: u64) -> Result<Self, LogError> {
        let path = segment_path(dir, next);
        let file =
            OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(io_error(&path))?;
        let len = file.metadata().map_err(io_error(&path))?.len();
        // The new file's directory entry must be durable too.
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
        Ok(Self { dir: dir.to_path_buf(), file, path, next, len, broken: None, buf: Vec::new() })
    }

    /// Appends one group and makes it durable. Returns its LSN. On failure
    /// (a full disk, an I/O error) the segment is cut back to its last
    /// valid group, so the log stays readable; if even that fails, the log
    /// refuses every later append.
    pub(crate) fn append(&mut self, mutations: &[Mutation]) -> Result<u64, String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let lsn = self.next;
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
        encode(mutations, &mut self.buf);
        let payload_len = self.buf.len() - HEADER;
        if payload_len > MAX_PAYLOAD {
            return Err(format!("a group of {payload_len} bytes is over the log's limit"));
        }
        let crc = checksum(lsn, &self.buf[HEADER..]);
        self.buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        self.buf[4..8].copy_from_slice(&(payload_len as u32).to_le_bytes());
        self.buf[8..12].copy_from_slice(&crc.to_le_bytes());
        self.buf[12..20].copy_from_slice(&lsn.to_le_bytes());
        let written = self.file.write_all(&self.buf).and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.next += 1;
                Ok(lsn)
            }
            Err(e) => {
                let why = describe(&e);
                if let Err(undo) = self.file.set_len(self.len).and_then(|()| self.file.sync_all()) {
                    let broken = format!(
                        "{why}; and the half-written group could not be cut from {} ({undo}): no more writes \
                         until a restart",
                        self.path.display()
                    );
                    self.broken = Some(broken.clone());
                    return Err(broken);
                }
                // Appends continue at the end of the file.
                let _ = self.file.seek(SeekFrom::End(0));
                Err(why)
            }
        }
    }

    /// Starts a new segment (at a checkpoint); returns the first LSN it will
    /// hold.
    pub(crate) fn rotate(&mut self) -> Result<u64, LogError> {
        *self = Self::create(&self.dir, self.next)?;
        Ok(self.next)
    }
}

/// Deletes the segments of `dir` that hold only groups before `lsn` (never
/// the last one, which the writer appends to).
pub(crate) fn remove_before(dir: &Path, lsn: u64) -> Result<(), LogError> {
    let all = segments(dir)?;
    for pair in all.windows(2) {
        let [(_, path), (next_first, _)] = pair else { continue };
        if *next_first <= lsn {
            std::fs::remove_file(path).map_err(io_error(path))?;
        }
    }
    Ok(())
}

/// A person's words for an append failure.
fn describe(e: &io::Error) -> String {
    if e.raw_os_error() == Some(28) {
        "the disk is full (ENOSPC): nothing was written".into()
    } else {
        format!("cannot write the log: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(i: u8) -> Vec<Mutation> {
        vec![
            Mutation { key: vec![1, i], value: Some(vec![i; 10]) },
            Mutation { key: vec![2, i], value: None },
        ]
    }

    fn write(dir: &Path, n: u8) -> PathBuf {
        let mut log = Log::create(dir, 1).expect("log");
        for i in 0..n {
            log.append(&group(i)).expect("append");
        }
        segment_path(dir, 1)
    }

    #[test]
    fn groups_read_back_in_order_after_the_checkpoint() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), 5);
        let (groups, next) = replay(dir.path(), 2).expect("replays");
        assert_eq!(groups.iter().map(|g| g.lsn).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(groups[0].mutations, group(2));
        assert_eq!(next, 6);
    }

    #[test]
    fn a_torn_last_group_is_discarded_and_the_rest_recovers() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(dir.path(), 3);
        let full = std::fs::metadata(&path).expect("meta").len();
        // Cut the last group in half, as a crash during its write would.
        OpenOptions::new().write(true).open(&path).expect("open").set_len(full - 7).expect("truncate");
        let (groups, next) = replay(dir.path(), 0).expect("a torn tail is not an error");
        assert_eq!(groups.iter().map(|g| g.lsn).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(next, 3);
        let mut log = Log::create(dir.path(), next).expect("appends continue");
        assert_eq!(log.append(&group(9)).expect("append"), 3);
    }

    #[test]
    fn a_corrupt_group_in_the_middle_refuses_to_open_naming_file_and_offset() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(dir.path(), 3);
        let mut bytes = std::fs::read(&path).expect("read");
        let second = bytes.len() / 3;
        // A bit flip in the second group's payload.
        bytes[second + HEADER + 2] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let err = replay(dir.path(), 0).err().expect("refused");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("offset {second}")), "{message}");
    }

    #[test]
    fn zeros_after_the_last_group_are_a_torn_tail() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(dir.path(), 2);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[0; 100]).expect("write");
        let (groups, _) = replay(dir.path(), 0).expect("replays");
        assert_eq!(groups.len(), 2);
    }
}
