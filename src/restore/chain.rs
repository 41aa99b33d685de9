//! Restoring and verifying a link of an incremental chain (README
//! "Restoring a chain"): which archives a link needs, found in the link's own
//! store (the local destination, a NAS directory, a bucket), and reading them
//! in order into one tree.
//!
//! [`find`] follows the keyless `<archive>.meta` descriptions from the link
//! back to the chain's full, without a key: every predecessor must be in the
//! same store, and each description must agree with its successor's (same
//! chain, the level before). A predecessor renamed by `rotate` (another
//! encryption, so another suffix) is found by its stem. That is only a hint:
//! [`Found::extract`] then decrypts every link to its end, in order, applying
//! each on top of the tree before it ([`extract::extract_link`]), and proves
//! the chain from the authenticated manifests: each manifest's chain is the
//! one its `.meta` claims (else exit 3 naming both), each link follows the
//! one before it, and the tree after each link is exactly what that link's
//! manifest lists, hashes included. A missing, damaged or foreign link is an
//! integrity failure (exit 3) naming it; the extraction rules refuse hostile
//! entries of any link (exit 5). The caller's sink (a staging directory or
//! nowhere) is all that is written.

use std::path::PathBuf;

use serde::Serialize;

use crate::archive::extract::{self, Limits, Outcome, Sink};
use crate::crypto::{Format, Identities};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::manifest::Chain;
use crate::meta::{self, Meta};
use crate::store::{self, Container, LocalStore, SidecarStatus, Store};
use crate::tier::{reference, ArchiveRef};

/// Longest chain followed (a loop in hostile descriptions cannot happen, as
/// levels strictly decrease, but a claimed level of 4 billion could).
pub const MAX_CHAIN_LINKS: u32 = 100_000;

/// One archive of a chain, as found in its store.
#[derive(Debug, Clone)]
pub struct FoundLink {
    /// Its name in the store.
    pub name: String,
    /// Where its `.meta` says it stands (proven by its manifest at read time).
    pub position: Chain,
}

/// The chain a link needs, the full first, and the store that holds it.
pub struct Found<'a> {
    store: StoreRef<'a>,
    pub links: Vec<FoundLink>,
    /// The signature of every link, verified ([`Found::check_provenance`];
    /// empty when no signers are configured).
    checked: Vec<crate::sign::Checked>,
}

enum StoreRef<'a> {
    Owned(Box<dyn Store>),
    Borrowed(&'a dyn Store),
}

/// A chain as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The chain's id (its full's stem, the top-level directory of every link).
    pub id: String,
    /// The level of the archive restored or verified (0 = the full).
    pub level: u32,
    /// Every archive read, the full first.
    pub links: Vec<String>,
}

/// The store an archive lives in, and its name there.
fn store_of(archive: &ArchiveRef) -> Result<(StoreRef<'_>, String)> {
    match archive {
        ArchiveRef::Local(p) => {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    Error::usage(format!("{} is not an archive file name", p.display()))
                        .hint("name the archive file itself")
                })?
                .to_owned();
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => PathBuf::from("."),
            };
            Ok((StoreRef::Owned(Box::new(LocalStore::new(dir))), name))
        }
        ArchiveRef::Remote(r) => Ok((StoreRef::Borrowed(r.tier.as_ref()), r.name.clone())),
    }
}

impl StoreRef<'_> {
    fn get(&self) -> &dyn Store {
        match self {
            StoreRef::Owned(b) => b.as_ref(),
            StoreRef::Borrowed(s) => *s,
        }
    }
}

fn describe(c: &Chain) -> String {
    let after = match &c.previous {
        Some(p) => format!(" on top of {p}"),
        None => String::new(),
    };
    format!("chain {:?} level {}{after}", c.id, c.level)
}

/// The stem of an archive file name (`weekly_20261201_000000`), by which a
/// predecessor renamed by `rotate` is still found.
fn stem_of(name: &str) -> Option<String> {
    store::parse_name(name, false).map(|a| a.stem())
}

/// Reads and checks `<name>.meta` in `store`: `None` when there is none.
fn read_meta(store: &dyn Store, name: &str) -> Result<Option<Meta>> {
    let mname = meta::meta_name(name);
    match store.read_small(&mname)? {
        None => Ok(None),
        Some(bytes) => Meta::parse(&bytes, name, &store.label(&mname)).map(Some),
    }
}

