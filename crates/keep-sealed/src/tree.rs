//! The directory tree of a sealed store, as commits describe it: inodes, directory entries
//! and where each chunk of a file is. It lives in memory; commit frames carry the
//! operations that change it, and replaying them rebuilds it.

use std::collections::{BTreeMap, HashMap};

use crate::codec::{Reader, Truncated, Writer};

/// An inode number; [`ROOT`] is the store's root directory.
pub type Ino = u64;

/// The root directory's inode.
pub const ROOT: Ino = 1;

/// The longest name a directory entry may have (as Linux).
pub const MAX_NAME: usize = 255;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// Where a chunk's frame is in the log, and the nonce it was sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// The frame's offset in the log.
    pub offset: u64,
    /// Its AES-GCM nonce.
    pub nonce: [u8; 12],
}

/// One file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub kind: FileKind,
    /// Bytes (files); entries (directories, for `stat`).
    pub size: u64,
    /// Last modification, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The directory it is in (the root's is itself).
    pub parent: Ino,
    /// A file's chunks by index; a chunk not here reads as zeros.
    pub chunks: BTreeMap<u64, ChunkRef>,
    /// A directory's entries.
    pub entries: BTreeMap<Vec<u8>, Ino>,
}

/// A change to the tree: what a commit frame lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A new, empty file or directory `name` in `parent`.
    Create {
        parent: Ino,
        name: Vec<u8>,
        ino: Ino,
        kind: FileKind,
        mtime_ns: i64,
    },
    /// The entry `name` of `parent` removed, and its inode with it.
    Remove { parent: Ino, name: Vec<u8> },
    /// An entry moved, replacing what `to_name` named.
    Rename {
        from_parent: Ino,
        from_name: Vec<u8>,
        to_parent: Ino,
        to_name: Vec<u8>,
    },
    /// A file's size and modification time; chunks past the size are dropped. For a
    /// directory, its modification time (the size must be its number of entries).
    SetAttr { ino: Ino, size: u64, mtime_ns: i64 },
    /// A chunk of a file written.
    SetChunk {
        ino: Ino,
        index: u64,
        chunk: ChunkRef,
    },
}

/// The whole tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub inodes: HashMap<Ino, Inode>,
    /// The next inode number to give.
    pub next_ino: Ino,
}

impl Tree {
    /// An empty root directory.
    pub fn new() -> Self {
        let root = Inode {
            kind: FileKind::Dir,
            size: 0,
            mtime_ns: 0,
            parent: ROOT,
            chunks: BTreeMap::new(),
            entries: BTreeMap::new(),
        };
        Self {
            inodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
        }
    }

    /// The inode `ino`, if it exists.
    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    /// The directory `ino`, if it is one.
    fn dir(&self, ino: Ino) -> Result<&Inode, String> {
        match self.inodes.get(&ino) {
            Some(inode) if inode.kind == FileKind::Dir => Ok(inode),
            Some(_) => Err(format!("inode {ino} is not a directory")),
            None => Err(format!("no inode {ino}")),
        }
    }

