//! Network configuration lists, loaded and turned into per-plugin netconf as libcni does.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One network configuration list: its name, version and the plugins' raw configurations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NetworkList {
    pub name: String,
    pub cni_version: String,
    /// Each plugin's configuration as written, with at least a string `type`.
    pub plugins: Vec<Map<String, Value>>,
    /// The file it came from, for messages.
    pub source: PathBuf,
}

impl NetworkList {
    pub fn plugin_type(&self, index: usize) -> &str {
        self.plugins[index]["type"].as_str().unwrap_or_default()
    }

    /// The netconf plugin `index` reads on stdin: its own configuration with the list's name
    /// and cniVersion, the previous result and the capability args it declares as
    /// runtimeConfig (libcni's buildOneConfig and injectRuntimeConfig).
    pub fn netconf(
        &self,
        index: usize,
        prev_result: Option<&Value>,
        capability_args: &Map<String, Value>,
    ) -> Value {
        let mut conf = self.plugins[index].clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        let runtime_config: Map<String, Value> = conf
            .get("capabilities")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, enabled)| enabled.as_bool() == Some(true))
            .filter_map(|(cap, _)| Some((cap.clone(), capability_args.get(cap)?.clone())))
            .collect();
        if !runtime_config.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        Value::Object(conf)
    }
}

/// The first configuration in `dir` by file name: a `.conflist`, or a `.conf`/`.json` holding a
/// single plugin, wrapped as a list of one (go-cni's loadFromConfDir with max 1). The error is
/// the reason NetworkReady is false.
pub(crate) fn load_first(dir: &Path) -> Result<NetworkList, String> {
    let mut files = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| format!("failed to read {}: {e}", dir.display()))?;
                let path = entry.path();
                let is_conf = matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("conf" | "conflist" | "json")
                );
                if is_conf && !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    files.push(path);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("failed to read {}: {e}", dir.display())),
    }
    files.sort();
    let Some(file) = files.into_iter().next() else {
        return Err(format!("no network config found in {}", dir.display()));
    };
    let text = std::fs::read(&file)
        .map_err(|e| format!("failed to read CNI config file {}: {e}", file.display()))?;
    let list = if file.extension().is_some_and(|e| e == "conflist") {
        parse_list(&text, &file)
    } else {
        parse_single(&text, &file)
    };
    list.map_err(|e| format!("failed to load CNI config file {}: {e}", file.display()))
}

fn parse_list(text: &[u8], file: &Path) -> Result<NetworkList, String> {
    let raw: Map<String, Value> = serde_json::from_slice(text)
        .map_err(|e| format!("error parsing configuration list: {e}"))?;
    let name = string_field(&raw, "name")?.ok_or("error parsing configuration list: no name")?;
    let cni_version = string_field(&raw, "cniVersion")?.unwrap_or_default();
    let plugins = match raw.get("plugins") {
        Some(Value::Array(plugins)) => plugins,
        Some(_) => return Err("error parsing configuration list: invalid 'plugins' type".into()),
        None => return Err("error parsing configuration list: no 'plugins' key".into()),
    };
    if plugins.is_empty() {
        return Err("error parsing configuration list: no plugins in list".into());
    }
    let plugins = plugins
        .iter()
        .enumerate()
        .map(|(i, plugin)| match plugin {
            Value::Object(plugin) => check_plugin(plugin.clone()),
            _ => Err(format!("plugin {i} is not a JSON object")),
        })
        .collect::<Result<_, _>>()?;
    Ok(NetworkList {
        name,
        cni_version,
        plugins,
        source: file.to_path_buf(),
    })
}

fn parse_single(text: &[u8], file: &Path) -> Result<NetworkList, String> {
    let raw: Map<String, Value> =
        serde_json::from_slice(text).map_err(|e| format!("error parsing configuration: {e}"))?;
    let name = string_field(&raw, "name")?.unwrap_or_default();
    let cni_version = string_field(&raw, "cniVersion")?.unwrap_or_default();
    Ok(NetworkList {
        name,
        cni_version,
        plugins: vec![check_plugin(raw)?],
        source: file.to_path_buf(),
    })
}

/// A plugin needs a `type`, which names a binary in the plugin dirs (so no path in it).
fn check_plugin(plugin: Map<String, Value>) -> Result<Map<String, Value>, String> {
    match string_field(&plugin, "type")? {
        None => Err("error parsing configuration: missing 'type'".into()),
        Some(t) if t.is_empty() || t.contains('/') || t == ".." => {
            Err(format!("invalid plugin type {t:?}"))
        }
        Some(_) => Ok(plugin),
    }
}

fn string_field(raw: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match raw.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!(
            "error parsing configuration: '{key}' is not a string"
        )),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
