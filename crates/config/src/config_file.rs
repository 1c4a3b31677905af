//! Reads a KubeletConfiguration file (YAML or JSON) given by --config.
//!
//! Every field is type-checked and unknown fields are refused. Implemented fields become
//! setting values; a known field we do not implement yet, when set to something other than
//! its upstream default, produces a warning instead of being dropped silently.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::error::ConfigError;
use crate::file_table::{API_VERSION, FIELDS, FileField, KIND};
use crate::paths::clean;
use crate::settings::Setting;
use crate::value::{Kind, Value};

/// What a config file sets, in file order.
#[derive(Debug, Default)]
pub(crate) struct FileSettings {
    pub values: Vec<(Setting, Value)>,
    pub warnings: Vec<String>,
}

pub(crate) fn load(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let document = decode(&text).map_err(|reason| ConfigError::Decode {
        path: path.to_path_buf(),
        reason,
    })?;
    let bad = |field: &str, reason: String| ConfigError::BadField {
        path: path.to_path_buf(),
        field: field.to_string(),
        reason,
    };
    let mut object = match document {
        Json::Object(object) => object,
        Json::Null => return Err(bad("(document)", "the file is empty".into())),
        other => {
            return Err(bad(
                "(document)",
                format!("expected an object, got {other}"),
            ));
        }
    };
    check_type_meta(path, &mut object)?;

    let mut settings = FileSettings::default();
    walk(path, &object, FIELDS, "", &mut settings)?;
    // Upstream resolves relative paths in the file against the file's directory.
    let base = path.parent().unwrap_or(Path::new("."));
    for (setting, value) in &mut settings.values {
        if let (
            Setting::StaticPodPath
            | Setting::ResolvConf
            | Setting::PodLogsDir
            | Setting::TlsCertFile
            | Setting::TlsPrivateKeyFile
            | Setting::ClientCaFile,
            Value::Str(p),
        ) = (*setting, &mut *value)
            && !p.is_empty()
            && Path::new(p.as_str()).is_relative()
        {
            *p = clean(&base.join(p.as_str()).to_string_lossy());
        }
    }
    Ok(settings)
}

/// JSON is tried first when the text looks like JSON, so its errors read as JSON errors.
fn decode(text: &str) -> Result<Json, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|error| format!("invalid JSON: {error}"))
    } else {
        serde_yaml_ng::from_str(text).map_err(|error| format!("invalid YAML: {error}"))
    }
}

fn check_type_meta(path: &Path, object: &mut Map<String, Json>) -> Result<(), ConfigError> {
    let describe = |value: Option<Json>| match value {
        None => "nothing".to_string(),
        Some(value) => value.to_string(),
    };
    match object.remove("apiVersion") {
        Some(Json::String(version)) if version == API_VERSION => {}
        other => {
            return Err(ConfigError::WrongApiVersion {
                path: path.to_path_buf(),
                found: describe(other),
            });
        }
    }
    match object.remove("kind") {
        Some(Json::String(kind)) if kind == KIND => Ok(()),
        other => Err(ConfigError::WrongKind {
            path: path.to_path_buf(),
            found: describe(other),
        }),
    }
}

fn walk(
    path: &Path,
    object: &Map<String, Json>,
    table: &'static [FileField],
    prefix: &str,
    settings: &mut FileSettings,
) -> Result<(), ConfigError> {
    for (name, json) in object {
        let qualified = format!("{prefix}{name}");
        // Upstream decodes v1beta1 leniently after a strict pass fails: an unknown field (a typo,
        // or a field of a newer release) is reported and ignored, never fatal.
        let Some(field) = table.iter().find(|field| field.name == name) else {
            settings.warnings.push(format!(
                "config file {}: unknown field {qualified:?}, ignoring it",
                path.display()
            ));
            continue;
        };
        if json.is_null() {
            continue;
        }
        if let (Kind::Object(nested), Json::Object(inner)) = (field.kind, json) {
            walk(path, inner, nested, &format!("{qualified}."), settings)?;
            continue;
        }
        let value = Value::from_json(field.kind, json).map_err(|reason| ConfigError::BadField {
            path: path.to_path_buf(),
            field: qualified.clone(),
            reason,
        })?;
        if !field.pointer && value.is_zero() {
            continue;
        }
        match field.setting {
            Some(setting) => settings.values.push((setting, value)),
            None if value.is_default(field.kind, field.default) => {}
            None => settings.warnings.push(format!(
                "config field {qualified} is not supported yet, ignoring it"
            )),
        }
    }
    Ok(())
}
