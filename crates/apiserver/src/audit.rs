//! The request log: who asked what, and what they got, so tests can assert who did what.

use std::sync::{Arc, Mutex};

use crate::auth::UserInfo;

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The query string, without the '?'; empty when there is none.
    pub query: String,
    /// The authenticated user; None for a request refused with 401.
    pub user: Option<UserInfo>,
    /// The status code of the response (its headers, for streamed responses such as watches).
    pub status: u16,
}

/// The log every listener of one server appends to.
#[derive(Clone, Default)]
pub struct RequestLog {
    records: Arc<Mutex<Vec<RequestRecord>>>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, record: RequestRecord) {
        self.lock().push(record);
    }

    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}
