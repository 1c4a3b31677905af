//! The CSI versions a driver reports at registration, parsed as upstream's
//! utilversion.ParseGeneric does, and the highest one the kubelet can speak (any 1.x).

use std::fmt;

/// A generic version: at least major and minor, dot-separated, an optional leading `v`, anything
/// after the numbers ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(s: &str) -> Result<Self, String> {
        let trimmed = s.trim();
        let digits = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let end = digits
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(digits.len());
        let numbers = &digits[..end];
        if numbers.is_empty() || !numbers.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("could not parse {s:?} as version"));
        }
        let parts: Result<Vec<u64>, _> = numbers.split('.').map(str::parse).collect();
        match parts {
            Ok(parts) if parts.len() >= 2 => Ok(Version(parts)),
            _ => Err(format!("illegal version string {s:?}")),
        }
    }

    pub fn major(&self) -> u64 {
        self.0[0]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// Upstream's highestSupportedVersion: the highest parseable version below 2.0, which must be a
/// 1.x (CSI 0.x drivers are no longer supported).
pub fn highest_supported(versions: &[String]) -> Result<Version, String> {
    if versions.is_empty() {
        return Err(super::log(
            "CSI driver reporting empty array for supported versions",
        ));
    }
    let mut highest: Option<Version> = None;
    let mut last_error: Option<String> = None;
    for v in versions.iter().rev() {
        let version = match Version::parse(v) {
            Ok(version) => version,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        // 2.x need not be compatible with 1.x; later 1.x are.
        if version.major() > 1 {
            continue;
        }
        if highest.as_ref().is_none_or(|h| *h < version) {
            highest = Some(version);
        }
    }
    let Some(highest) = highest else {
        return Err(format!(
            "could not find a highest supported version from versions ([{}]) reported by this driver: {}",
            versions.join(" "),
            last_error.as_deref().unwrap_or("<nil>")
        ));
    };
    if highest.major() != 1 {
        return Err(format!(
            "highest supported version reported by driver is {highest}, must be v1.x"
        ));
    }
    Ok(highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_generic_versions() {
        assert_eq!(Version::parse("1.0.0").unwrap().to_string(), "1.0.0");
        assert_eq!(Version::parse("v1.5").unwrap().to_string(), "1.5");
        assert_eq!(Version::parse(" 1.2.3-rc1").unwrap().to_string(), "1.2.3");
        assert!(
            Version::parse("1")
                .unwrap_err()
                .contains("illegal version string")
        );
        assert!(
            Version::parse("one")
                .unwrap_err()
                .contains("could not parse")
        );
        assert!(Version::parse("1.2").unwrap() < Version::parse("1.10").unwrap());
    }

    #[test]
    fn picks_the_highest_1x() {
        let v = highest_supported(&strings(&["0.3.0", "1.0.0", "1.9.0", "2.0.0"])).unwrap();
        assert_eq!(v.to_string(), "1.9.0");
    }

    #[test]
    fn refuses_what_upstream_refuses() {
        assert_eq!(
            highest_supported(&strings(&["2.0.0"])).unwrap_err(),
            "could not find a highest supported version from versions ([2.0.0]) reported by this driver: <nil>"
        );
        assert_eq!(
            highest_supported(&strings(&["0.3.0"])).unwrap_err(),
            "highest supported version reported by driver is 0.3.0, must be v1.x"
        );
        assert!(
            highest_supported(&[])
                .unwrap_err()
                .starts_with("kubernetes.io/csi: ")
        );
    }
}
