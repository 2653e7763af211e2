//! Status codes, the thread-local last-error message, and the guard every
//! entry point runs its body in: an error becomes a status code plus a
//! message, and a panic is caught there, never unwinding into C.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What an `mmrt_*` call returns: `MMRT_OK` (0) or why it failed; the
/// details are in `mmrt_last_error()`.
#[repr(i32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmrtStatus {
    /// Success.
    MMRT_OK = 0,
    /// A required pointer argument (handle, string, buffer, out-pointer) was NULL.
    MMRT_ERROR_NULL_ARGUMENT = 1,
    /// A handle that was never created, was already freed, or is of another
    /// kind (a request where a model is expected).
    MMRT_ERROR_INVALID_HANDLE = 2,
    /// An argument's value is unusable: text that is not UTF-8, an unknown
    /// provider, a zero size, a sampling knob out of range.
    MMRT_ERROR_INVALID_ARGUMENT = 3,
    /// The ONNX Runtime library could not be found or loaded.
    MMRT_ERROR_RUNTIME = 4,
    /// The bundle could not be opened or loaded (manifest, checksums, graphs, tokenizer).
    MMRT_ERROR_MODEL = 5,
    /// A file could not be read or written.
    MMRT_ERROR_IO = 6,
    /// An image or audio input could not be decoded or is outside the limits.
    MMRT_ERROR_MEDIA = 7,
    /// The request does not fit the model (too long a prompt, placeholders, options).
    MMRT_ERROR_REQUEST = 8,
    /// The requested execution provider could not be used (strict mode).
    MMRT_ERROR_EXECUTION_PROVIDER = 9,
    /// Inference failed inside a stage (ONNX Runtime error, unexpected tensor).
    MMRT_ERROR_INFERENCE = 10,
    /// Generation was cancelled: the cancel flag was raised or the token
    /// callback returned non-zero.
    MMRT_ERROR_CANCELLED = 11,
    /// An output buffer is too small; the size needed was written.
    MMRT_ERROR_BUFFER_TOO_SMALL = 12,
    /// `mmrt_generate` was called from a token callback on the model that is
    /// generating (it would deadlock).
    MMRT_ERROR_REENTRANT = 13,
    /// A bug: a panic inside mmrt was caught at the boundary. A model whose
    /// generation panicked keeps failing with this code: free it and load it again.
    MMRT_ERROR_PANIC = 14,
}

impl MmrtStatus {
    /// The code's name, as in the header.
    pub fn name(self) -> &'static str {
        match self {
            Self::MMRT_OK => "MMRT_OK",
            Self::MMRT_ERROR_NULL_ARGUMENT => "MMRT_ERROR_NULL_ARGUMENT",
            Self::MMRT_ERROR_INVALID_HANDLE => "MMRT_ERROR_INVALID_HANDLE",
            Self::MMRT_ERROR_INVALID_ARGUMENT => "MMRT_ERROR_INVALID_ARGUMENT",
            Self::MMRT_ERROR_RUNTIME => "MMRT_ERROR_RUNTIME",
            Self::MMRT_ERROR_MODEL => "MMRT_ERROR_MODEL",
            Self::MMRT_ERROR_IO => "MMRT_ERROR_IO",
            Self::MMRT_ERROR_MEDIA => "MMRT_ERROR_MEDIA",
            Self::MMRT_ERROR_REQUEST => "MMRT_ERROR_REQUEST",
            Self::MMRT_ERROR_EXECUTION_PROVIDER => "MMRT_ERROR_EXECUTION_PROVIDER",
            Self::MMRT_ERROR_INFERENCE => "MMRT_ERROR_INFERENCE",
            Self::MMRT_ERROR_CANCELLED => "MMRT_ERROR_CANCELLED",
            Self::MMRT_ERROR_BUFFER_TOO_SMALL => "MMRT_ERROR_BUFFER_TOO_SMALL",
            Self::MMRT_ERROR_REENTRANT => "MMRT_ERROR_REENTRANT",
            Self::MMRT_ERROR_PANIC => "MMRT_ERROR_PANIC",
        }
    }

}

