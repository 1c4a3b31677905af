//! The figures of a run: summaries per subject and runtime (sessions of all rounds merged), the
//! JSON file, and the tables with ratios to the (first runtime's) floor and to the first kubelet.

use crate::proc_sampler::SteadyPoint;
use crate::results::{FLOOR, SessionResult};
use crate::stats::Summary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// The bench's command line, as run.
    pub command: Vec<String>,
    pub settings: Settings,
    pub kubelets: Vec<KubeletInfo>,
    pub summary: Vec<SubjectSummary>,
    pub sessions: Vec<SessionResult>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_mib: u64,
    pub kernel: String,
    /// Each runtime's name, and its CRI runtime name and version.
    pub runtimes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub scenario: String,
    pub runtimes: Vec<String>,
    pub pods: usize,
    pub repeat: usize,
    pub rounds: usize,
    pub window_s: u64,
    pub poll_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct KubeletInfo {
    pub label: String,
    pub binary: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectSummary {
    /// "floor", or the kubelet's label.
    pub subject: String,
    pub runtime: String,
    /// How tables and plots name it: the subject, or SUBJECT@RUNTIME when the run measured
    /// more than one runtime.
    pub label: String,
    pub start_single: Option<Summary>,
    pub start_burst: Option<Summary>,
    /// Mean over rounds of the time from the first write to the last pod running.
    pub burst_last_pod_ms: Option<f64>,
    pub reaction_restart: Option<Summary>,
    pub reaction_reported: Option<Summary>,
    /// Mean over rounds, one point per pod count, fewest pods first.
    pub steady: Vec<SteadyPoint>,
    pub per_pod: Option<PerPod>,
    /// Mean over rounds.
    pub churn_ms: Option<f64>,
    /// The floor's CRI calls in its single-pod starts, by call name.
    pub calls: BTreeMap<String, Summary>,
}

/// What each running pod adds: the difference between the most pods and none, per pod.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerPod {
    pub cpu_millicores: f64,
    pub rss_kib: f64,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The summaries of each subject on each runtime, in the order they first appear.
pub fn summarize(sessions: &[SessionResult]) -> Vec<SubjectSummary> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    for s in sessions {
        let key = (s.subject.as_str(), s.runtime.as_str());
        if !order.contains(&key) {
            order.push(key);
        }
    }
    let first_runtime = order.first().map(|(_, runtime)| *runtime);
    let several_runtimes = order.iter().any(|(_, r)| Some(*r) != first_runtime);
    order
        .into_iter()
        .map(|(subject, runtime)| {
            let mine: Vec<&SessionResult> = sessions
                .iter()
                .filter(|s| s.subject == subject && s.runtime == runtime)
                .collect();
            let label = if several_runtimes {
                format!("{subject}@{runtime}")
            } else {
                subject.to_string()
            };
            summarize_subject(subject, runtime, label, &mine)
        })
        .collect()
}

fn summarize_subject(
    subject: &str,
    runtime: &str,
    label: String,
    sessions: &[&SessionResult],
) -> SubjectSummary {
    let all = |f: &dyn Fn(&SessionResult) -> Vec<f64>| -> Vec<f64> {
        sessions.iter().flat_map(|s| f(s)).collect()
    };
    let single = all(&|s| s.single_ms.clone());
    let burst = all(&|s| {
        s.burst
            .iter()
            .flat_map(|b| b.latencies_ms.clone())
            .collect()
    });
    let last = all(&|s| s.burst.iter().map(|b| b.last_pod_ms).collect());
    let restart = all(&|s| s.reaction.iter().map(|r| r.restart_ms).collect());
    let reported = all(&|s| s.reaction.iter().filter_map(|r| r.reported_ms).collect());
    let churn = all(&|s| s.churn_ms.into_iter().collect());

    let mut by_pods: BTreeMap<usize, Vec<SteadyPoint>> = BTreeMap::new();
    for point in sessions.iter().flat_map(|s| &s.steady) {
        by_pods.entry(point.pods).or_default().push(*point);
    }
    let steady: Vec<SteadyPoint> = by_pods
        .into_iter()
        .map(|(pods, points)| {
            let avg = |f: fn(&SteadyPoint) -> f64| {
                mean(&points.iter().map(f).collect::<Vec<_>>()).unwrap_or_default()
            };
            SteadyPoint {
                pods,
                cpu_cores: avg(|p| p.cpu_cores),
                rss_mib_mean: avg(|p| p.rss_mib_mean),
                rss_mib_max: avg(|p| p.rss_mib_max),
                pss_mib_mean: avg(|p| p.pss_mib_mean),
                runtime_rss_mib_mean: avg(|p| p.runtime_rss_mib_mean),
                runtime_pss_mib_mean: avg(|p| p.runtime_pss_mib_mean),
                runtime_processes: avg(|p| p.runtime_processes),
            }
        })
        .collect();
    let per_pod = match (steady.first(), steady.last()) {
        (Some(none), Some(most)) if none.pods == 0 && most.pods > 0 => Some(PerPod {
            cpu_millicores: (most.cpu_cores - none.cpu_cores) * 1000.0 / most.pods as f64,
            rss_kib: (most.rss_mib_mean - none.rss_mib_mean) * 1024.0 / most.pods as f64,
        }),
        _ => None,
    };

    let mut calls: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (call, samples) in sessions.iter().flat_map(|s| &s.calls_ms) {
        calls.entry(call.clone()).or_default().extend(samples);
    }

    SubjectSummary {
        subject: subject.to_string(),
        runtime: runtime.to_string(),
        label,
        calls: calls
            .into_iter()
            .filter_map(|(call, samples)| Some((call, Summary::of(&samples)?)))
            .collect(),
        start_single: Summary::of(&single),
        start_burst: Summary::of(&burst),
        burst_last_pod_ms: mean(&last),
        reaction_restart: Summary::of(&restart),
        reaction_reported: Summary::of(&reported),
        steady,
        per_pod,
        churn_ms: mean(&churn),
    }
}

