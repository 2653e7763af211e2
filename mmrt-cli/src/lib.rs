//! The `mmrt` application over the runtime library: the clap front end
//! ([`cli`]), the per-provider benchmark ([`bench`]) and word error rate for
//! the speech evaluation ([`wer`]). The library crate `mmrt` knows nothing of
//! clap, plotting or progress bars; everything user-facing lives here.

pub mod bench;
pub mod cli;
pub mod serve;
pub mod wer;
