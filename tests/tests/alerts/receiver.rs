//! A webhook receiver for the alert tests: a minimal HTTP/1.1 server on 127.0.0.1 that
//! records every request and answers with a status a test scripts per request.
//! Hand-rolled (request line, headers, `content-length` body, keep-alive) so the test
//! checks wardend's client against something that is not hyper itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn delivery(&self) -> String {
        self.header("x-warden-delivery").to_string()
    }
}

/// Decides the status of request number `n` (0-based, in arrival order).
pub type Responder = Arc<dyn Fn(usize) -> u16 + Send + Sync>;

pub fn always(status: u16) -> Responder {
    Arc::new(move |_| status)
}

/// Answers `script` in order, then 200.
pub fn script(statuses: &[u16]) -> Responder {
    let statuses = statuses.to_vec();
    Arc::new(move |n| statuses.get(n).copied().unwrap_or(200))
}

pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(responder: Responder) -> Receiver {
        Receiver::start_at("127.0.0.1:0".parse().unwrap(), responder, Duration::ZERO).await
    }

    /// Listens on `addr`; each answer waits `delay` first (to make deliveries overlap).
    pub async fn start_at(addr: SocketAddr, responder: Responder, delay: Duration) -> Receiver {
        let listener = TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, sink.clone(), responder.clone(), delay));
            }
        });
        Receiver { addr, log, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests within {within:?}, got {}: {got:#?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one keep-alive connection until the client closes it.
async fn connection(
    stream: TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    responder: Responder,
    delay: Duration,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let status = {
            let mut log = log.lock().unwrap();
            let status = responder(log.len());
            log.push(Received {
                path,
                headers,
                body,
                status,
                at: Instant::now(),
            });
            status
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let text = format!("scripted answer {status}");
        let response = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if reader
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
