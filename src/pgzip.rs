//! Parallel gzip compression: the tar stream is cut into 512 KiB blocks that are
//! deflated on all cores (each primed with the previous block's last 32 KiB as
//! a dictionary, as pigz does) and written in order as ONE standard gzip member,
//! so `gzip -d` and `tar xz` read it. Memory is bounded by the queue depth.
//!
//! A block that looks incompressible (byte entropy near 8 bits and a trial
//! deflate of a sample saving under 3 %: encrypted or already compressed
//! workspace blobs) is written as deflate *stored* blocks instead: searching
//! random data for matches is where most of the CPU went, for no gain.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

const BLOCK: usize = 512 * 1024;
const DICT: usize = 32 * 1024;

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Option<Vec<u8>>,
    last: bool,
}

struct Done {
    seq: u64,
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

/// A `Write` that gzips on `threads` worker threads into `inner`.
pub struct ParGzWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    seq: u64,
    pending_dict: Option<Vec<u8>>,
    jobs: Option<SyncSender<Job>>,
    /// Input buffers the workers are done with, for reuse.
    spare: Receiver<Vec<u8>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<io::Result<W>>>,
}

/// Largest payload of one deflate stored block.
const STORED_MAX: usize = 65_535;
/// Sample trial-compressed before a block is stored.
const SAMPLE: usize = 64 * 1024;
/// Capacity of every output buffer: a block's worst case (stored, or deflate
/// plus a sync flush), so that they are all one size class for the allocator
/// and freed buffers are reused instead of growing the heap.
const OUT_CAP: usize = BLOCK + BLOCK / 64 + 1024;

/// Whether `data` is not worth deflating: order-0 entropy of a sample above
/// 7.9 bits per byte (Huffman coding cannot gain 1.3 %) and no repeats
/// either (a level-1 deflate of a 64 KiB sample saves less than 3 %). Wrong
/// answers cost size, never correctness.
fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < SAMPLE {
        return false;
    }
    // the histogram of 16 slices of 4 KiB spread over the block
    let mut hist = [[0u32; 256]; 4];
    let step = data.len() / 16;
    let mut n = 0usize;
    for i in 0..16 {
        let slice = &data[i * step..(i * step + 4096).min(data.len())];
        n += slice.len();
        let mut quads = slice.chunks_exact(4);
        for q in &mut quads {
            hist[0][q[0] as usize] += 1;
            hist[1][q[1] as usize] += 1;
            hist[2][q[2] as usize] += 1;
            hist[3][q[3] as usize] += 1;
        }
        for &b in quads.remainder() {
            hist[0][b as usize] += 1;
        }
    }
    let n = n as f64;
    let mut bits = 0.0f64;
    let [h0, h1, h2, h3] = &hist;
    for (((&a, &b), &c), &d) in h0.iter().zip(h1).zip(h2).zip(h3) {
        let c = (a + b + c + d) as f64;
        if c > 0.0 {
            let p = c / n;
            bits -= p * p.log2();
        }
    }
    if bits < 7.9 {
        return false;
    }
    let mid = (data.len() - SAMPLE) / 2;
    let sample = &data[mid..mid + SAMPLE];
    let mut c = Compress::new(Compression::new(1), false);
    let mut out = Vec::with_capacity(SAMPLE + SAMPLE / 8);
    match c.compress_vec(sample, &mut out, FlushCompress::Finish) {
        Ok(Status::StreamEnd) => out.len() * 100 >= SAMPLE * 97,
        _ => false,
    }
}

