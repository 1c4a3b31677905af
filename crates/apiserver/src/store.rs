//! The in-memory object store: one global resourceVersion counter bumped by every write, as
//! etcd's revision is, and a bounded log of changes that watches replay from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::meta;
use crate::resources::{self, Resource};

/// How many changes the log keeps before it forgets the oldest (as etcd compaction would).
const LOG_CAPACITY: usize = 50_000;
/// Live watchers falling further behind than this are closed and must resume from the log.
const BROADCAST_CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the store. `previous` lets a filtered watch turn a change that moves an
/// object into or out of its selector into ADDED or DELETED, as the real watch cache does.
#[derive(Debug)]
pub struct Change {
    pub event_type: EventType,
    pub resource: &'static Resource,
    pub resource_version: u64,
    pub object: Value,
    pub previous: Option<Value>,
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource: everything except `.status` for kinds with a status subresource.
    Main,
    /// The status subresource: only `.status`.
    Status,
    /// A pod's ephemeralcontainers subresource: only `.spec.ephemeralContainers`.
    EphemeralContainers,
    /// A pod's binding subresource: spec.nodeName and the PodScheduled condition, as set by
    /// [`crate::binding`].
    Binding,
}

/// What a DELETE asks for (metav1.DeleteOptions, the parts this server honours).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

type Key = (String, String, String);

struct Inner {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    log: VecDeque<Arc<Change>>,
    /// Watches may start at this version or later; older history is gone.
    compacted: u64,
}

/// The shared state of the test API server. Cloning gives another handle to the same state.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Arc<Change>>,
}

/// Where a watch starts: the changes already in the log after its version, then `live`.
pub struct WatchStart {
    pub replay: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
}

