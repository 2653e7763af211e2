//! Multi-turn chat on a copy of the tiny bundle given a ChatML-like Jinja
//! template (`prompt.chat`): the KV cache kept across turns feeds only the
//! ids after the cached prefix, and the answer equals a from-scratch run over
//! the whole rendered conversation; `mmrt chat` over stdin; bad chat manifests
//! fail cleanly at load.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use mmrt::chat::Message;
use mmrt::pipeline::Conversation;
use mmrt::Request;

use common::bundles::edit_manifest;
use common::cli::{assert_all_fail, command, strings, Outcome};
use common::TempDir;

/// One turn per message: `<s>role\ncontent</s>\n`, then `<s>assistant\n` for the answer.
const TEMPLATE: &str = "{% for message in messages %}\n{{ bos_token }}{{ message['role'] }}\n{{ message['content'] }}{{ eos_token }}\n{% endfor %}\n{% if add_generation_prompt %}{{ bos_token }}assistant\n{% endif %}\n";

/// What [`TEMPLATE`] renders, written out by hand (the test's reference).
fn rendered(messages: &[(&str, &str)]) -> String {
    let mut text: String = messages.iter().map(|(role, content)| format!("<s>{role}\n{content}</s>\n")).collect();
    text.push_str("<s>assistant\n");
    text
}

/// A copy of models/tiny whose manifest names `template` (written to
/// `chat_template.jinja`, its sha256 listed in `checksums`) as `prompt.chat`.
fn chat_bundle(tmp: &TempDir, name: &str, template: &str) -> PathBuf {
    let dir = tmp.tiny_copy(name);
    let file = dir.join("chat_template.jinja");
    std::fs::write(&file, template).unwrap();
    let sha = mmrt::bundle::sha256_file(&file).unwrap();
    edit_manifest(&dir, |m| {
        m["prompt"]["chat"] = serde_json::json!({"file": "chat_template.jinja", "bos_token": "<s>", "eos_token": "</s>"});
        m["checksums"]["chat_template.jinja"] = sha.into();
    });
    dir
}

