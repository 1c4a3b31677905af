//! Typed values of flags and config file fields, read from command-line text or from the
//! decoded file, and compared with upstream defaults.

use std::time::Duration;

use serde_json::Value as Json;

use crate::file_table::FileField;
use crate::units::{parse_bool, parse_duration, parse_int, parse_quantity};

/// The syntax of a flag or a config file field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Duration,
    Quantity,
    /// Comma separated on the command line, a list of strings in the file.
    List,
    /// `key=value,key2=value2` on the command line, a map of strings in the file.
    Map,
    /// `signal<amount,...` on the command line (eviction thresholds), a map of strings in the file.
    Thresholds,
    /// `key=value:Effect,...` on the command line, a list of Taint objects in the file; held as
    /// the command-line items.
    Taints,
    /// `key=true,key2=false` on the command line, a map of booleans in the file.
    BoolMap,
    /// `Key:Value,Key2:Value2` on the command line, a map of string lists in the file.
    Headers,
    /// logging.flushFrequency: a duration string or a number of nanoseconds.
    DurationOrNanos,
    /// A list of structured objects (taints, reservations, ...), only checked to be a list.
    Objects,
    /// A nested object whose fields are listed in the given table.
    Object(&'static [FileField]),
}

impl Kind {
    /// The type name shown in the help text, as pflag names it.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Bool => "",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Str | Kind::Objects | Kind::Object(_) => "string",
            Kind::Duration | Kind::DurationOrNanos => "duration",
            Kind::Quantity => "quantity",
            Kind::List => "strings",
            Kind::Map | Kind::Thresholds => "mapStringString",
            Kind::Taints => "strings",
            Kind::BoolMap => "mapStringBool",
            Kind::Headers => "colonSeparatedMultimapStringString",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Duration(Duration),
    Quantity(i128),
    List(Vec<String>),
    /// Pairs in the order given; a later key overrides an earlier one.
    Map(Vec<(String, String)>),
    /// Header name and value pairs in the order given; names may repeat.
    Headers(Vec<(String, String)>),
    /// A structured value we only check the shape of.
    Opaque(Json),
}

impl Value {
    /// Reads a value from command-line text.
    pub(crate) fn from_text(kind: Kind, text: &str) -> Result<Value, String> {
        Ok(match kind {
            Kind::Bool => Value::Bool(parse_bool(text)?),
            Kind::Int => Value::Int(parse_int(text)?),
            Kind::Float => Value::Float(
                text.parse()
                    .map_err(|_| format!("{text:?} is not a number"))?,
            ),
            Kind::Str | Kind::Objects | Kind::Object(_) => Value::Str(text.to_string()),
            Kind::Duration | Kind::DurationOrNanos => Value::Duration(parse_duration(text)?),
            Kind::Quantity => Value::Quantity(parse_quantity(text)?),
            Kind::List => Value::List(split_list(text)),
            Kind::Map => Value::Map(split_pairs(text, '=')?),
            Kind::Thresholds => Value::Map(split_pairs(text, '<')?),
            Kind::Taints => {
                let items = split_list(text);
                for item in &items {
                    parse_taint(item)?;
                }
                Value::List(items)
            }
            Kind::BoolMap => {
                let pairs = split_pairs(text, '=')?;
                for (key, value) in &pairs {
                    parse_bool(value).map_err(|reason| format!("{key}: {reason}"))?;
                }
                Value::Map(pairs)
            }
            Kind::Headers => Value::Headers(split_pairs(text, ':')?),
        })
    }

