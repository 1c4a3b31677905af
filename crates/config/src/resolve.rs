//! Upstream's precedence: defaults, then the config file, then flags on top.

use std::path::Path;

use crate::Command;
use crate::build::build;
use crate::cli::{self, GivenFlags};
use crate::config_file;
use crate::error::ConfigError;
use crate::file_table::{FIELDS, FileField};
use crate::flag_table::{Deprecation, FLAGS, Role};
use crate::host::Host;
use crate::settings::{Setting, Settings};
use crate::value::{Kind, Value};
use crate::{help, version};

pub(crate) fn run<I: IntoIterator<Item = String>>(
    args: I,
    host: &dyn Host,
) -> Result<Command, ConfigError> {
    let flags = cli::parse(args)?;
    for (flag, value) in &flags {
        match (flag.role, value) {
            (Role::Help, Value::Bool(true)) => return Ok(Command::Help(help::render())),
            (Role::Version, Value::Str(mode)) if mode != "false" => {
                return Ok(Command::Version(version::render(mode == "raw")));
            }
            _ => {}
        }
    }
    let config_path = flags
        .iter()
        .find_map(|(flag, value)| match (flag.role, value) {
            (Role::Implemented(Setting::Config), Value::Str(path)) if !path.is_empty() => {
                Some(path.clone())
            }
            _ => None,
        });
    let mut warnings = check_flags(&flags, config_path.is_some())?;

    let mut settings = defaults()?;
    if let Some(path) = &config_path {
        let file = config_file::load(Path::new(path))?;
        warnings.extend(file.warnings);
        for (setting, value) in file.values {
            apply(&mut settings, setting, value)?;
        }
    }
    for (flag, value) in flags {
        if let Role::Implemented(setting) = flag.role {
            apply(&mut settings, setting, value)?;
        }
    }
    build(settings, warnings, host).map(|config| Command::Run(Box::new(config)))
}

/// Refuses flags we do not implement unless they carry their default value, and collects
/// upstream's deprecation warnings for the flags given.
fn check_flags(flags: &GivenFlags, with_config_file: bool) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    for (flag, value) in flags {
        if matches!(flag.role, Role::NotYet)
            && !value.is_default(flag.kind, flag.effective_default(with_config_file))
        {
            return Err(ConfigError::UnsupportedFlag {
                flag: flag.name.to_string(),
            });
        }
        if let Role::NoEffect(reason) = flag.role {
            warnings.push(format!("flag --{} has no effect: {reason}", flag.name));
        }
        match flag.deprecation {
            Deprecation::No => {}
            Deprecation::UseConfigFile => warnings.push(format!(
                "flag --{} is deprecated: set it in the config file given by --config",
                flag.name
            )),
            Deprecation::Other(reason) => {
                warnings.push(format!("flag --{} is deprecated: {reason}", flag.name))
            }
        }
    }
    Ok(warnings)
}

/// Upstream defaults of the implemented settings, taken from the two tables.
fn defaults() -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    let mut pending: Vec<(Setting, Kind, &str)> = Vec::new();
    collect_field_defaults(FIELDS, &mut pending);
    for flag in FLAGS {
        // A default that depends on the config file is applied when the result is built.
        if let (Role::Implemented(setting), None) = (flag.role, flag.config_default) {
            pending.push((setting, flag.kind, flag.default));
        }
    }
    for (setting, kind, default) in pending {
        if !default.is_empty() {
            let value = Value::from_text(kind, default).map_err(|reason| ConfigError::Invalid {
                setting: format!("default of {setting:?}"),
                reason,
            })?;
            apply(&mut settings, setting, value)?;
        }
    }
    Ok(settings)
}

fn collect_field_defaults(fields: &'static [FileField], pending: &mut Vec<(Setting, Kind, &str)>) {
    for field in fields {
        if let Some(setting) = field.setting {
            pending.push((setting, field.kind, field.default));
        }
        if let Kind::Object(nested) = field.kind {
            collect_field_defaults(nested, pending);
        }
    }
}

fn apply(settings: &mut Settings, setting: Setting, value: Value) -> Result<(), ConfigError> {
    settings
        .set(setting, value)
        .map_err(|reason| ConfigError::Invalid {
            setting: format!("{setting:?}"),
            reason,
        })
}