fn encode(p: &mmrt::Pipeline, text: &str) -> Vec<u32> {
    p.tokenizer().encode(text, false).unwrap()
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[test]
fn the_second_turn_prefills_only_what_the_cache_lacks_and_matches_a_fresh_run() {
    let tmp = TempDir::new("chat-kv");
    let dir = chat_bundle(&tmp, "tiny-chat", TEMPLATE);
    let mut p = common::pipeline(&dir, &common::session_config(1));
    let mut chat = Conversation::new();
    let (first, second) = ("hi there", "and how are you?");

    let mut streamed = String::new();
    let out1 = p
        .chat(&mut chat, &Request::new(first).with_max_new_tokens(6), |piece| {
            streamed.push_str(piece);
            Ok(())
        })
        .unwrap();
    assert_eq!(streamed, out1.text, "the answer is streamed");
    assert_eq!(out1.prompt_ids, encode(&p, &rendered(&[("user", first)])), "no BOS prepended: the template writes it");
    assert_eq!(out1.prefill_tokens, out1.prompt_ids.len(), "nothing cached before the first turn");

    let out2 = p.chat(&mut chat, &Request::new(second).with_max_new_tokens(6), |_| Ok(())).unwrap();
    let full = encode(&p, &rendered(&[("user", first), ("assistant", &out1.text), ("user", second)]));
    assert_eq!(out2.prompt_ids, full, "turn 2 renders the whole conversation");
    // The cache holds turn 1's prompt and its answer but the last id (never fed).
    let mut cached: Vec<u32> = out1.prompt_ids.iter().chain(&out1.token_ids).copied().collect();
    cached.pop();
    let reused = common_prefix(&cached, &full);
    assert!(reused > 0, "turn 2 shares a prefix with the cache");
    assert_eq!(out2.prefill_tokens, full.len() - reused, "only the ids after the cached prefix are fed");
    assert!(out2.prefill_tokens < full.len());
    assert_eq!(chat.messages().len(), 4);

    // From scratch: the same conversation, no cache, the full rendered prompt prefilled.
    let mut fresh = Conversation::new();
    fresh.push(Message::user(first));
    fresh.push(Message::assistant(out1.text.as_str()));
    let scratch = p.chat(&mut fresh, &Request::new(second).with_max_new_tokens(6), |_| Ok(())).unwrap();
    assert_eq!(scratch.prompt_ids, full);
    assert_eq!(scratch.prefill_tokens, full.len());
    assert_eq!(out2.token_ids, scratch.token_ids, "greedy ids with the kept cache equal a fresh run's");
}

#[test]
fn a_full_context_is_an_error_that_leaves_the_conversation_as_it_was() {
    let tmp = TempDir::new("chat-overflow");
    let dir = chat_bundle(&tmp, "tiny-chat", TEMPLATE);
    let mut p = common::pipeline(&dir, &common::session_config(1));
    let mut chat = Conversation::new().with_system("be brief");
    p.chat(&mut chat, &Request::new("hello").with_max_new_tokens(2), |_| Ok(())).unwrap();
    let long = "the quick brown fox jumps over the lazy dog; ".repeat(20);
    let err = p.chat(&mut chat, &Request::new(long), |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("context length") && err.contains("128") && err.contains("/reset"), "{err}");
    assert_eq!(chat.messages().len(), 3, "system, user, assistant: the failed turn added nothing");
    chat.reset();
    assert_eq!(chat.messages(), [Message::system("be brief")], "reset keeps the system message");
    let out = p.chat(&mut chat, &Request::new("again").with_max_new_tokens(2), |_| Ok(())).unwrap();
    assert_eq!(out.prefill_tokens, out.prompt_ids.len(), "after a reset nothing is cached");
}

#[test]
fn media_and_bundles_without_a_jinja_template_are_refused() {
    let mut p = common::tiny_pipeline();
    let err = p.chat(&mut Conversation::new(), &Request::new("hi"), |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("no Jinja chat template") && err.contains("prompt.chat"), "{err}");
    let tmp = TempDir::new("chat-media");
    let dir = chat_bundle(&tmp, "tiny-chat", TEMPLATE);
    let mut p = common::pipeline(&dir, &common::session_config(1));
    let request = Request::new("what is this?").with_images([common::image_fixture("a_32.png")]);
    let err = p.chat(&mut Conversation::new(), &request, |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("text only"), "{err}");
}

/// `mmrt chat ARGS` with `input` on stdin.
fn mmrt_chat(bundle: &Path, input: &str, extra: &[&str]) -> Outcome {
    let mut args = vec!["chat".to_string(), "--bundle".into(), bundle.to_str().unwrap().into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = command(&args);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn mmrt");
    // A run that fails at load exits without reading: a broken pipe is expected then.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    Outcome {
        ok: out.status.success(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn mmrt_chat_answers_each_line_and_resets() {
    let tmp = TempDir::new("chat-cli");
    let dir = chat_bundle(&tmp, "tiny-chat", TEMPLATE);
    let out = mmrt_chat(&dir, "hello\nsecond message\n/reset\nthird\n/exit\nnever read\n", &["-v", "--max-tokens", "4", "--system", "be brief"]);
    assert!(out.ok, "exit {:?}\nstderr: {}", out.code(), out.stderr);
    assert_eq!(out.stdout.lines().count(), 3, "one answer line per message, none after /exit: {:?}", out.stdout);
    assert!(out.stdout.lines().all(|l| !l.trim().is_empty()), "every answer has text: {:?}", out.stdout);
    let turns: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("[turn")).collect();
    assert_eq!(turns.len(), 3, "{}", out.stderr);
    assert!(turns[0].contains("(0 reused"), "{}", turns[0]);
    assert!(!turns[1].contains("(0 reused"), "turn 2 reuses the cache: {}", turns[1]);
    assert!(turns[2].contains("(0 reused"), "after /reset nothing is reused: {}", turns[2]);
    assert!(out.stderr.contains("(conversation cleared)"), "{}", out.stderr);

    // `run --chat` renders the same template for one turn.
    let run = common::cli::run_bundle(&dir, "hello", &[], &["--chat", "--max-tokens", "3", "--json"]);
    assert!(run.ok, "{}", run.stderr);
}

#[test]
fn bad_chat_manifests_fail_cleanly() {
    let tmp = TempDir::new("chat-bad");
    let outside = tmp.file("outside.jinja", TEMPLATE.as_bytes());
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, Vec<String>)> = vec![
        (
            "missing file",
            Box::new(|d| edit_manifest(d, |m| m["prompt"]["chat"]["file"] = "missing.jinja".into())),
            strings(&["missing.jinja"]),
        ),
        (
            "parent path",
            Box::new(|d| edit_manifest(d, |m| m["prompt"]["chat"]["file"] = "../outside.jinja".into())),
            strings(&["outside the bundle"]),
        ),
        (
            "symlink out",
            Box::new(move |d| {
                std::os::unix::fs::symlink(&outside, d.join("link.jinja")).unwrap();
                edit_manifest(d, |m| m["prompt"]["chat"]["file"] = "link.jinja".into());
            }),
            strings(&["outside the bundle"]),
        ),
        (
            "both chat forms",
            Box::new(|d| edit_manifest(d, |m| m["prompt"]["chat_template"] = "<s>{content}".into())),
            strings(&["`prompt.chat_template` and `prompt.chat` are both given"]),
        ),
        (
            "syntax error",
            Box::new(|d| {
                std::fs::write(d.join("chat_template.jinja"), "{% for m in messages %}{{ m.content }}").unwrap();
                edit_manifest(d, |m| {
                    m["checksums"].as_object_mut().unwrap().remove("chat_template.jinja");
                });
            }),
            strings(&["chat_template.jinja", "does not compile"]),
        ),
        (
            "too large",
            Box::new(|d| {
                std::fs::write(d.join("chat_template.jinja"), " ".repeat(2 << 20)).unwrap();
                edit_manifest(d, |m| {
                    m["checksums"].as_object_mut().unwrap().remove("chat_template.jinja");
                });
            }),
            strings(&["chat_template.jinja", "limit"]),
        ),
        (
            "marker not a token",
            Box::new(|d| {
                std::fs::write(d.join("chat_template.jinja"), "{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}").unwrap();
                edit_manifest(d, |m| {
                    m["checksums"].as_object_mut().unwrap().remove("chat_template.jinja");
                });
            }),
            strings(&["<|im_start|>", "not to one token"]),
        ),
        (
            "checksum",
            Box::new(|d| std::fs::write(d.join("chat_template.jinja"), "{{ messages }}").unwrap()),
            strings(&["checksum mismatch", "chat_template.jinja"]),
        ),
    ];
    let mut rows = Vec::new();
    for (i, (what, edit, needles)) in cases.into_iter().enumerate() {
        let dir = chat_bundle(&tmp, &format!("bad-{i}"), TEMPLATE);
        edit(&dir);
        rows.push((what.to_string(), mmrt_chat(&dir, "hello\n", &["--max-tokens", "2"]), needles));
    }
    assert_all_fail(rows);
}
