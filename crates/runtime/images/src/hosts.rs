//! Registry hosts from a containerd certs.d directory: `DIR/HOST/hosts.toml` (else
//! `DIR/_default/hosts.toml`) lists mirrors as `[host."URL"]` tables, tried in the file's order,
//! then the `server` itself (default `https://HOST`). Behaviour follows containerd's
//! docs/hosts.md: a host without `capabilities` may pull and resolve; `skip_verify` and `ca`
//! configure TLS; a URL without a scheme is https; plain http only where a URL says `http://`.

use crate::error::ImageError;
use std::path::{Path, PathBuf};

/// One place to pull an image from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]` as it goes into the URL.
    pub host: String,
    pub plain_http: bool,
    /// May resolve a tag to a manifest digest.
    pub resolve: bool,
    /// May fetch manifests and blobs by digest.
    pub pull: bool,
    pub skip_verify: bool,
    /// Extra CA certificates (PEM files).
    pub ca: Vec<PathBuf>,
    /// A mirror, not the registry itself: requests carry `?ns=UPSTREAM` as containerd's do.
    pub mirror: bool,
}

/// The endpoints for registry `host`, in the order to try them: mirrors first, the server last.
pub(crate) fn endpoints(
    config_dir: Option<&Path>,
    host: &str,
) -> Result<Vec<Endpoint>, ImageError> {
    let file = config_dir.and_then(|dir| {
        [
            dir.join(host).join("hosts.toml"),
            dir.join("_default/hosts.toml"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    });
    match file {
        Some(file) => parse_file(&file, host),
        None => Ok(vec![default_server(host)]),
    }
}

fn default_server(host: &str) -> Endpoint {
    let host = if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    };
    Endpoint {
        host: host.to_string(),
        plain_http: false,
        resolve: true,
        pull: true,
        skip_verify: false,
        ca: Vec::new(),
        mirror: false,
    }
}

fn parse_file(file: &Path, upstream: &str) -> Result<Vec<Endpoint>, ImageError> {
    let err = |cause: String| ImageError::Config {
        path: file.to_path_buf(),
        cause,
    };
    let text = std::fs::read_to_string(file).map_err(|e| ImageError::io("read", file, e))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(e.to_string()))?;
    let base = file.parent().unwrap_or(Path::new("/"));
    let mut endpoints = Vec::new();
    if let Some(hosts) = table.get("host") {
        let hosts = hosts
            .as_table()
            .ok_or_else(|| err("`host` must be a table of [host.\"URL\"] tables".into()))?;
        for (url, settings) in hosts {
            let settings = settings
                .as_table()
                .ok_or_else(|| err(format!("[host.{url:?}] must be a table")))?;
            let endpoint = endpoint(url, settings, base, true).map_err(&err)?;
            endpoints.push(endpoint);
        }
    }
    let server = match table.get("server") {
        Some(server) => {
            let url = server
                .as_str()
                .ok_or_else(|| err("`server` must be a string".into()))?;
            endpoint(url, &table, base, false).map_err(&err)?
        }
        None => {
            let mut server = default_server(upstream);
            let settings = endpoint(&server.host, &table, base, false).map_err(&err)?;
            server.skip_verify = settings.skip_verify;
            server.ca = settings.ca;
            server
        }
    };
    endpoints.push(server);
    Ok(endpoints)
}

