//! Filesystem primitives for places another local user can write to (a shared
//! `$TMPDIR`, a sticky parent of the restore target): every walk, removal and
//! shred goes through directory descriptors opened with `O_NOFOLLOW`, relative
//! to the descriptor (`openat`/`unlinkat`/`getdents`), never by re-joined
//! paths, so swapping an entry for a symlink mid-walk cannot redirect us.
//! Directories and files are trusted only after an `fstat` of the opened
//! descriptor says they are ours (see SECURITY.md, "Local attacker model").
//!
//! Depth: a walk holds one descriptor per level of the tree it walks.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// Flags of every directory open: read-only, must be a directory, never
/// follow a symlink in the last component.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Block size of the zero overwrite.
pub(crate) const BLOCK: usize = 1024 * 1024;

/// The effective uid: the owner every trusted entry must have.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Why a directory or file is not trusted.
#[derive(Debug)]
pub enum Untrusted {
    /// The last component is a symbolic link.
    Symlink,
    /// It is not a directory (or not a regular file, for files).
    WrongType,
    /// Owned by another user.
    Foreign(u32),
    /// Owned by us, but with a mode other than the one required.
    Mode(u32),
    /// It could not be created or opened.
    Io(io::Error),
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Untrusted::Symlink => write!(f, "it is a symbolic link"),
            Untrusted::WrongType => write!(f, "it is not of the expected type"),
            Untrusted::Foreign(uid) => {
                write!(f, "it is owned by uid {uid}, not by this user ({})", euid())
            }
            Untrusted::Mode(m) => write!(f, "its mode is {m:04o}: others can write to it"),
            Untrusted::Io(e) => write!(f, "{e}"),
        }
    }
}

/// What a failed no-follow directory open of `path` means (with
/// `O_DIRECTORY`, a symlink gives `ENOTDIR` or `ELOOP`).
fn untrusted_open(path: &Path, e: io::Error) -> Untrusted {
    let code = e.raw_os_error();
    if code == Some(Errno::LOOP.raw_os_error()) || code == Some(Errno::NOTDIR.raw_os_error()) {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Untrusted::Symlink,
            _ => Untrusted::WrongType,
        }
    } else {
        Untrusted::Io(e)
    }
}

/// Whether the entry `name` of `dirfd` is a symbolic link.
pub fn is_symlink_at(dirfd: impl AsFd, name: impl AsRef<Path>) -> bool {
    lstat_at(dirfd, name)
        .ok()
        .flatten()
        .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// `fstat` of an open descriptor.
pub fn stat(fd: impl AsFd) -> io::Result<Stat> {
    rustix::fs::fstat(fd).map_err(io::Error::from)
}

/// The permission bits (with setuid/setgid/sticky) of a stat.
pub fn mode(st: &Stat) -> u32 {
    st.st_mode & 0o7777
}

/// Opens the directory `name` relative to `dirfd` without following a
/// symlink (a symlink gives `ELOOP`).
pub fn open_dir_at(dirfd: impl AsFd, name: impl AsRef<Path>) -> io::Result<OwnedFd> {
    rustix::fs::openat(dirfd, name.as_ref(), DIR_FLAGS, Mode::empty()).map_err(io::Error::from)
}

/// Opens the directory `path`; a symlink as its last component is not
/// followed (components before it are resolved as usual).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(io::Error::from)
}

/// Checks that an opened directory is owned by the effective uid.
pub fn check_owned(fd: impl AsFd) -> Result<Stat, Untrusted> {
    let st = stat(fd).map_err(Untrusted::Io)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(Untrusted::WrongType);
    }
    if st.st_uid != euid() {
        return Err(Untrusted::Foreign(st.st_uid));
    }
    Ok(st)
}

/// Checks that an opened directory is private: a directory owned by the
/// effective uid with mode exactly 0700.
pub fn check_private(fd: impl AsFd) -> Result<Stat, Untrusted> {
    let st = check_owned(fd)?;
    if mode(&st) != 0o700 {
        return Err(Untrusted::Mode(mode(&st)));
    }
    Ok(st)
}

