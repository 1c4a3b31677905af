//! Small accessors for object metadata held as JSON.

use serde_json::{Map, Value};

/// The value at a dotted path such as "spec.nodeName", if every step is an object field.
pub fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, key| v.get(key))
}

pub fn str_at<'a>(obj: &'a Value, path: &str) -> Option<&'a str> {
    at(obj, path).and_then(Value::as_str)
}

pub fn name(obj: &Value) -> &str {
    str_at(obj, "metadata.name").unwrap_or_default()
}

pub fn namespace(obj: &Value) -> &str {
    str_at(obj, "metadata.namespace").unwrap_or_default()
}

/// The metadata map, created when missing so callers can fill it in.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// RFC 3339 with second precision, the form metav1.Time takes on the wire.
pub fn timestamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

/// A field selector's view of a value: strings as they are, booleans and numbers printed.
pub fn field_string(obj: &Value, path: &str) -> String {
    match at(obj, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}
