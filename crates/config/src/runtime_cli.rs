//! `kubelet runtime`: the built-in container runtime served alone on a CRI socket, and
//! `kubelet runtime import`, which adds OCI image archives to its image store. Flags take
//! `--flag=value` or `--flag value`; repeated flags keep the last value, except --cni-bin-dir,
//! whose directories add up.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

use crate::Command;
use crate::build::cgroup_driver;
use crate::builtin::{
    BuiltinRuntimeConfig, DEFAULT_CNI_BIN_DIRS, DEFAULT_CNI_CONF_DIR, DEFAULT_ROOT, DEFAULT_STATE,
    DEFAULT_STREAMING_ADDRESS, DEFAULT_STREAMING_IDLE_TIMEOUT, streaming_address,
};
use crate::error::ConfigError;
use crate::host::Host;
use crate::kubelet_config::{CgroupDriver, LogFormat};

/// What `kubelet runtime ...` asks for.
#[derive(Debug)]
pub enum RuntimeCommand {
    Serve(RuntimeServe),
    Import(RuntimeImport),
}

/// `kubelet runtime [flags]`: serve CRI on `socket` until SIGTERM or SIGINT.
#[derive(Debug)]
pub struct RuntimeServe {
    pub socket: PathBuf,
    pub runtime: BuiltinRuntimeConfig,
    pub cgroup_driver: CgroupDriver,
    pub logging: RuntimeLogging,
}

/// `kubelet runtime import [--root DIR] [--state DIR] ARCHIVE...`: the runtime is opened on its
/// directories (so it holds its image store) to import, and closed again.
#[derive(Debug)]
pub struct RuntimeImport {
    pub root: PathBuf,
    pub state: PathBuf,
    pub archives: Vec<PathBuf>,
    pub logging: RuntimeLogging,
}

/// -v and --logging-format, as the kubelet takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeLogging {
    pub verbosity: u8,
    pub format: LogFormat,
}

struct Flag {
    name: &'static str,
    value: &'static str,
    /// The default as the help text shows it; empty for none.
    default: &'static str,
    usage: &'static str,
    /// Whether `runtime import` takes it too.
    import: bool,
}

const LISTEN_DEFAULT: &str = "unix://STATE/cri.sock";

static FLAGS: &[Flag] = &[
    Flag {
        name: "listen",
        value: "unix:///PATH",
        default: LISTEN_DEFAULT,
        usage: "CRI socket to serve (crictl --runtime-endpoint, the kubelet's --container-runtime-endpoint)",
        import: false,
    },
    Flag {
        name: "root",
        value: "DIR",
        default: DEFAULT_ROOT,
        usage: "Persistent files: images, sandbox and container records, writable layers",
        import: true,
    },
    Flag {
        name: "state",
        value: "DIR",
        default: DEFAULT_STATE,
        usage: "Files gone at reboot: container monitors, pinned namespaces, OCI runtime state",
        import: true,
    },
    Flag {
        name: "cni-conf-dir",
        value: "DIR",
        default: DEFAULT_CNI_CONF_DIR,
        usage: "The first CNI conflist here sets up pod networks",
        import: false,
    },
    Flag {
        name: "cni-bin-dir",
        value: "DIR[,DIR]",
        default: DEFAULT_CNI_BIN_DIRS,
        usage: "Directories of CNI plugin binaries, searched in order; repeatable",
        import: false,
    },
    Flag {
        name: "registry-config",
        value: "DIR",
        default: "",
        usage: "Registry mirrors and insecure hosts, in containerd's certs.d layout (HOST/hosts.toml)",
        import: false,
    },
    Flag {
        name: "streaming-address",
        value: "IP:PORT",
        default: DEFAULT_STREAMING_ADDRESS,
        usage: "Where the streaming server behind exec, attach and port-forward listens (port 0: any free one)",
        import: false,
    },
    Flag {
        name: "v",
        value: "N",
        default: "0",
        usage: "Log verbosity as the kubelet's -v: 0 info, warnings and errors; 2 adds debug events; 4 and up add trace events",
        import: true,
    },
    Flag {
        name: "logging-format",
        value: "text|json",
        default: "text",
        usage: "Log format: text (klog's) or json (upstream's component-base schema)",
        import: true,
    },
    Flag {
        name: "cgroup-driver",
        value: "cgroupfs|systemd",
        default: "cgroupfs",
        usage: "How containers are placed in cgroups; as the kubelet's --cgroup-driver",
        import: false,
    },
];