/// `data` as deflate stored blocks, the last one final when `last`.
/// Expects (and leaves) the stream byte-aligned, as a sync flush does.
fn stored_blocks(data: &[u8], last: bool, mut out: Vec<u8>) -> Vec<u8> {
    out.reserve(data.len() + (data.len() / STORED_MAX + 1) * 5);
    let mut chunks = data.chunks(STORED_MAX).peekable();
    while let Some(chunk) = chunks.next() {
        let fin = last && chunks.peek().is_none();
        let len = chunk.len() as u16;
        // BFINAL, BTYPE=00, then padding to the byte boundary
        out.push(u8::from(fin));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// Compresses `job` into `out` (an empty buffer, recycled).
fn compress_block(c: &mut Compress, job: &Job, mut out: Vec<u8>) -> io::Result<Vec<u8>> {
    if !job.data.is_empty() && looks_incompressible(&job.data) {
        return Ok(stored_blocks(&job.data, job.last, out));
    }
    c.reset();
    if let Some(d) = &job.dict {
        c.set_dictionary(d).map_err(io::Error::other)?;
    }
    out.reserve(OUT_CAP);
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        consumed += (c.total_in() - before) as usize;
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                // done when all input is consumed and the flush left room to spare
                if consumed == job.data.len() && !job.last && out.capacity() - out.len() >= 1024 {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// A thread that could not be started (too many threads, no memory): an
/// error of ours, never a panic.
fn spawn_error(e: io::Error) -> io::Error {
    crate::error::into_io(
        crate::error::Error::operational(format!("cannot start a compression thread: {e}"))
            .hint("use fewer --threads, or free memory, then run again"),
    )
}

impl<W: Write + Send + 'static> ParGzWriter<W> {
    /// Starts the workers. `level` is 1..=9, `threads` ≥ 1.
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        let (job_tx, job_rx) = sync_channel::<Job>(threads);
        let (done_tx, done_rx) = sync_channel::<io::Result<Done>>(threads);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(threads * 2 + 2);
        // written output buffers go back to the workers
        let (out_tx, out_rx) = sync_channel::<Vec<u8>>(threads * 2 + 2);
        let out_rx = Arc::new(Mutex::new(out_rx));
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut workers = Vec::new();
        for _ in 0..threads {
            let rx = job_rx.clone();
            let out_rx = out_rx.clone();
            let tx = done_tx.clone();
            let spare_tx = spare_tx.clone();
            // one compressor per worker, reset for each block
            let mut c = Compress::new(Compression::new(level), false);
            let spawned = std::thread::Builder::new()
                .name("gzip".into())
                .spawn(move || loop {
                    let job = {
                        let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                        guard.recv()
                    };
                    let Ok(job) = job else { return };
                    let mut crc = crc32fast::Hasher::new();
                    crc.update(&job.data);
                    let out = {
                        let guard = out_rx.lock().unwrap_or_else(|p| p.into_inner());
                        guard.try_recv().map(|mut v| {
                            v.clear();
                            v
                        })
                    };
                    let out = out.unwrap_or_else(|_| Vec::with_capacity(OUT_CAP));
                    let res = compress_block(&mut c, &job, out).map(|out| Done {
                        seq: job.seq,
                        out,
                        crc,
                        len: job.data.len() as u64,
                    });
                    let _ = spare_tx.try_send(job.data);
                    if tx.send(res).is_err() {
                        return;
                    }
                });
            match spawned {
                Ok(h) => workers.push(h),
                // the workers already started end when job_tx is dropped
                Err(e) => return Err(spawn_error(e)),
            }
        }
        drop(done_tx);
        // gzip header: magic, deflate, no flags, mtime 0, xfl 0, OS unix
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
        let writer = std::thread::Builder::new()
            .name("gzip-writer".into())
            .spawn(move || write_in_order(inner, done_rx, out_tx))
            .map_err(spawn_error)?;
        Ok(ParGzWriter {
            buf: Vec::with_capacity(BLOCK),
            seq: 0,
            pending_dict: None,
            jobs: Some(job_tx),
            spare,
            workers,
            writer: Some(writer),
        })
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let next = if last {
            Vec::new()
        } else {
            match self.spare.try_recv() {
                Ok(mut v) => {
                    v.clear();
                    v
                }
                Err(_) => Vec::with_capacity(BLOCK),
            }
        };
        let data = std::mem::replace(&mut self.buf, next);
        // the next block's dictionary is this block's tail
        let dict = (!data.is_empty()).then(|| data[data.len().saturating_sub(DICT)..].to_vec());
        let job = Job {
            seq: self.seq,
            data,
            dict: self.pending_dict.take(),
            last,
        };
        self.pending_dict = dict;
        self.seq += 1;
        let tx = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("compressor finished"))?;
        if tx.send(job).is_err() {
            return Err(self.fail());
        }
        Ok(())
    }

    /// Collects the writer thread's error after a channel broke.
    fn fail(&mut self) -> io::Error {
        self.jobs = None;
        match self.writer.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("compression worker stopped"),
        }
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.writer.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("compression writer panicked")),
        }
    }
}

