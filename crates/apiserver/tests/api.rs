//! REST and watch semantics over HTTP: versions, conflicts, the status subresource, patches,
//! bookmarks, 410 Gone after compaction and listener outages.

use std::time::Duration;

use kubelet_test_apiserver::TestApiServer;
use serde_json::{Value, json};

const PODS: &str = "/api/v1/namespaces/default/pods";

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(server: &TestApiServer) -> Self {
        Client {
            base: server.url(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        body: Option<(&str, &Value)>,
    ) -> (u16, Value) {
        let req = match body {
            Some((content_type, body)) => req
                .header("content-type", content_type)
                .body(body.to_string()),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        (
            code,
            serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)), None)
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http.post(format!("{}{path}", self.base)),
            Some(("application/json", body)),
        )
        .await
    }

    async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http.put(format!("{}{path}", self.base)),
            Some(("application/json", body)),
        )
        .await
    }

    async fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http.patch(format!("{}{path}", self.base)),
            Some((content_type, body)),
        )
        .await
    }

    async fn delete(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http.delete(format!("{}{path}", self.base)),
            Some(("application/json", body)),
        )
        .await
    }

    /// Opens a watch and returns a reader of its events.
    async fn watch(&self, path: &str) -> Watch {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        Watch {
            resp,
            buf: Vec::new(),
        }
    }
}

struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event, or None when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("a watch event within 10 s")
                .ok()??;
            self.buf.extend_from_slice(&chunk);
        }
    }

    async fn next_of(&mut self, event_type: &str) -> Value {
        let ev = self.next().await.expect("the watch is open");
        assert_eq!(ev["type"], event_type, "{ev}");
        ev
    }
}

fn pod(name: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_write_bumps_one_global_version() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    let (code, a) = c.post(PODS, &pod("a", "n1")).await;
    assert_eq!(code, 201);
    let (_, cm) = c
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "cm"}}),
        )
        .await;
    assert_eq!(rv(&cm), rv(&a) + 1);
    let (code, list) = c.get(PODS).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["metadata"]["resourceVersion"], rv(&cm).to_string());
    let (code, dup) = c.post(PODS, &pod("a", "n1")).await;
    assert_eq!((code, dup["reason"].as_str()), (409, Some("AlreadyExists")));
    let (code, missing) = c
        .post("/api/v1/namespaces/nope/pods", &pod("a", "n1"))
        .await;
    assert_eq!((code, missing["reason"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn stale_update_conflicts_and_noop_keeps_version() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    let (_, created) = c.post(PODS, &pod("a", "n1")).await;
    let mut changed = created.clone();
    changed["metadata"]["labels"] = json!({"x": "1"});
    let (code, updated) = c.put(&format!("{PODS}/a"), &changed).await;
    assert_eq!(code, 200);
    assert!(rv(&updated) > rv(&created));
    // The same change again with the old version is stale.
    let (code, status) = c.put(&format!("{PODS}/a"), &changed).await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    // A write that changes nothing does not bump the version.
    let (code, same) = c.put(&format!("{PODS}/a"), &updated).await;
    assert_eq!((code, rv(&same)), (200, rv(&updated)));
    // A stale precondition on delete conflicts too.
    let (code, status) = c
        .delete(
            &format!("{PODS}/a"),
            &json!({"preconditions": {"uid": "not-the-uid"}, "gracePeriodSeconds": 0}),
        )
        .await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
}

#[tokio::test]
async fn status_subresource_is_the_only_way_to_change_status() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    let (_, created) = c.post(PODS, &pod("a", "n1")).await;

    let mut with_status = created.clone();
    with_status["status"] = json!({"phase": "Running"});
    with_status["metadata"]["labels"] = json!({"x": "1"});
    let (_, main) = c.put(&format!("{PODS}/a"), &with_status).await;
    assert_eq!(
        main["status"]["phase"], "Pending",
        "the main resource ignores status"
    );
    assert_eq!(main["metadata"]["labels"]["x"], "1");

    let mut via_status = main.clone();
    via_status["status"]["phase"] = json!("Running");
    via_status["spec"]["nodeName"] = json!("elsewhere");
    let (code, updated) = c.put(&format!("{PODS}/a/status"), &via_status).await;
    assert_eq!(code, 200);
    assert_eq!(updated["status"]["phase"], "Running");
    assert_eq!(
        updated["spec"]["nodeName"], "n1",
        "the status subresource ignores spec"
    );
}

#[tokio::test]
async fn strategic_merge_patch_of_conditions_on_status() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    c.post(PODS, &pod("a", "n1")).await;
    let smp = "application/strategic-merge-patch+json";
    let first = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}});
    c.patch(&format!("{PODS}/a/status"), smp, &first).await;
    let second = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"name": "c", "ready": true}]}});
    let (code, patched) = c.patch(&format!("{PODS}/a/status"), smp, &second).await;
    assert_eq!(code, 200);
    assert_eq!(
        patched["status"]["conditions"],
        json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}])
    );
    // Spec in a status patch is ignored.
    let (_, ignored) = c
        .patch(
            &format!("{PODS}/a/status"),
            smp,
            &json!({"spec": {"nodeName": "other"}}),
        )
        .await;
    assert_eq!(ignored["spec"]["nodeName"], "n1");
    let (code, _) = c
        .patch(
            &format!("{PODS}/a"),
            "application/json-patch+json",
            &json!([]),
        )
        .await;
    assert_eq!(code, 415);
}

