//! The C ABI called in-process, as C would (through the `extern "C"`
//! functions): generations from four threads at once, media as raw buffers,
//! cancellation, and every misuse (NULL, garbage, freed or wrong-kind
//! handles) answered with an error code. Every generation is compared with
//! `mmrt run --json` on the same inputs.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicI32, Ordering};

use common::*;
use mmrt_c::*;

use MmrtStatus::*;

/// This thread's last error message.
fn last_error() -> String {
    unsafe { CStr::from_ptr(mmrt_last_error()) }.to_string_lossy().into_owned()
}

/// Panic with the last error unless `status` is MMRT_OK.
fn ok(status: MmrtStatus, what: &str) {
    assert_eq!(status, MMRT_OK, "{what}: {}", last_error());
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn runtime() -> *mut MmrtRuntime {
    let lib = c(ort_lib().to_str().expect("UTF-8 path"));
    let mut rt = null_mut();
    ok(unsafe { mmrt_runtime_new(lib.as_ptr(), &mut rt) }, "runtime");
    rt
}

/// `models/tiny` on one thread (as `mmrt_run` runs it).
fn load_tiny(rt: *mut MmrtRuntime) -> *mut MmrtModel {
    load_bundle(rt, &tiny())
}

/// A bundle on one thread.
fn load_bundle(rt: *mut MmrtRuntime, bundle: &std::path::Path) -> *mut MmrtModel {
    let path = c(bundle.to_str().expect("UTF-8 path"));
    let mut options = std::mem::MaybeUninit::<MmrtModelOptions>::uninit();
    ok(unsafe { mmrt_model_options_init(options.as_mut_ptr()) }, "options");
    let mut options = unsafe { options.assume_init() };
    options.bundle_path = path.as_ptr();
    options.threads = 1;
    let mut model = null_mut();
    ok(unsafe { mmrt_model_load(rt, &options, &mut model) }, "load the bundle");
    model
}

fn request(prompt: &str) -> *mut MmrtRequest {
    let prompt = c(prompt);
    let mut req = null_mut();
    ok(unsafe { mmrt_request_new(prompt.as_ptr(), &mut req) }, "request");
    req
}

fn add_image_file(req: *mut MmrtRequest, path: &std::path::Path) {
    let path = c(path.to_str().expect("UTF-8 path"));
    ok(unsafe { mmrt_request_add_image_file(req, path.as_ptr()) }, "image");
}

/// A clip through `mmrt_request_add_video_file` on models/tiny-video gives
/// PyTorch's greedy ids (`tests/golden/tiny_video.json`, case `bikes`).
#[test]
fn a_video_file_gives_the_pytorch_ids() {
    let bundle = root().join("models/tiny-video");
    let clip = root().join(".cache/video/clips/bikes.mp4");
    if !bundle.join("bundle.json").is_file() || !clip.is_file() {
        assert!(std::env::var_os("MMRT_REQUIRE_REAL").is_none(), "models/tiny-video or the clips are missing: bash exporters/tiny/build.sh --video");
        eprintln!("skipping: models/tiny-video or the clips are missing (bash exporters/tiny/build.sh --video)");
        return;
    }
    let golden: serde_json::Value = serde_json::from_slice(&std::fs::read(root().join("tests/golden/tiny_video.json")).unwrap()).unwrap();
    let case = golden["generate"].as_array().unwrap().iter().find(|c| c["name"] == "bikes").expect("case bikes");
    let want: Vec<u32> = case["output_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let rt = runtime();
    let model = load_bundle(rt, &bundle);
    let req = request(case["prompt"].as_str().unwrap());
    let path = c(clip.to_str().unwrap());
    ok(unsafe { mmrt_request_add_video_file(req, path.as_ptr()) }, "video");
    let missing = c("/nonexistent/clip.mp4");
    assert_eq!(unsafe { mmrt_request_add_video_file(req, missing.as_ptr()) }, MMRT_ERROR_IO, "a missing clip is refused when added");
    let max = unsafe { mmrt_request_set_max_tokens(req, want.len()) };
    ok(max, "max tokens");
    let got = generate(model, req);
    assert_eq!(got.ids, want, "ids vs PyTorch");
    ok(unsafe { mmrt_request_free(req) }, "free request");
    ok(unsafe { mmrt_model_free(model) }, "free model");
    ok(unsafe { mmrt_runtime_free(rt) }, "free runtime");
}

/// What a generation gave: ids, text, streamed text.
#[derive(Debug, PartialEq)]
struct Generated {
    ids: Vec<u32>,
    text: String,
    streamed: String,
    timings: MmrtTimings,
}

unsafe extern "C" fn collect(piece: *const c_char, len: usize, user_data: *mut c_void) -> i32 {
    let out = &mut *(user_data as *mut String);
    let bytes = std::slice::from_raw_parts(piece as *const u8, len);
    assert_eq!(*piece.add(len), 0, "pieces are NUL-terminated");
    out.push_str(std::str::from_utf8(bytes).expect("UTF-8 piece"));
    0
}

fn read_result(result: *mut MmrtResult) -> (Vec<u32>, String, MmrtTimings) {
    unsafe {
        let mut count = 0usize;
        let s = mmrt_result_token_ids(result, null_mut(), 0, &mut count);
        assert!(s == MMRT_OK || s == MMRT_ERROR_BUFFER_TOO_SMALL, "{s:?}");
        let mut ids = vec![0u32; count];
        ok(mmrt_result_token_ids(result, ids.as_mut_ptr(), ids.len(), &mut count), "ids");
        let (mut text, mut len) = (null(), 0usize);
        ok(mmrt_result_text(result, &mut text, &mut len), "text");
        let text = std::str::from_utf8(std::slice::from_raw_parts(text as *const u8, len)).expect("UTF-8").to_string();
        let mut timings = MmrtTimings::default();
        ok(mmrt_result_timings(result, &mut timings), "timings");
        (ids, text, timings)
    }
}

fn generate(model: *mut MmrtModel, req: *mut MmrtRequest) -> Generated {
    let mut streamed = String::new();
    let mut result = null_mut();
    ok(unsafe { mmrt_generate(model, req, Some(collect), &mut streamed as *mut String as *mut c_void, null(), &mut result) }, "generate");
    let (ids, text, timings) = read_result(result);
    ok(unsafe { mmrt_result_free(result) }, "free result");
    Generated { ids, text, streamed, timings }
}

/// Check a generation against `mmrt run`'s.
fn assert_matches(got: &Generated, reference: &Reference, what: &str) {
    assert!(!reference.token_ids.is_empty(), "{what}: mmrt run generated nothing");
    assert_eq!(got.ids, reference.token_ids, "{what}: ids vs mmrt run");
    assert_eq!(got.text, reference.text, "{what}: text vs mmrt run");
    assert_eq!(got.streamed, got.text, "{what}: streamed pieces vs the result's text");
    assert_eq!(got.timings.prompt_tokens, reference.prompt_tokens, "{what}: prompt tokens");
    assert_eq!(got.timings.generated_tokens, got.ids.len(), "{what}: generated tokens");
    assert!(got.timings.time_to_first_token_ms >= 0.0 && got.timings.total_ms >= got.timings.decode_ms, "{what}: {:?}", got.timings);
}

#[test]
fn four_threads_with_their_own_models_agree_with_one_thread_and_mmrt_run() {
    let rt = runtime();
    let cases: Vec<(&str, Vec<PathBuf>)> = vec![
        ("Once upon a time", vec![]),
        ("Describe the image.", vec![image("a_32.png")]),
        ("What is in <image> here?", vec![image("b_32.png")]),
        ("Compare the pictures.", vec![image("photo_97x61.png")]),
    ];
    let run_case = |rt: usize, (prompt, images): &(&str, Vec<PathBuf>)| {
        let model = load_tiny(rt as *mut MmrtRuntime);
        let req = request(prompt);
        for image in images {
            add_image_file(req, image);
        }
        // Twice on one model: a model is reusable, the second run equal to the first.
        let first = generate(model, req);
        let second = generate(model, req);
        assert_eq!(first.ids, second.ids, "{prompt}: a second run on the same model");
        ok(unsafe { mmrt_request_free(req) }, "free request");
        ok(unsafe { mmrt_model_free(model) }, "free model");
        first
    };
    let single: Vec<Generated> = cases.iter().map(|case| run_case(rt as usize, case)).collect();
    for ((prompt, images), got) in cases.iter().zip(&single) {
        assert_matches(got, &mmrt_run(&tiny(), prompt, images, &[]), prompt);
    }
    let rt_id = rt as usize;
    let parallel: Vec<Generated> = std::thread::scope(|s| {
        let handles: Vec<_> = cases.iter().map(|case| s.spawn(move || run_case(rt_id, case))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    for ((prompt, _), (one, four)) in cases.iter().zip(single.iter().zip(&parallel)) {
        assert_eq!(one.ids, four.ids, "{prompt}: 4 threads vs 1");
        assert_eq!(one.text, four.text, "{prompt}: 4 threads vs 1");
    }
    ok(unsafe { mmrt_runtime_free(rt) }, "free runtime");
}

#[test]
fn one_model_shared_by_threads_serializes_generations() {
    let rt = runtime();
    let model = load_tiny(rt) as usize;
    let reference = mmrt_run(&tiny(), "Once upon a time", &[], &[]);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let req = request("Once upon a time");
                let got = generate(model as *mut MmrtModel, req);
                assert_matches(&got, &reference, "shared model");
                ok(unsafe { mmrt_request_free(req) }, "free request");
            });
        }
    });
    ok(unsafe { mmrt_model_free(model as *mut MmrtModel) }, "free model");
}