    /// Whether `ino` is `ancestor` or lies under it.
    pub fn is_within(&self, mut ino: Ino, ancestor: Ino) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.inodes.get(&ino) {
                Some(inode) if inode.parent != ino => ino = inode.parent,
                _ => return false,
            }
        }
    }

    /// The path of `ino` from the store's root, for messages.
    pub fn path_of(&self, ino: Ino) -> String {
        let mut parts = Vec::new();
        let mut current = ino;
        while current != ROOT {
            let Some(inode) = self.inodes.get(&current) else {
                break;
            };
            let parent = inode.parent;
            if let Some(name) = self.inodes.get(&parent).and_then(|p| {
                p.entries
                    .iter()
                    .find(|(_, child)| **child == current)
                    .map(|(name, _)| name)
            }) {
                parts.push(String::from_utf8_lossy(name).into_owned());
            }
            if parent == current {
                break;
            }
            current = parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// Applies `op`, or says why it does not fit the tree (a commit that does not fit is
    /// corrupt; a live change is checked before it is made).
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Create {
                parent,
                name,
                ino,
                kind,
                mtime_ns,
            } => {
                check_name(name)?;
                let dir = self.dir(*parent)?;
                if dir.entries.contains_key(name) {
                    return Err(format!("entry {} exists", lossy(name)));
                }
                if self.inodes.contains_key(ino) || *ino < self.next_ino.min(ROOT + 1) {
                    return Err(format!("inode {ino} exists"));
                }
                let next = ino
                    .checked_add(1)
                    .ok_or_else(|| format!("inode {ino} leaves no number for the next"))?;
                self.inodes.insert(
                    *ino,
                    Inode {
                        kind: *kind,
                        size: 0,
                        mtime_ns: *mtime_ns,
                        parent: *parent,
                        chunks: BTreeMap::new(),
                        entries: BTreeMap::new(),
                    },
                );
                self.next_ino = self.next_ino.max(next);
                let dir = self.dir_mut(*parent)?;
                dir.entries.insert(name.clone(), *ino);
                dir.size = dir.entries.len() as u64;
                dir.mtime_ns = *mtime_ns;
            }
            Op::Remove { parent, name } => {
                let ino = *self
                    .dir(*parent)?
                    .entries
                    .get(name)
                    .ok_or_else(|| format!("no entry {}", lossy(name)))?;
                if self.inodes.get(&ino).is_some_and(|i| !i.entries.is_empty()) {
                    return Err(format!("directory {} is not empty", lossy(name)));
                }
                let dir = self.dir_mut(*parent)?;
                dir.entries.remove(name);
                dir.size = dir.entries.len() as u64;
                self.inodes.remove(&ino);
            }
            Op::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
            } => {
                check_name(to_name)?;
                let ino = *self
                    .dir(*from_parent)?
                    .entries
                    .get(from_name)
                    .ok_or_else(|| format!("no entry {}", lossy(from_name)))?;
                self.dir(*to_parent)?;
                if self.is_within(*to_parent, ino) {
                    return Err(format!("{} would move into itself", lossy(from_name)));
                }
                let replaced = self.dir(*to_parent)?.entries.get(to_name).copied();
                if let Some(replaced) = replaced.filter(|r| *r != ino) {
                    let kinds = (
                        self.inodes.get(&ino).map(|i| i.kind),
                        self.inodes
                            .get(&replaced)
                            .map(|i| (i.kind, i.entries.len())),
                    );
                    match kinds {
                        (Some(FileKind::File), Some((FileKind::File, _)))
                        | (Some(FileKind::Dir), Some((FileKind::Dir, 0))) => {}
                        _ => {
                            return Err(format!("{} cannot replace its target", lossy(from_name)));
                        }
                    }
                    self.inodes.remove(&replaced);
                }
                let from = self.dir_mut(*from_parent)?;
                from.entries.remove(from_name);
                from.size = from.entries.len() as u64;
                let to = self.dir_mut(*to_parent)?;
                to.entries.insert(to_name.clone(), ino);
                to.size = to.entries.len() as u64;
                if let Some(inode) = self.inodes.get_mut(&ino) {
                    inode.parent = *to_parent;
                }
            }
            Op::SetAttr {
                ino,
                size,
                mtime_ns,
            } => {
                let inode = self
                    .inodes
                    .get_mut(ino)
                    .ok_or_else(|| format!("no inode {ino}"))?;
                if inode.kind == FileKind::Dir {
                    if *size != inode.entries.len() as u64 {
                        return Err(format!(
                            "directory {ino} has {} entries, not {size}",
                            inode.entries.len()
                        ));
                    }
                    inode.mtime_ns = *mtime_ns;
                    return Ok(());
                }
                inode.size = *size;
                inode.mtime_ns = *mtime_ns;
                // Cut at the first chunk past the end: logarithmic, where a scan of every
                // chunk would make each commit of a large file cost its size.
                let first_gone = size.div_ceil(crate::format::CHUNK as u64);
                drop(inode.chunks.split_off(&first_gone));
            }
            Op::SetChunk { ino, index, chunk } => {
                self.file_mut(*ino)?.chunks.insert(*index, *chunk);
            }
        }
        Ok(())
    }

    /// Operations that build this tree from an empty one: every entry created, parents
    /// first, then every chunk, then every size and time (a snapshot's content).
    pub fn snapshot_ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut attributes = Vec::new();
        let mut dirs = std::collections::VecDeque::from([ROOT]);
        while let Some(dir) = dirs.pop_front() {
            let Some(inode) = self.inodes.get(&dir) else {
                continue;
            };
            attributes.push(Op::SetAttr {
                ino: dir,
                size: inode.entries.len() as u64,
                mtime_ns: inode.mtime_ns,
            });
            for (name, &child) in &inode.entries {
                let Some(entry) = self.inodes.get(&child) else {
                    continue;
                };
                ops.push(Op::Create {
                    parent: dir,
                    name: name.clone(),
                    ino: child,
                    kind: entry.kind,
                    mtime_ns: entry.mtime_ns,
                });
                match entry.kind {
                    FileKind::Dir => dirs.push_back(child),
                    FileKind::File => {
                        attributes.push(Op::SetAttr {
                            ino: child,
                            size: entry.size,
                            mtime_ns: entry.mtime_ns,
                        });
                        ops.extend(entry.chunks.iter().map(|(&index, &chunk)| Op::SetChunk {
                            ino: child,
                            index,
                            chunk,
                        }));
                    }
                }
            }
        }
        // Sizes and times last: creating an entry sets its directory's time.
        ops.extend(attributes);
        ops
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut Inode, String> {
        self.dir(ino)?;
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| format!("no inode {ino}"))
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut Inode, String> {
        match self.inodes.get_mut(&ino) {
            Some(inode) if inode.kind == FileKind::File => Ok(inode),
            Some(_) => Err(format!("inode {ino} is not a file")),
            None => Err(format!("no inode {ino}")),
        }
    }
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// A name a directory entry may have: not empty, `.` or `..`, no `/` or NUL, at most
/// [`MAX_NAME`] bytes.
pub fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty()
        || name == b"."
        || name == b".."
        || name.len() > MAX_NAME
        || name.contains(&b'/')
        || name.contains(&0)
    {
        return Err(format!("`{}` is not a name an entry may have", lossy(name)));
    }
    Ok(())
}

