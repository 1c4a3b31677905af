//! `test-device-plugin RESOURCE COUNT DEVICE_PLUGINS_DIR [--registry DIR] [--preferred]
//! [--pre-start] [--env KEY=VALUE]...`: the test kit's device plugin as a process; it runs until
//! killed and prints each call it receives.

use kubelet_testkit::device_plugin::{DevicePluginConfig, TestDevicePlugin};
use std::path::PathBuf;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: test-device-plugin RESOURCE COUNT DEVICE_PLUGINS_DIR [--registry DIR] [--preferred] [--pre-start] [--env KEY=VALUE]..."
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(resource), Some(count), Some(dir)) = (args.next(), args.next(), args.next()) else {
        usage()
    };
    let count: usize = count.parse().unwrap_or_else(|_| usage());
    let mut cfg = DevicePluginConfig::new(&resource, count, &PathBuf::from(dir));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--registry" => cfg.registry_dir = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--preferred" => cfg.preferred = true,
            "--pre-start" => cfg.pre_start = true,
            "--env" => {
                let kv = args.next().unwrap_or_else(|| usage());
                let (k, v) = kv.split_once('=').unwrap_or_else(|| usage());
                cfg.envs.insert(k.into(), v.into());
            }
            _ => usage(),
        }
    }
    let plugin = TestDevicePlugin::start(cfg).unwrap_or_else(|e| {
        eprintln!("test-device-plugin: {e}");
        std::process::exit(1)
    });
    let mut printed = 0;
    loop {
        let calls = plugin.calls();
        for call in &calls[printed..] {
            println!("{call}");
        }
        printed = calls.len();
        std::thread::sleep(Duration::from_millis(200));
    }
}