#[test]
fn raw_rgb_with_stride_padding_and_encoded_bytes_match_the_png() {
    let png = image("photo_97x61.png");
    let reference = mmrt_run(&tiny(), "Describe the image.", std::slice::from_ref(&png), &[]);
    let rgb = mmrt::preprocess::image::load_image(&png).expect("decode the PNG");
    let (width, height) = rgb.dimensions();
    let row = width as usize * 3;
    // Each row padded with 13 bytes of junk that must be skipped; the last row unpadded.
    let stride = row + 13;
    let mut frame = vec![0xA5u8; stride * (height as usize - 1) + row];
    for (y, pixels) in rgb.as_raw().chunks(row).enumerate() {
        frame[y * stride..y * stride + row].copy_from_slice(pixels);
    }
    let rt = runtime();
    let model = load_tiny(rt);

    let req = request("Describe the image.");
    ok(unsafe { mmrt_request_add_image_rgb(req, frame.as_ptr(), width, height, stride) }, "rgb");
    drop(frame); // copied by the call
    assert_matches(&generate(model, req), &reference, "raw RGB with stride");

    let bytes = std::fs::read(&png).expect("read the PNG");
    ok(unsafe { mmrt_request_clear_media(req) }, "clear");
    ok(unsafe { mmrt_request_add_image_encoded(req, bytes.as_ptr(), bytes.len()) }, "encoded");
    assert_matches(&generate(model, req), &reference, "encoded PNG bytes");

    // Too short a stride, a zero size, garbage bytes.
    let s = unsafe { mmrt_request_add_image_rgb(req, bytes.as_ptr(), 4, 4, 11) };
    assert_eq!(s, MMRT_ERROR_INVALID_ARGUMENT, "{}", last_error());
    assert!(last_error().contains("stride 11"), "{}", last_error());
    assert_eq!(unsafe { mmrt_request_add_image_rgb(req, bytes.as_ptr(), 0, 4, 12) }, MMRT_ERROR_INVALID_ARGUMENT);
    ok(unsafe { mmrt_request_clear_media(req) }, "clear");
    let junk = b"not an image at all";
    ok(unsafe { mmrt_request_add_image_encoded(req, junk.as_ptr(), junk.len()) }, "encoded junk is decoded later");
    let mut result = null_mut();
    let s = unsafe { mmrt_generate(model, req, None, null_mut(), null(), &mut result) };
    assert_eq!(s, MMRT_ERROR_MEDIA, "{}", last_error());
    assert!(result.is_null());
    assert!(last_error().contains("encoded image 1"), "{}", last_error());

    ok(unsafe { mmrt_request_free(req) }, "free");
    ok(unsafe { mmrt_model_free(model) }, "free");
}

