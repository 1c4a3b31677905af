//! Lexical path cleaning, as Go's `filepath.Clean` does it: upstream joins relative config
//! file paths with it and requires podLogsDir to be already clean.

/// Returns the shortest equivalent path: repeated and trailing separators removed, `.`
/// elements dropped, `..` elements resolved against what precedes them.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleans_like_go() {
        assert_eq!(clean("/var/log/pods/"), "/var/log/pods");
        assert_eq!(clean("/var//log/./pods"), "/var/log/pods");
        assert_eq!(clean("/etc/kubelet/../pods"), "/etc/pods");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/"), "/");
    }
}
