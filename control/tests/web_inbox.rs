//! The web inbox: its embedded assets, and end-to-end browser tests with headless
//! Chromium driven over WebDriver (chromedriver) against the real `tempmx serve` binary,
//! with mail sent over real SMTP to its ingress. Each scenario runs on a desktop window
//! and on a 390 x 844 phone viewport (CDP device emulation) and saves a screenshot of
//! each state under `target/tmp/web-inbox/` (test artifacts, not committed).
//!
//! Needs Debian's `chromium` and `chromium-driver` packages and the npm package
//! `axe-core` in `control/tests/web/node_modules` (all installed by `ops/ci/test.sh`).
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;
mod support_api;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use binary_support::{Running, config_text, start};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempmx::api::public::PublicConfig;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The two pool domains of every test; the picker must offer both.
const DOMAIN_A: &str = "a.inbox.test";
const DOMAIN_B: &str = "b.inbox.test";
/// The page's whole embedded bundle (HTML, JS, CSS, icon) stays below this.
const BUNDLE_BYTES_MAX: usize = 64 << 10;
/// Bound on every wait for the page to react.
const WAIT_SECS: u64 = 15;

/// Browser sessions run one at a time: two Chromiums on the 2-core CI machine would
/// make every timing bound flaky.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The hostile mail: a script and an onerror handler that would report to the page if
/// they ever ran (postMessage crosses the sandbox), plus visible text.
const HOSTILE_HTML: &str = "<p>Hello from SMTP</p>\
    <script>top.postMessage('script-ran','*')</script>\
    <img src=x onerror=\"top.postMessage('onerror-ran','*')\">\
    <a href=\"javascript:top.postMessage('link-ran','*')\">link</a>";

/// A long link (it must wrap on a phone), the code, a mail address and a quoted reply.
const VERIFY_URL: &str = "https://shop.example.test/verify?t=8f2b1c9e0d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0";
const CODE: &str = "482913";

fn code_mail_text() -> String {
    format!(
        "Hello,\n\nYour verification code is {CODE}.\n\n\
         Confirm your address: {VERIFY_URL}\n\
         Questions? Write to help@shop.example.test.\n\n\
         On Monday, Alice wrote:\n> the earlier message, quoted\n> and its second line\n"
    )
}

#[tokio::test]
async fn page_and_assets_are_embedded() {
    // Goal: `/` and its assets come from the binary with a strict CSP, load nothing from
    // elsewhere, and stay one small bundle. Method: fetch them and add up their sizes.
    let api = support_api::Api::start(PublicConfig::default()).await;
    let mut bundle = 0;
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
        bundle += r.bytes().await.expect("body").len();
    }
    eprintln!("embedded bundle: {bundle} bytes");
    assert!(bundle < BUNDLE_BYTES_MAX, "bundle {bundle} bytes");
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

/// A running binary with two active pool domains; `api` adds `[api]` keys and
/// `ttl_default` is the lifetime of a new mailbox (the maximum is a day).
struct App {
    running: Running,
    base: String,
    _dir: tempfile::TempDir,
}

impl App {
    fn start(ttl_default: u64, api: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pool = format!(
            "[pool]\ndomains = [\"{DOMAIN_A}\", \"{DOMAIN_B}\"]\n[pool.policy]\nactive_target = 2\n"
        );
        // A test makes up to three mailboxes a screen within seconds (page, extend, new
        // address): the default burst of 5 would turn the sixth into a 429. Only the
        // rate-limit test, which names its own, is about that limit.
        let burst = if api.contains("create_burst") {
            ""
        } else {
            "create_burst = 100\n"
        };
        let text = config_text(None, 86_400, &pool).replacen(
            "ttl_secs_default = 86400\n",
            &format!("ttl_secs_default = {ttl_default}\n{burst}{api}"),
            1,
        );
        let path = dir.path().join("tempmx.toml");
        std::fs::write(&path, text).unwrap();
        let running = start(&path);
        let base = format!("http://{}", running.http);
        Self {
            running,
            base,
            _dir: dir,
        }
    }

