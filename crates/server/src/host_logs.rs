//! /logs/: the node's log files and directory listings under the log dir (/var/log), like
//! upstream's file server. Nothing outside the log dir is served: `..` cannot climb above its
//! root, and a path whose canonical form (symlinks resolved) leaves the dir is forbidden.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

pub(crate) fn router(log_dir: PathBuf) -> Router {
    Router::new()
        .route("/logs", get(|| async { Redirect::permanent("/logs/") }))
        .route("/logs/", get(serve))
        .route("/logs/{*path}", get(serve))
        .with_state(Arc::new(log_dir))
}

async fn serve(State(log_dir): State<Arc<PathBuf>>, request: Request) -> Response {
    let raw = request.uri().path().strip_prefix("/logs").unwrap_or("/");
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let Some(relative) = rooted_clean(&decoded) else {
        return not_found();
    };
    let (Ok(root), Ok(target)) = (
        tokio::fs::canonicalize(log_dir.as_path()).await,
        tokio::fs::canonicalize(log_dir.join(&relative)).await,
    ) else {
        return not_found();
    };
    if !target.starts_with(&root) {
        tracing::warn!(path = %decoded, "refused /logs/ request outside the log dir");
        return (StatusCode::FORBIDDEN, "403 Forbidden\n").into_response();
    }
    let Ok(metadata) = tokio::fs::metadata(&target).await else {
        return not_found();
    };
    if metadata.is_dir() {
        if !decoded.ends_with('/') {
            return Redirect::permanent(&format!("{}/", request.uri().path())).into_response();
        }
        return listing(&target).await;
    }
    match tokio::fs::File::open(&target).await {
        Ok(file) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Body::from_stream(file_stream(file)),
        )
            .into_response(),
        Err(_) => not_found(),
    }
}

fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(bytes::Bytes::from(buffer)), file))
            }
            Err(error) => Some((Err(error), file)),
        }
    })
}

/// The path relative to the log dir, with `.` and `..` resolved as if the log dir were `/`
/// (Go's path.Clean("/" + name)); None for a NUL byte, which no file name holds.
fn rooted_clean(path: &str) -> Option<PathBuf> {
    if path.contains('\0') {
        return None;
    }
    let mut clean = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(clean)
}

/// Go's FileServer listing: a <pre> list of links, directories with a trailing slash.
async fn listing(dir: &Path) -> Response {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return not_found();
    };
    let mut names = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().await.is_ok_and(|kind| kind.is_dir()) {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    let mut html = String::from("<pre>\n");
    for name in names {
        let href = percent_encoding::utf8_percent_encode(&name, HREF).to_string();
        html.push_str(&format!("<a href=\"{href}\">{}</a>\n", escape(&name)));
    }
    html.push_str("</pre>\n");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

const HREF: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?');

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_cannot_climb_above_the_root() {
        assert_eq!(
            rooted_clean("/../../etc/passwd"),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(rooted_clean("a/./b/../c"), Some(PathBuf::from("a/c")));
        assert_eq!(rooted_clean("/"), Some(PathBuf::new()));
        assert_eq!(rooted_clean("a\0b"), None);
    }
}