/// One table row: a metric's value for each subject.
struct Row {
    metric: String,
    values: Vec<Option<f64>>,
}

type Pick = fn(&SubjectSummary) -> Option<f64>;
type PickSummary = fn(&SubjectSummary) -> Option<Summary>;
type Stat = fn(&Summary) -> f64;
type PickPoint = fn(&SteadyPoint) -> Option<f64>;

fn rows(summaries: &[SubjectSummary]) -> Vec<Row> {
    let summary_rows: [(&str, PickSummary); 4] = [
        ("start, one pod", |s| s.start_single),
        ("start, burst", |s| s.start_burst),
        ("reaction: restarted", |s| s.reaction_restart),
        ("reaction: exit reported", |s| s.reaction_reported),
    ];
    let mut out = Vec::new();
    for (name, pick) in summary_rows {
        let stats: [(&str, Stat); 4] = [
            ("p50", |s| s.p50_ms),
            ("p90", |s| s.p90_ms),
            ("p99", |s| s.p99_ms),
            ("max", |s| s.max_ms),
        ];
        for (stat, value) in stats {
            out.push(Row {
                metric: format!("{name} {stat} (ms)"),
                values: summaries
                    .iter()
                    .map(|s| pick(s).map(|x| value(&x)))
                    .collect(),
            });
        }
    }
    for call in crate::floor::CALLS {
        let stats: [(&str, Stat); 2] = [("p50", |s| s.p50_ms), ("p90", |s| s.p90_ms)];
        for (stat, value) in stats {
            out.push(Row {
                metric: format!("floor call: {call} {stat} (ms)"),
                values: summaries
                    .iter()
                    .map(|s| s.calls.get(call).map(value))
                    .collect(),
            });
        }
    }
    let plain: [(&str, Pick); 4] = [
        ("burst: last pod running (ms)", |s| s.burst_last_pod_ms),
        ("churn: exactly the new set (ms)", |s| s.churn_ms),
        ("per pod: CPU (millicores)", |s| {
            s.per_pod.map(|p| p.cpu_millicores)
        }),
        ("per pod: RSS (KiB)", |s| s.per_pod.map(|p| p.rss_kib)),
    ];
    for (name, pick) in plain {
        out.push(Row {
            metric: name.to_string(),
            values: summaries.iter().map(pick).collect(),
        });
    }
    let counts: std::collections::BTreeSet<usize> = summaries
        .iter()
        .flat_map(|s| s.steady.iter().map(|p| p.pods))
        .collect();
    for pods in counts {
        let at = |s: &SubjectSummary| s.steady.iter().find(|p| p.pods == pods).copied();
        out.push(Row {
            metric: format!("{pods} pods: CPU (millicores)"),
            values: summaries
                .iter()
                .map(|s| at(s).map(|p| p.cpu_cores * 1000.0))
                .collect(),
        });
        let memory: [(&str, PickPoint); 5] = [
            ("RSS (MiB)", |p| Some(p.rss_mib_mean)),
            ("PSS (MiB)", |p| {
                (p.pss_mib_mean > 0.0).then_some(p.pss_mib_mean)
            }),
            ("runtime RSS (MiB)", |p| {
                (p.runtime_processes > 0.0).then_some(p.runtime_rss_mib_mean)
            }),
            ("runtime PSS (MiB)", |p| {
                (p.runtime_processes > 0.0).then_some(p.runtime_pss_mib_mean)
            }),
            ("runtime processes", |p| {
                (p.runtime_processes > 0.0).then_some(p.runtime_processes)
            }),
        ];
        for (name, pick) in memory {
            out.push(Row {
                metric: format!("{pods} pods: {name}"),
                values: summaries
                    .iter()
                    .map(|s| at(s).and_then(|p| pick(&p)))
                    .collect(),
            });
        }
    }
    // Rows nobody measured in this run would be noise.
    out.retain(|row| row.values.iter().any(Option::is_some));
    out
}

