//! The web inbox: its embedded assets, and an end-to-end browser test with headless
//! Chromium driven over WebDriver (chromedriver): open the page, read the address, send
//! mail to it over real SMTP through the real ingress, watch it appear without a reload,
//! open it, and check that the hostile parts of its HTML did not run.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`/usr/bin/chromedriver`).

mod support_api;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support_api::{DOMAIN, serve, store_config};
use tempmx::api::public::{DomainSource, PublicConfig, PublicState, StaticDomains, router};
use tempmx::mailboxes::Registry;
use tempmx_ingress::IngressConfig;
use tempmx_ingress::policy::{DomainStatus, Policy, PoolSnapshot, RecipientMode};
use tempmx_store::{MessageSink, Store};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The hostile mail: a script and an onerror handler that would report to the page if
/// they ever ran (postMessage crosses the sandbox), plus visible text.
const HOSTILE_HTML: &str = "<p>Hello from SMTP</p>\
    <script>top.postMessage('script-ran','*')</script>\
    <img src=x onerror=\"top.postMessage('onerror-ran','*')\">\
    <a href=\"javascript:top.postMessage('link-ran','*')\">link</a>";

#[tokio::test]
async fn page_and_assets_are_embedded() {
    // Goal: `/` and its assets come from the binary with a strict CSP. Method: fetch them.
    let api = support_api::Api::start(PublicConfig::default()).await;
    for (path, ct) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
        ("/icon.svg", "image/svg+xml"),
    ] {
        let r = api.http.get(api.url(path)).send().await.expect("send");
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("ct")
                .starts_with(ct),
            "{path}"
        );
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
    }
    let page = api
        .http
        .get(api.url("/"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(page.contains("sandbox=\"allow-popups allow-popups-to-escape-sandbox\""));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external resources"
    );
}

/// The appliance pieces the browser test needs: real SMTP ingress, store and HTTP API.
struct Appliance {
    base: String,
    smtp: SocketAddr,
    ingress: Option<tempmx_ingress::driver::IngressHandle>,
    server: tokio::task::JoinHandle<()>,
}

impl Appliance {
    async fn start() -> Self {
        let (store, writers, _) = Store::open(&store_config(), 1).expect("store");
        let mut cfg = IngressConfig {
            cores: 1,
            ..IngressConfig::default()
        };
        cfg.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.tls.disabled = true;
        // No DNS may leave the machine.
        cfg.auth.mode = tempmx_ingress::auth::AuthMode::Off;
        let snapshot = PoolSnapshot::new(
            [(
                tempmx_store::Domain::parse(DOMAIN).expect("test domain"),
                DomainStatus::Active,
            )],
            RecipientMode::CatchAll,
        );
        let policy = Arc::new(Policy::new(snapshot, None));
        let sinks = writers
            .into_iter()
            .map(|w| Box::new(w) as Box<dyn MessageSink + Send>)
            .collect();
        let ingress = tempmx_ingress::driver::start(&cfg, policy, sinks).expect("ingress");
        let domains: Arc<dyn DomainSource> = Arc::new(StaticDomains(vec![
            tempmx_store::Domain::parse(DOMAIN).expect("test domain"),
        ]));
        let state = PublicState::new(
            store,
            domains,
            Arc::new(Registry::new(1000)),
            PublicConfig::default(),
            100,
        );
        let (base, server) = serve(router(state)).await;
        Self {
            base,
            smtp: ingress.local_addr(),
            ingress: Some(ingress),
            server,
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(i) = self.ingress.take() {
            i.shutdown();
        }
    }
}

/// A chromedriver child process on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} missing: apt-get install -y chromium chromium-driver"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ];
    let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({ "goog:chromeOptions": { "binary": CHROMIUM, "args": args } });
    let caps = caps.as_object().cloned().expect("object");
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("webdriver session")
}

