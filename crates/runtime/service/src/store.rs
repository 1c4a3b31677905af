//! An in-memory store of objects backed by one record file each.
//!
//! Each object has two locks: `op`, an async mutex a CRI call holds while it runs CNI or the OCI
//! runtime on that object (so two calls on one container never interleave), and the record
//! itself behind a short synchronous mutex, so listing and status never wait for those calls.
//! The store's map lock is only held to find, add or drop an entry.

use crate::ServiceError;
use crate::ids::{self, Lookup};
use runtime_state::RecordDir;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What every record tells the store about itself.
pub(crate) trait Record: Clone + Serialize + DeserializeOwned + Send + 'static {
    const KIND: &'static str;
    fn id(&self) -> &str;
}

pub(crate) struct Entry<R> {
    record: Mutex<R>,
    /// Set (under the record lock) when the record was deleted: a late update, from an exit
    /// waiter say, must not write a removed record back to disk.
    removed: AtomicBool,
    records: RecordDir,
    /// Serialises the operations on this object.
    pub(crate) op: tokio::sync::Mutex<()>,
}

impl<R: Record> Entry<R> {
    pub(crate) fn get(&self) -> R {
        self.record.lock().expect("record lock").clone()
    }

    /// Changes the record and writes it to disk before anyone sees the change; on a write
    /// error the change is rolled back.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut R) -> T) -> Result<T, ServiceError> {
        let mut record = self.record.lock().expect("record lock");
        if self.removed.load(Ordering::SeqCst) {
            return Err(ServiceError::NotFound {
                kind: R::KIND,
                id: record.id().to_string(),
            });
        }
        let mut next = record.clone();
        let out = change(&mut next);
        self.records.save(next.id(), &next)?;
        *record = next;
        Ok(out)
    }
}

pub(crate) struct Store<R> {
    items: RwLock<BTreeMap<String, Arc<Entry<R>>>>,
    records: RecordDir,
}

impl<R: Record> Store<R> {
    pub(crate) fn open(dir: std::path::PathBuf) -> Result<Store<R>, ServiceError> {
        Ok(Store {
            items: RwLock::default(),
            records: RecordDir::open(dir)?,
        })
    }

    /// The records on disk; corrupt ones are quarantined by [`RecordDir::load_all`].
    pub(crate) fn load(&self) -> Result<Vec<R>, ServiceError> {
        Ok(self
            .records
            .load_all::<R>()?
            .into_iter()
            .filter_map(|(file_id, record)| {
                if file_id == record.id() {
                    Some(record)
                } else {
                    tracing::error!(file = %file_id, id = record.id(), kind = R::KIND, "record filed under another id; ignored");
                    None
                }
            })
            .collect())
    }

    /// Saves the new record and adds it.
    pub(crate) fn insert(&self, record: R) -> Result<Arc<Entry<R>>, ServiceError> {
        self.records.save(record.id(), &record)?;
        Ok(self.adopt(record))
    }

    /// Adds a record that is already on disk (recovery).
    pub(crate) fn adopt(&self, record: R) -> Arc<Entry<R>> {
        let id = record.id().to_string();
        let entry = Arc::new(Entry {
            record: Mutex::new(record),
            removed: AtomicBool::new(false),
            records: self.records.clone(),
            op: tokio::sync::Mutex::new(()),
        });
        self.items
            .write()
            .expect("store lock")
            .insert(id, entry.clone());
        entry
    }

    /// By id or unique id prefix.
    pub(crate) fn find(&self, id_or_prefix: &str) -> Result<Arc<Entry<R>>, ServiceError> {
        let items = self.items.read().expect("store lock");
        match ids::lookup(&items, id_or_prefix) {
            Lookup::Found(id) => Ok(items[id].clone()),
            Lookup::Missing => Err(ServiceError::NotFound {
                kind: R::KIND,
                id: id_or_prefix.to_string(),
            }),
            Lookup::Ambiguous(matches) => Err(ServiceError::Ambiguous {
                kind: R::KIND,
                prefix: id_or_prefix.to_string(),
                matches,
            }),
        }
    }

    /// Like [`Store::find`], but a missing object is None (for the idempotent stop and remove).
    pub(crate) fn find_opt(
        &self,
        id_or_prefix: &str,
    ) -> Result<Option<Arc<Entry<R>>>, ServiceError> {
        match self.find(id_or_prefix) {
            Ok(entry) => Ok(Some(entry)),
            Err(ServiceError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Deletes the record file and forgets the object; later updates of its entry fail.
    pub(crate) fn remove(&self, id: &str) -> Result<(), ServiceError> {
        let entry = self.items.read().expect("store lock").get(id).cloned();
        match entry {
            Some(entry) => {
                let _record = entry.record.lock().expect("record lock");
                self.records.remove(id)?;
                entry.removed.store(true, Ordering::SeqCst);
            }
            None => self.records.remove(id)?,
        }
        self.items.write().expect("store lock").remove(id);
        Ok(())
    }

    pub(crate) fn entries(&self) -> Vec<Arc<Entry<R>>> {
        self.items
            .read()
            .expect("store lock")
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn snapshot(&self) -> Vec<R> {
        self.entries().iter().map(|entry| entry.get()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.read().expect("store lock").len()
    }
}
