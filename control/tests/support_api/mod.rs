//! Shared harness of the public API tests: a real store, the real router on a real
//! axum server bound to 127.0.0.1:0, and messages fed through the store's real write
//! path (`ShardWriter`, the same sink the SMTP ingress uses).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tempmx::api::public::{DomainSource, PublicConfig, PublicState, StaticDomains, router};
use tempmx::mailboxes::Registry;
use tempmx_store::{MessageId, MessageSink, NewMessage, Reader, ShardWriter, Store, StoreConfig};
use tokio::task::JoinHandle;

/// The pool domain every test uses.
pub const DOMAIN: &str = "pool.test";

/// A running public API over a real store.
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The store behind it.
    pub store: Arc<Store>,
    /// The registry behind it.
    pub registry: Arc<Registry>,
    /// The router's state.
    pub state: PublicState,
    writer: Mutex<ShardWriter>,
    server: JoinHandle<()>,
    /// A plain HTTP client.
    pub http: reqwest::Client,
}

/// A store small enough for tests.
pub fn store_config() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 24 << 20,
        segment_bytes: 1 << 20,
        dedup_bytes_max: 2 << 20,
        ..StoreConfig::default()
    }
}

impl Api {
    /// Starts the API with `config` over a fresh one-shard store.
    pub async fn start(config: PublicConfig) -> Self {
        let (store, mut writers, _) = Store::open(&store_config(), 1).expect("store");
        let writer = writers.remove(0);
        let registry = Arc::new(Registry::new(config.mailboxes_max));
        let domains: Arc<dyn DomainSource> = Arc::new(StaticDomains(vec![
            tempmx_store::Domain::parse(DOMAIN).expect("test domain"),
        ]));
        let mail = Reader::Local(store.clone());
        let state = PublicState::new(mail, domains, registry.clone(), config, 100);
        let (base, server) = serve(router(state.clone())).await;
        Self {
            base,
            store,
            registry,
            state,
            writer: Mutex::new(writer),
            server,
            http: client(),
        }
    }

    /// Stores a message for `rcpt` through the real write path.
    pub fn deliver(&self, rcpt: &str, body: &str) -> MessageId {
        let recipients = vec![tempmx_store::Mailbox::parse(rcpt).expect("test address")];
        let msg = NewMessage {
            received_at_ms: now_ms(),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "sender.test",
            mail_from: "from@sender.test",
            recipients: &recipients,
            tls: None,
            trace_headers: b"Received: from sender.test by mx.pool.test\r\n",
            auth: &[],
            body: body.as_bytes(),
        };
        self.writer.lock().accept(&msg).expect("accept").id
    }

    /// Creates a mailbox; returns `(address, token)`.
    pub async fn create(&self, body: serde_json::Value) -> (String, String) {
        let r = self
            .http
            .post(self.url("/api/v1/mailboxes"))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let v: serde_json::Value = r.json().await.expect("json");
        (
            v["address"].as_str().expect("address").to_owned(),
            v["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("send")
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves `router` on 127.0.0.1:0 with connect info; returns the base URL and the task.
pub async fn serve(router: axum::Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let svc = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, svc).await;
    });
    (format!("http://{addr}"), server)
}

/// An HTTP client with a bounded timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A simple text message.
pub fn text_mail(subject: &str, body: &str) -> String {
    format!(
        "From: Sender <from@sender.test>\r\nTo: x@pool.test\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    )
}

/// An HTML message (with a text alternative).
pub fn html_mail(subject: &str, html: &str) -> String {
    format!(
        "From: Sender <from@sender.test>\r\nTo: x@pool.test\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=ALT\r\n\r\n--ALT\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
         --ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--ALT--\r\n"
    )
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
