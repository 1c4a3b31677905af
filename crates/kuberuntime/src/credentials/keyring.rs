//! Which credentials apply to an image (upstream pkg/credentialprovider/keyring.go): each entry
//! is keyed by host[:port][/path]; an image matches a key when the ports are equal, the hosts
//! have as many dot-separated parts and each part matches as a glob, and the key's path is a
//! prefix of the image's. More specific keys come first. Images on Docker Hub also take the
//! credentials kept for `index.docker.io` when no key matched.

use super::docker_config::Credential;
use std::collections::HashMap;

const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Keys, most specific (reverse-sorted) first.
    index: Vec<String>,
    creds: HashMap<String, Vec<Credential>>,
}

impl Keyring {
    /// Adds the entries of one docker config, keyed as upstream does: scheme dropped, a
    /// `/v1/` or `/v2/` path read as the registry root. Unparsable locations are skipped.
    pub fn add(&mut self, entries: Vec<(String, Credential)>) {
        for (location, cred) in entries {
            let url = if location.starts_with("https://") || location.starts_with("http://") {
                location.clone()
            } else {
                format!("https://{location}")
            };
            let Some((host, path)) = parse_url(&url) else {
                tracing::warn!(entry = %location, "ignoring an invalid entry of a docker config");
                continue;
            };
            let path = match path.get(..4) {
                Some("/v1/" | "/v2/") => &path[3..],
                _ => path,
            };
            let key = if path.is_empty() || path == "/" {
                host.to_owned()
            } else {
                format!("{host}{path}")
            };
            if !self.creds.contains_key(&key) {
                self.index.push(key.clone());
            }
            self.creds.entry(key).or_default().push(cred);
        }
        self.index.sort_by(|a, b| b.cmp(a));
    }

    /// The credentials to try for `repository` (a normalised repository name such as
    /// `docker.io/library/busybox`), in order; empty when none apply.
    pub fn lookup(&self, repository: &str) -> Vec<Credential> {
        let found: Vec<Credential> = self
            .index
            .iter()
            .filter(|key| urls_match(key, repository))
            .flat_map(|key| self.creds[key].iter().cloned())
            .collect();
        if found.is_empty() && is_default_registry(repository) {
            return self
                .creds
                .get(DEFAULT_REGISTRY_HOST)
                .cloned()
                .unwrap_or_default();
        }
        found
    }
}

/// Whether the image is pulled from Docker Hub, judging by its first component.
fn is_default_registry(image: &str) -> bool {
    match image.split_once('/') {
        _ if image.is_empty() || image.starts_with('/') => false,
        None => true,
        Some((first, _)) => {
            first == "docker.io" || first == DEFAULT_REGISTRY_HOST || !first.contains(['.', ':'])
        }
    }
}

/// The host and path of a URL with a scheme, as Go's url.Parse splits them; `None` for an
/// invalid port.
fn parse_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host.strip_prefix('[') {
        Some(inner) => inner.split_once(']')?.1,
        None => host.rfind(':').map_or("", |i| &host[i..]),
    };
    let valid_port = port
        .strip_prefix(':')
        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !port.is_empty() && !valid_port {
        return None;
    }
    Some((host, path))
}

/// Go's net.SplitHostPort, falling back to the whole host without a port.
fn split_host_port(host: &str) -> (&str, &str) {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.split_once("]:") {
            Some((h, p)) => (h, p),
            None => (host, ""),
        };
    }
    match host.split_once(':') {
        Some((h, p)) if !p.contains(':') => (h, p),
        _ => (host, ""),
    }
}

/// Upstream URLsMatchStr: `key` may have glob patterns in its host parts.
fn urls_match(key: &str, target: &str) -> bool {
    let (Some((key_host, key_path)), Some((target_host, target_path))) = (
        parse_url(&format!("https://{key}")).map(|(h, p)| (h.to_owned(), p.to_owned())),
        parse_url(&format!("https://{target}")).map(|(h, p)| (h.to_owned(), p.to_owned())),
    ) else {
        return false;
    };
    let (key_host, key_port) = split_host_port(&key_host);
    let (target_host, target_port) = split_host_port(&target_host);
    let key_parts: Vec<&str> = key_host.split('.').collect();
    let target_parts: Vec<&str> = target_host.split('.').collect();
    key_port == target_port
        && key_parts.len() == target_parts.len()
        && target_path.starts_with(&key_path)
        && key_parts.iter().zip(&target_parts).all(|(k, t)| {
            let (k, t): (Vec<char>, Vec<char>) = (k.chars().collect(), t.chars().collect());
            glob(&k, &t).unwrap_or(false)
        })
}