    /// Reads a value from the decoded config file, checking its type like Go's decoder would.
    pub(crate) fn from_json(kind: Kind, json: &Json) -> Result<Value, String> {
        let expected = |what: &str| format!("expected {what}, got {json}");
        Ok(match kind {
            Kind::Bool => Value::Bool(json.as_bool().ok_or_else(|| expected("a boolean"))?),
            Kind::Int => Value::Int(json.as_i64().ok_or_else(|| expected("an integer"))?),
            Kind::Float => Value::Float(json.as_f64().ok_or_else(|| expected("a number"))?),
            Kind::Str => Value::Str(json.as_str().ok_or_else(|| expected("a string"))?.into()),
            Kind::Duration => {
                let text = json.as_str().ok_or_else(|| expected("a duration string"))?;
                Value::Duration(parse_duration(text)?)
            }
            Kind::DurationOrNanos => match json.as_u64() {
                Some(nanos) => Value::Duration(Duration::from_nanos(nanos)),
                None => {
                    let text = json.as_str().ok_or_else(|| expected("a duration"))?;
                    Value::Duration(parse_duration(text)?)
                }
            },
            Kind::Quantity => match (json.as_str(), json.as_i64()) {
                (Some(text), _) => Value::Quantity(parse_quantity(text)?),
                (None, Some(number)) => Value::Quantity(i128::from(number)),
                (None, None) => return Err(expected("a quantity")),
            },
            Kind::List => Value::List(strings(json).ok_or_else(|| expected("a list of strings"))?),
            Kind::Taints => {
                let items = json
                    .as_array()
                    .ok_or_else(|| expected("a list of taints"))?;
                let mut taints = Vec::with_capacity(items.len());
                for item in items {
                    let field = |name: &str| item.get(name).and_then(Json::as_str).unwrap_or("");
                    let (key, value, effect) = (field("key"), field("value"), field("effect"));
                    if key.is_empty() || effect.is_empty() {
                        return Err(format!("a taint needs a key and an effect, got {item}"));
                    }
                    taints.push(if value.is_empty() {
                        format!("{key}:{effect}")
                    } else {
                        format!("{key}={value}:{effect}")
                    });
                }
                Value::List(taints)
            }
            Kind::Map | Kind::Thresholds => {
                let object = json.as_object().ok_or_else(|| expected("a map"))?;
                let mut pairs = Vec::with_capacity(object.len());
                for (key, value) in object {
                    let value = value
                        .as_str()
                        .ok_or_else(|| format!("{key}: expected a string, got {value}"))?;
                    pairs.push((key.clone(), value.to_string()));
                }
                Value::Map(pairs)
            }
            Kind::BoolMap => {
                let object = json.as_object().ok_or_else(|| expected("a map"))?;
                let mut pairs = Vec::with_capacity(object.len());
                for (key, value) in object {
                    let value = value
                        .as_bool()
                        .ok_or_else(|| format!("{key}: expected a boolean, got {value}"))?;
                    pairs.push((key.clone(), value.to_string()));
                }
                Value::Map(pairs)
            }
            Kind::Headers => {
                let object = json.as_object().ok_or_else(|| expected("a map"))?;
                let mut pairs = Vec::new();
                for (name, values) in object {
                    let values = strings(values).ok_or_else(|| {
                        format!("{name}: expected a list of strings, got {values}")
                    })?;
                    pairs.extend(values.into_iter().map(|value| (name.clone(), value)));
                }
                Value::Headers(pairs)
            }
            Kind::Objects => {
                if !json.is_array() {
                    return Err(expected("a list"));
                }
                Value::Opaque(json.clone())
            }
            Kind::Object(_) => {
                if !json.is_object() {
                    return Err(expected("an object"));
                }
                Value::Opaque(json.clone())
            }
        })
    }

    /// Whether this is Go's zero value for the type: what an omitted field decodes to.
    pub(crate) fn is_zero(&self) -> bool {
        match self {
            Value::Bool(value) => !value,
            Value::Int(value) => *value == 0,
            Value::Float(value) => *value == 0.0,
            Value::Str(value) => value.is_empty(),
            Value::Duration(value) => value.is_zero(),
            Value::Quantity(value) => *value == 0,
            Value::List(items) => items.is_empty(),
            Value::Map(pairs) | Value::Headers(pairs) => pairs.is_empty(),
            Value::Opaque(json) => match json {
                Json::Null => true,
                Json::Array(items) => items.is_empty(),
                Json::Object(fields) => fields.is_empty(),
                _ => false,
            },
        }
    }