#[tokio::test]
async fn watch_resumes_from_a_version_and_filters_by_node() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    let (_, a) = c.post(PODS, &pod("a", "n1")).await;
    c.post(PODS, &pod("b", "n2")).await;
    let (_, c_pod) = c.post(PODS, &pod("c", "n1")).await;

    let mut w = c
        .watch(&format!(
            "/api/v1/pods?watch=true&resourceVersion={}&fieldSelector=spec.nodeName%3Dn1",
            rv(&a)
        ))
        .await;
    let added = w.next_of("ADDED").await;
    assert_eq!(added["object"]["metadata"]["name"], "c");
    assert_eq!(rv(&added["object"]), rv(&c_pod));

    c.delete(&format!("{PODS}/a"), &json!({"gracePeriodSeconds": 0}))
        .await;
    let deleted = w.next_of("DELETED").await;
    assert_eq!(deleted["object"]["metadata"]["name"], "a");

    // Starting without a version lists the current state as ADDED.
    let mut fresh = c.watch(&format!("{PODS}?watch=1&labelSelector=")).await;
    let mut names = vec![];
    for _ in 0..2 {
        names.push(fresh.next_of("ADDED").await["object"]["metadata"]["name"].clone());
    }
    assert_eq!(names, vec![json!("b"), json!("c")]);
}

#[tokio::test]
async fn bookmarks_and_timeout() {
    let server = TestApiServer::try_start(Duration::from_millis(200)).unwrap();
    let c = Client::new(&server);
    let (_, created) = c.post(PODS, &pod("a", "n1")).await;
    let mut w = c
        .watch(&format!(
            "{PODS}?watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds=2",
            rv(&created)
        ))
        .await;
    c.post(
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "cm"}}),
    )
    .await;
    let bookmark = w.next_of("BOOKMARK").await;
    assert_eq!(bookmark["object"]["kind"], "Pod");
    assert_eq!(
        rv(&bookmark["object"]),
        rv(&created) + 1,
        "bookmarks carry the latest version seen"
    );
    while let Some(ev) = w.next().await {
        assert_eq!(ev["type"], "BOOKMARK");
    }
}

#[tokio::test]
async fn compacted_history_answers_410_expired() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    let (_, a) = c.post(PODS, &pod("a", "n1")).await;
    c.post(PODS, &pod("b", "n1")).await;
    server.compact();
    let mut w = c
        .watch(&format!("{PODS}?watch=1&resourceVersion={}", rv(&a)))
        .await;
    let error = w.next_of("ERROR").await;
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert!(w.next().await.is_none());
    // Watching from the current version is still fine.
    let now = server.store().resource_version();
    let mut w = c
        .watch(&format!("{PODS}?watch=1&resourceVersion={now}"))
        .await;
    c.post(PODS, &pod("c", "n1")).await;
    assert_eq!(w.next_of("ADDED").await["object"]["metadata"]["name"], "c");
}

#[tokio::test]
async fn outage_keeps_state_and_closes_watches() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    c.post(PODS, &pod("a", "n1")).await;
    let mut w = c.watch(&format!("{PODS}?watch=1")).await;
    w.next_of("ADDED").await;

    server.stop_listener();
    assert!(w.next().await.is_none(), "open watches end with the outage");
    assert!(
        reqwest::get(format!("{}{PODS}", server.url()))
            .await
            .is_err()
    );

    server.restart_listener().unwrap();
    let (code, list) = c.get(PODS).await;
    assert_eq!(code, 200);
    assert_eq!(list["items"][0]["metadata"]["name"], "a");
}

#[tokio::test]
async fn discovery_documents() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    let (_, core) = c.get("/api/v1").await;
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["namespaced"], true);
    let (_, groups) = c.get("/apis").await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "coordination.k8s.io",
            "node.k8s.io",
            "certificates.k8s.io",
            "storage.k8s.io",
            "authentication.k8s.io",
            "authorization.k8s.io"
        ]
    );
    let (_, leases) = c.get("/apis/coordination.k8s.io/v1").await;
    assert_eq!(leases["resources"][0]["kind"], "Lease");
    let (code, _) = c.get("/openapi/v2").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn binding_a_pod_is_an_addition_for_the_nodes_watch() {
    let server = TestApiServer::start();
    let c = Client::new(&server);
    let (_, unbound) = c.post(PODS, &pod("a", "")).await;
    let mut w = c
        .watch(&format!(
            "/api/v1/pods?watch=1&resourceVersion={}&fieldSelector=spec.nodeName%3Dn1",
            rv(&unbound)
        ))
        .await;
    let binding = |node: &str| json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a"}, "target": {"kind": "Node", "name": node}});
    let (code, status) = c.post(&format!("{PODS}/a/binding"), &binding("n1")).await;
    assert_eq!(
        (code, &status["status"]),
        (201, &json!("Success")),
        "{status}"
    );
    let added = w.next_of("ADDED").await;
    assert_eq!(added["object"]["spec"]["nodeName"], "n1");
    assert_eq!(
        added["object"]["status"]["conditions"][0]["type"],
        "PodScheduled"
    );
    // A pod is bound once; nodeName changes no other way.
    let (code, refused) = c.post(&format!("{PODS}/a/binding"), &binding("n2")).await;
    assert_eq!(code, 409);
    assert_eq!(
        refused["message"],
        "Operation cannot be fulfilled on pods/binding \"a\": pod a is already assigned to node \"n1\""
    );
    let (code, refused) = c
        .patch(
            &format!("{PODS}/a"),
            "application/merge-patch+json",
            &json!({"spec": {"nodeName": "n2"}}),
        )
        .await;
    assert_eq!(code, 422);
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.starts_with("Pod \"a\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{message}"
    );
}
