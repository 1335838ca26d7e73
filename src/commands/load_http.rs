//! `stele bench check --http`: AuthZEN evaluations over HTTP/1.1, one
//! keep-alive connection per worker (HTTP/1.1 has one call in flight per
//! connection, so concurrency is connections).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use stele_proto::v1::CheckRequest;

/// What one evaluation came back as: allowed and the version seq, or why
/// it was not answered.
pub type Item = Result<(bool, Option<u64>), String>;

/// A request as the AuthZEN evaluation body: the same principal, action,
/// resource and context as the gRPC request.
pub fn evaluation_body(request: &CheckRequest) -> Bytes {
    let entity = |e: &Option<stele_proto::v1::EntityRef>| {
        e.as_ref()
            .map_or(Value::Null, |e| json!({"type": e.r#type, "id": e.id}))
    };
    let mut body = json!({
        "subject": entity(&request.principal),
        "action": {"name": request.action.as_ref().map(|a| a.id.clone())},
        "resource": entity(&request.resource),
    });
    if !request.context_json.trim().is_empty()
        && let Ok(context) = serde_json::from_str::<Value>(&request.context_json)
    {
        body["context"] = context;
    }
    Bytes::from(body.to_string())
}

/// `{"evaluations": [...]}` from evaluation bodies.
pub fn batch_body<'a>(items: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let mut body = b"{\"evaluations\":[".to_vec();
    for (i, item) in items.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

#[derive(Deserialize)]
struct Answer {
    decision: bool,
    #[serde(default)]
    context: Option<AnswerContext>,
}

#[derive(Deserialize)]
struct AnswerContext {
    version: Option<VersionSeq>,
    reason: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct VersionSeq {
    seq: u64,
}

#[derive(Deserialize)]
struct Answers {
    evaluations: Vec<Answer>,
}

fn item(answer: Answer) -> Item {
    let context = answer.context;
    if let Some(context) = &context {
        if let Some(reason) = &context.reason {
            return Err(reason.clone());
        }
        if let Some(error) = &context.error {
            return Err(error["message"].as_str().unwrap_or("error").to_string());
        }
    }
    Ok((
        answer.decision,
        context.and_then(|c| c.version).map(|v| v.seq),
    ))
}

pub struct HttpCaller {
    host: String,
    sender: SendRequest<Full<Bytes>>,
    timeout: Duration,
}

impl HttpCaller {
    /// A keep-alive connection to `addr`: over TLS with `tls` (the node's
    /// host name checked, this client's certificate presented), else
    /// plaintext.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<HttpCaller, String> {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: no connection within {timeout:?}"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let sender = match tls {
            None => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(|e| format!("{addr}: {e}"))?;
                tokio::spawn(connection);
                sender
            }
            Some(config) => {
                let mut config = (*config).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| format!("{addr}: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("{addr}: TLS: {e}"))?;
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?;
                tokio::spawn(connection);
                sender
            }
        };
        Ok(HttpCaller {
            host: addr.to_string(),
            sender,
            timeout,
        })
    }

    /// One POST of `body` to `path`: the evaluation, or each of a batch's.
    pub async fn call(
        &mut self,
        path: &str,
        body: Bytes,
        batch: bool,
    ) -> Result<Vec<Item>, String> {
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            self.sender.ready().await.map_err(|e| e.to_string())?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))??;
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            ));
        }
        if batch {
            let answers: Answers = serde_json::from_slice(&bytes)
                .map_err(|e| format!("not an AuthZEN batch answer: {e}"))?;
            Ok(answers.evaluations.into_iter().map(item).collect())
        } else {
            let answer: Answer = serde_json::from_slice(&bytes)
                .map_err(|e| format!("not an AuthZEN answer: {e}"))?;
            Ok(vec![item(answer)])
        }
    }
}
