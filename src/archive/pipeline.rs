//! Read-side pipelining: each stage (file read + decrypt, gunzip) runs on its
//! own thread and hands 256 KiB chunks to the next through a bounded channel,
//! so decryption, decompression and untar+hash+write overlap on separate cores
//! with memory bounded by the queue depth. Errors travel in order, after the
//! data that preceded them.

use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

const CHUNK: usize = 256 * 1024;
const DEPTH: usize = 8;

/// The consuming end of a stage.
pub struct StageReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    /// Consumed chunks go back to the producer, which refills them instead of
    /// allocating and zeroing a new one per chunk.
    back: Option<SyncSender<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

/// Runs `src` on a new thread; the returned reader yields its bytes.
pub fn spawn_stage(mut src: Box<dyn Read + Send>) -> StageReader {
    let (tx, rx) = sync_channel(DEPTH);
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(DEPTH + 2);
    std::thread::spawn(move || loop {
        let mut buf = back_rx.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let res = loop {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        match res {
            Ok(eof) => {
                if !buf.is_empty() && tx.send(Ok(buf)).is_err() {
                    return;
                }
                if eof {
                    // an explicit end marker: a stage that dies (panics)
                    // without it is an error downstream, never a clean EOF
                    let _ = tx.send(Ok(Vec::new()));
                    return;
                }
            }
            Err(e) => {
                if !buf.is_empty() {
                    let _ = tx.send(Ok(buf));
                }
                let _ = tx.send(Err(e));
                return;
            }
        }
    });
    StageReader {
        rx,
        back: Some(back_tx),
        cur: Vec::new(),
        pos: 0,
        done: false,
    }
}

impl Read for StageReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => {
                    self.done = true;
                    return Ok(0);
                }
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.cur, chunk);
                    self.pos = 0;
                    if let Some(back) = &self.back {
                        // full or producer gone: just drop it
                        let _ = back.try_send(used);
                    }
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other(
                        "a stage of the read pipeline stopped before the end of the stream",
                    ));
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// (The archive file's reader, whose own I/O errors name it: in `store`.)
pub use crate::store::SourceFile;

/// Opens an archive file and returns its decrypted payload (the gzip stream):
/// detects the format by its magic bytes and starts decryption on its own
/// thread. Key errors surface here, before any data is read. `pb` moves by
/// the archive's bytes as they are read (its total: the file's size).
pub fn open_payload(
    path: &Path,
    identities: &crate::crypto::Identities,
    pb: Box<dyn crate::events::Progress>,
) -> crate::error::Result<(crate::crypto::Format, Box<dyn Read + Send>)> {
    use crate::crypto::Format;
    use crate::error::{Error, IoContext};
    let head = crate::crypto::read_head(path)?;
    let format = Format::detect(&head).ok_or_else(|| {
        Error::integrity(format!(
            "{} is not an archive: neither age, OpenPGP nor gzip",
            path.display()
        ))
        .hint("name the archive file itself (not its .sha256 sidecar); if it is, it is damaged")
    })?;
    let file = std::fs::File::open(path).at("opening archive", path)?;
    pb.set_total(file.metadata().map(|m| m.len()).unwrap_or(0));
    let src: Box<dyn Read + Send> = Box::new(crate::events::Reading::new(
        SourceFile::new(io::BufReader::with_capacity(256 * 1024, file), path),
        pb,
    ));
    if !format.is_encrypted() {
        return Ok((format, src));
    }
    let dec = identities.decryptor(format)?;
    Ok((format, Box::new(spawn_stage(dec.decrypt(format, src)?))))
}

/// Opens an archive's tar stream from any reader (a local file or an object
/// in an offsite tier, see `tier::ArchiveRef::open_tar_stream`): the first
/// bytes decide the format, then decryption and gunzip (all members) each run
/// on their own thread, so decrypt, gunzip and the consumer use separate
/// cores. `label` names the source in messages, `hint` is the advice when the
/// first bytes are no archive format.
pub fn open_tar_reader(
    mut src: Box<dyn Read + Send>,
    label: &Path,
    hint: &str,
    identities: &crate::crypto::Identities,
) -> crate::error::Result<(crate::crypto::Format, StageReader)> {
    use crate::crypto::Format;
    use crate::error::{Error, IoContext};
    let mut head = Vec::with_capacity(64);
    (&mut src)
        .take(64)
        .read_to_end(&mut head)
        .at("reading archive", label)?;
    let format = Format::detect(&head).ok_or_else(|| {
        Error::integrity(format!(
            "{} is not an archive: neither age, OpenPGP nor gzip",
            label.display()
        ))
        .hint(hint)
    })?;
    let src: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(src));
    let plain: Box<dyn Read + Send> = if format.is_encrypted() {
        let dec = identities.decryptor(format)?;
        Box::new(spawn_stage(dec.decrypt(format, src)?))
    } else {
        src
    };
    // the bufread decoder reads straight from this buffer (the read:: one
    // would copy through a second, 32 KiB one)
    let gunzip =
        flate2::bufread::MultiGzDecoder::new(io::BufReader::with_capacity(256 * 1024, plain));
    Ok((format, spawn_stage(Box::new(gunzip))))
}

/// The producing end of an in-memory pipe made by [`pipe`].
pub struct PipeWriter {
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl PipeWriter {
    /// Reports a failure to the reader (after the data already written).
    pub fn fail(mut self, e: io::Error) {
        let _ = io::Write::flush(&mut self);
        let _ = self.tx.send(Err(e));
    }
}

impl io::Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx
                .send(Ok(chunk))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader stopped"))?;
        }
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let _ = io::Write::flush(self);
        // the end marker; a producer that panics never sends it, so the
        // reader reports an error instead of a clean end of stream
        if !std::thread::panicking() {
            let _ = self.tx.send(Ok(Vec::new()));
        }
    }
}

/// A bounded in-memory pipe between two threads.
pub fn pipe() -> (PipeWriter, StageReader) {
    let (tx, rx) = sync_channel(DEPTH);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        StageReader {
            rx,
            back: None,
            cur: Vec::new(),
            pos: 0,
            done: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panics(usize);
    impl Read for Panics {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                panic!("stage failure (expected by the test)");
            }
            self.0 -= 1;
            buf[0] = 7;
            Ok(1)
        }
    }

    #[test]
    fn a_dying_stage_is_an_error_not_an_end() {
        let mut r = spawn_stage(Box::new(Panics(3)));
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
    }

    #[test]
    fn clean_end_and_pipe() {
        let mut r = spawn_stage(Box::new(io::Cursor::new(vec![1u8; 600_000])));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 600_000);
        let (mut w, mut r) = pipe();
        let t = std::thread::spawn(move || {
            io::Write::write_all(&mut w, &[2u8; 300_000]).unwrap();
        });
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        t.join().unwrap();
        assert_eq!(out, vec![2u8; 300_000]);
    }
}
