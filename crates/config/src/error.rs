use std::path::PathBuf;

/// Why the kubelet's configuration was refused. Each message names the flag, field or file
/// at fault and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown flag: {flag}")]
    UnknownFlag { flag: String },
    #[error("bad flag syntax: {arg}")]
    BadFlagSyntax { arg: String },
    #[error("flag needs an argument: --{flag}")]
    MissingValue { flag: String },
    #[error("invalid value {value:?} for flag --{flag}: {reason}")]
    BadFlagValue {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("flag --{flag} is not supported yet")]
    UnsupportedFlag { flag: String },
    #[error("unexpected argument {arg:?}: the kubelet takes only flags")]
    UnexpectedArgument { arg: String },
    #[error(
        "unexpected argument {arg:?}: kubelet runtime takes only flags (see kubelet runtime --help)"
    )]
    RuntimeArgument { arg: String },
    #[error(
        "kubelet runtime import: no archive given (kubelet runtime import [--root DIR] [--state DIR] ARCHIVE...)"
    )]
    NoArchives,

    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error(
        "config file {path}: apiVersion must be \"kubelet.config.k8s.io/v1beta1\", got {found}"
    )]
    WrongApiVersion { path: PathBuf, found: String },
    #[error("config file {path}: kind must be \"KubeletConfiguration\", got {found}")]
    WrongKind { path: PathBuf, found: String },
    #[error("config file {path}: field {field}: {reason}")]
    BadField {
        path: PathBuf,
        field: String,
        reason: String,
    },

    /// A value that parsed but is out of range; `setting` reads like `maxPods (--max-pods)`.
    #[error("invalid configuration: {setting} {reason}")]
    Invalid { setting: String, reason: String },
    #[error(
        "invalid configuration: cgroupDriver (--cgroup-driver) is \"systemd\" but systemd is not running ({marker} does not exist); use \"cgroupfs\""
    )]
    SystemdNotRunning { marker: PathBuf },
    #[error("cannot determine the node name: {reason}")]
    NodeName { reason: String },
}
