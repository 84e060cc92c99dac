//! Where the files of a recording come from: a folder on disk or a `.zip` archive read in place
//! (no extraction, so read-only data folders and Sensorium downloads work as they are). A zip is
//! read entry by entry from the file: only its directory and the entry being read are in memory.

use super::error::DataError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A reader of a file shared between threads: each clone keeps its own position and reads with
/// positioned reads (`pread`), so rayon workers read different zip entries of one open file.
#[derive(Clone)]
pub struct SharedFile {
    file: Arc<File>,
    len: u64,
    pos: u64,
}

impl SharedFile {
    fn open(path: &Path) -> std::io::Result<SharedFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(SharedFile {
            file: Arc::new(file),
            len,
            pos: 0,
        })
    }
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.pos)
    }
}

/// A FileTree root: a folder, or a zip archive (its directory in memory, entries read from the
/// file on demand; cheap to clone across threads) with the tree under an optional top folder.
#[derive(Clone)]
pub enum Source {
    Dir(PathBuf),
    Zip {
        path: PathBuf,
        archive: zip::ZipArchive<SharedFile>,
        prefix: String,
        names: Arc<Vec<String>>,
    },
}

impl Source {
    /// Open `path` (a folder or a `.zip` file).
    pub fn open(path: &Path) -> Result<Source, DataError> {
        if path.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        if !path.exists() {
            return Err(DataError::Missing {
                path: path.to_path_buf(),
                expected: "a FileTree dataset folder or .zip archive".into(),
            });
        }
        let file = SharedFile::open(path).map_err(|e| DataError::io(path, e))?;
        let archive = zip::ZipArchive::new(file).map_err(|e| DataError::io(path, e))?;
        // The tree may sit under a top folder: find the prefix in front of `meta/trials/`.
        let names: Vec<String> = archive
            .file_names()
            .filter_map(|n| n.ok())
            .map(|n| n.into_owned())
            .collect();
        let prefix = names
            .iter()
            .filter(|n| !n.starts_with("__MACOSX"))
            .filter_map(|n| n.find("meta/trials/").map(|i| n[..i].to_string()))
            .min_by_key(|p| p.len())
            .ok_or_else(|| DataError::Missing {
                path: path.join("meta/trials"),
                expected: "a FileTree layout (data/, meta/trials/) inside the archive".into(),
            })?;
        Ok(Source::Zip {
            path: path.to_path_buf(),
            archive,
            prefix,
            names: Arc::new(names),
        })
    }

    /// The path shown in messages for a file inside the tree.
    pub fn display_path(&self, rel: &str) -> PathBuf {
        match self {
            Source::Dir(root) => root.join(rel),
            Source::Zip { path, prefix, .. } => path.join(format!("{prefix}{rel}")),
        }
    }

    /// Whether `rel` (a file or folder, folders written with a trailing `/`) exists.
    pub fn exists(&self, rel: &str) -> bool {
        match self {
            Source::Dir(root) => root.join(rel).exists(),
            Source::Zip { prefix, names, .. } => {
                let full = format!("{prefix}{rel}");
                names.iter().any(|n| n.starts_with(&full))
            }
        }
    }

    /// Names (not paths) of the files directly inside folder `rel`, sorted.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, DataError> {
        let mut names: Vec<String> = match self {
            Source::Dir(root) => std::fs::read_dir(root.join(rel))
                .map_err(|e| DataError::io(root.join(rel), e))?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Source::Zip { prefix, names, .. } => {
                let dir = format!("{prefix}{}/", rel.trim_end_matches('/'));
                names
                    .iter()
                    .filter_map(|n| n.strip_prefix(&dir))
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                    .map(str::to_string)
                    .collect()
            }
        };
        names.sort();
        Ok(names)
    }

    /// The bytes of file `rel`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, DataError> {
        let shown = self.display_path(rel);
        match self {
            Source::Dir(root) => std::fs::read(root.join(rel)).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    DataError::Missing {
                        path: shown,
                        expected: "a .npy file".into(),
                    }
                } else {
                    DataError::io(shown, e)
                }
            }),
            Source::Zip {
                archive, prefix, ..
            } => {
                let mut archive = archive.clone();
                let mut file = archive
                    .by_name(&format!("{prefix}{rel}"))
                    .map_err(|e| match e {
                        zip::result::ZipError::FileNotFound => DataError::Missing {
                            path: shown.clone(),
                            expected: "a .npy file".into(),
                        },
                        e => DataError::io(shown.clone(), e),
                    })?;
                let mut out = Vec::with_capacity(file.size() as usize);
                file.read_to_end(&mut out)
                    .map_err(|e| DataError::io(&shown, e))?;
                Ok(out)
            }
        }
    }
}