/// Every code, in value order (kept out of the header: not `pub`).
pub(crate) const ALL_STATUSES: [MmrtStatus; 15] = [
    MmrtStatus::MMRT_OK,
    MmrtStatus::MMRT_ERROR_NULL_ARGUMENT,
    MmrtStatus::MMRT_ERROR_INVALID_HANDLE,
    MmrtStatus::MMRT_ERROR_INVALID_ARGUMENT,
    MmrtStatus::MMRT_ERROR_RUNTIME,
    MmrtStatus::MMRT_ERROR_MODEL,
    MmrtStatus::MMRT_ERROR_IO,
    MmrtStatus::MMRT_ERROR_MEDIA,
    MmrtStatus::MMRT_ERROR_REQUEST,
    MmrtStatus::MMRT_ERROR_EXECUTION_PROVIDER,
    MmrtStatus::MMRT_ERROR_INFERENCE,
    MmrtStatus::MMRT_ERROR_CANCELLED,
    MmrtStatus::MMRT_ERROR_BUFFER_TOO_SMALL,
    MmrtStatus::MMRT_ERROR_REENTRANT,
    MmrtStatus::MMRT_ERROR_PANIC,
];

/// A failed call: its status and message.
#[derive(Debug)]
pub struct CallError {
    /// The code returned.
    pub status: MmrtStatus,
    /// What `mmrt_last_error()` says.
    pub message: String,
}

impl CallError {
    /// A failure with `status`.
    pub fn new(status: MmrtStatus, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// A NULL argument named `what`.
    pub fn null(what: &str) -> Self {
        Self::new(MmrtStatus::MMRT_ERROR_NULL_ARGUMENT, format!("{what} is NULL"))
    }

    /// An unusable argument value.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(MmrtStatus::MMRT_ERROR_INVALID_ARGUMENT, message)
    }
}

impl From<mmrt::Error> for CallError {
    fn from(e: mmrt::Error) -> Self {
        use mmrt::Error as E;
        let status = match &e {
            E::OrtNotFound { .. } => MmrtStatus::MMRT_ERROR_RUNTIME,
            E::Manifest { .. } | E::Import { .. } | E::Checksum { .. } => MmrtStatus::MMRT_ERROR_MODEL,
            E::Io { .. } | E::Write { .. } | E::OutputDir { .. } => MmrtStatus::MMRT_ERROR_IO,
            E::Image { .. } | E::Audio { .. } | E::Video { .. } => MmrtStatus::MMRT_ERROR_MEDIA,
            E::PromptTooLong { .. } | E::Request(_) => MmrtStatus::MMRT_ERROR_REQUEST,
            E::ExecutionProvider { .. } => MmrtStatus::MMRT_ERROR_EXECUTION_PROVIDER,
            E::Cancelled => MmrtStatus::MMRT_ERROR_CANCELLED,
            E::Tokenizer { .. } | E::Stage { .. } | E::Tensor { .. } | E::Bench(_) => MmrtStatus::MMRT_ERROR_INFERENCE,
        };
        Self::new(status, e.to_string())
    }
}

thread_local! {
    /// The message of the last failed call on this thread, NUL-terminated.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Record `message` as this thread's last error (interior NULs become spaces).
fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).expect("NULs replaced");
    LAST_ERROR.with(|last| *last.borrow_mut() = c);
}

/// This thread's last error message (`""` when no call failed yet).
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// Run an entry point's body: its error becomes a status and this thread's
/// last-error message; a panic is caught and becomes `MMRT_ERROR_PANIC`.
pub fn guard(body: impl FnOnce() -> Result<(), CallError>) -> MmrtStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => MmrtStatus::MMRT_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            set_last_error(&format!("internal error (panic caught at the C boundary, please report it): {what}"));
            MmrtStatus::MMRT_ERROR_PANIC
        }
    }
}