/// One `[host."URL"]` table (or the top level, for the server).
fn endpoint(url: &str, t: &toml::Table, base: &Path, mirror: bool) -> Result<Endpoint, String> {
    let (plain_http, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (false, rest)
    } else if url.contains("://") {
        return Err(format!("host {url:?}: only http and https are supported"));
    } else {
        (false, url)
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    // The registry client always talks to /v2 at the host root, so only that API root works.
    if !matches!(path.trim_end_matches('/'), "" | "v2") {
        return Err(format!(
            "host {url:?}: a path prefix ({path:?}) is not supported, only the /v2 API root"
        ));
    }
    if host.is_empty() {
        return Err(format!("host {url:?} has no host name"));
    }
    let (mut resolve, mut pull) = (true, true);
    if let Some(caps) = t.get("capabilities") {
        let caps = caps
            .as_array()
            .ok_or_else(|| format!("host {url:?}: capabilities must be a list"))?;
        let has = |c: &str| caps.iter().any(|v| v.as_str() == Some(c));
        resolve = has("resolve");
        pull = has("pull");
    }
    let skip_verify = match t.get("skip_verify") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("host {url:?}: skip_verify must be true or false"))?,
    };
    let ca = match t.get("ca") {
        None => Vec::new(),
        Some(toml::Value::String(s)) => vec![base.join(s)],
        Some(toml::Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(|s| base.join(s)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("host {url:?}: ca must be a path or a list of paths"))?,
        Some(_) => {
            return Err(format!(
                "host {url:?}: ca must be a path or a list of paths"
            ));
        }
    };
    for unsupported in ["header", "client"] {
        if t.contains_key(unsupported) {
            tracing::warn!(
                host = url,
                setting = unsupported,
                "hosts.toml setting ignored: the registry client cannot send it"
            );
        }
    }
    Ok(Endpoint {
        host: host.to_string(),
        plain_http,
        resolve,
        pull,
        skip_verify,
        ca,
        mirror,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, host: &str, text: &str) {
        std::fs::create_dir_all(dir.join(host)).unwrap();
        std::fs::write(dir.join(host).join("hosts.toml"), text).unwrap();
    }

    #[test]
    fn no_config_means_the_registry_itself_over_https() {
        let eps = endpoints(None, "docker.io").unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].host, "registry-1.docker.io");
        assert!(!eps[0].plain_http && eps[0].pull && eps[0].resolve && !eps[0].mirror);
        let tmp = tempfile::tempdir().unwrap();
        let eps = endpoints(Some(tmp.path()), "quay.io").unwrap();
        assert_eq!(eps[0].host, "quay.io");
    }

    #[test]
    fn mirrors_in_file_order_then_the_server() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "docker.io",
            r#"
server = "https://registry-1.docker.io"
[host."http://zz-mirror:5001"]
  capabilities = ["pull", "resolve"]
[host."https://aa-mirror/v2"]
  capabilities = ["pull"]
  skip_verify = true
  ca = ["certs/a.pem", "/etc/b.pem"]
[host."cc-mirror:443"]
  ca = "c.pem"
"#,
        );
        let eps = endpoints(Some(tmp.path()), "docker.io").unwrap();
        let hosts: Vec<_> = eps.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "zz-mirror:5001",
                "aa-mirror",
                "cc-mirror:443",
                "registry-1.docker.io"
            ]
        );
        assert!(eps[0].plain_http && eps[0].resolve && eps[0].mirror);
        assert!(!eps[1].plain_http && eps[1].pull && !eps[1].resolve && eps[1].skip_verify);
        let dir = tmp.path().join("docker.io");
        assert_eq!(
            eps[1].ca,
            vec![dir.join("certs/a.pem"), PathBuf::from("/etc/b.pem")]
        );
        assert_eq!(eps[2].ca, vec![dir.join("c.pem")]);
        assert!(!eps[3].mirror && eps[3].resolve && eps[3].pull);
    }

    #[test]
    fn default_file_and_plain_http_server() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "_default",
            "server = \"http://127.0.0.1:5000\"\n",
        );
        let eps = endpoints(Some(tmp.path()), "127.0.0.1:5000").unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].host, "127.0.0.1:5000");
        assert!(eps[0].plain_http);
        // A host's own file wins over _default; without `server` the server is https://HOST.
        write(tmp.path(), "reg.example", "skip_verify = true\n");
        let eps = endpoints(Some(tmp.path()), "reg.example").unwrap();
        assert_eq!(eps.len(), 1);
        assert!(!eps[0].plain_http && eps[0].skip_verify);
    }

    #[test]
    fn invalid_files_name_the_file_and_the_cause() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a", "[host.\"ftp://x\"]\n");
        write(tmp.path(), "b", "[host.\"https://x/prefix\"]\n");
        write(tmp.path(), "c", "server = [\n");
        for host in ["a", "b", "c"] {
            let err = endpoints(Some(tmp.path()), host).unwrap_err().to_string();
            assert!(err.contains(&format!("{host}/hosts.toml")), "{err}");
        }
    }
}
