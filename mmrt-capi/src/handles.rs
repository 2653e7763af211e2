//! The handle registry: every object handed to C lives here, behind an id.
//!
//! A handle is that id cast to an opaque pointer type; it never points into
//! Rust memory. Looking it up checks that it exists (not freed, not garbage)
//! and that it is of the expected kind, so a bad handle is an error code,
//! never a crash. The registry lock is held only to find or insert an entry:
//! each entry is an `Arc`, cloned out, so a long generation holds its model's
//! own lock and nothing global. Freeing a handle that another thread is using
//! removes it from the registry; the object lives until that call returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use mmrt::runtime::OrtRuntime;
use mmrt::{Pipeline, Request};

use crate::error::{CallError, MmrtStatus};

/// A finished generation, as C reads it.
pub struct ResultData {
    /// The generated text and a terminating NUL (C reads it as a string; `text_len` excludes the NUL).
    pub text: Vec<u8>,
    /// Generated ids, a final stop token included.
    pub token_ids: Vec<u32>,
    /// Prompt ids after placeholder expansion.
    pub prompt_tokens: usize,
    /// Why generation ended.
    pub stop_reason: mmrt::generate::StopReason,
    /// Per-stage milliseconds.
    pub timings: mmrt::pipeline::StageTimings,
    /// From the start of the run to the first token.
    pub time_to_first_token_ms: Option<f64>,
    /// Wall time of the whole run.
    pub total_ms: f64,
    /// [`mmrt::Output::decode_tokens_per_s`].
    pub decode_tokens_per_s: f64,
}

/// One registered object.
#[derive(Clone)]
pub enum Entry {
    /// A loaded ONNX Runtime.
    Runtime(Arc<OrtRuntime>),
    /// A loaded model; its lock serializes generations on it.
    Model(Arc<Mutex<Pipeline>>),
    /// A request being built; locked only while read or changed, never during a generation.
    Request(Arc<Mutex<Request>>),
    /// A result, read-only.
    Result(Arc<ResultData>),
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::Runtime(_) => "a runtime",
            Entry::Model(_) => "a model",
            Entry::Request(_) => "a request",
            Entry::Result(_) => "a result",
        }
    }
}

struct Registry {
    entries: HashMap<usize, Entry>,
    next: usize,
}

/// First id handed out; ids step by [`ID_STEP`] and are never reused, so a
/// freed handle stays invalid and small integers are never valid.
const FIRST_ID: usize = 0x10_0000;
const ID_STEP: usize = 0x10;

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    let lock = REGISTRY.get_or_init(|| Mutex::new(Registry { entries: HashMap::new(), next: FIRST_ID }));
    // Nothing panics while the lock is held (map operations only), so a poisoned lock's data is intact.
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Register `entry`, returning its handle value.
pub fn insert(entry: Entry) -> usize {
    let mut registry = registry();
    let id = registry.next;
    registry.next += ID_STEP;
    registry.entries.insert(id, entry);
    id
}

/// The entry of handle `id`, or an error naming what is wrong with it.
pub fn get(id: usize, expected: &'static str) -> Result<Entry, CallError> {
    if id == 0 {
        return Err(CallError::new(MmrtStatus::MMRT_ERROR_NULL_ARGUMENT, format!("{expected} handle is NULL")));
    }
    match registry().entries.get(&id) {
        Some(entry) => Ok(entry.clone()),
        None => Err(CallError::new(
            MmrtStatus::MMRT_ERROR_INVALID_HANDLE,
            format!("{id:#x} is not a live handle (never created, or already freed); expected {expected}"),
        )),
    }
}

/// Remove handle `id` if it is of the `expected` kind (`matches` says so).
pub fn remove(id: usize, expected: &'static str, matches: fn(&Entry) -> bool) -> Result<(), CallError> {
    let mut registry = registry();
    match registry.entries.get(&id) {
        Some(entry) if matches(entry) => {
            let entry = registry.entries.remove(&id);
            // Drop the object (a model's sessions) after releasing the registry lock.
            drop(registry);
            drop(entry);
            Ok(())
        }
        Some(entry) => Err(wrong_kind(id, entry, expected)),
        None => Err(CallError::new(
            MmrtStatus::MMRT_ERROR_INVALID_HANDLE,
            format!("{id:#x} is not a live handle (never created, or already freed); expected {expected}"),
        )),
    }
}

/// The error for a live handle of another kind.
pub fn wrong_kind(id: usize, entry: &Entry, expected: &'static str) -> CallError {
    CallError::new(MmrtStatus::MMRT_ERROR_INVALID_HANDLE, format!("handle {id:#x} is {}, expected {expected}", entry.kind()))
}

/// Live handles of every kind (tests check that nothing leaks).
pub fn live_count() -> usize {
    registry().entries.len()
}

macro_rules! typed_getter {
    ($name:ident, $variant:ident, $ty:ty, $what:literal) => {
        /// The object of a handle of this kind.
        pub fn $name(id: usize) -> Result<$ty, CallError> {
            match get(id, $what)? {
                Entry::$variant(object) => Ok(object),
                other => Err(wrong_kind(id, &other, $what)),
            }
        }
    };
}

typed_getter!(runtime, Runtime, Arc<OrtRuntime>, "a runtime");
typed_getter!(model, Model, Arc<Mutex<Pipeline>>, "a model");
typed_getter!(request, Request, Arc<Mutex<Request>>, "a request");
typed_getter!(result, Result, Arc<ResultData>, "a result");