/// Polls `script` (which returns a value) until `done` accepts it; at most `secs`.
async fn poll(c: &Client, script: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = c.execute(script, vec![]).await.expect("execute");
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for `{script}`, last value {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn send_mail(smtp: SocketAddr, to: &str) {
    use lettre::message::MultiPart;
    use lettre::{Message, SmtpTransport, Transport};
    let email = Message::builder()
        .from("Shop <shop@sender.test>".parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject("Your verification code")
        .multipart(MultiPart::alternative_plain_html(
            "Hello from SMTP".to_owned(),
            HOSTILE_HTML.to_owned(),
        ))
        .expect("build");
    let mailer = SmtpTransport::builder_dangerous(smtp.ip().to_string())
        .port(smtp.port())
        .timeout(Some(Duration::from_secs(10)))
        .build();
    mailer.send(&email).expect("smtp 250");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sees_mail_live_and_scripts_do_not_run() {
    // Goal: the whole user path in a real browser. Method: headless Chromium over
    // WebDriver against the real ingress + store + API; a marker variable proves the page
    // never reloaded; postMessage listeners prove no script of the mail ran.
    let app = Appliance::start().await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = browser(&driver, profile.path()).await;
    c.goto(&app.base).await.expect("open page");

    let v = poll(
        &c,
        "return document.getElementById('address').value;",
        15,
        |v| {
            v.as_str()
                .is_some_and(|s| s.ends_with(&format!("@{DOMAIN}")))
        },
    )
    .await;
    let address = v.as_str().expect("address").to_owned();
    poll(
        &c,
        "return document.getElementById('status').textContent;",
        15,
        |v| v == "live",
    )
    .await;
    c.execute(
        "window.__marker = 'no-reload'; window.__xss = []; \
         window.addEventListener('message', e => window.__xss.push(String(e.data)));",
        vec![],
    )
    .await
    .expect("install listeners");

    let smtp = app.smtp;
    let to = address.clone();
    tokio::task::spawn_blocking(move || send_mail(smtp, &to))
        .await
        .expect("smtp task");
    let sent = Instant::now();
    poll(
        &c,
        "return document.querySelectorAll('#messages button').length;",
        10,
        |v| v.as_u64() == Some(1),
    )
    .await;
    let seen_after = sent.elapsed();
    let marker = c
        .execute("return window.__marker;", vec![])
        .await
        .expect("marker");
    assert_eq!(marker, "no-reload", "the list updated without a reload");
    let text = c
        .find(Locator::Css("#messages button"))
        .await
        .expect("item")
        .text()
        .await
        .expect("text");
    assert!(text.contains("Your verification code"), "{text}");

    screenshot(&c, "web-inbox-list.png").await;
    c.find(Locator::Css("#messages button"))
        .await
        .expect("item")
        .click()
        .await
        .expect("open");
    poll(&c, "const f = document.getElementById('msg-html'); return !f.hidden && !!f.getAttribute('src');", 10, |v| {
        v == true
    })
    .await;
    let frame = c.find(Locator::Id("msg-html")).await.expect("iframe");
    let sandbox = frame.attr("sandbox").await.expect("attr");
    assert_eq!(
        sandbox.as_deref(),
        Some("allow-popups allow-popups-to-escape-sandbox")
    );
    frame.enter_frame().await.expect("enter frame");
    let body = poll(
        &c,
        "return document.body ? document.body.innerText : '';",
        10,
        |v| v.as_str().is_some_and(|s| s.contains("Hello from SMTP")),
    )
    .await;
    assert!(body.as_str().is_some_and(|s| s.contains("Hello from SMTP")));
    let hostile = c
        .execute(
            "return document.querySelectorAll('script,[onerror],[href^=\"javascript\"]').length;",
            vec![],
        )
        .await
        .expect("count");
    assert_eq!(
        hostile, 0,
        "no script, handler or javascript: link in the rendered mail"
    );
    c.enter_parent_frame().await.expect("leave frame");
    // Give any surviving handler time to fire before checking it did not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let xss = c
        .execute("return window.__xss;", vec![])
        .await
        .expect("xss");
    assert_eq!(xss, json!([]), "nothing from the mail ran");
    screenshot(&c, "web-inbox-message.png").await;

    c.set_window_size(390, 844).await.expect("phone size");
    c.find(Locator::Id("back"))
        .await
        .expect("back")
        .click()
        .await
        .expect("back");
    screenshot(&c, "web-inbox-phone.png").await;
    eprintln!(
        "mail visible in the browser {} ms after the SMTP 250",
        seen_after.as_millis()
    );
    c.close().await.expect("close session");
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}