    fn smtp(&self) -> SocketAddr {
        self.running.smtp
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
            Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} missing: apt-get install -y chromium chromium-driver (ops/ci/test.sh)"
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

/// The two screens every scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Screen {
    Desktop,
    Phone,
}

impl Screen {
    fn name(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Phone => "phone",
        }
    }
}

/// A browser session with its own profile (and so its own local storage).
struct Browser {
    c: Client,
    _profile: tempfile::TempDir,
    _driver: Driver,
}

impl Browser {
    async fn open(screen: Screen, lang: &str) -> Self {
        let driver = Driver::start();
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
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
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--lang={lang}"));
        let caps = json!({ "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": args,
            "prefs": { "intl": { "accept_languages": lang } },
        } });
        let caps = caps.as_object().cloned().expect("object");
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("webdriver session");
        if screen == Screen::Phone {
            cdp(
                &c,
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
            )
            .await;
        }
        Self {
            c,
            _profile: profile,
            _driver: driver,
        }
    }

    /// A fresh session showing the app's page.
    async fn at(app: &App, screen: Screen, lang: &str) -> Self {
        let b = Self::open(screen, lang).await;
        b.c.goto(&app.base).await.expect("open page");
        b
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.expect("execute")
    }

    /// Polls `script` (which returns a value) until `done` accepts it; at most `secs`.
    async fn poll(&self, script: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.js(script).await;
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

    /// Whether the element with this id is rendered (not hidden by attribute or style).
    async fn visible(&self, id: &str) -> bool {
        self.js(&format!(
            "const e = document.getElementById('{id}'); return !!(e && e.getClientRects().length);"
        ))
        .await
            == true
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The address once the page shows one on a pool domain, with the stream live.
    async fn address(&self) -> String {
        let v = self
            .poll(
                "return document.getElementById('address').textContent;",
                WAIT_SECS,
                |v| {
                    v.as_str().is_some_and(|s| {
                        s.ends_with(&format!("@{DOMAIN_A}")) || s.ends_with(&format!("@{DOMAIN_B}"))
                    })
                },
            )
            .await;
        self.poll(
            "return document.getElementById('status').dataset.state;",
            WAIT_SECS,
            |v| v == "live",
        )
        .await;
        v.as_str().unwrap().to_owned()
    }

    async fn count(&self) -> (u64, u64) {
        let v = self
            .js(
                "return [Number(document.getElementById('count').textContent), \
                 document.querySelectorAll('#messages button').length];",
            )
            .await;
        (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
    }

    async fn wait_count(&self, n: u64) {
        self.poll(
            "return [Number(document.getElementById('count').textContent), \
             document.querySelectorAll('#messages button').length];",
            WAIT_SECS,
            |v| v[0].as_u64() == Some(n) && v[1].as_u64() == Some(n),
        )
        .await;
    }

    /// Saves a screenshot as `target/tmp/web-inbox/<screen>-<name>.png`.
    async fn shot(&self, screen: Screen, name: &str) {
        let png = self.c.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-inbox");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{name}.png", screen.name()));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    /// Asserts the page does not scroll sideways and the address is shown whole.
    async fn fits(&self, what: &str) {
        let v = self
            .js(
                "const d = document.documentElement, a = document.getElementById('address'); \
                 return [d.scrollWidth, d.clientWidth, a.scrollWidth, a.clientWidth];",
            )
            .await;
        let n = |i: usize| v[i].as_u64().unwrap();
        assert!(n(0) <= n(1), "{what}: page scrolls sideways: {v}");
        assert!(n(2) <= n(3), "{what}: address cut off: {v}");
    }

    async fn close(self) {
        self.c.close().await.expect("close session");
    }
}

/// Runs a Chrome DevTools Protocol command through chromedriver.
async fn cdp(c: &Client, cmd: &'static str, params: Value) -> Value {
    c.issue_cmd(Cdp { cmd, params })
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params }).to_string();
        (axum::http::Method::POST, Some(body))
    }
}