/// The entry of `store` that is the archive `wanted` names: that name, or,
/// when rotation changed the encryption, the same stem with the other
/// suffix.
fn locate(store: &dyn Store, wanted: &str) -> Result<Option<String>> {
    if store.size(wanted)?.is_some() {
        return Ok(Some(wanted.to_owned()));
    }
    let Some(stem) = stem_of(wanted) else {
        return Ok(None);
    };
    for c in [Container::Age, Container::OpenPgp, Container::TarGz] {
        let n = format!("{stem}{}", c.suffix());
        if n != wanted && store.size(&n)?.is_some() {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

fn chain_error(msg: String) -> Error {
    Error::integrity(msg).hint(
        "a link can only be restored with every archive before it in its chain, in the same place; \
         copy the missing or damaged one back (e.g. from a tier), or restore an older full; nothing was changed",
    )
}

/// The chain `archive` belongs to, from the `.meta` descriptions in its
/// store, the full first; `None` when the archive has no description with a
/// chain (an ordinary full, or an archive of an older version: read as
/// today). Reads nothing but descriptions and listings.
pub fn find(archive: &ArchiveRef) -> Result<Option<Found<'_>>> {
    let (store, name) = store_of(archive)?;
    let s = store.get();
    let Some(m) = read_meta(s, &name)? else {
        return Ok(None);
    };
    let Some(position) = m.chain else {
        return Ok(None);
    };
    if position.level > MAX_CHAIN_LINKS {
        return Err(chain_error(format!(
            "{}: level {} is more than {MAX_CHAIN_LINKS} links",
            s.label(&meta::meta_name(&name)),
            position.level
        )));
    }
    let mut links = vec![FoundLink {
        name: name.clone(),
        position,
    }];
    loop {
        let cur = links.last().map(|l| (l.name.clone(), l.position.clone()));
        let Some((cur_name, cur_pos)) = cur else {
            break;
        };
        if cur_pos.level == 0 {
            break;
        }
        let cur_meta = s.label(&meta::meta_name(&cur_name));
        let Some(prev) = cur_pos.previous.clone() else {
            return Err(chain_error(format!(
                "{cur_meta}: level {} names no predecessor (damaged description)",
                cur_pos.level
            )));
        };
        let Some(found) = locate(s, &prev)? else {
            return Err(chain_error(format!(
                "{} is missing: {cur_name} (level {} of chain {:?}) applies on top of it, and it is not in {}",
                s.label(&prev),
                cur_pos.level,
                cur_pos.id,
                s.url()
            )));
        };
        let want = cur_pos.level - 1;
        let pos = match read_meta(s, &found)? {
            Some(Meta { chain: Some(c), .. }) => c,
            // a full needs no description to be found
            None if want == 0 => Chain {
                id: cur_pos.id.clone(),
                level: 0,
                previous: None,
            },
            None => {
                return Err(chain_error(format!(
                    "{}: no .meta description: where {found} stands in chain {:?} cannot be told without it",
                    s.label(&meta::meta_name(&found)),
                    cur_pos.id
                )))
            }
            Some(Meta { chain: None, .. }) => {
                return Err(chain_error(format!(
                    "{} describes {found} as no link of a chain, but {cur_meta} says it is level {want} of chain {:?}",
                    s.label(&meta::meta_name(&found)),
                    cur_pos.id
                )))
            }
        };
        if pos.id != cur_pos.id || pos.level != want {
            return Err(chain_error(format!(
                "{} says {found} is {}, but {cur_meta} says its predecessor is level {want} of chain {:?}",
                s.label(&meta::meta_name(&found)),
                describe(&pos),
                cur_pos.id
            )));
        }
        links.push(FoundLink {
            name: found,
            position: pos,
        });
    }
    links.reverse();
    Ok(Some(Found {
        store,
        links,
        checked: vec![],
    }))
}

impl Found<'_> {
    /// The provenance gate for a chain (README "Signed archives"): with
    /// trusted signers, every link's signature is verified over its bytes
    /// before any link is decrypted; a chain is trusted only if every link
    /// is. [`Found::extract`] then reads each link through the same check
    /// and binds it to its manifest.
    pub fn check_provenance(
        &mut self,
        trust: &crate::sign::Trust,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let s = self.store.get();
        let mut checked = Vec::new();
        for l in &self.links {
            if let Some(c) = reference::check_provenance_entry(s, &l.name, trust, now)? {
                checked.push(c);
            }
        }
        self.checked = checked;
        Ok(())
    }

    /// Who signed the chain's last link (after [`Found::check_provenance`]
    /// with signers).
    pub fn provenance(&self) -> Option<&crate::sign::Provenance> {
        self.checked.last().map(|c| &c.provenance)
    }

    /// The store's label of a link.
    fn label(&self, name: &str) -> String {
        self.store.get().label(name)
    }

    fn what(&self, l: &FoundLink) -> String {
        format!(
            "{} (level {} of chain {:?})",
            self.label(&l.name),
            l.position.level,
            l.position.id
        )
    }

    /// The chain as reports show it.
    pub fn report(&self) -> ChainReport {
        let last = self.links.last();
        ChainReport {
            id: last.map(|l| l.position.id.clone()).unwrap_or_default(),
            level: last.map_or(0, |l| l.position.level),
            links: self.links.iter().map(|l| l.name.clone()).collect(),
        }
    }

    /// The keyless structure check of every link (the age payload length,
    /// the OpenPGP packet sequence), and with `sidecars` each predecessor's
    /// `.sha256` against its bytes (the link itself is the caller's). Returns the format of the last link and
    /// warnings (a predecessor without a sidecar). A damaged link is exit 3
    /// naming it.
    pub fn check_keyless(&self, sidecars: bool) -> Result<(Format, Vec<String>)> {
        let s = self.store.get();
        let mut format = Format::Gzip;
        let mut warnings = Vec::new();
        let last = self.links.len().saturating_sub(1);
        for (i, l) in self.links.iter().enumerate() {
            let info = reference::inspect_entry(s, &l.name).map_err(|e| {
                e.context(format!(
                    "link {} of chain {:?}",
                    l.position.level, l.position.id
                ))
            })?;
            format = info.format;
            if !sidecars || i == last {
                continue;
            }
            match reference::sidecar_status_entry(s, &l.name)? {
                SidecarStatus::Ok => {}
                SidecarStatus::Missing => warnings.push(format!(
                    "{}: no .sha256 sidecar: its checksum could not be compared",
                    self.what(l)
                )),
                SidecarStatus::Mismatch { expected, actual } => {
                    return Err(chain_error(format!(
                        "{} is damaged: SHA-256 {actual} does not match its sidecar ({expected})",
                        self.what(l)
                    )))
                }
                SidecarStatus::Malformed => {
                    return Err(chain_error(format!(
                        "{}: its .sha256 sidecar is malformed",
                        self.what(l)
                    )))
                }
            }
        }
        Ok((format, warnings))
    }

    /// Decrypts every link to its end, in order, applying each into `sink`
    /// on top of the tree before it, and proves the chain (module doc).
    /// Returns the tree at the last link, checked against its manifest.
    pub fn extract(
        &self,
        sink: &mut dyn Sink,
        limits: &Limits,
        identities: &Identities,
        events: &dyn Events,
    ) -> Result<Outcome> {
        let s = self.store.get();
        let n = self.links.len();
        let mut tree = Outcome::default();
        let mut prev: Option<(&FoundLink, Chain)> = None;
        for (i, l) in self.links.iter().enumerate() {
            let label = PathBuf::from(self.label(&l.name));
            let named = |e: Error| {
                e.context(format!(
                    "link {} of chain {:?} ({})",
                    l.position.level,
                    l.position.id,
                    label.display()
                ))
            };
            let (reader, guard) = match self.checked.get(i) {
                Some(c) => {
                    let (r, g) = c.guard(s.open(&l.name)?)?;
                    (r, Some(g))
                }
                None => (s.open(&l.name)?, None),
            };
            let (_format, stream) = crate::archive::pipeline::open_tar_reader(
                reader,
                &label,
                "a link of the chain is damaged or is not an archive",
                identities,
            )?;
            tree = extract::extract_link(stream, sink, limits, tree).map_err(named)?;
            if let Some(g) = guard {
                let p = g.finish()?;
                crate::sign::gate::bind(&label, &p, tree.manifest.as_ref())?;
            }
            let chain = match (&tree.manifest, &tree.chain) {
                (Some(_), Some(c)) => c.clone(),
                (None, _) => {
                    return Err(chain_error(format!(
                        "{} has no manifest: it is not an archive of chain {:?}",
                        self.what(l),
                        l.position.id
                    )))
                }
                (Some(_), None) => {
                    return Err(chain_error(format!(
                        "{} is no link of a chain by its manifest, but {} says it is {}",
                        label.display(),
                        self.label(&meta::meta_name(&l.name)),
                        describe(&l.position)
                    )))
                }
            };
            if chain != l.position {
                return Err(chain_error(format!(
                    "{} says {} is {}, but the manifest inside it says {}",
                    self.label(&meta::meta_name(&l.name)),
                    l.name,
                    describe(&l.position),
                    describe(&chain)
                )));
            }
            if let Some((p, pc)) = &prev {
                let follows = chain.id == pc.id
                    && chain.level == pc.level + 1
                    && chain.previous.as_deref().and_then(stem_of) == stem_of(&p.name);
                if !follows {
                    return Err(chain_error(format!(
                        "{} does not follow {}: its manifest says {}, {}'s says {}",
                        label.display(),
                        p.name,
                        describe(&chain),
                        p.name,
                        describe(pc)
                    )));
                }
            } else if chain.level != 0 {
                return Err(chain_error(format!(
                    "{} is level {}, not the chain's full",
                    label.display(),
                    chain.level
                )));
            }
            if let Some(m) = &tree.manifest {
                extract::check_manifest(&tree, m).map_err(named)?;
            }
            events.detail(format!(
                "link {}/{n}: {} authenticated, applied and checked against its manifest",
                i + 1,
                l.name
            ));
            prev = Some((l, chain));
        }
        Ok(tree)
    }
}

impl Found<'_> {
    /// What reading the chain checks, in the words of a restore plan.
    pub fn checked(&self) -> String {
        format!(
            "every archive of the chain ({} link(s), the full first) authenticated to its end and applied in order, each link's manifest chain and tree",
            self.links.len()
        )
    }
}

