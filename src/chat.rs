//! Chat templates: a conversation (a list of role/content messages) rendered to
//! prompt text by the model's own Jinja template, exactly as transformers'
//! `apply_chat_template(messages, tokenize=False, add_generation_prompt=…)`
//! renders it (byte-for-byte goldens: `tests/chat_template.rs`).
//!
//! The template is the bundle file named by the manifest's `prompt.chat`
//! (the text of a GGUF's `tokenizer.chat_template` or transformers'
//! `chat_template.jinja`), rendered by minijinja set up as transformers sets up
//! Jinja2:
//!
//! * whitespace: `trim_blocks` and `lstrip_blocks` on, `keep_trailing_newline`
//!   off (Jinja2's default: one trailing newline of the template is dropped);
//! * variables: `messages`, `add_generation_prompt`, `tools` and `documents`
//!   (none), `bos_token` / `eos_token` from the manifest (undefined when absent);
//! * Python string, list and dict methods (`.strip()`, `.startswith()`,
//!   `.split()`, `.items()`, …) through minijinja-contrib's pycompat callback,
//!   loop controls (`break`, `continue`), `namespace`, `dict`;
//! * `raise_exception(msg)` fails the render with `msg`; `tojson` writes JSON
//!   as Python's `json.dumps(ensure_ascii=False)` does (not HTML-escaped);
//!   `strftime_now(fmt)` formats the current time (UTC here; transformers
//!   uses local time) for the common `%` codes.
//!
//! Reading is bounded ([`crate::limits::MAX_CHAT_TEMPLATE_BYTES`]) and each
//! render has a fuel budget ([`crate::limits::CHAT_TEMPLATE_FUEL`]), so an
//! untrusted template cannot stall or exhaust the runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind};

