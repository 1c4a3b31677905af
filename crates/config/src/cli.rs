//! Command-line parsing with pflag's rules: `--flag=value`, `--flag value`, bare boolean
//! flags, shorthands (`-v=4`, `-v 4`, `-v4`, `-h`), `_` accepted for `-` in names, and no
//! positional arguments. Values are checked as they are read, like pflag does.

use crate::error::ConfigError;
use crate::flag_table::{self, FlagSpec, Role};
use crate::value::Value;

/// The flags given, each once, in order of first appearance. A repeated scalar flag keeps
/// its last value; repeated list, map and header flags accumulate, as in pflag.
pub(crate) type GivenFlags = Vec<(&'static FlagSpec, Value)>;

pub(crate) fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<GivenFlags, ConfigError> {
    let mut given: GivenFlags = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (spec, inline) = if arg == "--" {
            // pflag stops at "--"; whatever follows would be a positional argument.
            return match args.next() {
                Some(arg) => Err(ConfigError::UnexpectedArgument { arg }),
                None => Ok(given),
            };
        } else if let Some(body) = arg.strip_prefix("--") {
            if body.starts_with(['-', '=']) {
                return Err(ConfigError::BadFlagSyntax { arg });
            }
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (body, None),
            };
            let spec = flag_table::by_name(name).ok_or_else(|| ConfigError::UnknownFlag {
                flag: format!("--{name}"),
            })?;
            (spec, inline)
        } else if let Some(body) = arg.strip_prefix('-').filter(|body| !body.is_empty()) {
            let mut chars = body.chars();
            let shorthand = chars.next().unwrap_or_default();
            let rest = chars.as_str();
            let spec =
                flag_table::by_shorthand(shorthand).ok_or_else(|| ConfigError::UnknownFlag {
                    flag: format!("-{shorthand}"),
                })?;
            let inline = match rest.strip_prefix('=') {
                Some(value) => Some(value.to_string()),
                None if !rest.is_empty() => Some(rest.to_string()),
                None => None,
            };
            (spec, inline)
        } else {
            return Err(ConfigError::UnexpectedArgument { arg });
        };
        let text = match (inline, spec.value_when_bare()) {
            (Some(text), _) => text,
            (None, Some(bare)) => bare.to_string(),
            (None, None) => args.next().ok_or_else(|| ConfigError::MissingValue {
                flag: spec.name.to_string(),
            })?,
        };
        let value = read_value(spec, &text)?;
        match given.iter_mut().find(|(seen, _)| seen.name == spec.name) {
            Some((_, existing)) => existing.append(value),
            None => given.push((spec, value)),
        }
    }
    Ok(given)
}

fn read_value(spec: &FlagSpec, text: &str) -> Result<Value, ConfigError> {
    let bad = |reason: String| ConfigError::BadFlagValue {
        flag: spec.name.to_string(),
        value: text.to_string(),
        reason,
    };
    match spec.role {
        Role::Version => match text {
            "true" | "false" | "raw" => Ok(Value::Str(text.to_string())),
            _ => Err(bad("expected true, false or raw".into())),
        },
        _ => Value::from_text(spec.kind, text).map_err(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    fn values(list: &[&str]) -> Vec<(&'static str, Value)> {
        parse(args(list))
            .unwrap()
            .into_iter()
            .map(|(spec, value)| (spec.name, value))
            .collect()
    }

    #[test]
    fn long_forms() {
        assert_eq!(
            values(&[
                "--max-pods=10",
                "--cluster-domain",
                "cluster.local",
                "--runonce"
            ]),
            vec![
                ("max-pods", Value::Int(10)),
                ("cluster-domain", Value::Str("cluster.local".into())),
                ("runonce", Value::Bool(true)),
            ]
        );
        assert_eq!(
            values(&["--serialize-image-pulls=false"]),
            vec![("serialize-image-pulls", Value::Bool(false))]
        );
        assert_eq!(values(&["--max_pods=3"]), vec![("max-pods", Value::Int(3))]);
    }

    #[test]
    fn verbosity_forms() {
        for form in [
            &["-v=4"][..],
            &["-v", "4"],
            &["--v=4"],
            &["--v", "4"],
            &["-v4"],
        ] {
            assert_eq!(values(form), vec![("v", Value::Int(4))], "{form:?}");
        }
    }

    #[test]
    fn repeated_flags() {
        assert_eq!(
            values(&["--max-pods=1", "--max-pods=2"]),
            vec![("max-pods", Value::Int(2))]
        );
        assert_eq!(
            values(&[
                "--cluster-dns=10.0.0.10",
                "--cluster-dns=10.0.0.11,10.0.0.12"
            ]),
            vec![(
                "cluster-dns",
                Value::List(vec![
                    "10.0.0.10".into(),
                    "10.0.0.11".into(),
                    "10.0.0.12".into()
                ])
            )]
        );
        assert_eq!(
            values(&[
                "--manifest-url-header",
                "a:hello,b:again",
                "--manifest-url-header=b:beautiful"
            ]),
            vec![(
                "manifest-url-header",
                Value::Headers(vec![
                    ("a".into(), "hello".into()),
                    ("b".into(), "again".into()),
                    ("b".into(), "beautiful".into()),
                ])
            )]
        );
    }

    #[test]
    fn syntax_errors() {
        let error = |list: &[&str]| parse(args(list)).unwrap_err().to_string();
        assert_eq!(error(&["--no-such-flag=1"]), "unknown flag: --no-such-flag");
        assert_eq!(error(&["-x"]), "unknown flag: -x");
        assert_eq!(error(&["--max-pods"]), "flag needs an argument: --max-pods");
        assert_eq!(
            error(&["--max-pods=many"]),
            "invalid value \"many\" for flag --max-pods: \"many\" is not an integer"
        );
        assert_eq!(
            error(&["--runonce", "false"]),
            "unexpected argument \"false\": the kubelet takes only flags"
        );
        assert_eq!(error(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(
            error(&["--", "pods"]),
            "unexpected argument \"pods\": the kubelet takes only flags"
        );
        assert_eq!(
            error(&["--version=maybe"]),
            "invalid value \"maybe\" for flag --version: expected true, false or raw"
        );
        assert!(error(&["--sync-frequency=10"]).contains("--sync-frequency"));
    }
}
