//! `/metrics` over HTTP/1.1 on the node's control thread (never on a
//! core): a non-blocking listener polled each control turn, requests
//! parsed by `httparse`, at most [`MAX_CONNECTIONS`] connections at once
//! (more are answered 503 and closed), at most [`MAX_REQUEST_BYTES`] of
//! request head (a longer one is answered 431 and closed, after reading
//! no more than that), [`REQUEST_TIMEOUT`] to send it. Only `GET` (and
//! `HEAD`) of `/metrics` is served (`text/plain; version=0.0.4`); any other
//! path is 404, any other method 405. One request per connection. A
//! request head must arrive within [`HEAD_TIMEOUT`]; when every slot is
//! taken, a new connection takes the slot of the oldest one still sending
//! its head (so clients that send nothing cannot lock scrapes out), and
//! the exposition is rendered at most once per poll.
//!
//! (A server crate was weighed: `tiny_http` reads a request line of any
//! length into memory and starts a thread per connection; hyper needs an
//! async runtime on a thread of its own. The bounds above are the point of
//! this endpoint, so the loop is ours and the parsing is `httparse`'s.)

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::EngineError;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Most bytes of a request head (request line and headers).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request and take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections accepted per poll at most.
const ACCEPTS_PER_POLL: usize = 64;
/// Headers parsed at most.
const MAX_HEADERS: usize = 32;

/// Counters of the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Scrapes answered 200.
    pub served: u64,
    /// Requests refused (400, 404, 405, 431, 503, timeouts, slots taken).
    pub refused: u64,
    /// Accepts that failed (file descriptors exhausted, …).
    pub accept_errors: u64,
    /// The last of those errors.
    pub last_accept_error: Option<String>,
}

struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    accepted: Instant,
    /// The answer and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
}

/// The `/metrics` endpoint.
pub struct MetricsServer {
    listener: TcpListener,
    conns: Vec<Conn>,
    stats: ServerStats,
}

