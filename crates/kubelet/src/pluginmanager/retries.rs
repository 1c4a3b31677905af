//! Which failed registrations to try again, and when: upstream's reconciler retries a failed
//! registration on a later pass, its operation executor holding each failing operation back
//! with an exponential back-off (500 ms doubling to 2 min 2 s). A socket re-created in place is
//! a new plugin and is tried at once.

use kubelet_kuberuntime::backoff::Backoff;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

const INITIAL: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(122);

/// A socket file: its inode and change time.
pub(super) type Identity = (u64, i64);

#[derive(Debug)]
pub(super) struct Retries {
    /// The socket files whose registration failed last.
    failed: BTreeMap<PathBuf, Identity>,
    backoff: Backoff,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            failed: BTreeMap::new(),
            backoff: Backoff::new(INITIAL, MAX),
        }
    }
}

fn key(socket: &Path) -> String {
    socket.to_string_lossy().into_owned()
}

impl Retries {
    /// Whether `socket` is to be asked at `now`: it never failed, was re-created since, or its
    /// back-off is over.
    pub(super) fn due(&mut self, socket: &Path, identity: Identity, now: Instant) -> bool {
        match self.failed.get(socket) {
            None => true,
            Some(failed) if *failed != identity => {
                self.succeeded(socket);
                true
            }
            Some(_) => self
                .backoff
                .remaining_since_update(&key(socket), now)
                .is_none(),
        }
    }

    /// Records a failure at `now`; answers how long the socket is held back.
    pub(super) fn failed(&mut self, socket: &Path, identity: Identity, now: Instant) -> Duration {
        self.failed.insert(socket.to_path_buf(), identity);
        self.backoff.next(&key(socket), now)
    }

    pub(super) fn succeeded(&mut self, socket: &Path) {
        self.failed.remove(socket);
        self.backoff.forget(&key(socket));
    }

    /// Forgets the failures of sockets no longer there.
    pub(super) fn retain_present(&mut self, present: &BTreeMap<PathBuf, Identity>) {
        let gone: Vec<PathBuf> = self
            .failed
            .keys()
            .filter(|path| !present.contains_key(*path))
            .cloned()
            .collect();
        for socket in gone {
            self.succeeded(&socket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKET: &str = "/plugins_registry/p.sock";

    #[test]
    fn a_failing_socket_is_retried_with_doubling_back_off_up_to_the_cap() {
        let mut retries = Retries::default();
        let socket = Path::new(SOCKET);
        let id = (1, 1);
        let mut now = Instant::now();
        assert!(retries.due(socket, id, now));
        let mut waits = Vec::new();
        for _ in 0..10 {
            let wait = retries.failed(socket, id, now);
            waits.push(wait.as_millis());
            assert!(!retries.due(socket, id, now + wait - Duration::from_millis(1)));
            now += wait;
            assert!(retries.due(socket, id, now));
        }
        assert_eq!(
            waits,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 122000, 122000
            ]
        );
        retries.succeeded(socket);
        assert!(retries.due(socket, id, now));
        assert_eq!(retries.failed(socket, id, now), INITIAL);
    }

    #[test]
    fn a_re_created_socket_is_tried_at_once_and_starts_over() {
        let mut retries = Retries::default();
        let socket = Path::new(SOCKET);
        let now = Instant::now();
        retries.failed(socket, (1, 1), now);
        retries.failed(socket, (1, 1), now);
        assert!(!retries.due(socket, (1, 1), now));
        assert!(retries.due(socket, (2, 5), now));
        assert_eq!(retries.failed(socket, (2, 5), now), INITIAL);
    }

    #[test]
    fn failures_of_vanished_sockets_are_forgotten() {
        let mut retries = Retries::default();
        let socket = Path::new(SOCKET);
        let now = Instant::now();
        retries.failed(socket, (1, 1), now);
        retries.retain_present(&BTreeMap::new());
        assert!(retries.due(socket, (1, 1), now));
    }
}