/// What a restore reads: one archive's tar stream, or a chain.
pub enum Source<'a> {
    One(crate::archive::pipeline::StageReader),
    Chain(Found<'a>),
}

impl Source<'_> {
    /// The chain, when this is one.
    pub fn report(&self) -> Option<ChainReport> {
        match self {
            Source::One(_) => None,
            Source::Chain(c) => Some(c.report()),
        }
    }

    /// [`extract::extract`] of the one archive, or [`Found::extract`].
    pub fn extract(
        self,
        sink: &mut dyn Sink,
        limits: &Limits,
        identities: &Identities,
        events: &dyn Events,
    ) -> Result<Outcome> {
        match self {
            Source::One(s) => extract::extract(s, sink, limits),
            Source::Chain(c) => c.extract(sink, limits, identities, events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::fs;
    use std::path::Path;

    /// An archive file (content irrelevant to `find`) and its `.meta`.
    fn put(dir: &Path, name: &str, chain: Option<Chain>) {
        fs::write(dir.join(name), b"x").unwrap();
        let mut m = Meta::new(name, "daily", "20261201_000000", "h", "age");
        m.chain = chain;
        fs::write(dir.join(meta::meta_name(name)), m.to_bytes()).unwrap();
    }

    fn pos(level: u32, previous: Option<&str>) -> Option<Chain> {
        Some(Chain {
            id: "daily_20261201_000000".into(),
            level,
            previous: previous.map(str::to_owned),
        })
    }

    const A: &str = "daily_20261201_000000.tar.gz.age";
    const B: &str = "daily_20261201_010000.tar.gz.age";
    const C: &str = "daily_20261201_020000.tar.gz.age";

    #[test]
    fn find_follows_the_descriptions_back_to_the_full() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        put(d, A, pos(0, None));
        put(d, B, pos(1, Some(A)));
        put(d, C, pos(2, Some(B)));
        let r = ArchiveRef::Local(d.join(C));
        let f = find(&r).unwrap().unwrap();
        let names: Vec<&str> = f.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, [A, B, C]);
        assert_eq!(f.report().level, 2);
        // an archive without a description, or a full on its own: not a chain
        fs::write(d.join("daily_20261202_000000.tar.gz.age"), b"x").unwrap();
        let r = ArchiveRef::Local(d.join("daily_20261202_000000.tar.gz.age"));
        assert!(find(&r).unwrap().is_none());
        // a predecessor renamed by rotate is found by its stem
        fs::rename(d.join(B), d.join(B.replace(".age", ".gpg"))).unwrap();
        let m = fs::read_to_string(d.join(meta::meta_name(B))).unwrap();
        fs::write(
            d.join(meta::meta_name(&B.replace(".age", ".gpg"))),
            m.replace(B, &B.replace(".age", ".gpg")),
        )
        .unwrap();
        let r = ArchiveRef::Local(d.join(C));
        let f = find(&r).unwrap().unwrap();
        assert_eq!(f.links[1].name, B.replace(".age", ".gpg"));
    }

    #[test]
    fn find_names_a_missing_or_misdescribed_predecessor() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        put(d, B, pos(1, Some(A)));
        put(d, C, pos(2, Some(B)));
        let r = ArchiveRef::Local(d.join(C));
        let e = find(&r).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Integrity);
        assert!(
            e.message.contains(A) && e.message.contains("missing"),
            "{}",
            e.message
        );
        // the predecessor's description claims another level
        put(d, A, pos(1, Some(B)));
        let e = find(&r).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Integrity);
        assert!(e.message.contains("level 1"), "{}", e.message);
        // a link's predecessor without a description cannot be placed
        put(d, A, pos(0, None));
        fs::remove_file(d.join(meta::meta_name(B))).unwrap();
        let e = find(&r).err().unwrap();
        assert!(e.message.contains("no .meta"), "{}", e.message);
        // a full needs none
        put(d, B, pos(1, Some(A)));
        fs::remove_file(d.join(meta::meta_name(A))).unwrap();
        assert_eq!(find(&r).unwrap().unwrap().links.len(), 3);
        // a damaged description is an integrity failure naming it
        fs::write(d.join(meta::meta_name(C)), b"{").unwrap();
        let e = find(&r).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Integrity);
        assert!(e.message.contains(".meta"), "{}", e.message);
    }
}
