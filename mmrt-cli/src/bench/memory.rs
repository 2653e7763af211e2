//! Resident memory of this process, from `/proc/self/status` on Linux.
//!
//! Peak RSS (`VmHWM`) is process-wide and never goes down, which is why
//! `mmrt bench` measures each execution provider in its own child process:
//! the peak it reports belongs to that provider's load and runs alone.

/// How memory is measured, for the JSON report.
pub const METHOD: &str = "VmHWM (peak resident set) and VmRSS from /proc/self/status of the child process that measured this execution provider (load + warm-up + runs)";

/// Peak resident set size of this process so far, in bytes (Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Current resident set size, in bytes (Linux only).
pub fn current_rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Resident memory by kind (Linux only).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Breakdown {
    /// `RssAnon`: heap and other private memory (weights copied or prepacked by
    /// ONNX Runtime, the tokenizer, KV and activation buffers once written).
    pub anon_bytes: u64,
    /// `RssFile`: file pages mapped and resident (weights used in place, libraries).
    pub file_bytes: u64,
}

/// The current resident memory by kind, from one snapshot of `/proc/self/status`.
pub fn breakdown() -> Option<Breakdown> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(Breakdown { anon_bytes: parse_kib(&status, "RssAnon:")? * 1024, file_bytes: parse_kib(&status, "RssFile:")? * 1024 })
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib(&status, key)
}

/// The `kB` value of `key` in a `/proc/<pid>/status` text.
fn parse_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let mut parts = line[key.len()..].split_whitespace();
    let value = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let status = "Name:\tmmrt\nVmHWM:\t  123456 kB\nVmRSS:\t   1000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(123456));
        assert_eq!(parse_kib(status, "VmRSS:"), Some(1000));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_is_at_least_current() {
        // One snapshot: other test threads may allocate between two reads.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let (peak, now) = (parse_kib(&status, "VmHWM:").unwrap(), parse_kib(&status, "VmRSS:").unwrap());
        assert!(peak >= now && now > 0);
        assert!(peak_rss_bytes().is_some() && current_rss_bytes().is_some());
    }
}
