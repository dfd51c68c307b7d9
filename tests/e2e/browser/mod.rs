//! A real headless Chromium driven over WebDriver (fantoccini against
//! Debian's `chromedriver`), behind a blocking interface so a test can mix
//! browser steps with blocking HTTP calls and simulator checks.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The browser and its driver; both end when it drops.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with an empty profile.
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/test.sh installs chromium-driver)");
        let profile = tempfile::tempdir().expect("profile dir");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = rt.block_on(async {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await
            });
            match attempt {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("no browser session: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        Browser {
            rt,
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("browser open")
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).expect("goto");
    }

    /// The current URL's path.
    pub fn path(&self) -> String {
        self.rt
            .block_on(self.c().current_url())
            .expect("url")
            .path()
            .to_string()
    }

    /// Waits (at most 20 s) until `done` holds: a click's navigation ends
    /// when the next page has loaded, not when the click returns.
    pub fn wait_until(&self, what: &str, done: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "the browser never got to: {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the page's path is `path`.
    pub fn wait_path(&self, path: &str) {
        self.wait_until(path, |b| b.path() == path);
    }

    /// Types into the element `css` selects.
    pub fn fill(&self, css: &str, text: &str) {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.expect(css);
            e.send_keys(text).await.expect("send keys");
        });
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.expect(css);
            e.click().await.expect("click");
        });
    }

    /// Whether an element matches `css`.
    pub fn has(&self, css: &str) -> bool {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// The visible text of the element `css` selects.
    pub fn text(&self, css: &str) -> String {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.expect(css);
            e.text().await.expect("text")
        })
    }

    /// The visible text of the element `css` selects, if the page (which
    /// may be reloading) has it now.
    pub fn try_text(&self, css: &str) -> Option<String> {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.ok()?;
            e.text().await.ok()
        })
    }

    /// The value of attribute `attr` of the element `css` selects.
    pub fn attr(&self, css: &str, attr: &str) -> String {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.expect(css);
            e.attr(attr).await.expect("attr").unwrap_or_default()
        })
    }

    /// What `script` (a function body; `return` gives the value) returns.
    pub fn js(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute(script, Vec::new()))
            .expect("script")
    }

    /// How far down the page the element `css` starts, in CSS pixels.
    pub fn top(&self, css: &str) -> f64 {
        let script = format!(
            "return document.querySelector({}).getBoundingClientRect().top + window.scrollY;",
            serde_json::Value::from(css)
        );
        self.js(&script)
            .as_f64()
            .unwrap_or_else(|| panic!("no {css}"))
    }

    /// The text of the element `css` selects, shown or not (a closed
    /// `<details>` too).
    pub fn content(&self, css: &str) -> String {
        let script = format!(
            "return document.querySelector({}).textContent;",
            serde_json::Value::from(css)
        );
        self.js(&script)
            .as_str()
            .unwrap_or_else(|| panic!("no {css}"))
            .to_string()
    }

    /// The whole page's visible text.
    pub fn page_text(&self) -> String {
        self.text("body")
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.rt
            .block_on(self.c().get_all_cookies())
            .ok()?
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// A PNG of the whole page (the window made as tall as the page, up
    /// to 8,000 px, then put back), written to `path`.
    pub fn screenshot_page(&self, path: &std::path::Path) {
        let height = self
            .js("return document.documentElement.scrollHeight;")
            .as_u64()
            .unwrap_or(900)
            .clamp(600, 8_000) as u32;
        self.rt
            .block_on(self.c().set_window_size(1280, height + 140))
            .expect("resize");
        self.screenshot(path);
        self.rt
            .block_on(self.c().set_window_size(1280, 1000))
            .expect("resize");
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        let png = self.rt.block_on(self.c().screenshot()).expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
