//! Stop strings (OpenAI's `stop`): generation ends when the decoded text
//! contains one, and the text ends just before it. Streamed text is held back
//! while its end could still be the start of a stop string, so a client never
//! sees a piece that the final text does not contain.

use crate::error::{Error, Result};

/// At most this many stop strings per request (OpenAI allows 4).
pub const MAX_STOP_STRINGS: usize = 16;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 256;

/// Matches stop strings in text decoded piece by piece.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Decoded text not yet released: a suffix that may begin a stop string.
    held: String,
}

/// What one piece of decoded text gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopCheck {
    /// Text safe to show now.
    pub release: String,
    /// A stop string was found: generation must end (`release` ends before it).
    pub stopped: bool,
}

impl StopStrings {
    /// A matcher for `stops` (empty strings are refused, as are more or longer than the limits).
    pub fn new(stops: &[String]) -> Result<Self> {
        if stops.len() > MAX_STOP_STRINGS {
            return Err(Error::Request(format!("{} stop strings given; at most {MAX_STOP_STRINGS}", stops.len())));
        }
        if let Some(bad) = stops.iter().find(|s| s.is_empty() || s.len() > MAX_STOP_BYTES) {
            return Err(Error::Request(format!("stop string {bad:?} must be 1 to {MAX_STOP_BYTES} bytes long")));
        }
        Ok(Self { stops: stops.to_vec(), held: String::new() })
    }

    /// Whether there is nothing to match.
    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// Take the next decoded piece.
    pub fn push(&mut self, piece: &str) -> StopCheck {
        self.held.push_str(piece);
        let first = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first {
            let release = self.held[..at].to_string();
            self.held.clear();
            return StopCheck { release, stopped: true };
        }
        let keep = self.longest_open_suffix();
        let release = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        StopCheck { release, stopped: false }
    }

    /// The text still held when generation ended for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Bytes at the end of `held` that are a proper prefix of some stop string.
    fn longest_open_suffix(&self) -> usize {
        let held = self.held.as_str();
        (1..=held.len())
            .rev()
            .filter(|&n| held.is_char_boundary(held.len() - n))
            .find(|&n| self.stops.iter().any(|s| s.len() > n && s.starts_with(&held[held.len() - n..])))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopStrings::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let mut out = String::new();
        for p in pieces {
            let c = m.push(p);
            out.push_str(&c.release);
            if c.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn a_stop_split_across_pieces_is_found_and_never_shown() {
        let mut m = StopStrings::new(&["\nUser:".to_string()]).unwrap();
        assert_eq!(m.push("Hello\nUs").release, "Hello");
        let c = m.push("er: hi");
        assert_eq!(c, StopCheck { release: String::new(), stopped: true });
    }

    #[test]
    fn held_text_that_does_not_complete_a_stop_is_released() {
        assert_eq!(run(&["abc"], &["xa", "b", "d"]), ("xabd".to_string(), false));
        assert_eq!(run(&["abc"], &["xa", "b"]), ("xab".to_string(), false));
        assert_eq!(run(&["END", "e!"], &["one e", "! two"]), ("one ".to_string(), true));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        assert_eq!(run(&["é!"], &["café", " ok"]), ("café ok".to_string(), false));
        assert_eq!(run(&["é!"], &["café", "!"]), ("caf".to_string(), true));
    }

    #[test]
    fn limits_are_enforced() {
        assert!(StopStrings::new(&[String::new()]).is_err());
        assert!(StopStrings::new(&vec!["x".to_string(); MAX_STOP_STRINGS + 1]).is_err());
    }
}