/// What a request asks for.
enum Route {
    Metrics { head_only: bool },
    Status(u16, &'static str),
}

impl MetricsServer {
    /// Binds `addr` (non-blocking).
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, EngineError> {
        let bind = |addr| -> std::io::Result<TcpListener> {
            let listener = TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        };
        let listener = bind(addr).map_err(|source| EngineError::MetricsBind { addr, source })?;
        Ok(MetricsServer {
            listener,
            conns: Vec::new(),
            stats: ServerStats::default(),
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Counters so far.
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Accepts, reads, answers and closes what is ready; `render` makes
    /// the exposition for each scrape. Never blocks.
    pub fn poll(&mut self, now: Instant, mut render: impl FnMut() -> String) {
        for _ in 0..ACCEPTS_PER_POLL {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let mut conn = Conn {
                        stream,
                        request: Vec::new(),
                        accepted: now,
                        answer: None,
                    };
                    if self.conns.len() >= MAX_CONNECTIONS {
                        // The oldest connection still sending its head
                        // gives up its slot; if every one is answering,
                        // the new one is refused.
                        match self.conns.iter().position(|c| c.answer.is_none()) {
                            Some(oldest) => {
                                self.conns.remove(oldest);
                            }
                            None => conn.answer = Some((status(503, "too many connections"), 0)),
                        }
                        self.stats.refused += 1;
                    }
                    self.conns.push(conn);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => {
                    self.stats.accept_errors += 1;
                    self.stats.last_accept_error = Some(error.to_string());
                    break;
                }
            }
        }
        let mut rendered: Option<String> = None;
        let mut render = move || rendered.get_or_insert_with(&mut render).clone();
        let stats = &mut self.stats;
        self.conns.retain_mut(|conn| {
            if conn.answer.is_none() {
                match read_request(conn) {
                    ReadState::More => {}
                    ReadState::Closed => return false,
                    ReadState::Complete(route) => {
                        conn.answer = Some((
                            match route {
                                Route::Metrics { head_only } => {
                                    stats.served += 1;
                                    ok(&render(), head_only)
                                }
                                Route::Status(code, reason) => {
                                    stats.refused += 1;
                                    status(code, reason)
                                }
                            },
                            0,
                        ));
                    }
                }
            }
            if let Some((bytes, written)) = conn.answer.as_mut() {
                loop {
                    match conn.stream.write(&bytes[*written..]) {
                        Ok(0) => return false,
                        Ok(n) => {
                            *written += n;
                            if *written == bytes.len() {
                                let _ = conn.stream.flush();
                                let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                                return false;
                            }
                        }
                        Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => return false,
                    }
                }
            }
            let age = now.duration_since(conn.accepted);
            if age > REQUEST_TIMEOUT || (conn.answer.is_none() && age > HEAD_TIMEOUT) {
                stats.refused += 1;
                return false;
            }
            true
        });
    }
}

enum ReadState {
    More,
    Closed,
    Complete(Route),
}

fn read_request(conn: &mut Conn) -> ReadState {
    let mut buf = [0u8; 2048];
    loop {
        let room = MAX_REQUEST_BYTES - conn.request.len();
        if room == 0 {
            return ReadState::Complete(Route::Status(431, "request head too large"));
        }
        let take = room.min(buf.len());
        match conn.stream.read(&mut buf[..take]) {
            Ok(0) => return ReadState::Closed,
            Ok(n) => {
                conn.request.extend_from_slice(&buf[..n]);
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(&conn.request) {
                    Ok(httparse::Status::Complete(_)) => {
                        return ReadState::Complete(route(&request))
                    }
                    Ok(httparse::Status::Partial) => continue,
                    Err(_) => return ReadState::Complete(Route::Status(400, "bad request")),
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => return ReadState::More,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return ReadState::Closed,
        }
    }
}

fn route(request: &httparse::Request<'_, '_>) -> Route {
    let path = request.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Route::Status(404, "not found: metrics are at /metrics");
    }
    match request.method {
        Some("GET") => Route::Metrics { head_only: false },
        Some("HEAD") => Route::Metrics { head_only: true },
        _ => Route::Status(405, "method not allowed: GET /metrics"),
    }
}

fn ok(body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        super::CONTENT_TYPE,
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn status(code: u16, reason: &str) -> Vec<u8> {
    let phrase = match code {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let body = format!("{reason}\n");
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {code} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n{allow}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::scrape;

    /// Polls the server on a thread until `stop`.
    fn serve(
        mut server: MetricsServer,
    ) -> (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<ServerStats>,
    ) {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                server.poll(Instant::now(), || "pc_up 1\n".to_string());
                std::thread::sleep(Duration::from_millis(2));
            }
            server.stats()
        });
        (stop, handle)
    }

    #[test]
    fn serves_only_get_of_metrics_and_refuses_a_huge_request_line() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr();
        let (stop, handle) = serve(server);
        let get = scrape::get(addr, "GET", "/metrics").unwrap();
        assert_eq!(get.status, 200);
        assert_eq!(
            get.content_type.as_deref(),
            Some(crate::metrics::CONTENT_TYPE)
        );
        assert_eq!(get.body, "pc_up 1\n");
        assert_eq!(scrape::get(addr, "GET", "/").unwrap().status, 404);
        assert_eq!(scrape::get(addr, "POST", "/metrics").unwrap().status, 405);
        // A 1 MiB request line: refused after at most MAX_REQUEST_BYTES.
        let huge = format!("/{}", "a".repeat(1 << 20));
        let answer = scrape::get(addr, "GET", &huge);
        assert!(
            answer.as_ref().map_or(true, |a| a.status == 431),
            "{:?}",
            answer.map(|a| a.status)
        );
        assert_eq!(
            scrape::get(addr, "GET", "/metrics").unwrap().status,
            200,
            "still serving"
        );
        // Clients that connect and send nothing take no slot from a scrape.
        let idle: Vec<std::net::TcpStream> = (0..MAX_CONNECTIONS + 4)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            scrape::get(addr, "GET", "/metrics").unwrap().status,
            200,
            "past idle clients"
        );
        drop(idle);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let stats = handle.join().unwrap();
        assert_eq!(stats.served, 3);
    }
}