fn key(resource: &Resource, namespace: &str, name: &str) -> Key {
    (
        resource.qualified_plural(),
        if resource.namespaced {
            namespace.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}

fn not_found(resource: &Resource, name: &str) -> ApiError {
    ApiError::NotFound {
        resource: resource.qualified_plural(),
        name: name.to_string(),
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A store holding the namespaces every cluster starts with and their default service
    /// accounts.
    pub fn new() -> Self {
        let store = Store {
            inner: Arc::new(Mutex::new(Inner {
                resource_version: 0,
                objects: BTreeMap::new(),
                log: VecDeque::new(),
                compacted: 0,
            })),
            changes: broadcast::channel(BROADCAST_CAPACITY).0,
        };
        let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store
                .create(
                    namespaces,
                    "",
                    json!({"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
                )
                .expect("a fresh store has no namespaces yet");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one insert),
        // so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&key(resource, namespace, name))
            .cloned()
            .ok_or_else(|| not_found(resource, name))
    }

    /// Every object of `resource`, in one namespace or (None) all of them, and the version
    /// the list is consistent at.
    pub fn list(&self, resource: &Resource, namespace: Option<&str>) -> (Vec<Value>, u64) {
        list_in(&self.lock(), resource, namespace)
    }

    pub fn create(
        &self,
        resource: &'static Resource,
        namespace: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        if resource.namespaced {
            let ns_key = (
                String::from("namespaces"),
                String::new(),
                namespace.to_string(),
            );
            if !inner.objects.contains_key(&ns_key) {
                return Err(ApiError::NotFound {
                    resource: "namespaces".into(),
                    name: namespace.to_string(),
                });
            }
        }
        let name = create_name(resource, &mut obj)?;
        let k = key(resource, namespace, &name);
        if inner.objects.contains_key(&k) {
            return Err(ApiError::AlreadyExists {
                resource: resource.qualified_plural(),
                name,
            });
        }
        let meta = meta::metadata_mut(&mut obj);
        if resource.namespaced {
            meta.insert("namespace".into(), namespace.into());
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        meta.insert("creationTimestamp".into(), meta::now().into());
        for server_owned in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
            meta.remove(server_owned);
        }
        crate::defaults::apply(resource, &mut obj);
        let created = commit(
            &mut inner,
            &self.changes,
            resource,
            k,
            Some(obj),
            EventType::Added,
        );
        drop(inner);
        if resource.kind == "Namespace" {
            self.create_default_service_account(&name);
        }
        Ok(created)
    }

    /// What the ServiceAccount controller does for every namespace: a "default" service
    /// account. Done at once here so tests need not wait for it.
    fn create_default_service_account(&self, namespace: &str) {
        let service_accounts =
            resources::find("", "v1", "serviceaccounts").expect("serviceaccounts are served");
        match self.create(
            service_accounts,
            namespace,
            json!({"metadata": {"name": "default"}}),
        ) {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => {
                tracing::warn!(namespace, error = %e, "cannot create the default service account")
            }
        }
    }

    /// Replaces an object (PUT). A non-empty metadata.resourceVersion must be the current one.
    pub fn update(
        &self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
        obj: Value,
        scope: UpdateScope,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&key(resource, namespace, name))
            .cloned()
            .ok_or_else(|| not_found(resource, name))?;
        self.replace(&mut inner, resource, current, obj, scope)
    }

    /// Applies `patch_fn` to the current object and stores the result as an update would.
    pub fn patch(
        &self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
        scope: UpdateScope,
        patch_fn: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&key(resource, namespace, name))
            .cloned()
            .ok_or_else(|| not_found(resource, name))?;
        let patched = patch_fn(&current)?;
        self.replace(&mut inner, resource, current, patched, scope)
    }

    fn replace(
        &self,
        inner: &mut Inner,
        resource: &'static Resource,
        current: Value,
        mut obj: Value,
        scope: UpdateScope,
    ) -> Result<Value, ApiError> {
        let name = meta::name(&current).to_string();
        let given_name = meta::name(&obj);
        if !given_name.is_empty() && given_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({given_name}) does not match the name on the URL ({name})"
            )));
        }
        let given_rv = meta::str_at(&obj, "metadata.resourceVersion").unwrap_or_default();
        let current_rv = meta::str_at(&current, "metadata.resourceVersion").unwrap_or_default();
        if !given_rv.is_empty() && given_rv != current_rv {
            return Err(ApiError::conflict_modified(
                resource.qualified_plural(),
                name,
            ));
        }
        let mut next = match scope {
            UpdateScope::Status => {
                let mut next = current.clone();
                match obj.get_mut("status").map(Value::take) {
                    Some(status) => next["status"] = status,
                    None => drop(next.as_object_mut().map(|m| m.remove("status"))),
                }
                next
            }
            UpdateScope::EphemeralContainers => crate::ephemeral::update(&current, &obj)?,
            UpdateScope::Binding => obj,
            UpdateScope::Main => {
                crate::defaults::normalize(resource, &mut obj);
                if resource.kind == "Pod" {
                    crate::pod_update::validate(&current, &obj)?;
                }
                if resource.has_status {
                    match current.get("status") {
                        Some(status) => obj["status"] = status.clone(),
                        None => drop(obj.as_object_mut().map(|m| m.remove("status"))),
                    }
                }
                keep_server_metadata(&current, &mut obj);
                obj
            }
        };
        let k = key(resource, meta::namespace(&current), &name);
        // A write that changes nothing keeps its version, as the real server skips the etcd write.
        let mut probe = next.clone();
        meta::metadata_mut(&mut probe).insert("resourceVersion".into(), current_rv.into());
        stamp_type(resource, &mut probe);
        if probe == current {
            return Ok(current);
        }
        let finalized = meta::at(&next, "metadata.deletionTimestamp").is_some()
            && meta::at(&next, "metadata.finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            && (resource.kind != "Pod"
                || meta::at(&next, "metadata.deletionGracePeriodSeconds").and_then(Value::as_i64)
                    == Some(0));
        if finalized {
            return Ok(commit(
                inner,
                &self.changes,
                resource,
                k,
                None,
                EventType::Deleted,
            ));
        }
        stamp_type(resource, &mut next);
        Ok(commit(
            inner,
            &self.changes,
            resource,
            k,
            Some(next),
            EventType::Modified,
        ))
    }

    /// Deletes an object. A bound pod with a grace period is only marked (deletionTimestamp)
    /// so its kubelet can stop it; it is removed by a later delete with grace 0.
    pub fn delete(
        &self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let k = key(resource, namespace, name);
        let current = inner
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| not_found(resource, name))?;
        check_preconditions(resource, &current, options)?;
        let grace = if resource.kind == "Pod" {
            pod_grace(&current, options)
        } else {
            0
        };
        let has_finalizers = meta::at(&current, "metadata.finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if grace == 0 && !has_finalizers {
            return Ok(commit(
                &mut inner,
                &self.changes,
                resource,
                k,
                None,
                EventType::Deleted,
            ));
        }
        let already =
            meta::at(&current, "metadata.deletionGracePeriodSeconds").and_then(Value::as_i64);
        if already.is_some_and(|g| g <= grace) {
            return Ok(current);
        }
        let mut next = current;
        let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
        let meta = meta::metadata_mut(&mut next);
        meta.insert("deletionTimestamp".into(), meta::timestamp(deadline).into());
        meta.insert("deletionGracePeriodSeconds".into(), grace.into());
        Ok(commit(
            &mut inner,
            &self.changes,
            resource,
            k,
            Some(next),
            EventType::Modified,
        ))
    }

    /// Starts a watch after `since`: the logged changes after it, then live ones.
    /// Fails with Expired when `since` is older than the compacted history.
    pub fn watch_from(&self, since: u64) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        if since < inner.compacted {
            return Err(ApiError::Expired {
                requested: since,
                oldest: inner.compacted,
            });
        }
        let replay = inner
            .log
            .iter()
            .filter(|c| c.resource_version > since)
            .cloned()
            .collect();
        Ok(WatchStart {
            replay,
            live: self.changes.subscribe(),
        })
    }

    /// A snapshot of every object of `resource` and a subscription to the changes after it,
    /// taken under one lock: for watches that start with the current state.
    pub fn snapshot_and_watch(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
    ) -> (Vec<Value>, u64, broadcast::Receiver<Arc<Change>>) {
        let inner = self.lock();
        let live = self.changes.subscribe();
        let (items, rv) = list_in(&inner, resource, namespace);
        (items, rv, live)
    }

    /// Forgets all history: watches from any version older than the current one get 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.compacted = inner.resource_version;
        inner.log.clear();
    }

    /// Stores `obj` as it is, creating or replacing without version checks: for tests that set
    /// up state the way a controller would have left it. Kind and apiVersion pick the resource.
    pub fn put(&self, mut obj: Value) -> Result<Value, ApiError> {
        let api_version = meta::str_at(&obj, "apiVersion")
            .unwrap_or_default()
            .to_string();
        let kind = meta::str_at(&obj, "kind").unwrap_or_default().to_string();
        let resource = resources::for_object(&api_version, &kind).ok_or_else(|| {
            ApiError::BadRequest(format!("no resource serves {api_version} {kind}"))
        })?;
        let name = meta::name(&obj).to_string();
        let namespace = meta::namespace(&obj).to_string();
        match self.get(resource, &namespace, &name) {
            Ok(current) => {
                meta::metadata_mut(&mut obj).remove("resourceVersion");
                let mut inner = self.lock();
                let main = self.replace(
                    &mut inner,
                    resource,
                    current,
                    obj.clone(),
                    UpdateScope::Main,
                )?;
                if resource.has_status && obj.get("status").is_some() {
                    return self.replace(&mut inner, resource, main, obj, UpdateScope::Status);
                }
                Ok(main)
            }
            Err(ApiError::NotFound { .. }) => self.create(resource, &namespace, obj),
            Err(e) => Err(e),
        }
    }
}