#[test]
fn pcm_audio_matches_the_wav_file() {
    let wav = root().join("tests/fixtures/audio/speech_16k.wav");
    let mut cmd = std::process::Command::new(mmrt_bin());
    cmd.arg("run").arg("--bundle").arg(tiny()).args(["--prompt", "Transcribe <audio> please.", "--threads", "1", "--json", "--audio"]).arg(&wav);
    let out = cmd.env("MMRT_ORT_LIB", ort_lib()).output().expect("mmrt");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let want: Vec<u32> = json["token_ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect();

    let wave = mmrt::preprocess::wav::read_wav(&wav).expect("read the WAV");
    let rt = runtime();
    let model = load_tiny(rt);
    let req = request("Transcribe <audio> please.");
    ok(unsafe { mmrt_request_add_audio_pcm(req, wave.samples.as_ptr(), wave.samples.len(), wave.sample_rate) }, "pcm");
    assert_eq!(generate(model, req).ids, want, "PCM buffer vs mmrt run --audio");
    ok(unsafe { mmrt_request_clear_media(req) }, "clear");
    let path = c(wav.to_str().expect("UTF-8"));
    ok(unsafe { mmrt_request_add_audio_file(req, path.as_ptr()) }, "audio file");
    assert_eq!(generate(model, req).ids, want, "audio file vs mmrt run --audio");
    // A sample rate outside the limits is reported when generating.
    ok(unsafe { mmrt_request_clear_media(req) }, "clear");
    ok(unsafe { mmrt_request_add_audio_pcm(req, wave.samples.as_ptr(), 100, 10) }, "pcm");
    assert_eq!(unsafe { mmrt_generate(model, req, None, null_mut(), null(), null_mut()) }, MMRT_ERROR_MEDIA);
    assert!(last_error().contains("sample rate 10 Hz"), "{}", last_error());
    ok(unsafe { mmrt_request_free(req) }, "free");
    ok(unsafe { mmrt_model_free(model) }, "free");
}

/// Raises the caller's flag on the second piece and counts pieces.
struct CancelState {
    flag: AtomicI32,
    pieces: usize,
}

unsafe extern "C" fn raise_on_second_piece(_piece: *const c_char, _len: usize, user_data: *mut c_void) -> i32 {
    let state = &mut *(user_data as *mut CancelState);
    state.pieces += 1;
    if state.pieces == 2 {
        state.flag.store(1, Ordering::SeqCst);
    }
    0
}

unsafe extern "C" fn stop_at_once(_piece: *const c_char, _len: usize, user_data: *mut c_void) -> i32 {
    *(user_data as *mut usize) += 1;
    1
}

#[test]
fn cancel_flag_and_callback_cancel_and_the_model_stays_usable() {
    let rt = runtime();
    let model = load_tiny(rt);
    let req = request("Once upon a time");
    let reference = mmrt_run(&tiny(), "Once upon a time", &[], &[]);
    assert!(reference.token_ids.len() > 3, "the reference needs a few tokens to cancel in between");

    let mut state = CancelState { flag: AtomicI32::new(0), pieces: 0 };
    let mut result = null_mut();
    let flag = state.flag.as_ptr() as *const i32;
    let s = unsafe { mmrt_generate(model, req, Some(raise_on_second_piece), &mut state as *mut CancelState as *mut c_void, flag, &mut result) };
    assert_eq!(s, MMRT_ERROR_CANCELLED, "{}", last_error());
    assert!(result.is_null(), "no result after a cancel");
    assert!(last_error().contains("cancel flag"), "{}", last_error());
    assert_eq!(state.pieces, 2, "no piece after the flag went up");

    // Already raised: nothing runs.
    let s = unsafe { mmrt_generate(model, req, None, null_mut(), flag, &mut result) };
    assert_eq!(s, MMRT_ERROR_CANCELLED);

    // The callback's non-zero return cancels too.
    let mut pieces = 0usize;
    let s = unsafe { mmrt_generate(model, req, Some(stop_at_once), &mut pieces as *mut usize as *mut c_void, null(), &mut result) };
    assert_eq!(s, MMRT_ERROR_CANCELLED);
    assert_eq!(pieces, 1);
    assert!(last_error().contains("callback"), "{}", last_error());

    // Lowered again, the same model and request generate the full answer.
    state.flag.store(0, Ordering::SeqCst);
    let mut result = null_mut();
    ok(unsafe { mmrt_generate(model, req, None, null_mut(), flag, &mut result) }, "after cancels");
    assert_eq!(read_result(result).0, reference.token_ids);
    ok(unsafe { mmrt_result_free(result) }, "free");
    ok(unsafe { mmrt_request_free(req) }, "free");
    ok(unsafe { mmrt_model_free(model) }, "free");
}

/// Calls mmrt_generate on its own model from inside the callback.
unsafe extern "C" fn generate_again(_piece: *const c_char, _len: usize, user_data: *mut c_void) -> i32 {
    let (model, req, status) = &mut *(user_data as *mut (usize, usize, Option<MmrtStatus>));
    if status.is_none() {
        *status = Some(mmrt_generate(*model as *mut MmrtModel, *req as *const MmrtRequest, None, null_mut(), null(), null_mut()));
    }
    0
}

#[test]
fn generate_from_its_own_callback_is_refused_not_a_deadlock() {
    let rt = runtime();
    let model = load_tiny(rt);
    let req = request("Once upon a time");
    let mut state = (model as usize, req as usize, None);
    ok(unsafe { mmrt_generate(model, req, Some(generate_again), &mut state as *mut _ as *mut c_void, null(), null_mut()) }, "outer");
    assert_eq!(state.2, Some(MMRT_ERROR_REENTRANT));
    ok(unsafe { mmrt_request_free(req) }, "free");
    ok(unsafe { mmrt_model_free(model) }, "free");
}

#[test]
fn bad_handles_and_null_pointers_are_error_codes() {
    unsafe {
        let rt = runtime();
        let model = load_tiny(rt);
        let req = request("Once upon a time");
        let mut result = null_mut();

        // NULL handles and out-pointers.
        assert_eq!(mmrt_generate(null_mut(), req, None, null_mut(), null(), &mut result), MMRT_ERROR_NULL_ARGUMENT);
        assert!(last_error().contains("NULL"), "{}", last_error());
        assert_eq!(mmrt_generate(model, null(), None, null_mut(), null(), &mut result), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_request_new(null(), null_mut()), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_request_set_prompt(req, null()), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_request_add_image_file(req, null()), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_request_add_image_rgb(req, null(), 2, 2, 6), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_request_add_audio_pcm(req, null(), 10, 16_000), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_model_load(rt, null(), &mut null_mut()), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_model_options_init(null_mut()), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_result_timings(null(), &mut MmrtTimings::default()), MMRT_ERROR_NULL_ARGUMENT);
        assert_eq!(mmrt_result_text(null(), null_mut(), null_mut()), MMRT_ERROR_NULL_ARGUMENT);
        // The free functions take NULL as a no-op, like free().
        ok(mmrt_model_free(null_mut()), "free(NULL)");
        ok(mmrt_result_free(null_mut()), "free(NULL)");

        // Garbage values: never dereferenced.
        for garbage in [1usize, 0xdead_beef, usize::MAX, 0x10_0008, model as usize + 1] {
            assert_eq!(mmrt_generate(garbage as *mut MmrtModel, req, None, null_mut(), null(), &mut result), MMRT_ERROR_INVALID_HANDLE, "{garbage:#x}");
            assert_eq!(mmrt_request_set_chat(garbage as *mut MmrtRequest, 1), MMRT_ERROR_INVALID_HANDLE, "{garbage:#x}");
            assert_eq!(mmrt_result_free(garbage as *mut MmrtResult), MMRT_ERROR_INVALID_HANDLE, "{garbage:#x}");
        }
        assert!(last_error().contains("not a live handle"), "{}", last_error());

        // Wrong kinds.
        assert_eq!(mmrt_generate(req as *mut MmrtModel, req, None, null_mut(), null(), &mut result), MMRT_ERROR_INVALID_HANDLE);
        assert!(last_error().contains("is a request, expected a model"), "{}", last_error());
        assert_eq!(mmrt_generate(model, model as *const MmrtRequest, None, null_mut(), null(), &mut result), MMRT_ERROR_INVALID_HANDLE);
        assert_eq!(mmrt_model_free(req as *mut MmrtModel), MMRT_ERROR_INVALID_HANDLE, "freeing as the wrong kind leaves it alone");
        assert_eq!(mmrt_model_load(model as *const MmrtRuntime, &std::mem::zeroed(), &mut null_mut()), MMRT_ERROR_INVALID_HANDLE);
        ok(mmrt_request_set_chat(req, 0), "the request survived");

        // Freed handles, and a double free.
        let doomed = request("bye");
        ok(mmrt_request_free(doomed), "free");
        assert_eq!(mmrt_request_set_prompt(doomed, c("x").as_ptr()), MMRT_ERROR_INVALID_HANDLE);
        assert_eq!(mmrt_request_free(doomed), MMRT_ERROR_INVALID_HANDLE);
        assert_eq!(mmrt_generate(model, doomed, None, null_mut(), null(), &mut result), MMRT_ERROR_INVALID_HANDLE);
        assert!(result.is_null(), "a failed call leaves NULL in the out-pointer");

        // Values: not UTF-8, out of range, unknown provider, missing bundle.
        let latin1 = CString::new(vec![b'c', b'a', b'f', 0xE9]).expect("no NUL");
        assert_eq!(mmrt_request_set_prompt(req, latin1.as_ptr()), MMRT_ERROR_INVALID_ARGUMENT);
        assert!(last_error().contains("UTF-8"), "{}", last_error());
        assert_eq!(mmrt_request_set_max_tokens(req, 0), MMRT_ERROR_INVALID_ARGUMENT);
        assert_eq!(mmrt_request_set_sampling(req, 0.7, 0, 0.0, 1), MMRT_ERROR_INVALID_ARGUMENT);
        assert!(last_error().contains("top-p"), "{}", last_error());
        assert_eq!(mmrt_request_set_sampling(req, f32::NAN, 0, 1.0, 1), MMRT_ERROR_INVALID_ARGUMENT);
        let missing = c("/no/such/image.png");
        assert_eq!(mmrt_request_add_image_file(req, missing.as_ptr()), MMRT_ERROR_IO);
        let mut options: MmrtModelOptions = std::mem::zeroed();
        ok(mmrt_model_options_init(&mut options), "init");
        let nowhere = c("/no/such/bundle");
        options.bundle_path = nowhere.as_ptr();
        let mut other = null_mut();
        let s = mmrt_model_load(rt, &options, &mut other);
        assert!(s == MMRT_ERROR_MODEL || s == MMRT_ERROR_IO, "{s:?}: {}", last_error());
        assert!(last_error().contains("/no/such/bundle"), "{}", last_error());
        assert!(other.is_null());
        let tiny_path = c(tiny().to_str().expect("UTF-8"));
        let gpu = c("quantum");
        options.bundle_path = tiny_path.as_ptr();
        options.provider = gpu.as_ptr();
        assert_eq!(mmrt_model_load(rt, &options, &mut other), MMRT_ERROR_INVALID_ARGUMENT);
        assert!(last_error().contains("quantum"), "{}", last_error());
        let bad_option = c("cuda:device=1");
        options.provider = bad_option.as_ptr();
        assert_eq!(mmrt_model_load(rt, &options, &mut other), MMRT_ERROR_INVALID_ARGUMENT);
        assert!(last_error().contains("no option \"device\"") && last_error().contains("device_id"), "{}", last_error());
        // A placeholder count that does not match the images is the request's fault.
        ok(mmrt_request_set_prompt(req, c("<image> and <image>").as_ptr()), "prompt");
        assert_eq!(mmrt_generate(model, req, None, null_mut(), null(), &mut result), MMRT_ERROR_REQUEST, "{}", last_error());

        // A buffer too small for the ids: the count is written, the first ids copied.
        ok(mmrt_request_set_prompt(req, c("Once upon a time").as_ptr()), "prompt");
        ok(mmrt_request_set_max_tokens(req, 5), "max tokens");
        ok(mmrt_generate(model, req, None, null_mut(), null(), &mut result), "generate");
        let mut two = [0u32; 2];
        let mut count = 0usize;
        assert_eq!(mmrt_result_token_ids(result, two.as_mut_ptr(), 2, &mut count), MMRT_ERROR_BUFFER_TOO_SMALL);
        assert_eq!(count, 5);
        assert_eq!(mmrt_result_token_ids(result, null_mut(), 3, &mut count), MMRT_ERROR_NULL_ARGUMENT);
        let mut reason = MmrtStopReason::MMRT_STOP_TOKEN;
        ok(mmrt_result_stop_reason(result, &mut reason), "stop reason");
        assert_eq!(reason, MmrtStopReason::MMRT_STOP_MAX_TOKENS);
        let reference = mmrt_run(&tiny(), "Once upon a time", &[], &["--max-tokens", "5"]);
        assert_eq!(&two[..], &reference.token_ids[..2]);
        ok(mmrt_result_free(result), "free");
        assert_eq!(mmrt_result_timings(result, &mut MmrtTimings::default()), MMRT_ERROR_INVALID_HANDLE, "freed result");

        // The last error is per thread.
        let elsewhere = std::thread::spawn(|| last_error()).join().expect("thread");
        assert_eq!(elsewhere, "", "another thread has no error yet");

        ok(mmrt_request_free(req), "free");
        ok(mmrt_model_free(model), "free");
        assert_eq!(mmrt_model_free(model), MMRT_ERROR_INVALID_HANDLE, "double free");
        ok(mmrt_runtime_free(rt), "free");
    }
}

#[test]
fn status_names_and_versions() {
    let name = |s: i32| unsafe { CStr::from_ptr(mmrt_status_name(s)) }.to_str().expect("ASCII").to_string();
    assert_eq!(name(0), "MMRT_OK");
    assert_eq!(name(MMRT_ERROR_INVALID_HANDLE as i32), "MMRT_ERROR_INVALID_HANDLE");
    assert_eq!(name(MMRT_ERROR_PANIC as i32), "MMRT_ERROR_PANIC");
    assert_eq!(name(-7), "MMRT_UNKNOWN_STATUS");
    assert_eq!(unsafe { CStr::from_ptr(mmrt_version()) }.to_str().expect("ASCII"), env!("CARGO_PKG_VERSION"));
    assert_eq!(mmrt_abi_version(), MMRT_ABI_VERSION);
}

#[test]
fn stop_strings_end_the_text_as_mmrt_run_does() {
    let prompt = "Once upon a time";
    let full = mmrt_run(&tiny(), prompt, &[], &[]);
    // A stop string taken from the middle of the full answer.
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 8, "the reference text is too short: {:?}", full.text);
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let reference = mmrt_run(&tiny(), prompt, &[], &["--stop", &stop]);
    let rt = runtime();
    let model = load_tiny(rt);
    let req = request(prompt);
    let stop_c = c(&stop);
    ok(unsafe { mmrt_request_add_stop(req, stop_c.as_ptr()) }, "stop");
    assert_eq!(unsafe { mmrt_request_add_stop(req, c("").as_ptr()) }, MMRT_ERROR_INVALID_ARGUMENT);
    let mut result = null_mut();
    ok(unsafe { mmrt_generate(model, req, None, null_mut(), null(), &mut result) }, "generate");
    let (ids, text, _) = read_result(result);
    assert_eq!(ids, reference.token_ids, "ids with stop {stop:?}");
    assert_eq!(text, reference.text, "text with stop {stop:?}");
    assert!(!text.contains(&stop) && text.len() < full.text.len(), "{text:?}");
    let mut reason = MmrtStopReason::MMRT_STOP_TOKEN;
    ok(unsafe { mmrt_result_stop_reason(result, &mut reason) }, "reason");
    assert_eq!(reason, MmrtStopReason::MMRT_STOP_STRING);
    ok(unsafe { mmrt_result_free(result) }, "free");
    ok(unsafe { mmrt_request_free(req) }, "free");
    ok(unsafe { mmrt_model_free(model) }, "free");
}