/// Go's filepath.Match for one host part: `*`, `?`, `[...]` classes (with `^` and ranges) and
/// `\` escapes. `Err` for a malformed pattern.
fn glob(pattern: &[char], text: &[char]) -> Result<bool, ()> {
    let Some((&first, rest)) = pattern.split_first() else {
        return Ok(text.is_empty());
    };
    match first {
        '*' => {
            for i in 0..=text.len() {
                if glob(rest, &text[i..])? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        '?' => match text.split_first() {
            Some((_, t)) => glob(rest, t),
            None => Ok(false),
        },
        '[' => {
            let (matched, after) = class(rest, text.first().copied())?;
            if matched {
                glob(after, &text[1..])
            } else {
                Ok(false)
            }
        }
        c => {
            let (c, rest) = if c == '\\' {
                rest.split_first().map(|(c, r)| (*c, r)).ok_or(())?
            } else {
                (c, rest)
            };
            match text.split_first() {
                Some((t, text_rest)) if *t == c => glob(rest, text_rest),
                _ => Ok(false),
            }
        }
    }
}

/// Matches `ch` against the class starting after `[`; returns whether it matched and the
/// pattern after `]`.
fn class(pattern: &[char], ch: Option<char>) -> Result<(bool, &[char]), ()> {
    let (negated, mut p) = match pattern.split_first() {
        Some(('^', rest)) => (true, rest),
        _ => (false, pattern),
    };
    let literal = |p: &[char]| -> Result<(char, usize), ()> {
        match p {
            ['\\', c, ..] => Ok((*c, 2)),
            [']', ..] | [] => Err(()),
            [c, ..] => Ok((*c, 1)),
        }
    };
    let mut matched = false;
    let mut first = true;
    loop {
        if let Some((']', rest)) = p.split_first()
            && !first
        {
            p = rest;
            break;
        }
        first = false;
        let (lo, n) = literal(p)?;
        p = &p[n..];
        let hi = if let Some(('-', rest)) = p.split_first() {
            let (hi, n) = literal(rest)?;
            p = &rest[n..];
            hi
        } else {
            lo
        };
        if ch.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
    }
    Ok((ch.is_some() && matched != negated, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(user: &str) -> Credential {
        Credential {
            username: user.into(),
            password: format!("{user}-pw"),
            identity_token: String::new(),
        }
    }

    fn keyring(entries: &[(&str, &str)]) -> Keyring {
        let mut k = Keyring::default();
        k.add(
            entries
                .iter()
                .map(|(loc, user)| (loc.to_string(), cred(user)))
                .collect(),
        );
        k
    }

    fn users(k: &Keyring, repo: &str) -> Vec<String> {
        k.lookup(repo).into_iter().map(|c| c.username).collect()
    }

    #[test]
    fn lookup_table() {
        let k = keyring(&[
            ("registry.test:5000", "port"),
            ("https://quay.io/v1/", "quay"),
            ("quay.io/coreos", "coreos"),
            ("*.gcr.io", "gcr-glob"),
            ("http://localhost:5000/team", "local-team"),
            ("https://index.docker.io/v1/", "hub"),
        ]);
        let cases: &[(&str, &[&str])] = &[
            // Host and port must both match.
            ("registry.test:5000/app", &["port"]),
            ("registry.test/app", &[]),
            ("registry.test:5001/app", &[]),
            // The more specific path first, then the host.
            ("quay.io/coreos/etcd", &["coreos", "quay"]),
            ("quay.io/other/app", &["quay"]),
            // A path is a plain prefix, as upstream.
            ("quay.io/coreos-extra/app", &["coreos", "quay"]),
            // Globs match one host part each, never across dots.
            ("eu.gcr.io/p/app", &["gcr-glob"]),
            ("gcr.io/p/app", &[]),
            ("a.eu.gcr.io/p/app", &[]),
            ("localhost:5000/team/app", &["local-team"]),
            ("localhost:5000/other", &[]),
            // Docker Hub images fall back to index.docker.io.
            ("docker.io/library/busybox", &["hub"]),
            ("docker.io/user/app", &["hub"]),
            ("ghcr.io/user/app", &[]),
        ];
        for (repo, want) in cases {
            assert_eq!(users(&k, repo), *want, "{repo}");
        }
    }

    #[test]
    fn docker_io_key_matches_directly_and_credentials_accumulate() {
        let mut k = keyring(&[("docker.io", "first")]);
        k.add(vec![("https://docker.io".into(), cred("second"))]);
        assert_eq!(users(&k, "docker.io/library/busybox"), ["first", "second"]);
        // A direct match wins over the index.docker.io fallback.
        k.add(vec![("index.docker.io".into(), cred("hub"))]);
        assert_eq!(users(&k, "docker.io/library/busybox"), ["first", "second"]);
    }

    #[test]
    fn globs() {
        let g = |p: &str, t: &str| {
            glob(
                &p.chars().collect::<Vec<_>>(),
                &t.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(g("*", "anything"), Ok(true));
        assert_eq!(g("reg?stry", "registry"), Ok(true));
        assert_eq!(g("[a-c]x", "bx"), Ok(true));
        assert_eq!(g("[^a-c]x", "bx"), Ok(false));
        assert_eq!(g("\\*", "*"), Ok(true));
        assert_eq!(g("\\*", "a"), Ok(false));
        assert_eq!(g("[a-", "a"), Err(()));
    }

    #[test]
    fn invalid_locations_are_skipped() {
        let k = keyring(&[("registry.test:port/x", "bad"), ("registry.test", "good")]);
        assert_eq!(users(&k, "registry.test/x/app"), ["good"]);
        assert_eq!(split_host_port("[::1]:5000"), ("::1", "5000"));
        assert_eq!(split_host_port("host"), ("host", ""));
    }
}