/// Creates `path` (mode 0700) if it does not exist, opens it without
/// following a symlink and checks it is private ([`check_private`]). The
/// parent must exist. A directory of ours that others cannot write to
/// (e.g. 0755, or a fresh one under an unusual umask) is tightened to 0700
/// through its descriptor; one that group or others can write to is refused,
/// as is a symlink or another user's directory.
pub fn private_dir(path: &Path) -> Result<OwnedFd, Untrusted> {
    let created = match rustix::fs::mkdir(path, Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(Untrusted::Io(e.into())),
    };
    let fd = open_dir(path).map_err(|e| untrusted_open(path, e))?;
    let st = check_owned(&fd)?;
    if mode(&st) != 0o700 {
        // ours, and nobody else can add entries: tighten through the
        // descriptor (a fresh directory under an unusual umask, or one an
        // earlier version or the user made 0755)
        if !created && mode(&st) & 0o022 != 0 {
            return Err(Untrusted::Mode(mode(&st)));
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| Untrusted::Io(e.into()))?;
    }
    check_private(&fd)?;
    Ok(fd)
}

/// [`private_dir`], creating missing parents (mode 0700) first.
pub fn private_dir_all(path: &Path) -> Result<OwnedFd, Untrusted> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(Untrusted::Io)?;
    }
    private_dir(path)
}

/// The names in an open directory, without `.` and `..`.
pub fn names(dirfd: impl AsFd) -> io::Result<Vec<OsString>> {
    let mut dir = rustix::fs::Dir::read_from(dirfd)?;
    let mut out = Vec::new();
    while let Some(e) = dir.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(out)
}

/// `fstatat` without following a symlink; `None` when the entry is missing.
pub fn lstat_at(dirfd: impl AsFd, name: impl AsRef<Path>) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dirfd, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Removes the entry `name` of `dirfd` and, if it is a directory, everything
/// below it, never following a symlink (a symlink is removed, not its
/// target). A missing entry is not an error.
pub fn remove_tree_at(dirfd: impl AsFd, name: impl AsRef<Path>) -> io::Result<()> {
    walk_remove(dirfd.as_fd(), name.as_ref(), false)
}

/// Like [`remove_tree_at`], but every regular file we own that has no other
/// hard link is overwritten with zeros over its whole length, fsynced and
/// truncated before it is unlinked ([`shred_file_at`]).
pub fn shred_tree_at(dirfd: impl AsFd, name: impl AsRef<Path>) -> io::Result<()> {
    walk_remove(dirfd.as_fd(), name.as_ref(), true)
}

