//! A running `mmrt serve` (port chosen by the system, printed at start), the
//! exporters' Python with the `openai` client, and a raw HTTP/1.1 exchange
//! for what a client library hides (a connection dropped mid-stream).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::cli::mmrt_bin;
use super::root;

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub address: String,
    /// Everything it wrote on stderr after the listening line.
    pub log: mpsc::Receiver<String>,
}

impl Server {
    /// `mmrt serve --port 0 ARGS`, waiting (up to 2 minutes) until it listens.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(mmrt_bin())
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .current_dir(root())
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mmrt serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let address = loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("mmrt serve: listening on http://") {
                        break rest.split_whitespace().next().expect("address").to_string();
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("mmrt serve did not start listening: {e} (status {:?})", child.try_wait());
                }
            }
        };
        Server { child, base_url: format!("http://{address}"), address, log: rx }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One request over a fresh connection; returns the status and body.
    pub fn request(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
        let mut stream = self.connect();
        send(&mut stream, method, path, key, body);
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        parse_response(&text)
    }

    /// A connection with a request written and not yet read.
    pub fn open(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> TcpStream {
        let mut stream = self.connect();
        send(&mut stream, method, path, key, body);
        stream
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.address).expect("connect to mmrt serve");
        stream.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(stream: &mut TcpStream, method: &str, path: &str, key: Option<&str>, body: &str) {
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes())).expect("write request");
}

/// Status and body (chunked transfer left as is: callers look for substrings).
pub fn parse_response(text: &str) -> (u16, String) {
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The exporters' Python when it has the `openai` client (`bash exporters/setup.sh`
/// installs it); without it a note and `None` (the test passes), or a panic where real bundles are required.
#[track_caller]
pub fn python_with_openai() -> Option<PathBuf> {
    let python = root().join(".cache/venv-exporters/bin/python");
    let ok = python.is_file()
        && Command::new(&python).args(["-c", "import openai"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(!super::bundles::real_required(), "the exporters' Python has no `openai` package: run `bash exporters/setup.sh`");
        eprintln!("skipping: no Python with the openai package (bash exporters/setup.sh)");
    }
    ok.then_some(python)
}

/// A bundle under models/ when built.
pub fn built_bundle(name: &str) -> Option<PathBuf> {
    let dir = root().join("models").join(name);
    dir.join("bundle.json").is_file().then_some(dir)
}

/// The value of `metric` (a line `NAME VALUE` or `NAME{labels} VALUE`) in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name) && !l.starts_with('#')).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}