use crate::bundle::{Bundle, MANIFEST_FILE};
use crate::error::{Error, Result};
use crate::prompt::ChatTemplateFile;
use crate::tokenizer::TextTokenizer;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant` (templates may know other roles).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message of `role`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A message as the template sees it: a dict with `role` then `content`
/// (Python's key order, which `tojson` keeps).
impl Object for Message {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(Value::from(self.role.as_str())),
            "content" => Some(Value::from(self.content.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["role", "content"])
    }
}

/// Name the template is compiled under (errors say `in <name>:<line>`).
const TEMPLATE: &str = "chat_template";

/// A compiled chat template with the special-token strings it is given.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The bundle file (or other origin) the template came from, for errors.
    origin: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("origin", &self.origin).field("bos_token", &self.bos_token).field("eos_token", &self.eos_token).finish()
    }
}

impl ChatTemplate {
    /// Compile `source`; `origin` names it in errors. A syntax error says what
    /// and on which line.
    pub fn from_source(origin: &str, source: String, bos_token: Option<String>, eos_token: Option<String>) -> std::result::Result<Self, String> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| format!("chat template \"{origin}\": {e}"))?;
        env.set_syntax(syntax);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(crate::limits::CHAT_TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE, source).map_err(|e| format!("chat template \"{origin}\" does not compile: {}", describe(&e)))?;
        Ok(Self { env, origin: origin.to_string(), bos_token, eos_token })
    }

    /// The template named by the bundle's `prompt.chat`, if it has one: read
    /// (bounded, confined to the bundle), checked to be UTF-8, compiled.
    /// Errors name the manifest and the file.
    pub fn load(bundle: &Bundle) -> Result<Option<Self>> {
        let Some(spec) = &bundle.manifest.prompt.chat else { return Ok(None) };
        Self::load_file(bundle, spec).map(Some)
    }

    fn load_file(bundle: &Bundle, spec: &ChatTemplateFile) -> Result<Self> {
        let manifest = bundle.root.join(MANIFEST_FILE);
        let path = bundle.resolve(&spec.file)?;
        let what = format!("chat template \"{}\"", spec.file);
        let bytes = crate::limits::read_bounded(&path, crate::limits::MAX_CHAT_TEMPLATE_BYTES, &what).map_err(|e| Error::io(&path, e))?;
        let source = String::from_utf8(bytes)
            .map_err(|e| Error::Manifest { path: manifest.clone(), message: format!("{what} (`prompt.chat.file`) is not UTF-8 text: {e}") })?;
        Self::from_source(&spec.file, source, spec.bos_token.clone(), spec.eos_token.clone())
            .map_err(|message| Error::Manifest { path: manifest, message: format!("{message} (`prompt.chat.file`)") })
    }

    /// The file the template came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Render `messages`, with the assistant's turn opened at the end when
    /// `add_generation_prompt` is set. A template's `raise_exception`, an
    /// unknown method or a spent fuel budget is an error naming the file.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<Value> = messages.iter().map(|m| Value::from_object(m.clone())).collect();
        let mut ctx: BTreeMap<String, Value> = BTreeMap::from([
            ("messages".into(), Value::from(messages)),
            ("add_generation_prompt".into(), Value::from(add_generation_prompt)),
            ("tools".into(), Value::from(())),
            ("documents".into(), Value::from(())),
        ]);
        ctx.extend(self.bos_token.as_deref().map(|t| ("bos_token".into(), Value::from(t))));
        ctx.extend(self.eos_token.as_deref().map(|t| ("eos_token".into(), Value::from(t))));
        let template = self.env.get_template(TEMPLATE).map_err(|e| self.error(&e))?;
        template.render(Value::from(ctx)).map_err(|e| self.error(&e))
    }

    fn error(&self, e: &minijinja::Error) -> Error {
        let hint = if e.kind() == ErrorKind::OutOfFuel {
            format!(" (the render exceeded its work budget of {} fuel units, limits::CHAT_TEMPLATE_FUEL)", crate::limits::CHAT_TEMPLATE_FUEL)
        } else {
            String::new()
        };
        Error::Request(format!("chat template \"{}\": {}{hint}", self.origin, describe(e)))
    }

    /// Check the template against the bundle's tokenizer, once at load time:
    /// `bos_token` and `eos_token`, and every `<|…|>` marker a probe
    /// conversation renders, must each tokenize to exactly one token (an
    /// added special token); otherwise the model would see the marker spelled
    /// out in pieces. A probe the template refuses (`raise_exception`) is not an
    /// error here: the template may demand another conversation shape.
    pub fn check_tokenizer(&self, tokenizer: &TextTokenizer) -> std::result::Result<(), String> {
        let mut markers: Vec<(String, String)> = Vec::new();
        for (field, token) in [("bos_token", &self.bos_token), ("eos_token", &self.eos_token)] {
            if let Some(t) = token {
                markers.push((format!("`prompt.chat.{field}`"), t.clone()));
            }
        }
        let probe = [Message::system("s"), Message::user("u"), Message::assistant("a"), Message::user("u")];
        if let Ok(text) = self.render(&probe, true) {
            for marker in special_markers(&text) {
                if !markers.iter().any(|(_, m)| *m == marker) {
                    markers.push((format!("the marker the chat template \"{}\" writes", self.origin), marker));
                }
            }
        }
        for (what, marker) in markers {
            let ids = tokenizer.encode(marker.as_str(), false).map_err(|e| format!("tokenizing {what} \"{marker}\": {e}"))?;
            let single = ids.len() == 1 && tokenizer.token_to_id(&marker) == Some(ids[0]);
            if !single {
                return Err(format!(
                    "{what} \"{marker}\" tokenizes to {ids:?}, not to one token; the tokenizer must know it as an added (special) token"
                ));
            }
        }
        Ok(())
    }
}

/// Every distinct `<|…|>` marker (no whitespace inside) in `text`, in order of appearance.
fn special_markers(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<|") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("|>") else { break };
        let inner = &after[..end];
        if !inner.is_empty() && !inner.contains(char::is_whitespace) && !inner.contains('<') {
            let marker = format!("<|{inner}|>");
            if !found.contains(&marker) {
                found.push(marker);
            }
            rest = &after[end + 2..];
        } else {
            rest = &rest[start + 2..];
        }
    }
    found
}

/// A minijinja error as one line: kind and detail, then where.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        if !text.contains("line") {
            text.push_str(&format!(" (line {line})"));
        }
    }
    text
}

/// `raise_exception(msg)`: the template refuses the conversation.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("the template raised: {message}")))
}

/// `tojson(x, indent=None, sort_keys=False)` as transformers' filter: Python's
/// `json.dumps(x, ensure_ascii=False, …)` (separators `, ` and `: `, or `,` and
/// `: ` with an indent); no HTML escaping.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    let style = JsonStyle { indent, sort_keys: sort_keys.unwrap_or(false), ensure_ascii: ensure_ascii.unwrap_or(false) };
    write_json(&mut out, value, &style, 0)?;
    Ok(Value::from_safe_string(out))
}

struct JsonStyle {
    indent: Option<usize>,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn write_json(out: &mut String, value: &Value, style: &JsonStyle, depth: usize) -> std::result::Result<(), minijinja::Error> {
    if depth > 64 {
        return Err(minijinja::Error::new(ErrorKind::InvalidOperation, "tojson: value nested deeper than 64 levels"));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number if value.is_integer() => out.push_str(&value.to_string()),
        ValueKind::Number => {
            let x = f64::try_from(value.clone())?;
            match x {
                x if x.is_nan() => out.push_str("NaN"),
                x if x.is_infinite() => out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" }),
                // Python's repr of a whole float keeps its `.0`.
                x if x.fract() == 0.0 && x.abs() < 1e16 => out.push_str(&format!("{x:.1}")),
                x => out.push_str(&format!("{x}")),
            }
        }
        ValueKind::String => write_json_string(out, value.as_str().unwrap_or_default(), style.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, ('[', ']'), items.len(), style, depth, |out, i| write_json(out, &items[i], style, depth + 1))?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if style.sort_keys {
                keys.sort();
            }
            write_container(out, ('{', '}'), keys.len(), style, depth, |out, i| {
                let key = &keys[i];
                match key.as_str() {
                    Some(k) => write_json_string(out, k, style.ensure_ascii),
                    None => write_json_string(out, &key.to_string(), style.ensure_ascii),
                }
                out.push_str(": ");
                write_json(out, &value.get_item(key)?, style, depth + 1)
            })?;
        }
        kind => {
            return Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: a value of kind {kind} is not JSON serializable")))
        }
    }
    Ok(())
}

fn write_container(
    out: &mut String,
    (open, close): (char, char),
    len: usize,
    style: &JsonStyle,
    depth: usize,
    mut item: impl FnMut(&mut String, usize) -> std::result::Result<(), minijinja::Error>,
) -> std::result::Result<(), minijinja::Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        match style.indent {
            Some(n) => {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&" ".repeat(n * (depth + 1)));
            }
            None if i > 0 => out.push_str(", "),
            None => {}
        }
        item(out, i)?;
    }
    if let Some(n) = style.indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * depth));
    }
    out.push(close);
    Ok(())
}

fn write_json_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `strftime_now(format)`: the current UTC time formatted with Python's
/// `%d %m %Y %y %B %b %A %a %H %M %S %j %%` codes (others are an error).
fn strftime_now(format: String) -> std::result::Result<Value, minijinja::Error> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    strftime(&format, secs).map(Value::from)
}

const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Format the UTC time `secs` seconds after the Unix epoch.
fn strftime(format: &str, secs: i64) -> std::result::Result<String, minijinja::Error> {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (Monday = 0)
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('B') => out.push_str(MONTHS[month as usize - 1]),
            Some('b') => out.push_str(&MONTHS[month as usize - 1][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{:02}", of_day / 3600)),
            Some('M') => out.push_str(&format!("{:02}", of_day / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", of_day % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            other => {
                let code = other.map_or(String::from("%"), |c| format!("%{c}"));
                return Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("strftime_now: the format code {code} is not supported")));
            }
        }
    }
    Ok(out)
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Eras of 400 years (146,097 days) starting on March 1st.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to the proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> ChatTemplate {
        ChatTemplate::from_source("t.jinja", source.into(), Some("<s>".into()), Some("</s>".into())).unwrap()
    }

    #[test]
    fn whitespace_follows_transformers_jinja_settings() {
        // trim_blocks eats the newline after a block tag, lstrip_blocks the
        // indentation before it; one trailing newline of the template is dropped.
        let t = template("{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}\n");
        assert_eq!(t.render(&[Message::user("a"), Message::user("b")], false).unwrap(), "[a]\n[b]\n");
    }

    #[test]
    fn python_methods_and_helpers_work() {
        let t = template("{{ messages[0].content.strip() }}|{{ messages[0].content.split()|length }}|{{ 'x'.startswith('x') }}|{{ bos_token }}{{ eos_token }}|{{ tools is none }}");
        assert_eq!(t.render(&[Message::user("  a b \n")], false).unwrap(), "a b|2|True|<s></s>|True");
        let t = template("{{ raise_exception('roles must alternate') }}");
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("roles must alternate") && err.contains("t.jinja"), "{err}");
    }

    #[test]
    fn tojson_writes_python_json() {
        let t = template("{{ {'a': [1, 2.0, none, true], 'é': 'x\"<y>\\n'}|tojson }}|{{ [1]|tojson(indent=2) }}");
        assert_eq!(t.render(&[], false).unwrap(), "{\"a\": [1, 2.0, null, true], \"é\": \"x\\\"<y>\\n\"}|[\n  1\n]");
    }

    #[test]
    fn syntax_errors_and_endless_templates_are_errors() {
        let err = ChatTemplate::from_source("bad.jinja", "{% for m in messages %}".into(), None, None).unwrap_err();
        assert!(err.contains("bad.jinja") && err.contains("does not compile"), "{err}");
        let t = template("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("CHAT_TEMPLATE_FUEL"), "{err}");
    }

    #[test]
    fn dates_are_gregorian() {
        // 2024-02-29 12:34:56 UTC, a Thursday, day 60 of the year.
        assert_eq!(strftime("%d %b %Y %H:%M:%S %a %j %B %A %y %%", 1_709_210_096).unwrap(), "29 Feb 2024 12:34:56 Thu 060 February Thursday 24 %");
        assert_eq!(strftime("%Y-%m-%d", 0).unwrap(), "1970-01-01");
        assert!(strftime("%Q", 0).is_err());
    }

    #[test]
    fn markers_are_found_once_each() {
        assert_eq!(special_markers("<|im_start|>a<|im_end|>\n<|im_start|>b <| x |> <|a<|b|>"), ["<|im_start|>", "<|im_end|>", "<|b|>"]);
    }
}
