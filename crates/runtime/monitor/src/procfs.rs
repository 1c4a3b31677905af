//! Process identity that survives pid reuse: the pid plus its start time from /proc/PID/stat.

use std::fs;

/// Field 22 of /proc/PID/stat (clock ticks since boot), None when the process is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// The command name (field 2) is in parentheses and may hold spaces or `)`, so fields are
/// counted from the last `)`: field 3 (state) is the first after it, field 22 the twentieth.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// `PID START_TIME` as the monitor.pid file holds it.
pub fn format_identity(pid: i32, start_time: u64) -> String {
    format!("{pid} {start_time}\n")
}

pub fn parse_identity(text: &str) -> Option<(i32, u64)> {
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse().ok()?;
    let start = fields.next()?.parse().ok()?;
    Some((pid, start))
}

/// True while the process `pid` runs and is the one that started at `start_time`.
pub fn same_process(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start) && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat[stat.rfind(')')? + 1..].to_string();
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_after_a_tricky_command_name() {
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("42 (x"), None);
    }

    #[test]
    fn own_process_identity() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).expect("own stat");
        assert!(same_process(pid, start));
        assert!(!same_process(pid, start + 1));
        let text = format_identity(pid, start);
        assert_eq!(parse_identity(&text), Some((pid, start)));
        assert_eq!(parse_identity("12"), None);
    }
}