/// Removes (or shreds) everything inside the open directory `fd`, leaving
/// the directory itself.
pub fn clear_dir(fd: impl AsFd, shred: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut first_err = None;
    for n in names(fd)? {
        if let Err(e) = walk_remove(fd, Path::new(&n), shred) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn walk_remove(dirfd: std::os::fd::BorrowedFd<'_>, name: &Path, shred: bool) -> io::Result<()> {
    let Some(st) = lstat_at(dirfd, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return if shred {
            shred_file_at(dirfd, name)
        } else {
            unlink_missing_ok(dirfd, name, AtFlags::empty())
        };
    }
    let fd = match open_dir_at(dirfd, name) {
        Ok(fd) => fd,
        // swapped for something else since the fstatat: remove that, unfollowed
        Err(e) if matches!(e.raw_os_error(), Some(c) if c == Errno::LOOP.raw_os_error() || c == Errno::NOTDIR.raw_os_error()) =>
        {
            return unlink_missing_ok(dirfd, name, AtFlags::empty());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    clear_dir(&fd, shred)?;
    drop(fd);
    unlink_missing_ok(dirfd, name, AtFlags::REMOVEDIR)
}

fn unlink_missing_ok(dirfd: impl AsFd, name: &Path, flags: AtFlags) -> io::Result<()> {
    match rustix::fs::unlinkat(dirfd, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Securely deletes the file `name` of `dirfd`: a regular file we own with no
/// other hard link is overwritten with zeros over its whole length in 1 MiB
/// blocks, fsynced, truncated to 0 and fsynced again; then the entry is
/// unlinked. Anything else (a symlink, a FIFO, a file shared by a hard link
/// or owned by another user) is only unlinked: its contents are not ours to
/// destroy. A missing entry is not an error.
pub fn shred_file_at(dirfd: impl AsFd, name: impl AsRef<Path>) -> io::Result<()> {
    let dirfd = dirfd.as_fd();
    let name = name.as_ref();
    if let Some(file) = open_for_shred(dirfd, name)? {
        let st = stat(&file)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_uid == euid()
            && st.st_nlink == 1
        {
            overwrite_zeros(&file, st.st_size as u64)?;
            file.sync_all()?;
            file.set_len(0)?;
            file.sync_all()?;
        }
    }
    unlink_missing_ok(dirfd, name, AtFlags::empty())
}

/// Opens `name` for writing without following a symlink or blocking on a
/// FIFO; `None` when it is not something to overwrite.
fn open_for_shred(dirfd: std::os::fd::BorrowedFd<'_>, name: &Path) -> io::Result<Option<File>> {
    let flags =
        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    match rustix::fs::openat(dirfd, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::ACCESS) => {
            // a read-only file of ours: make it writable through its own
            // descriptor (no path is followed), then reopen and compare
            let ro = match rustix::fs::openat(
                dirfd,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(_) => return Ok(None),
            };
            let st = stat(&ro)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != euid() {
                return Ok(None);
            }
            rustix::fs::fchmod(&ro, Mode::from_raw_mode(0o600))?;
            match rustix::fs::openat(dirfd, name, flags, Mode::empty()) {
                Ok(fd) => {
                    let st2 = stat(&fd)?;
                    if st2.st_dev == st.st_dev && st2.st_ino == st.st_ino {
                        Ok(Some(File::from(fd)))
                    } else {
                        Ok(None)
                    }
                }
                Err(_) => Ok(None),
            }
        }
        // a symlink (ELOOP), a FIFO without reader (ENXIO), a socket, …
        Err(_) => Ok(None),
    }
}

pub(crate) fn overwrite_zeros(mut file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; BLOCK.min(len.max(1) as usize)];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Why a file read with [`read_owned_file_at`] was not trusted.
#[derive(Debug)]
pub enum NotOurs {
    Missing,
    Untrusted(Untrusted),
    TooLarge(u64),
}

/// Reads the regular file `name` of `dirfd`, at most `max` bytes, only if it
/// is ours: opened with `O_NOFOLLOW` (and non-blocking, so a FIFO cannot stall
/// us), then `fstat`: a regular file owned by the effective uid.
pub fn read_owned_file_at(
    dirfd: impl AsFd,
    name: impl AsRef<Path>,
    max: u64,
) -> Result<(Vec<u8>, Stat), NotOurs> {
    let fd = match rustix::fs::openat(
        dirfd,
        name.as_ref(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(NotOurs::Missing),
        Err(Errno::LOOP) => return Err(NotOurs::Untrusted(Untrusted::Symlink)),
        Err(e) => return Err(NotOurs::Untrusted(Untrusted::Io(e.into()))),
    };
    let st = stat(&fd).map_err(|e| NotOurs::Untrusted(Untrusted::Io(e)))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(NotOurs::Untrusted(Untrusted::WrongType));
    }
    if st.st_uid != euid() {
        return Err(NotOurs::Untrusted(Untrusted::Foreign(st.st_uid)));
    }
    if st.st_size as u64 > max {
        return Err(NotOurs::TooLarge(st.st_size as u64));
    }
    let mut buf = Vec::new();
    File::from(fd)
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| NotOurs::Untrusted(Untrusted::Io(e)))?;
    if buf.len() as u64 > max {
        return Err(NotOurs::TooLarge(buf.len() as u64));
    }
    Ok((buf, st))
}

/// Creates a new directory `<prefix><random>` (mode 0700) in `dirfd`, with a
/// fresh random suffix on every `EEXIST`, so nothing someone else created
/// first can be taken for ours; returns its name and an `O_NOFOLLOW`
/// descriptor checked to be ours.
pub fn create_unique_dir(dirfd: impl AsFd, prefix: &str) -> io::Result<(String, OwnedFd)> {
    let dirfd = dirfd.as_fd();
    for _ in 0..64 {
        let mut rnd = [0u8; 8];
        rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty())?;
        let name = format!("{prefix}{}", hex::encode(rnd));
        match rustix::fs::mkdirat(dirfd, name.as_str(), Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
        let fd = open_dir_at(dirfd, &name)?;
        check_owned(&fd).map_err(|u| io::Error::other(format!("{name}: {u}")))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
        return Ok((name, fd));
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a directory with a new random name",
    ))
}

/// Splits `path` into its parent (`.` when it has none) and last component.
pub fn split(path: &Path) -> Option<(PathBuf, OsString)> {
    let name = path.file_name()?.to_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Some((parent, name))
}

/// Opens the parent of `path` and runs `f` on it with the last component, so
/// that component is acted on relative to the parent, unfollowed. A missing
/// parent is nothing to do.
fn at_parent(path: &Path, f: impl FnOnce(&OwnedFd, &OsStr) -> io::Result<()>) -> io::Result<()> {
    let Some((parent, name)) = split(path) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    match rustix::fs::open(
        &parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(pfd) => f(&pfd, &name),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the tree at `path` (see [`remove_tree_at`]) relative to its parent.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    at_parent(path, |pfd, name| remove_tree_at(pfd, name))
}

/// Shreds the tree at `path` (see [`shred_tree_at`]) relative to its parent.
pub fn shred_tree(path: &Path) -> io::Result<()> {
    at_parent(path, |pfd, name| shred_tree_at(pfd, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::Duration;

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/f"), b"secret").unwrap();
        fs::write(root.join("a/b/c/g"), vec![7u8; BLOCK + 3]).unwrap();
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        tree(&outside);
        let victim = d.path().join("victim");
        fs::create_dir(&victim).unwrap();
        std::os::unix::fs::symlink(&outside, victim.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("a/f"), victim.join("flink")).unwrap();
        fs::create_dir(victim.join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, victim.join("sub/deep")).unwrap();
        let pfd = open_dir(d.path()).unwrap();
        shred_tree_at(&pfd, "victim").unwrap();
        assert!(fs::symlink_metadata(&victim).is_err());
        assert_eq!(fs::read(outside.join("a/f")).unwrap(), b"secret");
        assert_eq!(fs::read(outside.join("a/b/c/g")).unwrap().len(), BLOCK + 3);
        // a symlink named directly is removed, not its target
        std::os::unix::fs::symlink(&outside, d.path().join("top")).unwrap();
        remove_tree_at(&pfd, "top").unwrap();
        assert!(fs::symlink_metadata(d.path().join("top")).is_err());
        assert!(outside.join("a/f").exists());
        // missing is fine
        remove_tree_at(&pfd, "nothing").unwrap();
        remove_tree(&d.path().join("outside")).unwrap();
        assert!(!outside.exists());
    }

    #[test]
    fn racing_swaps_for_symlinks_never_redirect_a_shred() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir_all(outside.join("credentials")).unwrap();
        fs::write(outside.join("credentials/oauth.json"), b"token").unwrap();
        fs::write(outside.join("secureclaw.json"), b"{}").unwrap();
        let pfd = open_dir(d.path()).unwrap();
        for round in 0..200 {
            let root = d.path().join("root");
            fs::create_dir_all(root.join("d/sub")).unwrap();
            fs::write(root.join("d/f"), b"plain").unwrap();
            fs::write(root.join("d/sub/g"), b"plain").unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let (r, o, st) = (root.clone(), outside.clone(), stop.clone());
            let swapper = std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    if fs::rename(r.join("d"), r.join("real")).is_err() {
                        break;
                    }
                    let _ = std::os::unix::fs::symlink(&o, r.join("d"));
                    let _ = fs::remove_file(r.join("d"));
                    if fs::rename(r.join("real"), r.join("d")).is_err() {
                        break;
                    }
                }
            });
            std::thread::sleep(Duration::from_micros(50 * (round % 7)));
            let _ = shred_tree_at(&pfd, "root");
            stop.store(true, Ordering::Relaxed);
            swapper.join().unwrap();
            assert_eq!(
                fs::read(outside.join("credentials/oauth.json")).unwrap(),
                b"token"
            );
            assert_eq!(fs::read(outside.join("secureclaw.json")).unwrap(), b"{}");
            let _ = fs::remove_dir_all(&root);
        }
    }

    #[test]
    fn shred_overwrites_only_unshared_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("t");
        tree(&root);
        // a hard link elsewhere keeps its content: shred unlinks only
        let keep = d.path().join("keep");
        fs::hard_link(root.join("a/f"), &keep).unwrap();
        // a read-only file is still overwritten
        fs::write(root.join("ro"), b"readonly secret").unwrap();
        fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o400)).unwrap();
        let ro_handle = File::open(root.join("ro")).unwrap();
        let g_handle = File::open(root.join("a/b/c/g")).unwrap();
        shred_tree(&root).unwrap();
        assert!(!root.exists());
        assert_eq!(fs::read(&keep).unwrap(), b"secret");
        let mut rest = Vec::new();
        (&g_handle).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "truncated");
        assert_eq!(ro_handle.metadata().unwrap().len(), 0);
    }

    #[test]
    fn private_dir_checks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rt");
        let fd = private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o700);
        drop(fd);
        // again: exists and is fine
        private_dir(&p).unwrap();
        // writable by others: refused; merely readable: tightened
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(private_dir(&p), Err(Untrusted::Mode(0o777))));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o700);
        // a symlink to a private dir is not followed
        let real = d.path().join("real");
        private_dir(&real).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(private_dir(&link), Err(Untrusted::Symlink)));
        // a file
        fs::write(d.path().join("file"), b"").unwrap();
        assert!(matches!(
            private_dir(&d.path().join("file")),
            Err(Untrusted::WrongType)
        ));
        let deep = d.path().join("x/y/z");
        private_dir_all(&deep).unwrap();
        assert_eq!(
            fs::metadata(d.path().join("x")).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn read_owned_file_is_bounded_and_unfollowed() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), b"hello").unwrap();
        std::os::unix::fs::symlink(d.path().join("f"), d.path().join("l")).unwrap();
        let fd = open_dir(d.path()).unwrap();
        assert_eq!(read_owned_file_at(&fd, "f", 5).unwrap().0, b"hello");
        assert!(matches!(
            read_owned_file_at(&fd, "f", 4),
            Err(NotOurs::TooLarge(5))
        ));
        assert!(matches!(
            read_owned_file_at(&fd, "l", 100),
            Err(NotOurs::Untrusted(Untrusted::Symlink))
        ));
        assert!(matches!(
            read_owned_file_at(&fd, "nope", 100),
            Err(NotOurs::Missing)
        ));
        rustix::fs::mkfifoat(&fd, "fifo", Mode::from_raw_mode(0o600)).unwrap();
        assert!(matches!(
            read_owned_file_at(&fd, "fifo", 100),
            Err(NotOurs::Untrusted(Untrusted::WrongType))
        ));
        // shredding a FIFO does not block
        shred_file_at(&fd, "fifo").unwrap();
    }

    #[test]
    fn unique_dirs_never_reuse_a_name() {
        let d = tempfile::tempdir().unwrap();
        let fd = open_dir(d.path()).unwrap();
        let (a, afd) = create_unique_dir(&fd, ".x.restore-1-").unwrap();
        let (b, _) = create_unique_dir(&fd, ".x.restore-1-").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(".x.restore-1-"));
        assert_eq!(mode(&stat(&afd).unwrap()), 0o700);
        assert_eq!(names(&fd).unwrap().len(), 2);
    }
}
