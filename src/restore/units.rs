//! Replacement units: what a restore replaces, adds and keeps is decided per
//! unit (a top-level component, or `agents/<id>/<child>`), never per file.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::manifest::RelPath;

/// Replacement units of a tree given its relative paths: top-level entries,
/// except `agents/`, whose units are `agents/<id>/<child>` so that restoring a
/// partial agent backup never drops an agent's other data.
pub fn units<'a>(paths: impl Iterator<Item = &'a [u8]>) -> BTreeSet<RelPath> {
    let mut out = BTreeSet::new();
    for p in paths {
        let comps: Vec<&[u8]> = p.split(|&b| b == b'/').collect();
        if comps[0] == b"agents" && comps.len() >= 2 {
            let depth = comps.len().min(3);
            out.insert(RelPath::new(comps[..depth].join(&b'/')));
        } else {
            out.insert(RelPath::from(comps[0]));
        }
    }
    let slashes = |u: &RelPath| u.as_bytes().iter().filter(|&&b| b == b'/').count();
    // an agent dir listed alone only counts when it has no children listed
    let with_children: BTreeSet<Vec<u8>> = out
        .iter()
        .filter(|u| slashes(u) == 2)
        .filter_map(|u| {
            let b = u.as_bytes();
            b.iter().rposition(|&c| c == b'/').map(|i| b[..i].to_vec())
        })
        .collect();
    out.retain(|u| !(slashes(u) == 1 && with_children.contains(u.as_bytes())));
    if out.iter().any(|u| u.as_bytes().starts_with(b"agents/")) {
        out.remove(b"agents".as_slice());
    }
    out
}

pub(super) fn tree_units(root: &Path) -> Result<BTreeSet<RelPath>> {
    let mut paths: Vec<Vec<u8>> = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(Error::io("listing", root, e)),
    };
    let join = |parts: &[&[u8]]| parts.join(&b'/');
    for e in rd {
        let e = e.at("listing", root)?;
        let name = e.file_name();
        let name = name.as_bytes();
        if name == b"agents" && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            paths.push(b"agents".to_vec());
            for a in fs::read_dir(e.path()).at("listing", &e.path())?.flatten() {
                let an = a.file_name();
                paths.push(join(&[b"agents", an.as_bytes()]));
                if a.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    for c in fs::read_dir(a.path()).at("listing", &a.path())?.flatten() {
                        paths.push(join(&[b"agents", an.as_bytes(), c.file_name().as_bytes()]));
                    }
                }
            }
        } else {
            paths.push(name.to_vec());
        }
    }
    Ok(units(paths.iter().map(Vec::as_slice)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_split_agents() {
        let u = units(
            [
                "secureclaw.json",
                "credentials/oauth.json",
                "agents",
                "agents/a",
                "agents/a/sessions/x.jsonl",
                "agents/a/agent/auth.json",
                "agents/b",
            ]
            .into_iter()
            .map(str::as_bytes),
        );
        let v: Vec<String> = u.iter().map(RelPath::to_string).collect();
        assert_eq!(
            v,
            vec![
                "agents/a/agent",
                "agents/a/sessions",
                "agents/b",
                "credentials",
                "secureclaw.json"
            ]
        );
    }
}