/// The table: one column per subject (and runtime), then every other column against the first
/// floor (the first runtime's), and each kubelet against the first kubelet.
pub fn table(summaries: &[SubjectSummary]) -> String {
    let subjects: Vec<&str> = summaries.iter().map(|s| s.label.as_str()).collect();
    let floor = summaries.iter().position(|s| s.subject == FLOOR);
    let kubelets: Vec<usize> = (0..summaries.len())
        .filter(|i| summaries[*i].subject != FLOOR)
        .collect();
    let mut ratios: Vec<(String, usize, usize)> = Vec::new();
    if let Some(f) = floor {
        ratios.extend(
            (0..subjects.len())
                .filter(|i| *i != f)
                .map(|i| (format!("{}/{}", subjects[i], subjects[f]), i, f)),
        );
    }
    if let Some((first, rest)) = kubelets.split_first() {
        ratios.extend(
            rest.iter()
                .map(|k| (format!("{}/{}", subjects[*k], subjects[*first]), *k, *first)),
        );
    }

    let mut header: Vec<String> = vec!["metric".into()];
    header.extend(subjects.iter().map(|s| s.to_string()));
    header.extend(ratios.iter().map(|(name, _, _)| name.clone()));
    let mut lines = vec![header];
    for row in rows(summaries) {
        let mut line = vec![row.metric.clone()];
        line.extend(
            row.values
                .iter()
                .map(|v| v.map_or("-".into(), |v| format!("{v:.1}"))),
        );
        line.extend(ratios.iter().map(|(_, num, den)| {
            match (row.values[*num], row.values[*den]) {
                (Some(n), Some(d)) if d > 0.0 => format!("{:.2}x", n / d),
                _ => "-".into(),
            }
        }));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  "));
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Burst, Reaction};

    fn session(subject: &str, scale: f64) -> SessionResult {
        on("containerd", subject, scale)
    }

    fn on(runtime: &str, subject: &str, scale: f64) -> SessionResult {
        SessionResult {
            subject: subject.into(),
            runtime: runtime.into(),
            round: 0,
            single_ms: vec![100.0 * scale, 200.0 * scale],
            burst: Some(Burst {
                pods: 2,
                latencies_ms: vec![300.0 * scale, 400.0 * scale],
                last_pod_ms: 400.0 * scale,
            }),
            reaction: vec![Reaction {
                restart_ms: 1000.0 * scale,
                reported_ms: Some(900.0 * scale),
            }],
            steady: vec![
                SteadyPoint {
                    pods: 0,
                    cpu_cores: 0.01,
                    rss_mib_mean: 10.0,
                    rss_mib_max: 10.0,
                    ..Default::default()
                },
                SteadyPoint {
                    pods: 2,
                    cpu_cores: 0.03,
                    rss_mib_mean: 11.0,
                    rss_mib_max: 11.0,
                    pss_mib_mean: 9.0,
                    runtime_rss_mib_mean: 40.0 * scale,
                    runtime_pss_mib_mean: 30.0 * scale,
                    runtime_processes: 3.0,
                },
            ],
            churn_ms: Some(500.0 * scale),
            calls_ms: BTreeMap::new(),
        }
    }

    fn floor_on(runtime: &str, scale: f64) -> SessionResult {
        let mut floor = on(runtime, FLOOR, scale);
        floor.steady.clear();
        floor.reaction.clear();
        floor.calls_ms = BTreeMap::from([
            (
                "RunPodSandbox".to_string(),
                vec![80.0 * scale, 90.0 * scale],
            ),
            ("StartContainer".to_string(), vec![10.0 * scale]),
        ]);
        floor
    }

    fn cells<'a>(table: &'a str, row: &str) -> Vec<&'a str> {
        let line = table.lines().find(|l| l.starts_with(row)).unwrap();
        line[row.len()..].split_whitespace().collect()
    }

    #[test]
    fn per_pod_cost_is_the_slope_from_no_pods() {
        let summary = &summarize(&[session("A", 1.0)])[0];
        let per_pod = summary.per_pod.unwrap();
        assert!((per_pod.cpu_millicores - 10.0).abs() < 1e-9);
        assert!((per_pod.rss_kib - 512.0).abs() < 1e-9);
        assert_eq!(summary.start_single.unwrap().max_ms, 200.0);
        assert_eq!(summary.burst_last_pod_ms, Some(400.0));
    }

    #[test]
    fn rounds_of_a_subject_are_merged() {
        let mut second = session("A", 2.0);
        second.round = 1;
        let summaries = summarize(&[session("A", 1.0), second]);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].start_single.unwrap().n, 4);
        assert_eq!(summaries[0].churn_ms, Some(750.0));
    }

    #[test]
    fn the_table_has_ratios_to_the_floor_and_to_the_first_kubelet() {
        let mut floor = session(FLOOR, 0.5);
        floor.steady.clear();
        floor.reaction.clear();
        let summaries = summarize(&[floor, session("A", 1.0), session("B", 2.0)]);
        let table = table(&summaries);
        let header = table.lines().next().unwrap();
        for column in ["floor", "A/floor", "B/floor", "B/A"] {
            assert!(header.contains(column), "{header}");
        }
        let single = table
            .lines()
            .find(|l| l.starts_with("start, one pod p50"))
            .unwrap();
        assert!(
            single.contains("2.00x") && single.contains("4.00x"),
            "{single}"
        );
        let reaction = table
            .lines()
            .find(|l| l.starts_with("reaction: restarted p50"))
            .unwrap();
        assert!(
            reaction.contains(" - "),
            "the floor has no reaction: {reaction}"
        );
        assert!(!header.contains('@'), "one runtime: plain names: {header}");
    }

    #[test]
    fn runtimes_get_columns_of_their_own_with_ratios_to_the_first_floor() {
        let mut sessions = Vec::new();
        for round in 0..2 {
            for mut s in [
                floor_on("containerd", 0.5),
                on("containerd", "A", 1.0),
                floor_on("builtin", 0.25),
                on("builtin", "A", 0.75),
            ] {
                s.round = round;
                sessions.push(s);
            }
        }
        let summaries = summarize(&sessions);
        let labels: Vec<&str> = summaries.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "floor@containerd",
                "A@containerd",
                "floor@builtin",
                "A@builtin"
            ]
        );
        assert_eq!(summaries[2].start_single.unwrap().n, 4, "rounds merged");
        assert_eq!(summaries[2].calls["RunPodSandbox"].n, 4);

        let table = table(&summaries);
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header[1..],
            [
                "floor@containerd",
                "A@containerd",
                "floor@builtin",
                "A@builtin",
                "A@containerd/floor@containerd",
                "floor@builtin/floor@containerd",
                "A@builtin/floor@containerd",
                "A@builtin/A@containerd",
            ]
        );
        // p50 of one pod: 50, 100, 25 and 75 ms.
        assert_eq!(
            cells(&table, "start, one pod p50 (ms)"),
            [
                "50.0", "100.0", "25.0", "75.0", "2.00x", "0.50x", "1.50x", "0.75x"
            ]
        );
        // Only floors make CRI calls of their own.
        assert_eq!(
            cells(&table, "floor call: RunPodSandbox p50 (ms)"),
            ["40.0", "-", "20.0", "-", "-", "0.50x", "-", "-"]
        );
        assert!(
            !table.contains("floor call: CreateContainer"),
            "calls nobody timed have no row"
        );
        // Each runtime's daemon and shims (or monitors), sampled under the kubelet.
        assert_eq!(
            cells(&table, "2 pods: runtime RSS (MiB)"),
            ["-", "40.0", "-", "30.0", "-", "-", "-", "0.75x"]
        );
        assert_eq!(cells(&table, "2 pods: PSS (MiB)")[1], "9.0");
        assert!(
            !table.contains("0 pods: runtime RSS"),
            "no row where the runtime was not sampled"
        );
    }
}
