//! Path resolution in a sealed store, as cap-std resolves paths for wasmtime-wasi in a
//! host directory: never above the directory a path starts from.

use keep_sealed::{Attributes, FileKind, FsError, Ino};

use super::SealedStore;
use crate::p1::abi::errno;

/// Where a path leads: the entry `name` of `dir`, or `dir` itself when the path ends in
/// `.` or `..`.
pub struct Target {
    pub dir: Ino,
    pub name: Option<Vec<u8>>,
    /// The path ends with `/`: it must name a directory.
    pub must_be_dir: bool,
}

impl Target {
    /// What the path names; `None` when nothing is there.
    pub fn find(&self, store: &SealedStore) -> Result<Option<Attributes>, i32> {
        let sealed = store.lock();
        let found = match &self.name {
            None => sealed.getattr(self.dir),
            Some(name) => sealed.lookup(self.dir, name),
        };
        drop(sealed);
        match found {
            Ok(found) if self.must_be_dir && found.kind == FileKind::File => Err(errno::NOTDIR),
            Ok(found) => Ok(Some(found)),
            Err(FsError::Errno(e)) if e == rustix::io::Errno::NOENT => Ok(None),
            Err(e) => Err(store.errno(e)),
        }
    }
}

/// Resolves `path` from the directory `start`, as cap-std does for wasmtime-wasi: never
/// above `start` (`EPERM`, like an absolute path), every component but the last an
/// existing directory.
pub fn resolve(store: &SealedStore, start: Ino, path: &[u8]) -> Result<Target, i32> {
    if path.is_empty() {
        return Err(errno::NOENT);
    }
    if path.starts_with(b"/") {
        return Err(errno::PERM);
    }
    let components: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let Some((last, walk)) = components.split_last() else {
        return Err(errno::NOENT);
    };
    let sealed = store.lock();
    let mut dir = start;
    let mut depth = 0usize;
    let mut step = |component: &[u8]| -> Result<(), i32> {
        match component {
            b"." => {}
            b".." => {
                depth = depth.checked_sub(1).ok_or(errno::PERM)?;
                dir = sealed.parent(dir).map_err(|e| store.errno(e))?;
            }
            name => {
                let found = sealed.lookup(dir, name).map_err(|e| store.errno(e))?;
                if found.kind != FileKind::Dir {
                    return Err(errno::NOTDIR);
                }
                dir = found.ino;
                depth += 1;
            }
        }
        Ok(())
    };
    for component in walk {
        step(component)?;
    }
    let name = match *last {
        b"." => None,
        b".." => {
            step(b"..")?;
            None
        }
        name => Some(name.to_vec()),
    };
    Ok(Target {
        dir,
        must_be_dir: name.is_none() || path.ends_with(b"/"),
        name,
    })
}

#[cfg(test)]
mod tests {
    use keep_sealed::ROOT;

    use super::*;
    use crate::sealed::served::tests::store;

    fn resolved(store: &SealedStore, start: Ino, path: &str) -> Result<(Ino, String, bool), i32> {
        resolve(store, start, path.as_bytes()).map(|t| {
            let name = t.name.map(|n| String::from_utf8(n).unwrap());
            (t.dir, name.unwrap_or_default(), t.must_be_dir)
        })
    }

    #[test]
    fn paths_resolve_to_a_directory_and_a_name_within_where_they_start() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, d) = store(tmp.path());
        assert_eq!(
            resolved(&store, ROOT, "d/f.txt"),
            Ok((d, "f.txt".into(), false))
        );
        assert_eq!(
            resolved(&store, ROOT, "d//./f.txt"),
            Ok((d, "f.txt".into(), false))
        );
        assert_eq!(
            resolved(&store, ROOT, "d/../x"),
            Ok((ROOT, "x".into(), false))
        );
        assert_eq!(resolved(&store, ROOT, "d/"), Ok((ROOT, "d".into(), true)));
        assert_eq!(resolved(&store, ROOT, "."), Ok((ROOT, String::new(), true)));
        assert_eq!(
            resolved(&store, ROOT, "d/.."),
            Ok((ROOT, String::new(), true))
        );
        assert_eq!(
            resolved(&store, ROOT, "new"),
            Ok((ROOT, "new".into(), false))
        );
    }

    #[test]
    fn paths_that_climb_out_or_go_through_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, d) = store(tmp.path());
        // cap-std's rule: never above the directory the path starts from, even when that
        // is inside the preopen.
        assert_eq!(resolved(&store, ROOT, ".."), Err(errno::PERM));
        assert_eq!(resolved(&store, ROOT, "d/../../d"), Err(errno::PERM));
        assert_eq!(resolved(&store, d, "../d/f.txt"), Err(errno::PERM));
        assert_eq!(resolved(&store, d, ".."), Err(errno::PERM));
        assert_eq!(resolved(&store, ROOT, "/d"), Err(errno::PERM));
        assert_eq!(resolved(&store, ROOT, ""), Err(errno::NOENT));
        assert_eq!(resolved(&store, ROOT, "missing/x"), Err(errno::NOENT));
        assert_eq!(resolved(&store, ROOT, "d/f.txt/x"), Err(errno::NOTDIR));
    }
}
