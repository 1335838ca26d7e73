//! # stele-client
//!
//! Talking to one stele node: a lazily connected channel, a deadline on every
//! call (a frozen node makes a call fail, never hang), and the typed reason
//! a node attaches to its errors (`STALE`, `BEHIND_MIN_VERSION`,
//! `stale_parent`, …). It depends on the generated API only: no RocksDB, no
//! openraft.

use std::time::Duration;

use stele_proto::v1::admin_client::AdminClient;
use stele_proto::v1::decision_client::DecisionClient;
use stele_proto::v1::ledger_client::LedgerClient;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

use stele_proto::MAX_API_MESSAGE_BYTES;

/// A connection to one node, pinned: no silent failover.
#[derive(Clone)]
pub struct Client {
    endpoint: String,
    channel: Channel,
    timeout: Duration,
}

impl Client {
    /// `endpoint` is `host:port` or `http://host:port`. Nothing is sent until
    /// the first call.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Client, String> {
        let url = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = Endpoint::from_shared(url.clone())
            .map_err(|e| {
                format!("{endpoint:?} is not an endpoint (host:port or http://host:port): {e}")
            })?
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Client {
            endpoint: url,
            channel,
            timeout,
        })
    }

    /// A client over a channel opened elsewhere (a simulated network, say).
    pub fn from_channel(endpoint: &str, channel: Channel, timeout: Duration) -> Client {
        Client {
            endpoint: endpoint.to_string(),
            channel,
            timeout,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A request with this client's deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    pub fn decision(&self) -> DecisionClient<Channel> {
        DecisionClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_API_MESSAGE_BYTES)
    }

    pub fn ledger(&self) -> LedgerClient<Channel> {
        LedgerClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_API_MESSAGE_BYTES)
    }

    pub fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }
}

/// The typed reason a node gave for an error, when it gave one.
pub fn reason(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

/// Whether the call ran out of its deadline (tonic reports its own
/// client-side deadline as `Cancelled`, "Timeout expired").
pub fn timed_out(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::DeadlineExceeded
        || (status.code() == tonic::Code::Cancelled && status.message().contains("Timeout expired"))
}

/// A metadata field of the error's typed detail.
pub fn detail(status: &tonic::Status, key: &str) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}
