//! The static policy's options (upstream policy_options.go). kubelet-rs implements
//! full-pcpus-only; upstream's other options are refused by name rather than ignored.

use std::collections::BTreeMap;
use thiserror::Error;

pub const FULL_PCPUS_ONLY: &str = "full-pcpus-only";
/// Options upstream knows that kubelet-rs does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "distribute-cpus-across-numa",
    "align-by-socket",
    "distribute-cpus-across-cores",
    "strict-cpu-reservation",
    "prefer-align-cpus-by-uncorecache",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("unknown CPU Manager Policy option: {0:?}")]
    Unknown(String),
    #[error(
        "CPU Manager Policy option {0:?} is not supported by kubelet-rs (only {FULL_PCPUS_ONLY:?} is)"
    )]
    NotImplemented(String),
    #[error("bad value for option {name:?}: strconv.ParseBool: parsing {value:?}: invalid syntax")]
    BadValue { name: String, value: String },
    #[error("None policy: received unsupported options={0:?}")]
    NonePolicy(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaticPolicyOptions {
    /// Only whole physical cores: requests must be a multiple of the threads per core.
    pub full_physical_cpus_only: bool,
}

impl StaticPolicyOptions {
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Self, OptionsError> {
        let mut parsed = StaticPolicyOptions::default();
        for (name, value) in options {
            match name.as_str() {
                FULL_PCPUS_ONLY => {
                    parsed.full_physical_cpus_only =
                        parse_go_bool(value).ok_or_else(|| OptionsError::BadValue {
                            name: name.clone(),
                            value: value.clone(),
                        })?
                }
                other if NOT_IMPLEMENTED.contains(&other) => {
                    return Err(OptionsError::NotImplemented(other.to_string()));
                }
                other => return Err(OptionsError::Unknown(other.to_string())),
            }
        }
        Ok(parsed)
    }
}

/// Go's strconv.ParseBool.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn full_pcpus_only_is_read() {
        let parsed = StaticPolicyOptions::parse(&options(&[(FULL_PCPUS_ONLY, "true")])).unwrap();
        assert!(parsed.full_physical_cpus_only);
        let parsed = StaticPolicyOptions::parse(&options(&[(FULL_PCPUS_ONLY, "0")])).unwrap();
        assert!(!parsed.full_physical_cpus_only);
    }

    #[test]
    fn other_options_are_refused_by_name() {
        let err = StaticPolicyOptions::parse(&options(&[("align-by-socket", "true")])).unwrap_err();
        assert!(err.to_string().contains("\"align-by-socket\""), "{err}");
        let err = StaticPolicyOptions::parse(&options(&[("made-up", "true")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown CPU Manager Policy option: \"made-up\""
        );
        let err = StaticPolicyOptions::parse(&options(&[(FULL_PCPUS_ONLY, "yes")])).unwrap_err();
        assert!(matches!(err, OptionsError::BadValue { .. }), "{err}");
    }
}