pub(crate) fn parse<I: Iterator<Item = String>>(
    args: I,
    host: &dyn Host,
) -> Result<Command, ConfigError> {
    let mut args = args.peekable();
    let import = args.next_if(|arg| arg == "import").is_some();
    let mut given: HashMap<&'static str, Vec<String>> = HashMap::new();
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help(help(import)));
        }
        if arg == "--" {
            positional.extend(args.by_ref());
            break;
        }
        // -v's shorthand forms, as pflag takes them: -v N, -v=N, -vN.
        let arg = match arg.strip_prefix("-v") {
            Some("") => "--v".to_string(),
            Some(rest) if rest.starts_with('=') => format!("--v{rest}"),
            Some(rest) if rest.bytes().all(|b| b.is_ascii_digit()) => format!("--v={rest}"),
            _ => arg,
        };
        let Some(body) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(ConfigError::UnknownFlag { flag: arg });
            }
            positional.push(arg);
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let flag = FLAGS
            .iter()
            .find(|flag| flag.name == name && (flag.import || !import))
            .ok_or_else(|| ConfigError::UnknownFlag {
                flag: format!("--{name}"),
            })?;
        let value = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| ConfigError::MissingValue {
                flag: flag.name.to_string(),
            })?,
        };
        given.entry(flag.name).or_default().push(value);
    }
    let last = |name: &str, default: &str| {
        given
            .get(name)
            .and_then(|values| values.last().cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let root = last("root", DEFAULT_ROOT);
    let logging = logging(&last("v", "0"), &last("logging-format", "text"))?;
    let state = last("state", DEFAULT_STATE);
    if import {
        if positional.is_empty() {
            return Err(ConfigError::NoArchives);
        }
        return Ok(Command::Runtime(RuntimeCommand::Import(RuntimeImport {
            root: PathBuf::from(root),
            state: PathBuf::from(state),
            archives: positional.into_iter().map(PathBuf::from).collect(),
            logging,
        })));
    }
    if let Some(arg) = positional.into_iter().next() {
        return Err(ConfigError::RuntimeArgument { arg });
    }
    let listen = last("listen", &format!("unix://{state}/cri.sock"));
    let cni_bin_dirs: Vec<String> = match given.get("cni-bin-dir") {
        Some(values) => values.iter().flat_map(|v| split_dirs(v)).collect(),
        None => split_dirs(DEFAULT_CNI_BIN_DIRS),
    };
    Ok(Command::Runtime(RuntimeCommand::Serve(RuntimeServe {
        socket: socket_path(&listen)?,
        cgroup_driver: cgroup_driver(&last("cgroup-driver", "cgroupfs"), host)?,
        logging,
        runtime: BuiltinRuntimeConfig::new(
            root,
            state,
            last("cni-conf-dir", DEFAULT_CNI_CONF_DIR),
            &cni_bin_dirs,
            last("registry-config", ""),
            streaming_address(&last("streaming-address", DEFAULT_STREAMING_ADDRESS))?,
            DEFAULT_STREAMING_IDLE_TIMEOUT,
        ),
    })))
}

fn logging(verbosity: &str, format: &str) -> Result<RuntimeLogging, ConfigError> {
    let bad = |flag: &str, value: &str, reason: &str| ConfigError::BadFlagValue {
        flag: flag.into(),
        value: value.into(),
        reason: reason.into(),
    };
    Ok(RuntimeLogging {
        verbosity: verbosity
            .parse()
            .map_err(|_| bad("v", verbosity, "a number from 0 to 255"))?,
        format: match format {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(bad("logging-format", format, "text or json")),
        },
    })
}

fn split_dirs(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|dir| !dir.is_empty())
        .map(str::to_string)
        .collect()
}

/// `unix:///path` or a bare absolute path, as the CRI clients take them.
fn socket_path(listen: &str) -> Result<PathBuf, ConfigError> {
    let path = listen.strip_prefix("unix://").unwrap_or(listen);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(ConfigError::BadFlagValue {
            flag: "listen".into(),
            value: listen.into(),
            reason: "only unix sockets are served: use unix:///absolute/path".into(),
        })
    }
}

fn help(import: bool) -> String {
    let mut text = if import {
        String::from(
            "Imports OCI image archives into the built-in runtime's image store and prints each\n\
             image's name and id, like `ctr images import`. The image store belongs to one runtime\n\
             at a time: stop the runtime (kubelet runtime, or a kubelet running it embedded) first;\n\
             its containers keep running, and it lists the images when it starts again.\n\n\
             Usage:\n  kubelet runtime import [flags] ARCHIVE...\n\nFlags:\n",
        )
    } else {
        String::from(
            "Serves the kubelet-rs built-in container runtime alone: CRI v1 (RuntimeService and\n\
             ImageService) on a unix socket until SIGTERM or SIGINT, for crictl, critest or another\n\
             kubelet, as containerd serves it. Containers outlive the runtime: stopping it stops no\n\
             container, and the next start finds them again.\n\n\
             Usage:\n  kubelet runtime [flags]\n  kubelet runtime import [--root DIR] [--state DIR] ARCHIVE...\n\nFlags:\n",
        )
    };
    let rows: Vec<(String, &Flag)> = FLAGS
        .iter()
        .filter(|flag| flag.import || !import)
        .map(|flag| {
            let short = if flag.name == "v" { "  -v," } else { "     " };
            (format!("{short} --{} {}", flag.name, flag.value), flag)
        })
        .collect();
    let width = rows.iter().map(|(left, _)| left.len()).max().unwrap_or(0);
    for (left, flag) in rows {
        let _ = write!(text, "{left:width$}   {}", flag.usage);
        if !flag.default.is_empty() {
            let _ = write!(text, " (default {})", flag.default);
        }
        text.push('\n');
    }
    let _ = writeln!(
        text,
        "  -h, --help{:pad$}   Print this help and exit",
        "",
        pad = width.saturating_sub(12)
    );
    text
}

#[cfg(test)]
mod tests;
