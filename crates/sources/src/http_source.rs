//! The manifest URL source (upstream config/http.go): GET the URL every check period; the body is
//! a Pod or a PodList. A failed request or a bad body keeps the previous pods.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::AdoptedUids;
use crate::manifest;
use crate::mux::SourceSender;
use crate::static_pod::Origin;

/// Upstream's limits: a 10 s client timeout and at most 10 MiB of manifest.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Why one poll of the manifest URL gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum HttpSourceError {
    #[error("{url}: request failed: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("{url}: {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("{url}: body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge { url: String },
}

/// Polls `url` forever, sending each new snapshot to `sender`.
pub async fn run(
    url: String,
    headers: Vec<(String, String)>,
    node_name: String,
    period: Duration,
    adopted: AdoptedUids,
    sender: SourceSender,
) {
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .default_headers(header_map(&url, &headers))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(%url, error = %e, "cannot build the HTTP client: manifest URL source disabled");
            return;
        }
    };
    let origin = Origin::url(&url);
    let mut last_body: Option<Vec<u8>> = None;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let body = match fetch(&client, &url).await {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(%url, error = %e, "cannot fetch pod manifests from URL, keeping the previous pods");
                continue;
            }
        };
        // Unchanged bytes decode to the same pods: nothing to do (nor to log again).
        if last_body.as_deref() == Some(body.as_slice()) {
            continue;
        }
        if body.is_empty() {
            // Upstream: an empty answer means no pods, and marks the source seen.
            tracing::error!(%url, "zero-length manifest received from URL");
            sender.send_snapshot(Vec::new());
        } else {
            match manifest::decode_pods_adopting(&body, &origin, &node_name, &adopted) {
                Ok(pods) => sender.send_snapshot(pods),
                Err(e) => {
                    tracing::error!(%url, error = %e, "invalid pod manifest from URL, keeping the previous pods");
                }
            }
        }
        last_body = Some(body);
    }
}

/// The configured headers; a malformed one is logged and left out rather than losing the source.
fn header_map(url: &str, headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            (Err(e), _) => {
                tracing::error!(%url, header = %name, error = %e, "invalid manifest URL header name, ignoring it")
            }
            (_, Err(e)) => {
                tracing::error!(%url, header = %name, error = %e, "invalid manifest URL header value, ignoring it")
            }
        }
    }
    map
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, HttpSourceError> {
    let request_error = |source| HttpSourceError::Request {
        url: url.to_owned(),
        source,
    };
    let mut response = client.get(url).send().await.map_err(request_error)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(HttpSourceError::Status {
            url: url.to_owned(),
            status: response.status(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(HttpSourceError::TooLarge {
                url: url.to_owned(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::Mux;
    use crate::{HTTP_SOURCE, PodOperation, PodUpdate};
    use axum::http::{HeaderMap as RequestHeaders, StatusCode};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: x:1\n";
    const POD_LIST: &str = r#"{"apiVersion": "v1", "kind": "PodList", "items": [
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
        {"metadata": {"name": "db"}, "spec": {"containers": [{"name": "c", "image": "y:1"}]}}]}"#;

    /// Serves, poll after poll, a Pod, then a PodList, then 500s; counts requests that carried
    /// the configured header.
    async fn serve() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let with_header = Arc::new(AtomicUsize::new(0));
        let (p, h) = (Arc::clone(&polls), Arc::clone(&with_header));
        let app = axum::Router::new().route(
            "/pods",
            axum::routing::get(move |headers: RequestHeaders| {
                let (p, h) = (Arc::clone(&p), Arc::clone(&h));
                async move {
                    if headers.get("x-token").is_some_and(|v| v == "secret") {
                        h.fetch_add(1, Ordering::SeqCst);
                    }
                    match p.fetch_add(1, Ordering::SeqCst) {
                        0 => (StatusCode::OK, POD),
                        1 => (StatusCode::OK, POD_LIST),
                        _ => (StatusCode::INTERNAL_SERVER_ERROR, "broken"),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/pods"), polls, with_header)
    }

    async fn next_update(rx: &mut mpsc::UnboundedReceiver<PodUpdate>) -> PodUpdate {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an update within 5 s")
            .expect("the mux is alive")
    }

    fn names(update: &PodUpdate) -> Vec<String> {
        update
            .pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn pod_then_pod_list_then_server_error_keeps_the_pods() {
        let (url, polls, with_header) = serve().await;
        let (mux, mut rx) = Mux::new();
        let ready = mux.ready();
        let task = tokio::spawn(run(
            url,
            vec![("X-Token".to_owned(), "secret".to_owned())],
            "node1".to_owned(),
            Duration::from_millis(100),
            AdoptedUids::default(),
            mux.source(HTTP_SOURCE),
        ));

        let first = next_update(&mut rx).await;
        assert_eq!(
            (first.op, names(&first)),
            (PodOperation::Add, vec!["web-node1".to_owned()])
        );
        assert!(ready.all_ready());
        let annotations = first.pods[0].metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations["kubernetes.io/config.source"], "http");

        // The list keeps "web" (same content and URL, so same UID) and adds "db".
        let second = next_update(&mut rx).await;
        assert_eq!(
            (second.op, names(&second)),
            (PodOperation::Add, vec!["db-node1".to_owned()])
        );

        // Some 500s later nothing has been removed.
        tokio::time::timeout(Duration::from_secs(5), async {
            while polls.load(Ordering::SeqCst) < 5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the source keeps polling");
        assert!(
            rx.try_recv().is_err(),
            "a server error must not change the pods"
        );
        assert_eq!(
            with_header.load(Ordering::SeqCst),
            polls.load(Ordering::SeqCst)
        );
        task.abort();
    }

    #[tokio::test]
    async fn unreachable_url_is_an_error_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/pods", listener.local_addr().unwrap());
        drop(listener);
        let client = reqwest::Client::new();
        let text = fetch(&client, &url).await.unwrap_err().to_string();
        assert!(
            text.starts_with(&format!("{url}: request failed")),
            "{text}"
        );
    }

    #[test]
    fn malformed_headers_are_left_out() {
        let headers = [
            ("Authorization".to_owned(), "Bearer t".to_owned()),
            ("bad header".to_owned(), "v".to_owned()),
            ("X-Ok".to_owned(), "line\nbreak".to_owned()),
        ];
        let map = header_map("http://h/", &headers);
        assert_eq!(map.len(), 1);
        assert_eq!(map["authorization"], "Bearer t");
    }
}
