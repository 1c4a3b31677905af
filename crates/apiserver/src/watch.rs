//! Watch streams: newline-delimited JSON watch events, as the real server writes them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::meta;
use crate::resources::Resource;
use crate::selectors::Selector;
use crate::store::{Change, EventType, Store};

/// What one watch request asks for.
pub struct WatchRequest {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub selector: Selector,
    /// None ("" or "0"): start with the current state as ADDED events.
    pub since: Option<u64>,
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    pub timeout: Duration,
}

impl WatchRequest {
    fn in_scope(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta::namespace(obj) == ns)
            && self.selector.matches(obj)
    }

    /// The event this watcher sees for a change, if any. A change that moves an object into
    /// or out of the selector is seen as ADDED or DELETED.
    fn event_for(&self, change: &Change) -> Option<Value> {
        if !std::ptr::eq(change.resource, self.resource) {
            return None;
        }
        let now = change.event_type != EventType::Deleted && self.in_scope(&change.object);
        let before = change.previous.as_ref().is_some_and(|p| self.in_scope(p));
        let event_type = match (change.event_type, before, now) {
            (EventType::Deleted, true, _) => EventType::Deleted,
            (_, false, true) => EventType::Added,
            (_, true, true) => EventType::Modified,
            (EventType::Modified, true, false) => {
                let mut last = change.previous.clone().expect("was in scope before");
                meta::metadata_mut(&mut last).insert(
                    "resourceVersion".into(),
                    change.resource_version.to_string().into(),
                );
                return Some(event(EventType::Deleted.as_str(), last));
            }
            _ => return None,
        };
        Some(event(event_type.as_str(), change.object.clone()))
    }

    fn bookmark(&self, resource_version: u64) -> Value {
        event(
            "BOOKMARK",
            json!({
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version(),
                "metadata": {"resourceVersion": resource_version.to_string()},
            }),
        )
    }
}

fn event(event_type: &str, object: Value) -> Value {
    json!({"type": event_type, "object": object})
}

fn line(v: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(v).expect("JSON values serialize");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Starts the watch and answers with its stream. A version older than the compacted history
/// is answered, as upstream does, by a stream holding one ERROR event with a 410 Expired Status.
pub fn respond(store: &Store, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    let start = match request.since {
        None => {
            let (items, rv, live) =
                store.snapshot_and_watch(request.resource, request.namespace.as_deref());
            let initial = items
                .into_iter()
                .filter(|o| request.in_scope(o))
                .map(|o| event(EventType::Added.as_str(), o))
                .collect();
            Ok((initial, rv, live))
        }
        Some(since) => store.watch_from(since).map(|start| {
            let initial = start
                .replay
                .iter()
                .filter_map(|c| request.event_for(c))
                .collect();
            let last = start.replay.last().map_or(since, |c| c.resource_version);
            (initial, last, start.live)
        }),
    };
    match start {
        Ok((initial, rv, live)) => {
            tokio::spawn(run(request, initial, rv, live, tx));
        }
        Err(e @ ApiError::Expired { .. }) => {
            let error = event("ERROR", e.status());
            // The channel has room, so this cannot fail; the stream then ends.
            let _ = tx.try_send(Ok(line(&error)));
        }
        Err(e) => return axum::response::IntoResponse::into_response(e),
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .expect("static headers are valid")
}

async fn run(
    request: WatchRequest,
    initial: Vec<Value>,
    mut seen: u64,
    mut live: broadcast::Receiver<Arc<Change>>,
    tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
) {
    for ev in &initial {
        if tx.send(Ok(line(ev))).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(request.timeout);
    tokio::pin!(deadline);
    let mut bookmark = tokio::time::interval(request.bookmark_interval);
    bookmark.tick().await;
    loop {
        let out = tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            _ = bookmark.tick(), if request.bookmarks => request.bookmark(seen),
            change = live.recv() => match change {
                Ok(change) => {
                    seen = change.resource_version;
                    match request.event_for(&change) {
                        Some(ev) => ev,
                        None => continue,
                    }
                }
                // A watcher that fell behind is closed, as the real server closes slow
                // watchers; the client resumes from its last version out of the log.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(resource = request.resource.plural, missed = n, "closing a watch that fell behind");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(Ok(line(&out))).await.is_err() {
            return;
        }
    }
}