fn write_in_order<W: Write>(
    mut inner: W,
    rx: Receiver<io::Result<Done>>,
    spare: SyncSender<Vec<u8>>,
) -> io::Result<W> {
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for res in rx {
        let done = res?;
        pending.insert(done.seq, done);
        while let Some(d) = pending.remove(&next) {
            inner.write_all(&d.out)?;
            crc.combine(&d.crc);
            len += d.len;
            next += 1;
            let _ = spare.try_send(d.out);
        }
    }
    if !pending.is_empty() {
        return Err(io::Error::other("compression block missing"));
    }
    inner.write_all(&crc.finalize().to_le_bytes())?;
    inner.write_all(&(len as u32).to_le_bytes())?;
    Ok(inner)
}

impl<W: Write + Send + 'static> Write for ParGzWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let room = BLOCK - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == BLOCK {
                self.dispatch(false)?;
            }
        }
        Ok(total)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8], threads: usize) {
        let mut w = ParGzWriter::new(Vec::new(), 6, threads).unwrap();
        for chunk in data.chunks(77_777) {
            w.write_all(chunk).unwrap();
        }
        let gz = w.finish().unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn empty_and_small_and_multi_block() {
        roundtrip(b"", 2);
        roundtrip(b"hello", 1);
        let mut big = Vec::new();
        let mut x = 1u64;
        for i in 0..3_500_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            big.push(if i % 3 == 0 {
                (x % 251) as u8
            } else {
                b'a' + (i % 7) as u8
            });
        }
        roundtrip(&big, 2);
        roundtrip(&big[..BLOCK * 2], 3);
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_blocks_are_stored() {
        let random = noise(BLOCK, 7);
        assert!(looks_incompressible(&random));
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog\n"
            .iter()
            .cycle()
            .take(BLOCK)
            .copied()
            .collect();
        assert!(!looks_incompressible(&text));
        // high entropy but repeating: deflate it
        let page = noise(4096, 9);
        let pages: Vec<u8> = page.iter().cycle().take(BLOCK).copied().collect();
        assert!(!looks_incompressible(&pages));
        // random, text, random ending in a stored final block, and odd sizes
        let mut mixed = noise(BLOCK * 2 + 12_345, 3);
        mixed.extend_from_slice(&text[..BLOCK / 2]);
        mixed.extend_from_slice(&noise(BLOCK + 70_000, 5));
        roundtrip(&mixed, 2);
        roundtrip(&mixed[..BLOCK * 3], 1);
        let mut w = ParGzWriter::new(Vec::new(), 3, 2).unwrap();
        w.write_all(&mixed).unwrap();
        let gz = w.finish().unwrap();
        assert!(gz.len() < mixed.len() + mixed.len() / 100);
        gunzip_with_stock_gzip(&gz, &mixed);
    }

    fn gunzip_with_stock_gzip(gz: &[u8], want: &[u8]) {
        if std::process::Command::new("gzip")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: gzip not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        std::fs::write(&p, gz).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(out.stdout == want);
    }

    #[test]
    fn stock_gzip_reads_it() {
        if std::process::Command::new("gzip")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: gzip not installed");
            return;
        }
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut w = ParGzWriter::new(Vec::new(), 3, 2).unwrap();
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        std::fs::write(&p, &gz).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }
}