    /// Whether this value equals the upstream default, given as command-line text
    /// (an empty default means Go's zero value).
    pub(crate) fn is_default(&self, kind: Kind, default: &str) -> bool {
        if default.is_empty() {
            return self.is_zero();
        }
        match (Value::from_text(kind, default), self) {
            (Ok(Value::Map(expected)), Value::Map(actual)) => {
                effective_map(&expected) == effective_map(actual)
            }
            (Ok(expected), actual) => expected == *actual,
            (Err(_), _) => false,
        }
    }

    /// Appends a repeated flag's value, the way pflag's list and map flags accumulate.
    pub(crate) fn append(&mut self, more: Value) {
        match (self, more) {
            (Value::List(items), Value::List(more)) => items.extend(more),
            (Value::Map(pairs), Value::Map(more))
            | (Value::Headers(pairs), Value::Headers(more)) => pairs.extend(more),
            (this, more) => *this = more,
        }
    }
}

/// The map a list of pairs denotes: later keys override earlier ones.
pub(crate) fn effective_map(pairs: &[(String, String)]) -> std::collections::BTreeMap<&str, &str> {
    pairs
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

/// Splits a taint `key[=value]:Effect` into its parts, checking the effect is one the API knows.
pub(crate) fn parse_taint(text: &str) -> Result<(String, String, String), String> {
    let (key_value, effect) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid taint {text:?}: expected key=value:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "invalid taint {text:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
    if key.is_empty() {
        return Err(format!("invalid taint {text:?}: the key is empty"));
    }
    Ok((key.into(), value.into(), effect.into()))
}

fn strings(json: &Json) -> Option<Vec<String>> {
    json.as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect()
}

fn split_list(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',')
        .map(|item| item.trim().to_string())
        .collect()
}

/// Splits `k1<sep>v1,k2<sep>v2`; keys and values are trimmed, empty items skipped.
fn split_pairs(text: &str, separator: char) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in text.split(',').filter(|item| !item.trim().is_empty()) {
        let (key, value) = item
            .split_once(separator)
            .ok_or_else(|| format!("malformed pair {item:?}, expected key{separator}value"))?;
        pairs.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_lists_maps_and_headers() {
        assert_eq!(
            Value::from_text(Kind::List, "10.0.0.10,10.0.0.11"),
            Ok(Value::List(vec!["10.0.0.10".into(), "10.0.0.11".into()]))
        );
        assert_eq!(Value::from_text(Kind::List, ""), Ok(Value::List(vec![])));
        assert_eq!(
            Value::from_text(Kind::Map, "a=1, b = 2"),
            Ok(Value::Map(vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into())
            ]))
        );
        assert_eq!(
            Value::from_text(Kind::Headers, "a:hello,b:x:y"),
            Ok(Value::Headers(vec![
                ("a".into(), "hello".into()),
                ("b".into(), "x:y".into())
            ]))
        );
        assert!(Value::from_text(Kind::Headers, "novalue").is_err());
        assert!(Value::from_text(Kind::Map, "a").is_err());
        assert!(Value::from_text(Kind::BoolMap, "Foo=maybe").is_err());
    }

    #[test]
    fn defaults_compare_by_meaning() {
        let minute = Value::from_text(Kind::Duration, "60s").unwrap();
        assert!(minute.is_default(Kind::Duration, "1m0s"));
        assert!(Value::Int(0).is_default(Kind::Int, ""));
        assert!(!Value::Int(1).is_default(Kind::Int, ""));
        let map = Value::Map(vec![("b".into(), "2".into()), ("a".into(), "1".into())]);
        assert!(map.is_default(Kind::Map, "a=1,b=2"));
    }

    #[test]
    fn file_values_are_type_checked() {
        let json: Json = serde_json::json!("abc");
        assert!(Value::from_json(Kind::Int, &json).is_err());
        assert_eq!(
            Value::from_json(Kind::DurationOrNanos, &serde_json::json!(5_000_000_000u64)),
            Ok(Value::Duration(Duration::from_secs(5)))
        );
        assert_eq!(
            Value::from_json(Kind::Headers, &serde_json::json!({"A": ["1", "2"]})),
            Ok(Value::Headers(vec![
                ("A".into(), "1".into()),
                ("A".into(), "2".into())
            ]))
        );
        assert!(Value::from_json(Kind::Headers, &serde_json::json!({"A": "1"})).is_err());
    }
}