fn list_in(inner: &Inner, resource: &Resource, namespace: Option<&str>) -> (Vec<Value>, u64) {
    let plural = resource.qualified_plural();
    let items = inner
        .objects
        .iter()
        .filter(|((p, ns, _), _)| *p == plural && namespace.is_none_or(|want| want == ns))
        .map(|(_, v)| v.clone())
        .collect();
    (items, inner.resource_version)
}

/// The name a created object gets: its own, or one made from metadata.generateName.
fn create_name(resource: &Resource, obj: &mut Value) -> Result<String, ApiError> {
    let name = meta::name(obj).to_string();
    if !name.is_empty() {
        return Ok(name);
    }
    let Some(prefix) = meta::str_at(obj, "metadata.generateName").map(str::to_string) else {
        return Err(ApiError::Invalid {
            kind: resource.kind.to_string(),
            name: String::new(),
            cause: "metadata.name: Required value: name or generateName is required".into(),
        });
    };
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let name = format!("{prefix}{suffix}");
    meta::metadata_mut(obj).insert("name".into(), name.clone().into());
    Ok(name)
}

/// Fields only the server sets survive a client's update unchanged.
fn keep_server_metadata(current: &Value, next: &mut Value) {
    let meta = meta::metadata_mut(next);
    for field in [
        "uid",
        "creationTimestamp",
        "namespace",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generateName",
    ] {
        match meta::at(current, &format!("metadata.{field}")) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
}

fn stamp_type(resource: &Resource, obj: &mut Value) {
    obj["kind"] = resource.kind.into();
    obj["apiVersion"] = resource.api_version().into();
}

/// Records one write: bumps the global version, stores or removes the object, logs the change
/// and tells live watchers. Returns the object as written (the last state, for a removal).
fn commit(
    inner: &mut Inner,
    changes: &broadcast::Sender<Arc<Change>>,
    resource: &'static Resource,
    k: Key,
    obj: Option<Value>,
    event_type: EventType,
) -> Value {
    inner.resource_version += 1;
    let rv = inner.resource_version;
    let previous = inner.objects.remove(&k);
    let mut object = match obj {
        Some(obj) => obj,
        None => previous
            .clone()
            .expect("a removal removes an existing object"),
    };
    stamp_type(resource, &mut object);
    meta::metadata_mut(&mut object).insert("resourceVersion".into(), rv.to_string().into());
    if event_type != EventType::Deleted {
        inner.objects.insert(k, object.clone());
    }
    let change = Arc::new(Change {
        event_type,
        resource,
        resource_version: rv,
        object: object.clone(),
        previous,
    });
    inner.log.push_back(change.clone());
    if inner.log.len() > LOG_CAPACITY
        && let Some(oldest) = inner.log.pop_front()
    {
        inner.compacted = oldest.resource_version;
    }
    // No live watcher is not an error.
    let _ = changes.send(change);
    object
}

fn check_preconditions(
    resource: &Resource,
    current: &Value,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let name = meta::name(current).to_string();
    let conflict = |what: &str, want: &str, have: &str| ApiError::Conflict {
        resource: resource.qualified_plural(),
        name: name.clone(),
        cause: format!(
            "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
        ),
    };
    if let Some(uid) = &options.precondition_uid {
        let have = meta::str_at(current, "metadata.uid").unwrap_or_default();
        if uid != have {
            return Err(conflict("UID", uid, have));
        }
    }
    if let Some(rv) = &options.precondition_resource_version {
        let have = meta::str_at(current, "metadata.resourceVersion").unwrap_or_default();
        if rv != have {
            return Err(conflict("ResourceVersion", rv, have));
        }
    }
    Ok(())
}

/// The grace period a pod deletion gets, per the pod strategy upstream: the request's, else
/// the pod's terminationGracePeriodSeconds; none for a pod no kubelet runs (unbound or
/// finished), which is removed at once.
fn pod_grace(pod: &Value, options: &DeleteOptions) -> i64 {
    let unbound = meta::str_at(pod, "spec.nodeName")
        .unwrap_or_default()
        .is_empty();
    let finished = matches!(
        meta::str_at(pod, "status.phase"),
        Some("Succeeded" | "Failed")
    );
    if unbound || finished {
        return 0;
    }
    options
        .grace_period_seconds
        .or_else(|| meta::at(pod, "spec.terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(30)
        .max(0)
}
