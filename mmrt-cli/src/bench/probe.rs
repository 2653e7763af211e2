//! Memory-bandwidth probe: the roofline's ceiling for decoding, which reads
//! every weight once per token.
//!
//! Each thread copies its share of a source buffer into a destination buffer
//! (`memcpy`); bandwidth counts the bytes read plus the bytes written. The
//! buffers are sized from the last-level cache (twice its size, within fixed
//! bounds) so the copy streams from DRAM rather than from cache.

use std::time::Instant;

use super::stats::Summary;

/// Smallest buffer per side (bytes).
const MIN_BUFFER: usize = 64 << 20;
/// Largest buffer per side (bytes): two of them live at once.
const MAX_BUFFER: usize = 256 << 20;

/// What the probe measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bandwidth {
    /// Bytes per second (read + written), over the repetitions.
    pub bytes_per_s: Summary,
    /// Size of each of the two buffers.
    pub buffer_bytes: usize,
    /// Threads copying in parallel.
    pub threads: usize,
    /// How it was measured.
    pub method: String,
}

/// Measure copy bandwidth with `threads` threads and `reps` timed repetitions
/// (after one untimed pass that faults the pages in).
pub fn measure(threads: usize, reps: usize) -> Bandwidth {
    let threads = threads.max(1);
    let buffer_bytes = buffer_size(last_level_cache_bytes());
    // u64 elements; the buffers are filled so the pages really exist.
    let len = buffer_bytes / 8;
    let src: Vec<u64> = (0..len as u64).collect();
    let mut dst = vec![0u64; len];
    let chunk = len.div_ceil(threads);
    let mut copy = || {
        std::thread::scope(|s| {
            for (d, src) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(src));
            }
        });
    };
    copy();
    let samples = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            copy();
            (2 * len * 8) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    std::hint::black_box(&dst);
    Bandwidth {
        bytes_per_s: Summary::from_samples(samples).expect("at least one finite sample"),
        buffer_bytes,
        threads,
        method: format!(
            "in-process memcpy of a {} MiB buffer split over {threads} thread(s); bytes/s = (bytes read + bytes written) / time",
            buffer_bytes >> 20
        ),
    }
}

/// Twice the last-level cache, within [`MIN_BUFFER`, `MAX_BUFFER`].
fn buffer_size(llc: Option<usize>) -> usize {
    llc.map_or(MIN_BUFFER, |c| c.saturating_mul(2)).clamp(MIN_BUFFER, MAX_BUFFER)
}

/// Size of the highest-level CPU cache, from Linux sysfs.
fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let level: u32 = std::fs::read_to_string(e.path().join("level")).ok()?.trim().parse().ok()?;
            let size = parse_cache_size(std::fs::read_to_string(e.path().join("size")).ok()?.trim())?;
            Some((level, size))
        })
        .max()
        .map(|(_, size)| size)
}

/// `"48K"`, `"2048K"`, `"32M"` → bytes.
fn parse_cache_size(text: &str) -> Option<usize> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: usize = digits.parse().ok()?;
    match unit {
        "" => Some(n),
        "K" => Some(n << 10),
        "M" => Some(n << 20),
        "G" => Some(n << 30),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse() {
        assert_eq!(parse_cache_size("48K"), Some(48 << 10));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("x"), None);
    }

    #[test]
    fn buffer_is_bounded() {
        assert_eq!(buffer_size(None), MIN_BUFFER);
        assert_eq!(buffer_size(Some(1 << 20)), MIN_BUFFER);
        assert_eq!(buffer_size(Some(100 << 20)), 200 << 20);
        assert_eq!(buffer_size(Some(1 << 30)), MAX_BUFFER);
    }
}
