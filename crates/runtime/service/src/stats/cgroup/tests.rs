use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn working_set_is_usage_minus_inactive_file() {
    assert_eq!(working_set(100, Some(30)), 70);
    assert_eq!(working_set(100, None), 100);
    assert_eq!(working_set(10, Some(30)), 0);
}

#[test]
fn v1_figures_from_the_controller_hierarchies() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(
        &r.join("cpuacct/kubepods/pod1/c1"),
        "cpuacct.usage",
        "123456789\n",
    );
    let memory = r.join("memory/kubepods/pod1/c1");
    write(&memory, "memory.usage_in_bytes", "10000\n");
    write(&memory, "memory.limit_in_bytes", "9223372036854771712\n");
    write(
        &memory,
        "memory.stat",
        "cache 1\nrss 2\ninactive_file 5\ntotal_rss 4000\ntotal_inactive_file 3000\ntotal_pgfault 77\ntotal_pgmajfault 3\n",
    );
    write(&r.join("pids/kubepods/pod1/c1"), "pids.current", "4\n");
    let cgroups = Cgroups::new(r, CgroupDriver::Cgroupfs);
    let sample = cgroups.sample("/kubepods/pod1/c1");
    assert_eq!(
        sample,
        Sample {
            cpu_usage_ns: Some(123456789),
            memory: Some(Memory {
                usage: 10000,
                working_set: 7000,
                available: 0,
                rss: 4000,
                page_faults: 77,
                major_page_faults: 3,
            }),
            pids: Some(4),
        }
    );
    write(&memory, "memory.limit_in_bytes", "65536\n");
    let limited = cgroups.sample("/kubepods/pod1/c1").memory.unwrap();
    assert_eq!(limited.available, 65536 - 7000);
    assert_eq!(cgroups.sample("/kubepods/gone"), Sample::default());
    assert_eq!(cgroups.sample(""), Sample::default());
}

#[test]
fn v2_figures_from_the_unified_hierarchy() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(r, "cgroup.controllers", "cpu memory pids\n");
    let dir = r.join("kubepods.slice/kubepods-pod1.slice/kubelet-rs-c1.scope");
    write(
        &dir,
        "cpu.stat",
        "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
    );
    write(&dir, "memory.current", "8192\n");
    write(&dir, "memory.max", "max\n");
    write(
        &dir,
        "memory.stat",
        "anon 4096\nfile 4096\ninactive_file 1024\npgfault 12\npgmajfault 1\n",
    );
    write(&dir, "pids.current", "2\n");
    let cgroups = Cgroups::new(r, CgroupDriver::Systemd);
    let sample = cgroups.sample("kubepods-pod1.slice:kubelet-rs:c1");
    assert_eq!(sample.cpu_usage_ns, Some(2_500_000));
    assert_eq!(
        sample.memory,
        Some(Memory {
            usage: 8192,
            working_set: 7168,
            available: 0,
            rss: 4096,
            page_faults: 12,
            major_page_faults: 1,
        })
    );
    assert_eq!(sample.pids, Some(2));
    write(&dir, "memory.max", "10000\n");
    assert_eq!(
        cgroups
            .sample("kubepods-pod1.slice:kubelet-rs:c1")
            .memory
            .unwrap()
            .available,
        10000 - 7168
    );
}

#[test]
fn systemd_paths_expand_their_slices() {
    let fs = |p| fs_path(CgroupDriver::Systemd, p);
    assert_eq!(
        fs("kubepods-burstable-pod1.slice:kubelet-rs:c1").as_deref(),
        Some(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/kubelet-rs-c1.scope"
        )
    );
    assert_eq!(
        fs(":kubelet-rs:c1").as_deref(),
        Some("/system.slice/kubelet-rs-c1.scope")
    );
    assert_eq!(
        fs("kubepods-besteffort.slice").as_deref(),
        Some("/kubepods.slice/kubepods-besteffort.slice")
    );
    assert_eq!(fs("-.slice").as_deref(), Some("/"));
    assert_eq!(fs("a--b.slice:p:c"), None);
    assert_eq!(
        fs_path(CgroupDriver::Cgroupfs, "/kubepods/pod1").as_deref(),
        Some("/kubepods/pod1")
    );
}
