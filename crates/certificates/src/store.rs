//! The certificate file store of client-go's certificate package: each issued pair is written
//! to PREFIX-YYYY-MM-DD-HH-MM-SS.pem (certificates, then the key; mode 0600) and
//! PREFIX-current.pem is a symlink to the newest, swapped atomically through
//! PREFIX-updated.pem.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{CertificateError, CertificatePair};

const CURRENT: &str = "current";
const UPDATED: &str = "updated";

#[derive(Debug, Clone)]
pub struct FileStore {
    prefix: String,
    dir: PathBuf,
    /// Files used when the current pair is missing (--tls-cert-file, --tls-private-key-file).
    fallback: Option<(PathBuf, PathBuf)>,
}

impl FileStore {
    /// A store of PREFIX-*.pem pairs in `dir` ("kubelet-client", "kubelet-server").
    pub fn new(prefix: &str, dir: &Path) -> Self {
        FileStore {
            prefix: prefix.to_string(),
            dir: dir.to_path_buf(),
            fallback: None,
        }
    }

    /// Files read when no current pair exists, before PREFIX.crt and PREFIX.key.
    pub fn with_fallback(mut self, cert_file: &Path, key_file: &Path) -> Self {
        self.fallback = Some((cert_file.to_path_buf(), key_file.to_path_buf()));
        self
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}-{suffix}.pem", self.prefix))
    }

    /// PREFIX-current.pem, the path kubeconfigs and TLS settings refer to.
    pub fn current_path(&self) -> PathBuf {
        self.file(CURRENT)
    }

    /// The current pair: PREFIX-current.pem, else the fallback files, else PREFIX.crt and
    /// PREFIX.key in the directory; None when there is none of them.
    pub fn current(&self) -> Result<Option<CertificatePair>, CertificateError> {
        let current = self.current_path();
        if exists(&current)? {
            tracing::info!(path = %current.display(), "Loading cert/key pair");
            let pem = read(&current)?;
            return CertificatePair::from_pem(&pem, &pem).map(Some);
        }
        let default_files = (
            self.dir.join(format!("{}.crt", self.prefix)),
            self.dir.join(format!("{}.key", self.prefix)),
        );
        for (cert, key) in self.fallback.iter().chain(std::iter::once(&default_files)) {
            if exists(cert)? && exists(key)? {
                tracing::info!(cert = %cert.display(), key = %key.display(), "Loading cert/key pair");
                return CertificatePair::from_pem(&read(cert)?, &read(key)?).map(Some);
            }
        }
        Ok(None)
    }

    /// Writes a newly issued pair and points PREFIX-current.pem at it.
    pub fn update(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<CertificatePair, CertificateError> {
        let pair = CertificatePair::from_pem(cert_pem, key_pem)?;
        fs::create_dir_all(&self.dir).map_err(|source| CertificateError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let stamp = jiff::Zoned::now().strftime("%Y-%m-%d-%H-%M-%S").to_string();
        let path = self.file(&stamp);
        write_private(&path, pair.pem())?;
        self.update_symlink(&path)?;
        Ok(pair)
    }

    fn update_symlink(&self, target: &Path) -> Result<(), CertificateError> {
        let current = self.current_path();
        if let Ok(meta) = fs::symlink_metadata(&current)
            && !meta.file_type().is_symlink()
        {
            return Err(CertificateError::NotSymlink { path: current });
        }
        let updated = self.file(UPDATED);
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CertificateError::Write { path, source }
        };
        match fs::remove_file(&updated) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(write_error(&updated)(e));
            }
            _ => {}
        }
        std::os::unix::fs::symlink(target, &updated).map_err(write_error(&updated))?;
        fs::rename(&updated, &current).map_err(write_error(&current))
    }
}

fn exists(path: &Path) -> Result<bool, CertificateError> {
    path.try_exists().map_err(|source| CertificateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    fs::read(path).map_err(|source| CertificateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `data` readable by its owner only.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), CertificateError> {
    let write_error = |source| CertificateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error)?;
    file.write_all(data).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pair::tests::self_signed;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn an_update_writes_a_dated_pem_and_swaps_the_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new("kubelet-client", dir.path());
        assert!(store.current().expect("read").is_none());

        let (cert, key) = self_signed("first", Duration::from_secs(600));
        store
            .update(cert.as_bytes(), key.as_bytes())
            .expect("update");
        let current = dir.path().join("kubelet-client-current.pem");
        assert_eq!(store.current_path(), current);
        let target = fs::read_link(&current).expect("a symlink");
        assert!(target.is_absolute(), "{target:?}");
        let name = target.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("kubelet-client-20") && name.ends_with(".pem") && name.len() == 38,
            "{name}"
        );
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            store.current().unwrap().unwrap().leaf().common_name,
            "first"
        );

        // A second update within the same second replaces the file; the link follows.
        let (cert, key) = self_signed("second", Duration::from_secs(600));
        store
            .update(cert.as_bytes(), key.as_bytes())
            .expect("update");
        assert_eq!(
            store.current().unwrap().unwrap().leaf().common_name,
            "second"
        );
        assert!(!dir.path().join("kubelet-client-updated.pem").exists());
    }

    #[test]
    fn a_regular_current_file_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new("kubelet-server", dir.path());
        let (cert, key) = self_signed("x", Duration::from_secs(600));
        fs::write(store.current_path(), format!("{cert}{key}")).unwrap();
        assert!(matches!(
            store.update(cert.as_bytes(), key.as_bytes()),
            Err(CertificateError::NotSymlink { .. })
        ));
    }

    #[test]
    fn fallback_files_serve_when_there_is_no_current_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed("from-flags", Duration::from_secs(600));
        fs::write(dir.path().join("tls.crt"), &cert).unwrap();
        fs::write(dir.path().join("tls.key"), &key).unwrap();
        let store = FileStore::new("kubelet-server", dir.path())
            .with_fallback(&dir.path().join("tls.crt"), &dir.path().join("tls.key"));
        assert_eq!(
            store.current().unwrap().unwrap().leaf().common_name,
            "from-flags"
        );

        let (cert, key) = self_signed("default-names", Duration::from_secs(600));
        fs::write(dir.path().join("kubelet-server.crt"), &cert).unwrap();
        fs::write(dir.path().join("kubelet-server.key"), &key).unwrap();
        let store = FileStore::new("kubelet-server", dir.path());
        assert_eq!(
            store.current().unwrap().unwrap().leaf().common_name,
            "default-names"
        );
    }
}
