//! Where a spec's G-code programs come from: the spec's folder, or files uploaded with it.
//! Both refuse names that could reach outside what the maker submitted.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::ProgramReadError;
use crate::preflight::MAX_PROGRAM_BYTES;

/// Reads programs by the relative path written in a spec.
pub trait ProgramSource {
    fn read(&self, relative_path: &str) -> Result<String, ProgramReadError>;
}

/// Rejects names that are empty, absolute or climb with `..`. Backslashes count as separators
/// so a spec written on Windows is judged the same way everywhere.
fn check_relative(relative_path: &str) -> Result<PathBuf, ProgramReadError> {
    if relative_path.is_empty() {
        return Err(ProgramReadError::EmptyPath);
    }
    let normalised = relative_path.replace('\\', "/");
    let looks_like_drive = normalised.as_bytes().get(1) == Some(&b':');
    let path = PathBuf::from(&normalised);
    if path.is_absolute() || normalised.starts_with('/') || looks_like_drive {
        return Err(ProgramReadError::Absolute(relative_path.to_owned()));
    }
    for component in path.components() {
        match component {
            Component::ParentDir => {
                return Err(ProgramReadError::ParentDirectory(relative_path.to_owned()));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ProgramReadError::Absolute(relative_path.to_owned()));
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(path)
}

/// Programs in a folder (the spec's folder). Symbolic links are followed only while they stay
/// inside it.
#[derive(Debug, Clone)]
pub struct Directory {
    root: PathBuf,
}

impl Directory {
    /// `root` must exist; it is canonicalised so containment checks compare real paths.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self {
            root: root.as_ref().canonicalize()?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl ProgramSource for Directory {
    fn read(&self, relative_path: &str) -> Result<String, ProgramReadError> {
        let relative = check_relative(relative_path)?;
        let io_error = |error: std::io::Error| ProgramReadError::Io {
            path: relative_path.to_owned(),
            reason: error.to_string(),
        };
        let resolved = match self.root.join(&relative).canonicalize() {
            Ok(resolved) => resolved,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProgramReadError::NotFound(relative_path.to_owned()));
            }
            Err(error) => return Err(io_error(error)),
        };
        if !resolved.starts_with(&self.root) {
            return Err(ProgramReadError::EscapesFolder(relative_path.to_owned()));
        }
        // Checked before opening: opening a FIFO would block.
        let metadata = std::fs::metadata(&resolved).map_err(io_error)?;
        if !metadata.is_file() {
            return Err(ProgramReadError::NotAFile(relative_path.to_owned()));
        }
        if metadata.len() > MAX_PROGRAM_BYTES {
            return Err(ProgramReadError::TooLarge {
                path: relative_path.to_owned(),
                size: metadata.len(),
                limit: MAX_PROGRAM_BYTES,
            });
        }
        let file = std::fs::File::open(&resolved).map_err(io_error)?;
        // Read one byte past the limit so a file growing after the size check is still caught.
        let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        file.take(MAX_PROGRAM_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        if bytes.len() as u64 > MAX_PROGRAM_BYTES {
            return Err(ProgramReadError::TooLarge {
                path: relative_path.to_owned(),
                size: bytes.len() as u64,
                limit: MAX_PROGRAM_BYTES,
            });
        }
        String::from_utf8(bytes).map_err(|_| ProgramReadError::NotUtf8(relative_path.to_owned()))
    }
}

/// Programs uploaded together with a spec (over the API), by the name the spec uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InMemory(pub BTreeMap<String, String>);

impl ProgramSource for InMemory {
    fn read(&self, relative_path: &str) -> Result<String, ProgramReadError> {
        check_relative(relative_path)?;
        let text = self
            .0
            .get(relative_path)
            .ok_or_else(|| ProgramReadError::NotFound(relative_path.to_owned()))?;
        if text.len() as u64 > MAX_PROGRAM_BYTES {
            return Err(ProgramReadError::TooLarge {
                path: relative_path.to_owned(),
                size: text.len() as u64,
                limit: MAX_PROGRAM_BYTES,
            });
        }
        Ok(text.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_checked_before_any_lookup() {
        // (path, None when accepted, else a part of the error message)
        let cases = [
            ("programs/a.nc", None),
            ("./a.nc", None),
            ("", Some("program path is empty")),
            ("/etc/passwd", Some("is absolute")),
            ("C:\\jobs\\a.nc", Some("is absolute")),
            ("\\\\server\\a.nc", Some("is absolute")),
            ("../a.nc", Some("'..' is not allowed")),
            ("programs/../../a.nc", Some("'..' is not allowed")),
            ("programs\\..\\a.nc", Some("'..' is not allowed")),
        ];
        for (path, expected) in cases {
            match (check_relative(path), expected) {
                (Ok(_), None) => {}
                (Err(error), Some(fragment)) => {
                    assert!(error.to_string().contains(fragment), "{path}: {error}");
                }
                (result, _) => panic!("{path}: unexpected {result:?}"),
            }
        }
    }

    #[test]
    fn directory_reads_only_regular_utf8_files_inside_it() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join("programs")).unwrap();
        std::fs::write(folder.path().join("programs/a.nc"), "G0 X1\n").unwrap();
        std::fs::write(folder.path().join("programs/photo.nc"), [0xff, 0xd8, 0xff]).unwrap();
        let directory = Directory::new(folder.path()).unwrap();
        assert_eq!(directory.read("programs/a.nc").unwrap(), "G0 X1\n");
        assert_eq!(directory.read("./programs/a.nc").unwrap(), "G0 X1\n");
        let cases = [
            ("programs", ProgramReadError::NotAFile("programs".into())),
            (
                "programs/photo.nc",
                ProgramReadError::NotUtf8("programs/photo.nc".into()),
            ),
            (
                "programs/b.nc",
                ProgramReadError::NotFound("programs/b.nc".into()),
            ),
            (
                "programs/../programs/a.nc",
                ProgramReadError::ParentDirectory("programs/../programs/a.nc".into()),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(directory.read(path), Err(expected), "{path}");
        }
    }

    #[test]
    fn in_memory_finds_uploaded_programs_by_name_only() {
        let source = InMemory(BTreeMap::from([(
            "programs/a.nc".to_owned(),
            "G0 X1\n".to_owned(),
        )]));
        assert_eq!(source.read("programs/a.nc").unwrap(), "G0 X1\n");
        assert_eq!(
            source.read("programs/b.nc"),
            Err(ProgramReadError::NotFound("programs/b.nc".into()))
        );
        assert!(matches!(
            source.read("../a.nc"),
            Err(ProgramReadError::ParentDirectory(_))
        ));
    }
}
