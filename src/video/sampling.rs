//! Which frames of a clip are used: `N` uniformly, or a rate with a cap.
//!
//! Uniform sampling picks `index_i = floor(i × total / n)` for `i` in `0..n`,
//! the rule of transformers' default video sampling
//! (`np.arange(0, total, total / n).astype(int)`), computed in integers so no
//! float rounding moves an index. When `n > total` indices repeat (a short clip
//! gives its frames more than once; the embedding cache makes repeats free).
//! Rate sampling takes `n = min(max_frames, max(1, floor(duration × fps)))`
//! frames, `duration = total / source fps`, then the same uniform rule.

use crate::error::{Error, Result};
use crate::limits;

/// How frames are chosen from a clip.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// `frames` frames spread uniformly over the clip.
    Uniform {
        /// Frames wanted.
        frames: usize,
    },
    /// About `fps` frames per second of clip time, at most `max_frames`.
    Rate {
        /// Frames per second of clip time.
        fps: f64,
        /// Upper bound on the frames taken.
        max_frames: usize,
    },
}

impl Sampling {
    /// Refuse counts and rates outside [`limits`] before they size anything.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Request(format!("video sampling: {m}")));
        match *self {
            Sampling::Uniform { frames } | Sampling::Rate { max_frames: frames, .. } if frames == 0 || frames > limits::MAX_VIDEO_FRAMES => {
                bad(format!("frames must be in 1..={} (limits::MAX_VIDEO_FRAMES), found {frames}", limits::MAX_VIDEO_FRAMES))
            }
            Sampling::Rate { fps, .. } if !(fps.is_finite() && fps > 0.0 && fps <= limits::MAX_VIDEO_SAMPLE_FPS) => {
                bad(format!("fps must be in (0, {}] (limits::MAX_VIDEO_SAMPLE_FPS), found {fps}", limits::MAX_VIDEO_SAMPLE_FPS))
            }
            _ => Ok(()),
        }
    }

    /// How many frames this sampling takes of a clip of `total` frames at `source_fps`.
    pub fn count(&self, total: u64, source_fps: Option<f64>) -> usize {
        match *self {
            Sampling::Uniform { frames } => frames,
            Sampling::Rate { fps, max_frames } => {
                let duration = total as f64 / source_fps.filter(|f| f.is_finite() && *f > 0.0).unwrap_or(1.0);
                ((duration * fps).floor() as usize).clamp(1, max_frames)
            }
        }
    }
}

/// The frame indices `sampling` picks from a clip of `total` frames, in display order.
pub fn sample_indices(sampling: &Sampling, total: u64, source_fps: Option<f64>) -> Result<Vec<u64>> {
    sampling.validate()?;
    if total == 0 {
        return Err(Error::Request("video sampling: the clip has no frames".into()));
    }
    let n = sampling.count(total, source_fps) as u64;
    // u128: total × i stays exact for any u64 total.
    Ok((0..n).map(|i| (i as u128 * total as u128 / n as u128) as u64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (total, n) -> indices, written out by hand from floor(i × total / n).
    const UNIFORM: &[(u64, usize, &[u64])] = &[
        (132, 8, &[0, 16, 33, 49, 66, 82, 99, 115]),
        (250, 8, &[0, 31, 62, 93, 125, 156, 187, 218]),
        (120, 8, &[0, 15, 30, 45, 60, 75, 90, 105]),
        (10, 4, &[0, 2, 5, 7]),
        (4, 8, &[0, 0, 1, 1, 2, 2, 3, 3]),
        (1, 3, &[0, 0, 0]),
        (7, 1, &[0]),
        (7, 7, &[0, 1, 2, 3, 4, 5, 6]),
    ];

    #[test]
    fn uniform_indices_follow_the_table() {
        for &(total, frames, want) in UNIFORM {
            assert_eq!(sample_indices(&Sampling::Uniform { frames }, total, None).unwrap(), want, "total {total}, frames {frames}");
        }
    }

    #[test]
    fn uniform_matches_numpy_arange_rule() {
        // np.arange(0, total, total / n).astype(int), as float64, for sizes where it is exact.
        for total in 1..200u64 {
            for n in 1..20usize {
                let step = total as f64 / n as f64;
                let numpy: Vec<u64> = (0..n).map(|i| (i as f64 * step) as u64).collect();
                let ours = sample_indices(&Sampling::Uniform { frames: n }, total, None).unwrap();
                for (a, b) in numpy.iter().zip(&ours) {
                    assert!(a.abs_diff(*b) <= 1, "total {total} n {n}: {numpy:?} vs {ours:?}");
                }
            }
        }
    }

    #[test]
    fn rate_sampling_counts_seconds_and_caps() {
        // bikes.mp4: 250 frames at 25 fps = 10 s; 2 fps -> 20 frames, capped to 6.
        let rate = Sampling::Rate { fps: 2.0, max_frames: 6 };
        assert_eq!(sample_indices(&rate, 250, Some(25.0)).unwrap(), [0, 41, 83, 125, 166, 208]);
        let uncapped = Sampling::Rate { fps: 0.5, max_frames: 32 };
        assert_eq!(sample_indices(&uncapped, 250, Some(25.0)).unwrap(), [0, 50, 100, 150, 200]);
        // A clip shorter than one sampling period still gives one frame.
        assert_eq!(sample_indices(&Sampling::Rate { fps: 0.1, max_frames: 8 }, 30, Some(30.0)).unwrap(), [0]);
    }

    #[test]
    fn bad_sampling_is_refused() {
        assert!(sample_indices(&Sampling::Uniform { frames: 0 }, 10, None).is_err());
        assert!(sample_indices(&Sampling::Uniform { frames: limits::MAX_VIDEO_FRAMES + 1 }, 10, None).is_err());
        assert!(sample_indices(&Sampling::Rate { fps: f64::NAN, max_frames: 4 }, 10, None).is_err());
        assert!(sample_indices(&Sampling::Rate { fps: 1e6, max_frames: 4 }, 10, None).is_err());
        assert!(sample_indices(&Sampling::Uniform { frames: 4 }, 0, None).is_err());
    }
}
