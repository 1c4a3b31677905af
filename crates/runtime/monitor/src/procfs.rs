//! Process identity that survives pid reuse: the pid plus its start time from /proc/PID/stat.

use std::fs;

/// Field 22 of /proc/PID/stat (clock ticks since boot), None when the process is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|(start, _)| start)
}

/// (start time, zombie) of a process.
fn read_stat(pid: i32) -> Option<(u64, bool)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The command name (field 2) is in parentheses and may hold spaces or `)`, so fields are
/// counted from the last `)`: field 3 (state) is the first after it, field 22 the twentieth.
fn parse_stat(stat: &str) -> Option<(u64, bool)> {
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let zombie = fields.next()? == "Z";
    Some((fields.nth(18)?.parse().ok()?, zombie))
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
    read_stat(pid) == Some((start, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_after_a_tricky_command_name() {
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some((987_654, false)));
        assert_eq!(
            parse_stat(&stat.replace(") S ", ") Z ")),
            Some((987_654, true))
        );
        assert_eq!(parse_stat("42 (x"), None);
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
