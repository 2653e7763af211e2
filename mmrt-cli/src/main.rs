//! The `mmrt` command line: parse arguments, run the command, print one clear
//! line on failure and exit non-zero.

use std::process::ExitCode;

fn main() -> ExitCode {
    mmrt_cli::cli::main()
}
