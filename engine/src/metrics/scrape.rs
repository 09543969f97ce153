//! Reading a node's `/metrics`: one HTTP/1.1 GET (the response head
//! parsed by `httparse`) and the samples of the text exposition. The devnet
//! summary and the tests read nodes through it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Most bytes of an answer read.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body.
    pub body: String,
}

/// `METHOD path` on `addr`, the whole answer (the server closes).
pub fn get(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // A server may answer and close before a long request is written.
    let _ = stream.write_all(request.as_bytes());
    let mut bytes = Vec::new();
    let _ = Read::by_ref(&mut stream)
        .take(MAX_ANSWER_BYTES as u64)
        .read_to_end(&mut bytes);
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(&bytes) {
        Ok(httparse::Status::Complete(head)) => head,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{addr}: no complete HTTP answer ({} bytes)", bytes.len()),
            ))
        }
    };
    let content_type = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned());
    Ok(Answer {
        status: response.code.unwrap_or(0),
        content_type,
        body: String::from_utf8_lossy(&bytes[head..]).into_owned(),
    })
}

/// One sample of the exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The samples of a text exposition (comments skipped; label values
/// without escapes, as this node writes them).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().ok()?,
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}')?;
                    let labels = body
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .filter_map(|pair| {
                            let (key, value) = pair.split_once("=\"")?;
                            Some((key.to_string(), value.trim_end_matches('"').to_string()))
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            Some(Sample {
                name,
                labels,
                value,
            })
        })
        .collect()
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample.
    pub samples: Vec<Sample>,
    /// The families `# TYPE` names.
    pub families: Vec<String>,
}

impl Scrape {
    /// The scrape of an exposition.
    pub fn of(text: &str) -> Scrape {
        Scrape {
            samples: parse(text),
            families: text
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split(' ').next())
                .map(str::to_string)
                .collect(),
        }
    }

    /// `GET /metrics` of `addr`, parsed.
    pub fn fetch(addr: SocketAddr) -> std::io::Result<Scrape> {
        let answer = get(addr, "GET", "/metrics")?;
        if answer.status != 200 {
            return Err(std::io::Error::other(format!(
                "{addr}/metrics answered {}",
                answer.status
            )));
        }
        Ok(Scrape::of(&answer.body))
    }

    /// The sum of every series named `name` whose labels include `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether a series named `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_and_without() {
        let text = "# HELP a_total x\n# TYPE a_total counter\na_total{shard=\"0\",kind=\"get\"} 3\na_total{shard=\"1\",kind=\"get\"} 4\nb 1.5\nc_bucket{le=\"+Inf\"} 2\n";
        let scrape = Scrape::of(text);
        assert_eq!(scrape.families, vec!["a_total"]);
        assert_eq!(scrape.sum("a_total", &[]), 7.0);
        assert_eq!(scrape.sum("a_total", &[("shard", "1")]), 4.0);
        assert_eq!(scrape.sum("b", &[]), 1.5);
        assert_eq!(scrape.sum("c_bucket", &[("le", "+Inf")]), 2.0);
        assert!(!scrape.has("d"));
    }
}