impl Op {
    /// Appends the encoding of `self`.
    pub fn encode(&self, out: &mut Writer) {
        match self {
            Self::Create {
                parent,
                name,
                ino,
                kind,
                mtime_ns,
            } => {
                out.u8(1);
                out.u64(*parent);
                out.bytes(name);
                out.u64(*ino);
                out.u8(match kind {
                    FileKind::File => 1,
                    FileKind::Dir => 2,
                });
                out.i64(*mtime_ns);
            }
            Self::Remove { parent, name } => {
                out.u8(2);
                out.u64(*parent);
                out.bytes(name);
            }
            Self::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
            } => {
                out.u8(3);
                out.u64(*from_parent);
                out.bytes(from_name);
                out.u64(*to_parent);
                out.bytes(to_name);
            }
            Self::SetAttr {
                ino,
                size,
                mtime_ns,
            } => {
                out.u8(4);
                out.u64(*ino);
                out.u64(*size);
                out.i64(*mtime_ns);
            }
            Self::SetChunk { ino, index, chunk } => {
                out.u8(5);
                out.u64(*ino);
                out.u64(*index);
                out.u64(chunk.offset);
                out.array(&chunk.nonce);
            }
        }
    }

    /// Reads one operation.
    pub fn decode(input: &mut Reader<'_>) -> Result<Self, String> {
        let truncated = |_: Truncated| "an operation is cut short".to_owned();
        Ok(match input.u8().map_err(truncated)? {
            1 => Self::Create {
                parent: input.u64().map_err(truncated)?,
                name: input.bytes().map_err(truncated)?.to_vec(),
                ino: input.u64().map_err(truncated)?,
                kind: match input.u8().map_err(truncated)? {
                    1 => FileKind::File,
                    2 => FileKind::Dir,
                    other => return Err(format!("unknown file kind {other}")),
                },
                mtime_ns: input.i64().map_err(truncated)?,
            },
            2 => Self::Remove {
                parent: input.u64().map_err(truncated)?,
                name: input.bytes().map_err(truncated)?.to_vec(),
            },
            3 => Self::Rename {
                from_parent: input.u64().map_err(truncated)?,
                from_name: input.bytes().map_err(truncated)?.to_vec(),
                to_parent: input.u64().map_err(truncated)?,
                to_name: input.bytes().map_err(truncated)?.to_vec(),
            },
            4 => Self::SetAttr {
                ino: input.u64().map_err(truncated)?,
                size: input.u64().map_err(truncated)?,
                mtime_ns: input.i64().map_err(truncated)?,
            },
            5 => Self::SetChunk {
                ino: input.u64().map_err(truncated)?,
                index: input.u64().map_err(truncated)?,
                chunk: ChunkRef {
                    offset: input.u64().map_err(truncated)?,
                    nonce: input.array().map_err(truncated)?,
                },
            },
            other => return Err(format!("unknown operation {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(parent: Ino, name: &str, ino: Ino, kind: FileKind) -> Op {
        Op::Create {
            parent,
            name: name.into(),
            ino,
            kind,
            mtime_ns: 5,
        }
    }

    #[test]
    fn operations_read_back() {
        let ops = [
            create(ROOT, "a", 2, FileKind::Dir),
            Op::Remove {
                parent: 2,
                name: b"x".to_vec(),
            },
            Op::Rename {
                from_parent: 1,
                from_name: b"a".to_vec(),
                to_parent: 2,
                to_name: b"b".to_vec(),
            },
            Op::SetAttr {
                ino: 3,
                size: 9,
                mtime_ns: -1,
            },
            Op::SetChunk {
                ino: 3,
                index: 4,
                chunk: ChunkRef {
                    offset: 64,
                    nonce: [3; 12],
                },
            },
        ];
        let mut writer = Writer::default();
        ops.iter().for_each(|op| op.encode(&mut writer));
        let mut reader = Reader::new(&writer.0);
        for op in &ops {
            assert_eq!(&Op::decode(&mut reader).unwrap(), op);
        }
        assert!(Op::decode(&mut Reader::new(&[9])).is_err());
        assert!(Op::decode(&mut Reader::new(&[1, 0])).is_err());
    }

    #[test]
    fn operations_that_do_not_fit_the_tree_are_refused() {
        let mut tree = Tree::new();
        tree.apply(&create(ROOT, "d", 2, FileKind::Dir)).unwrap();
        tree.apply(&create(2, "f", 3, FileKind::File)).unwrap();
        assert_eq!(tree.path_of(3), "/d/f");
        for bad in [
            create(ROOT, "d", 4, FileKind::File),        // exists
            create(3, "g", 4, FileKind::File),           // parent is a file
            create(ROOT, "..", 4, FileKind::File),       // not a name
            create(ROOT, "e", 3, FileKind::File),        // inode taken
            create(ROOT, "e", u64::MAX, FileKind::File), // no next inode (found by fuzzing)
            Op::Remove {
                parent: ROOT,
                name: b"d".to_vec(), // not empty
            },
            Op::Rename {
                from_parent: ROOT,
                from_name: b"d".to_vec(),
                to_parent: 2, // into itself
                to_name: b"d".to_vec(),
            },
            Op::SetChunk {
                ino: 2, // a directory
                index: 0,
                chunk: ChunkRef {
                    offset: 0,
                    nonce: [0; 12],
                },
            },
        ] {
            assert!(tree.apply(&bad).is_err(), "{bad:?}");
        }
        // A rename replaces a file, and truncation drops chunks.
        tree.apply(&create(ROOT, "g", 4, FileKind::File)).unwrap();
        tree.apply(&Op::Rename {
            from_parent: ROOT,
            from_name: b"g".to_vec(),
            to_parent: 2,
            to_name: b"f".to_vec(),
        })
        .unwrap();
        assert!(tree.get(3).is_none());
        assert_eq!(tree.path_of(4), "/d/f");
        for index in 0..3 {
            tree.apply(&Op::SetChunk {
                ino: 4,
                index,
                chunk: ChunkRef {
                    offset: index,
                    nonce: [0; 12],
                },
            })
            .unwrap();
        }
        tree.apply(&Op::SetAttr {
            ino: 4,
            size: crate::format::CHUNK as u64 + 1,
            mtime_ns: 0,
        })
        .unwrap();
        assert_eq!(tree.get(4).unwrap().chunks.len(), 2);
        // A directory's size is its number of entries.
        for (size, fits) in [(1, true), (2, false)] {
            let op = Op::SetAttr {
                ino: 2,
                size,
                mtime_ns: 7,
            };
            assert_eq!(tree.apply(&op).is_ok(), fits, "{op:?}");
        }
        assert_eq!(tree.get(2).unwrap().mtime_ns, 7);
    }

    #[test]
    fn a_snapshot_rebuilds_the_tree_from_an_empty_one() {
        let mut tree = Tree::new();
        for op in [
            create(ROOT, "d", 2, FileKind::Dir),
            create(2, "e", 3, FileKind::Dir),
            create(3, "f", 4, FileKind::File),
            create(ROOT, "g", 5, FileKind::File),
            Op::SetChunk {
                ino: 4,
                index: 9,
                chunk: ChunkRef {
                    offset: 64,
                    nonce: [1; 12],
                },
            },
            Op::SetAttr {
                ino: 4,
                size: 10 * crate::format::CHUNK as u64 - 3,
                mtime_ns: 11,
            },
            Op::SetAttr {
                ino: 2,
                size: 1,
                mtime_ns: -4,
            },
            Op::Remove {
                parent: ROOT,
                name: b"g".to_vec(),
            },
        ] {
            tree.apply(&op).unwrap();
        }
        let mut rebuilt = Tree::new();
        for op in tree.snapshot_ops() {
            rebuilt.apply(&op).unwrap();
        }
        rebuilt.next_ino = tree.next_ino;
        assert_eq!(rebuilt, tree);
    }
}