/// Sends one message over SMTP (lettre) from a blocking task.
async fn send(smtp: SocketAddr, to: &str, subject: &str, text: String, html: Option<&str>) {
    use lettre::message::MultiPart;
    use lettre::{Message, SmtpTransport, Transport};
    let builder = Message::builder()
        .from("Shop <shop@sender.test>".parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject(subject);
    let email = match html {
        Some(h) => builder.multipart(MultiPart::alternative_plain_html(text, h.to_owned())),
        None => builder.body(text),
    }
    .expect("build");
    tokio::task::spawn_blocking(move || {
        SmtpTransport::builder_dangerous(smtp.ip().to_string())
            .port(smtp.port())
            .timeout(Some(Duration::from_secs(10)))
            .build()
            .send(&email)
            .expect("smtp 250");
    })
    .await
    .expect("smtp task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_mail_links_counts_and_extend() {
    // Goal: a text mail's URL and address are safe links, long lines wrap and quotes are
    // dimmed; extend moves the expiry; the count is right after arrival, delete and new
    // address; nothing scrolls sideways and the address is whole. Method: the real binary,
    // real SMTP, Chromium on a desktop window and a phone viewport; read the DOM.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "");
    for screen in [Screen::Desktop, Screen::Phone] {
        let b = Browser::at(&app, screen, "en").await;
        let address = b.address().await;
        assert!(
            !b.visible("warning").await,
            "no expiry warning an hour ahead"
        );
        assert!(!b.visible("notice").await);
        b.fits("fresh inbox").await;
        b.shot(screen, "empty").await;

        send(app.smtp(), &address, "Your code", code_mail_text(), None).await;
        b.wait_count(1).await;
        b.shot(screen, "list").await;
        // Keyboard: Enter on the focused message opens it, Esc (later) closes it.
        b.js("document.querySelector('#messages button').focus();")
            .await;
        b.c.active_element()
            .await
            .expect("focused message")
            .send_keys(&char::from(Key::Enter).to_string())
            .await
            .expect("enter");
        b.poll(
            "return document.querySelectorAll('#msg-text a').length;",
            WAIT_SECS,
            |v| v.as_u64() == Some(2),
        )
        .await;
        let links = b
            .js(
                "return [...document.querySelectorAll('#msg-text a')].map(a => \
                 [a.getAttribute('href'), a.target, a.rel, a.textContent]);",
            )
            .await;
        assert_eq!(
            links[0],
            json!([VERIFY_URL, "_blank", "noopener noreferrer", VERIFY_URL])
        );
        assert_eq!(
            links[1],
            json!([
                "mailto:help@shop.example.test",
                "",
                "",
                "help@shop.example.test"
            ])
        );
        let quoted = b
            .js("const q = document.querySelector('#msg-text blockquote'); \
                 return q ? [q.textContent, getComputedStyle(q).color, \
                 getComputedStyle(document.getElementById('msg-text')).color] : null;")
            .await;
        assert!(
            quoted[0]
                .as_str()
                .is_some_and(|s| s.contains("the earlier message") && s.contains("second line")),
            "{quoted}"
        );
        assert_ne!(quoted[1], quoted[2], "quoted lines are dimmed");
        b.fits("open text message").await;
        b.shot(screen, "message-text").await;

        let before = b
            .js("return document.getElementById('time-left').dataset.expiresAt;")
            .await;
        b.click("#extend").await;
        let after = b
            .poll(
                "return document.getElementById('time-left').dataset.expiresAt;",
                WAIT_SECS,
                |v| *v != before,
            )
            .await;
        let moved = b
            .js(&format!(
                "return Date.parse({after}) - Date.parse({before});"
            ))
            .await;
        assert_eq!(moved, 3_600_000, "extend adds the default lifetime");
        b.shot(screen, "extended").await;

        b.c.active_element()
            .await
            .expect("focus")
            .send_keys(&char::from(Key::Escape).to_string())
            .await
            .expect("escape");
        let back = b
            .poll(
                "return document.getElementById('reader').hidden && \
                 document.activeElement === document.querySelector('#messages button');",
                WAIT_SECS,
                |v| v == true,
            )
            .await;
        assert_eq!(back, true, "Esc closes the message and focus returns to it");
        send(app.smtp(), &address, "Second", "second mail".into(), None).await;
        b.wait_count(2).await;
        b.click("#messages li:first-child button").await;
        b.poll(
            "return !document.getElementById('reader').hidden;",
            WAIT_SECS,
            |v| v == true,
        )
        .await;
        b.click("#delete-msg").await;
        b.wait_count(1).await;
        assert_eq!(b.count().await, (1, 1));
        b.shot(screen, "after-delete").await;

        b.click("#new-box").await;
        let fresh = b
            .poll(
                "return document.getElementById('address').textContent;",
                WAIT_SECS,
                |v| v.as_str().is_some_and(|s| s.contains('@') && s != address),
            )
            .await;
        b.address().await;
        b.wait_count(0).await;
        assert!(
            b.js("return document.getElementById('empty').hidden;")
                .await
                == false,
            "the empty-inbox hint is back for {fresh}"
        );
        b.close().await;
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_mail_shows_copy_button_and_copies() {
    // Goal: a mail with a verification code shows the code above the body as a large
    // copy button and an "open link" button; tapping copies the code to the clipboard and
    // says so. Method: real SMTP to the binary; Chromium with clipboard permission granted
    // over CDP reads the clipboard back. Needs the API's `verifications` field (the
    // compat branch's extraction); until that is merged it fails, saying so.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "");
    for screen in [Screen::Desktop, Screen::Phone] {
        let b = Browser::open(screen, "en").await;
        cdp(
            &b.c,
            "Browser.grantPermissions",
            json!({ "origin": app.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }),
        )
        .await;
        b.c.goto(&app.base).await.expect("open page");
        let address = b.address().await;
        send(app.smtp(), &address, "Your code", code_mail_text(), None).await;
        b.wait_count(1).await;
        let served = b
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 const box = JSON.parse(localStorage.getItem('tempmx.mailbox')); \
                 fetch('/api/v1/mailboxes/' + encodeURIComponent(box.address) + '/messages', \
                   { headers: { Authorization: 'Bearer ' + box.token } }) \
                   .then(r => r.json()).then(p => done(p.messages[0].verifications || null), e => done(String(e)));",
                vec![],
            )
            .await
            .expect("fetch listing");
        assert!(
            served.is_array(),
            "the API serves no `verifications` for a code mail (got {served}): this test needs \
             the compat branch (verification extraction) merged into main"
        );
        b.click("#messages button").await;
        let button = b
            .poll(
                "const c = document.querySelector('#codes .code[data-value=\"482913\"]'); \
                 return c ? [c.dataset.value, c.getBoundingClientRect().height] : null;",
                WAIT_SECS,
                |v| !v.is_null(),
            )
            .await;
        assert_eq!(button[0], CODE);
        assert!(
            button[1].as_f64().unwrap() >= 44.0,
            "large tap target: {button}"
        );
        let link = b
            .js("const a = document.querySelector('#codes a.open-link'); \
                 return a ? [a.href, a.target, a.rel] : null;")
            .await;
        assert!(
            link[0]
                .as_str()
                .is_some_and(|h| h.starts_with("https://shop.example.test/verify?t=")),
            "an 'open link' button for the verification link: {link}"
        );
        assert_eq!(
            (&link[1], &link[2]),
            (&json!("_blank"), &json!("noopener noreferrer"))
        );
        b.click("#codes .code[data-value=\"482913\"]").await;
        b.poll(
            "return document.querySelector('#codes .code[data-value=\"482913\"]').classList.contains('done');",
            WAIT_SECS,
            |v| v == true,
        )
        .await;
        b.shot(screen, "code-copied").await;
        let clip =
            b.c.execute_async(
                "const done = arguments[arguments.length - 1]; \
                 navigator.clipboard.readText().then(done, e => done('error: ' + e));",
                vec![],
            )
            .await
            .expect("read clipboard");
        assert_eq!(clip, CODE, "the clipboard holds the code");
        b.close().await;
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_name_and_domain_and_remembered() {
    // Goal: the name field validates as you type, the domain picker offers the pool's
    // domains, and submitting creates exactly that address, which then receives mail and
    // survives a reload; "forget" drops it from the device. Method: type, read the
    // field's error and button state, submit, send SMTP mail, reload.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "");
    for screen in [Screen::Desktop, Screen::Phone] {
        let b = Browser::at(&app, screen, "en").await;
        b.address().await;
        b.click("#chooser summary").await;
        let domains = b
            .poll(
                "return [...document.querySelectorAll('#domain option')].map(o => o.value);",
                WAIT_SECS,
                |v| v.as_array().is_some_and(|a| a.len() == 2),
            )
            .await;
        let mut domains: Vec<&str> = domains
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        domains.sort_unstable();
        assert_eq!(domains, [DOMAIN_A, DOMAIN_B]);

        let name = b.c.find(Locator::Id("name")).await.expect("name field");
        for (typed, problem) in [
            ("postmaster", "reserved"),
            ("bad..name", "dot"),
            ("no spaces", "Only letters"),
        ] {
            name.clear().await.expect("clear");
            name.send_keys(typed).await.expect("type");
            let v = b
                .js(
                    "return [document.getElementById('name-error').textContent, \
                     document.getElementById('create').disabled, \
                     document.getElementById('name').getAttribute('aria-invalid')];",
                )
                .await;
            assert!(
                v[0].as_str().is_some_and(|s| s.contains(problem)),
                "{typed}: {v}"
            );
            assert_eq!((&v[1], &v[2]), (&json!(true), &json!("true")), "{typed}");
        }
        b.shot(screen, "name-invalid").await;
        b.click("#random").await;
        let random = b
            .js("return [document.getElementById('name').value, document.getElementById('create').disabled];")
            .await;
        assert!(
            random[0].as_str().is_some_and(|s| s.len() == 12) && random[1] == false,
            "{random}"
        );
        // Long enough (52 characters) that the whole address must wrap on a phone.
        let wanted = format!("alice.{}.{}", screen.name(), "x".repeat(40));
        name.clear().await.expect("clear");
        name.send_keys(&wanted).await.expect("type");
        let select = b.c.find(Locator::Id("domain")).await.expect("picker");
        select.select_by_value(DOMAIN_B).await.expect("pick");
        b.shot(screen, "chooser").await;
        b.click("#create").await;
        let want = format!("{wanted}@{DOMAIN_B}");
        b.poll(
            "return document.getElementById('address').textContent;",
            WAIT_SECS,
            |v| *v == want,
        )
        .await;
        b.address().await;
        b.fits("chosen address").await;
        send(app.smtp(), &want, "Welcome", "hi".into(), None).await;
        b.wait_count(1).await;
        b.shot(screen, "chosen").await;

        b.click("#chooser summary").await;
        name.clear().await.expect("clear");
        name.send_keys(&wanted).await.expect("type");
        b.click("#create").await;
        b.poll(
            "return document.getElementById('name-error').textContent;",
            WAIT_SECS,
            |v| v.as_str().is_some_and(|s| s.contains("taken")),
        )
        .await;
        assert_eq!(
            b.js("return document.getElementById('address').textContent;")
                .await,
            want.as_str(),
            "a refused name leaves the inbox as it was"
        );

        b.c.refresh().await.expect("reload");
        assert_eq!(b.address().await, want, "remembered across a reload");
        b.wait_count(1).await;
        b.click("#forget").await;
        b.poll(
            "return [document.getElementById('notice').getClientRects().length > 0, \
             localStorage.getItem('tempmx.mailbox')];",
            WAIT_SECS,
            |v| *v == json!([true, null]),
        )
        .await;
        assert_eq!(b.count().await, (0, 0));
        b.shot(screen, "forgotten").await;
        b.close().await;
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_first_visit_shows_retry() {
    // Goal: a first visit refused with 429 says why and offers a retry that works once
    // the limit allows. Method: a creation limit of one burst and 6 per minute; the test
    // spends the burst over HTTP, the page gets 429, waits out Retry-After, retries.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "create_burst = 1\ncreate_per_minute = 6\n");
    for screen in [Screen::Desktop, Screen::Phone] {
        let b = Browser::open(screen, "en").await;
        let (status, _) = app
            .running
            .public("POST", "/api/v1/mailboxes", None, Some("{}"));
        assert_eq!(status, 201, "the test spends the burst");
        b.c.goto(&app.base).await.expect("open page");
        let shown = b
            .poll(
                "const n = document.getElementById('notice'); \
                 return n.getClientRects().length ? [n.dataset.kind, \
                 document.getElementById('notice-text').textContent] : null;",
                WAIT_SECS,
                |v| !v.is_null(),
            )
            .await;
        assert_eq!(shown[0], "retry", "{shown}");
        assert!(
            shown[1]
                .as_str()
                .is_some_and(|s| s.contains("Too many requests")),
            "{shown}"
        );
        assert!(b.visible("notice-retry").await, "the retry button is shown");
        b.fits("rate-limited").await;
        b.shot(screen, "rate-limited").await;
        // 6 per minute: a token is back within 10 s.
        tokio::time::sleep(Duration::from_secs(10)).await;
        b.click("#notice-retry").await;
        b.address().await;
        assert!(
            !b.visible("notice").await,
            "the notice is gone after the retry"
        );
        b.close().await;
        // The next screen starts with an empty bucket again.
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_shows_retry() {
    // Goal: a 5xx answer (here 503: the registry is full) says what happened and offers a
    // retry that works once there is room. Method: `mailboxes_max = 1`; the test takes the
    // one slot over HTTP, the page gets 503, the test frees the slot, the page retries.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "mailboxes_max = 1\n");
    for screen in [Screen::Desktop, Screen::Phone] {
        let (status, held) = app
            .running
            .public("POST", "/api/v1/mailboxes", None, Some("{}"));
        assert_eq!(status, 201, "the test takes the only slot: {held}");
        let b = Browser::at(&app, screen, "en").await;
        let text = b
            .poll(
                "const n = document.getElementById('notice'); \
                 return n.getClientRects().length ? document.getElementById('notice-text').textContent : null;",
                WAIT_SECS,
                |v| !v.is_null(),
            )
            .await;
        assert!(
            text.as_str()
                .is_some_and(|s| s.contains("could not answer (error 503)")),
            "{text}"
        );
        assert!(b.visible("notice-retry").await, "the retry button is shown");
        b.fits("server error").await;
        b.shot(screen, "server-error").await;
        let free = |address: &str, token: &str| {
            let (status, _) = app.running.public(
                "DELETE",
                &format!("/api/v1/mailboxes/{address}"),
                Some(token),
                None,
            );
            assert_eq!(status, 204);
        };
        free(
            held["address"].as_str().unwrap(),
            held["token"].as_str().unwrap(),
        );
        b.click("#notice-retry").await;
        let address = b.address().await;
        assert!(
            !b.visible("notice").await,
            "the notice is gone after the retry"
        );
        let token = b
            .js("return JSON.parse(localStorage.getItem('tempmx.mailbox')).token;")
            .await;
        b.close().await;
        // The next screen starts with the slot free again.
        free(&address, token.as_str().unwrap());
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_warns_then_says_so() {
    // Goal: a warning shows before expiry, and at expiry a clear notice replaces the
    // inbox (count 0, no silent swap to a new address) until the user asks for a new one.
    // Method: mailboxes that live 8 s; watch the page through expiry.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(8, "");
    for screen in [Screen::Desktop, Screen::Phone] {
        let b = Browser::at(&app, screen, "en").await;
        let address = b.address().await;
        send(app.smtp(), &address, "Soon gone", "bye".into(), None).await;
        b.wait_count(1).await;
        assert!(b.visible("warning").await, "warned before expiry");
        let warning = b
            .js("return document.getElementById('warning-text').textContent;")
            .await;
        assert!(
            warning
                .as_str()
                .is_some_and(|s| s.contains("expires in less than 5 minutes")),
            "{warning}"
        );
        b.shot(screen, "expiry-warning").await;
        let notice = b
            .poll(
                "const n = document.getElementById('notice'); \
                 return n.getClientRects().length ? [document.getElementById('notice-text').textContent, \
                 document.getElementById('address').textContent, \
                 document.getElementById('address').classList.contains('gone')] : null;",
                WAIT_SECS,
                |v| !v.is_null(),
            )
            .await;
        assert!(
            notice[0].as_str().is_some_and(|s| s.contains("expired")),
            "{notice}"
        );
        assert_eq!(
            (&notice[1], &notice[2]),
            (&json!(address), &json!(true)),
            "the old address stays, struck through: no silent swap"
        );
        assert!(b.visible("notice-new").await, "a new address is offered");
        assert!(!b.visible("notice-retry").await, "nothing to retry");
        assert!(
            !b.visible("warning").await,
            "the warning gave way to the notice"
        );
        assert!(
            !b.visible("empty").await,
            "no 'waiting for mail' without an address"
        );
        assert_eq!(b.count().await, (0, 0));
        b.shot(screen, "expired").await;
        b.click("#notice-new").await;
        let fresh = b.address().await;
        assert_ne!(fresh, address);
        b.close().await;
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reconnect_relists_the_inbox() {
    // Goal: when the live stream reconnects, the page re-lists, so a message deleted
    // elsewhere (which the stream never announces) leaves the list and the count.
    // Method: live-push connections end after 3 s (`push_duration_secs_max`); another
    // client deletes one of two messages over HTTP; the count follows after a reconnect.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "push_duration_secs_max = 3\n");
    for screen in [Screen::Desktop, Screen::Phone] {
        let b = Browser::at(&app, screen, "en").await;
        let address = b.address().await;
        let token = b
            .js("return JSON.parse(localStorage.getItem('tempmx.mailbox')).token;")
            .await;
        let token = token.as_str().unwrap().to_owned();
        send(app.smtp(), &address, "First", "one".into(), None).await;
        send(app.smtp(), &address, "Second", "two".into(), None).await;
        b.wait_count(2).await;
        let (status, page) = app.running.public(
            "GET",
            &format!("/api/v1/mailboxes/{address}/messages"),
            Some(&token),
            None,
        );
        assert_eq!(status, 200, "{page}");
        let id = page["messages"][0]["id"].as_str().unwrap().to_owned();
        let (status, _) = app.running.public(
            "DELETE",
            &format!("/api/v1/mailboxes/{address}/messages/{id}"),
            Some(&token),
            None,
        );
        assert_eq!(status, 204);
        b.wait_count(1).await;
        let left = b
            .js("return document.querySelector('#messages button').dataset.id;")
            .await;
        assert_ne!(left, id.as_str(), "the deleted message is the one gone");
        b.close().await;
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_html_does_not_run() {
    // Goal: mail HTML is shown in the sandbox and none of its scripts run; the page is
    // never reloaded by a new mail. Method: a marker variable proves no reload;
    // postMessage listeners prove no script of the mail ran.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "");
    let screen = Screen::Desktop;
    let b = Browser::at(&app, screen, "en").await;
    let address = b.address().await;
    b.js("window.__marker = 'no-reload'; window.__xss = []; \
          window.addEventListener('message', e => window.__xss.push(String(e.data)));")
        .await;
    let sent = Instant::now();
    send(
        app.smtp(),
        &address,
        "Your verification code",
        "Hello from SMTP".into(),
        Some(HOSTILE_HTML),
    )
    .await;
    b.wait_count(1).await;
    let seen_after = sent.elapsed();
    assert_eq!(b.js("return window.__marker;").await, "no-reload");
    b.click("#messages button").await;
    b.poll(
        "const f = document.getElementById('msg-html'); return !f.hidden && !!f.getAttribute('src');",
        WAIT_SECS,
        |v| v == true,
    )
    .await;
    let frame = b.c.find(Locator::Id("msg-html")).await.expect("iframe");
    assert_eq!(
        frame.attr("sandbox").await.expect("attr").as_deref(),
        Some("allow-popups allow-popups-to-escape-sandbox")
    );
    frame.enter_frame().await.expect("enter frame");
    b.poll(
        "return document.body ? document.body.innerText : '';",
        WAIT_SECS,
        |v| v.as_str().is_some_and(|s| s.contains("Hello from SMTP")),
    )
    .await;
    let hostile = b
        .js("return document.querySelectorAll('script,[onerror],[href^=\"javascript\"]').length;")
        .await;
    assert_eq!(hostile, 0, "no script, handler or javascript: link");
    b.c.enter_parent_frame().await.expect("leave frame");
    // Give any surviving handler time to fire before checking it did not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.js("return window.__xss;").await, json!([]));
    b.shot(screen, "message-html").await;
    eprintln!(
        "mail visible in the browser {} ms after the SMTP 250",
        seen_after.as_millis()
    );
    b.close().await;
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_follows_browser_language_and_dark_mode() {
    // Goal: the interface speaks the browser's language (German, Spanish, Russian;
    // English otherwise) and follows a dark system theme. Method: Chromium started with
    // each language; read the labels; emulate `prefers-color-scheme: dark` and compare
    // the page background.
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(3600, "");
    for (lang, copy, inbox) in [
        ("de", "Kopieren", "Posteingang"),
        ("es", "Copiar", "Bandeja de entrada"),
        ("ru", "Копировать", "Входящие"),
        ("fr", "Copy", "Inbox"),
    ] {
        let b = Browser::at(&app, Screen::Phone, lang).await;
        b.address().await;
        let v = b
            .js("return [document.documentElement.lang, document.getElementById('copy').textContent, \
                 document.querySelector('#inbox-title span').textContent, getComputedStyle(document.body).backgroundColor];")
            .await;
        let want_lang = if lang == "fr" { "en" } else { lang };
        assert_eq!(v[0], want_lang, "{v}");
        assert_eq!((&v[1], &v[2]), (&json!(copy), &json!(inbox)), "{lang}");
        if lang == "de" {
            b.shot(Screen::Phone, "german").await;
            cdp(
                &b.c,
                "Emulation.setEmulatedMedia",
                json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
            )
            .await;
            let dark = b
                .js("return getComputedStyle(document.body).backgroundColor;")
                .await;
            assert_ne!(dark, v[3], "dark theme applied");
            b.shot(Screen::Phone, "dark").await;
        }
        b.close().await;
    }
    app.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accessibility_scan_finds_nothing_serious() {
    // Goal: no serious or critical accessibility violation in the inbox, an open message,
    // the address chooser and the expiry warning, on both screens. Method: axe-core (npm)
    // injected into the page, run in each state.
    let axe_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&axe_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `npm ci --prefix control/tests/web` (ops/ci/test.sh does)",
            axe_path.display()
        )
    });
    let _one = ONE_BROWSER.lock().await;
    let app = App::start(120, "");
    for screen in [Screen::Desktop, Screen::Phone] {
        let b = Browser::at(&app, screen, "en").await;
        let address = b.address().await;
        b.js(&axe).await;
        send(app.smtp(), &address, "Your code", code_mail_text(), None).await;
        b.wait_count(1).await;
        scan(&b, "inbox with a message and the expiry warning").await;
        b.click("#messages button").await;
        b.poll(
            "return !document.getElementById('msg-text').hidden;",
            WAIT_SECS,
            |v| v == true,
        )
        .await;
        scan(&b, "open message").await;
        b.click("#back").await;
        b.click("#chooser summary").await;
        scan(&b, "address chooser").await;
        cdp(
            &b.c,
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
        )
        .await;
        scan(&b, "dark theme").await;
        b.close().await;
    }
    app.running.stop();
}

/// Runs axe-core on the page; fails on any serious or critical violation.
async fn scan(b: &Browser, state: &str) {
    let result =
        b.c.execute_async(
            "const done = arguments[arguments.length - 1]; \
             axe.run(document, { resultTypes: ['violations'] }) \
               .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, \
                 nodes: v.nodes.map(n => n.target.join(' ')) })))) \
               .catch(e => done({ error: String(e) }));",
            vec![],
        )
        .await
        .expect("axe run");
    let violations = result
        .as_array()
        .unwrap_or_else(|| panic!("axe failed in {state}: {result}"));
    let bad: Vec<&Value> = violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    eprintln!(
        "axe {state}: {} violations, {} serious or critical",
        violations.len(),
        bad.len()
    );
    assert!(bad.is_empty(), "{state}: {bad:#?}");
}
