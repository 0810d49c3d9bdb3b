// End-to-end test of the web client in headless Chromium against a running server.
//
//   WEB_BASE_URL      the server that serves the client and the Mastodon API (required)
//   FEDI_SERVER_BIN   `fedi-server`, to confirm the e-mail addresses of the accounts the test
//                     signs up (the only step outside the Mastodon API: nobody reads mail here)
//   CHROMIUM          the browser (default /usr/bin/chromium; no browser is downloaded)
//   WEB_E2E_ARTIFACTS where screenshots go (default ./e2e-artifacts)
//
// Prints one line per step with its duration; exits non-zero on the first failure.

import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const BASE = process.env.WEB_BASE_URL?.replace(/\/$/, "");
const SERVER_BIN = process.env.FEDI_SERVER_BIN;
const ARTIFACTS = resolve(process.env.WEB_E2E_ARTIFACTS ?? join(here, "..", "e2e-artifacts"));
const IMAGE = resolve(here, "fixtures", "photo.png");
if (!BASE || !SERVER_BIN) {
  console.error("WEB_BASE_URL and FEDI_SERVER_BIN are required");
  process.exit(2);
}
mkdirSync(ARTIFACTS, { recursive: true });

const TIMEOUT = 15_000;
const figures = {};
const screenshots = [];
const problems = [];
const frames = [];

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

async function step(name, fn) {
  const t0 = performance.now();
  try {
    await fn();
  } catch (e) {
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    if (frames.length) console.log(`streaming frames (last 30):\n  ${frames.slice(-30).join("\n  ")}`);
    throw e;
  }
  console.log(`ok   ${name} (${Math.round(performance.now() - t0)} ms)`);
}

async function shot(page, name) {
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  screenshots.push(file);
}

async function api(method, path, { token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body) headers["Content-Type"] = "application/json";
  const res = await fetch(BASE + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

function confirmEmail(username) {
  execFileSync(SERVER_BIN, ["admin", "accounts", "confirm", username], { stdio: ["ignore", "pipe", "inherit"] });
}

/** Every page fails the test on a CSP violation or an uncaught error. */
function watch(page, who) {
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`${who}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${who}: uncaught ${e.message}`));
  // The streaming traffic, shown when a step fails.
  page.on("websocket", (ws) => {
    frames.push(`${who} open ${ws.url().replace(/access_token=[^&]+/, "access_token=…")}`);
    ws.on("framesent", (f) => frames.push(`${who} > ${String(f.payload).slice(0, 200)}`));
    ws.on("framereceived", (f) => frames.push(`${who} < ${String(f.payload).slice(0, 200)}`));
    ws.on("close", () => frames.push(`${who} closed`));
    ws.on("socketerror", (e) => frames.push(`${who} error ${e}`));
  });
}

async function signIn(page, email, password, screenshot) {
  await page.goto(BASE + "/");
  await page.getByRole("button", { name: "Sign in" }).click();
  // The server's own sign-in and consent pages, then back to /oauth-callback.
  await page.waitForURL(/\/oauth\/authorize/);
  await page.fill("#email", email);
  await page.fill("#password", password);
  if (screenshot) await shot(page, screenshot);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Authorize" }).click();
  await page.waitForURL((u) => u.pathname === "/");
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  const token = await page.evaluate(() => localStorage.getItem("fedi.token"));
  assert(token && token.length > 20, "a token is stored after sign-in");
  return token;
}

function homeTimeline(page) {
  return page.getByRole("region", { name: "Home timeline" });
}

function post(page, text) {
  return page.locator("article.status", { hasText: text });
}

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true });
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  desktop.setDefaultTimeout(TIMEOUT);
  phone.setDefaultTimeout(TIMEOUT);
  const a = await desktop.newPage();
  const b = await phone.newPage();
  watch(a, "alice");
  watch(b, "bob");
  const stamp = Date.now().toString(36);
  const alice = { username: `alice${stamp}`, email: `alice${stamp}@example.net`, password: "correct horse battery" };
  const bob = { username: `bob${stamp}`, email: `bob${stamp}@example.net`, password: "another horse battery" };
  let aliceToken;
  let bobToken;
  const health = await fetch(`${BASE}/api/v1/streaming/health`);
  assert(health.ok, `the server serves the streaming API (/api/v1/streaming/health: ${health.status})`);

  await step("the page is served with a strict CSP and no-cache; assets are immutable", async () => {
    const res = await fetch(BASE + "/", { headers: { Accept: "text/html" } });
    assert(res.status === 200, `GET / is 200 (got ${res.status})`);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert(/default-src 'self'/.test(csp) && /script-src 'self'(;|$)/.test(csp), `CSP forbids inline scripts: ${csp}`);
    assert(/no-cache/.test(res.headers.get("cache-control") ?? ""), "index.html is not cached");
    const html = await res.text();
    assert(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), "no inline script in index.html");
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert(asset, "index.html loads a hashed script");
    const js = await fetch(BASE + asset, { headers: { "Accept-Encoding": "br, gzip" } });
    assert(/immutable/.test(js.headers.get("cache-control") ?? ""), "assets are immutable");
    assert(["br", "gzip"].includes(js.headers.get("content-encoding")), `assets are sent compressed (${js.headers.get("content-encoding")})`);
    figures.initialJsBytes = { transferred: Number(js.headers.get("content-length")), decoded: (await js.arrayBuffer()).byteLength };
    const apiMiss = await fetch(BASE + "/api/v1/no-such-thing", { headers: { Accept: "text/html" } });
    assert(apiMiss.status === 404 && (apiMiss.headers.get("content-type") ?? "").includes("json"), "API paths keep the JSON 404");
  });

  await step("sign up through the form (registrations open)", async () => {
    await a.goto(BASE + "/");
    await a.getByRole("button", { name: "Sign in" }).waitFor();
    await shot(a, "welcome");
    await a.getByRole("link", { name: "Create account" }).click();
    await a.getByLabel("Username").fill(alice.username);
    await a.getByLabel("E-mail").fill(alice.email);
    await a.getByLabel("Password").fill(alice.password);
    await a.getByLabel(/I agree/).check();
    await shot(a, "signup");
    await a.getByRole("button", { name: "Sign up" }).click();
    await a.getByText("Almost there").waitFor();
    confirmEmail(alice.username);
  });

  await step("bob signs up through the API", async () => {
    const app = await api("POST", "/api/v1/apps", { body: { client_name: "e2e", redirect_uris: "urn:ietf:wg:oauth:2.0:oob", scopes: "read write follow" } });
    assert(app.status === 200, `app registered: ${JSON.stringify(app.json)}`);
    const t = await api("POST", "/oauth/token", { body: { grant_type: "client_credentials", client_id: app.json.client_id, client_secret: app.json.client_secret, scope: "write" } });
    const r = await api("POST", "/api/v1/accounts", { token: t.json.access_token, body: { username: bob.username, email: bob.email, password: bob.password, agreement: true, locale: "en" } });
    assert(r.status === 200, `bob registered: ${JSON.stringify(r.json)}`);
    confirmEmail(bob.username);
  });

  await step("alice signs in through the server's OAuth pages (code + PKCE)", async () => {
    aliceToken = await signIn(a, alice.email, alice.password, "oauth-sign-in");
  });

  await step("the home timeline renders within 1 s of navigation", async () => {
    const times = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await a.goto(BASE + "/");
      await homeTimeline(a).locator("article, .empty").first().waitFor();
      times.push(Math.round(performance.now() - t0));
    }
    figures.homeRenderMs = times;
    // The first load fills the browser's caches; the later ones are what a person sees.
    assert(Math.min(...times.slice(1)) < 1000, `home timeline rendered in ${times.join(", ")} ms`);
  });

  const first = `Hello from the web client ${stamp} #webtest`;
  await step("alice posts with an image and its alt text; the post appears", async () => {
    await a.getByLabel("Post text").fill(first);
    await a.locator("#compose-file").setInputFiles(IMAGE);
    const alt = a.getByLabel(/Description \(alt text\)/);
    await alt.fill("A small test picture");
    await a.getByText(/Uploading|Processing/).waitFor({ state: "detached", timeout: 30_000 });
    await a.getByRole("button", { name: "Post", exact: true }).click();
    const card = post(homeTimeline(a), first);
    await card.waitFor();
    const img = card.locator('img[alt="A small test picture"]');
    await img.waitFor();
    assert(await img.evaluate((el) => el.complete && el.naturalWidth > 0), "the image loads from the media store");
    await shot(a, "home-desktop");
  });

  await step("the character count follows the server's limit", async () => {
    const max = (await api("GET", "/api/v2/instance")).json.configuration.statuses.max_characters;
    await a.getByLabel("Post text").fill("x".repeat(max + 1));
    assert((await a.getByLabel("-1 characters left").count()) === 1, "count goes below zero");
    assert(await a.getByRole("button", { name: "Post", exact: true }).isDisabled(), "cannot post over the limit");
    await a.getByLabel("Post text").fill("");
  });

  await step("bob signs in on a phone-sized screen and follows alice", async () => {
    bobToken = await signIn(b, bob.email, bob.password);
    await b.goto(`${BASE}/@${alice.username}`);
    await b.getByRole("button", { name: "Follow" }).click();
    await b.getByRole("button", { name: "Unfollow" }).waitFor();
    await shot(b, "profile-phone");
    // The follow merges alice's posts into bob's feed in the background; a post that the
    // merge (or a feed rebuild) inserts first gets no live event, so wait for it to finish.
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const home = await api("GET", "/api/v1/timelines/home", { token: bobToken });
      if (home.status === 200 && home.json.some((s) => s.content.includes(stamp))) break;
      assert(Date.now() < deadline, `bob's home feed gets alice's post after the follow (${home.status})`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await b.getByRole("link", { name: "Home" }).click();
    await homeTimeline(b).waitFor();
  });

  const second = `Second post ${stamp}, for followers to see`;
  await step("bob sees alice's new post arrive live behind a 'new posts' marker", async () => {
    await b.getByText("Live", { exact: true }).waitFor();
    await a.getByLabel("Post text").fill(second);
    await a.getByRole("button", { name: "Post", exact: true }).click();
    await post(homeTimeline(a), second).waitFor();
    const marker = b.getByRole("button", { name: /new post/ });
    await marker.waitFor();
    assert((await post(homeTimeline(b), second).count()) === 0, "the list does not move before the marker is used");
    await marker.click();
    await post(homeTimeline(b), second).waitFor();
  });

  const reply = `Nice one ${stamp}`;
  await step("bob boosts, bookmarks, favourites and replies to alice's post", async () => {
    const card = post(homeTimeline(b), second).first();
    await card.getByRole("button", { name: /^Boost/ }).click();
    await card.getByRole("button", { name: /^Boosted/ }).waitFor();
    await card.getByRole("button", { name: "Bookmark" }).click();
    await card.getByRole("button", { name: "Bookmarked" }).waitFor();
    await card.getByRole("button", { name: /^Favourite/ }).click();
    await card.getByRole("button", { name: /^Favourited/ }).waitFor();
    const marks = await api("GET", "/api/v1/bookmarks", { token: bobToken });
    assert(marks.json.some((s) => s.content.includes(stamp)), "the bookmark is on the server");
    await card.getByRole("button", { name: /^Reply/ }).click();
    const text = b.getByLabel("Post text");
    assert((await text.inputValue()).startsWith(`@${alice.username} `), "the reply mentions alice");
    await text.press("End");
    await text.type(reply);
    await b.getByRole("button", { name: "Reply", exact: true }).click();
    await b.getByText("Your post was published.").waitFor();
  });

  await step("alice is told live: unread count, then the notifications", async () => {
    await a.getByRole("link", { name: /Notifications, \d+ unread/ }).waitFor();
    await a.getByRole("link", { name: /Notifications/ }).click();
    const list = a.getByRole("region", { name: "Notifications" });
    await list.getByText("favourited your post").waitFor();
    await list.getByText("mentioned you").waitFor();
    await a.getByRole("link", { name: "Notifications", exact: true }).waitFor();
    await shot(a, "notifications");
  });

  await step("the thread view shows the post with bob's reply", async () => {
    await a.getByRole("link", { name: "Home" }).click();
    await post(homeTimeline(a), second).getByRole("link", { name: /Open thread/ }).click();
    const thread = a.getByRole("region", { name: "Thread" });
    await post(thread, second).waitFor();
    await post(thread, reply).waitFor();
    await shot(a, "thread");
  });

  await step("alice edits and deletes her own post", async () => {
    await a.getByRole("link", { name: "Home" }).click();
    const card = post(homeTimeline(a), first);
    await card.getByRole("button", { name: "Edit" }).click();
    const text = a.getByLabel("Post text");
    await a.waitForFunction(() => document.querySelector('textarea[aria-label="Post text"]')?.value.includes("Hello from the web client"));
    await text.fill(`${first} (edited)`);
    await a.getByRole("button", { name: "Save" }).click();
    await a.getByText("Your post was updated.").waitFor();
    await a.reload();
    await post(homeTimeline(a), `${first} (edited)`).getByText("edited").first().waitFor();
    a.once("dialog", (d) => d.accept());
    await post(homeTimeline(a), `${first} (edited)`).getByRole("button", { name: "Delete" }).click();
    await post(homeTimeline(a), first).waitFor({ state: "detached" });
    const gone = await api("GET", "/api/v1/accounts/verify_credentials", { token: aliceToken });
    assert(gone.json.statuses_count === 1, `one post left (${gone.json.statuses_count})`);
  });

  const question = `Tea or coffee? ${stamp} #webtest`;
  await step("alice posts a poll; bob votes on it", async () => {
    await a.getByRole("link", { name: "Home" }).click();
    await a.getByRole("button", { name: "Poll" }).click();
    await a.getByLabel("Option 1").fill("Tea");
    await a.getByLabel("Option 2").fill("Coffee");
    await a.getByLabel("Post text").fill(question);
    await a.getByRole("button", { name: "Post", exact: true }).click();
    await post(homeTimeline(a), question).waitFor();
    // The local timeline comes from the database: no wait for the fan-out.
    await b.goto(BASE + "/public/local");
    const card = post(b.getByRole("region", { name: "Local timeline" }), question);
    await card.getByLabel("Coffee").check();
    await card.getByRole("button", { name: "Vote" }).click();
    await card.getByText("(your vote)").waitFor();
    await card.getByText("100% Coffee").waitFor();
  });

  await step("local and hashtag timelines, followers list", async () => {
    await a.getByRole("link", { name: "Local" }).click();
    await post(a.getByRole("region", { name: "Local timeline" }), second).waitFor();
    await post(a.getByRole("region", { name: "Local timeline" }), question).getByRole("link", { name: "#webtest" }).click();
    await a.waitForURL((u) => u.pathname === "/tags/webtest");
    await post(a.getByRole("region", { name: "Posts tagged webtest" }), question).waitFor();
    await a.goto(`${BASE}/@${alice.username}/followers`);
    await a.getByRole("link", { name: new RegExp(bob.username) }).waitFor();
  });

  await step("alice edits her profile with an avatar", async () => {
    await a.goto(`${BASE}/settings/profile`);
    await a.getByLabel("Display name").fill("Alice Example");
    await a.getByLabel("Avatar", { exact: true }).setInputFiles(IMAGE);
    await a.getByRole("button", { name: "Save" }).click();
    await a.getByText("Saved.").waitFor();
    const me = await api("GET", "/api/v1/accounts/verify_credentials", { token: aliceToken });
    assert(me.json.display_name === "Alice Example", "display name saved");
    assert(!/missing/.test(me.json.avatar), `avatar uploaded (${me.json.avatar})`);
    await a.goto(`${BASE}/@${alice.username}`);
    await a.getByRole("heading", { name: "Alice Example" }).waitFor();
    await shot(a, "profile-desktop");
  });

  await step("search for bob (results, or the API's error in words)", async () => {
    await a.getByRole("link", { name: "Search" }).click();
    await a.getByRole("searchbox").fill(bob.username);
    await a.getByRole("button", { name: "Search" }).click();
    const probe = await api("GET", `/api/v2/search?q=${bob.username}`, { token: aliceToken });
    if (probe.status === 200) await a.getByRole("region", { name: "Search" }).getByRole("link", { name: new RegExp(bob.username) }).waitFor();
    else await a.getByRole("alert").waitFor();
    await shot(a, "search");
  });

  await step("API errors are shown in words (an unknown profile)", async () => {
    await a.goto(`${BASE}/@nobody${stamp}`);
    const alert = a.getByRole("alert");
    await alert.waitFor();
    const text = (await alert.textContent()) ?? "";
    assert(/not found/i.test(text) && !/[{}]/.test(text), `a sentence, not a raw body: ${text}`);
  });

  await step("keyboard: the skip link moves focus to the content; a post is written and sent with the keyboard alone", async () => {
    await a.goto(BASE + "/");
    await homeTimeline(a).waitFor();
    await a.keyboard.press("Tab");
    assert((await a.evaluate(() => document.activeElement?.textContent)) === "Skip to content", "skip link first");
    await a.keyboard.press("Enter");
    assert((await a.evaluate(() => document.activeElement?.id)) === "main", "focus on the main content");
    // Post with the keyboard alone: Tab to the text, type, Ctrl+Enter.
    await a.goto(BASE + "/");
    await homeTimeline(a).waitFor();
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await a.keyboard.press("Tab");
      reached = await a.evaluate(() => document.activeElement?.getAttribute("aria-label") === "Post text");
    }
    assert(reached, "the post text is reachable with Tab");
    const typed = `Typed with the keyboard ${stamp}`;
    await a.keyboard.type(typed);
    await a.keyboard.press("Control+Enter");
    await post(homeTimeline(a), typed).waitFor();
  });

  await step("bob approves followers by hand; alice's request is accepted from his notifications", async () => {
    await b.goto(`${BASE}/settings/profile`);
    await b.getByLabel("Approve followers by hand").check();
    await b.getByRole("button", { name: "Save" }).click();
    await b.getByText("Saved.").waitFor();
    await a.goto(`${BASE}/@${bob.username}`);
    await a.getByRole("button", { name: "Follow", exact: true }).click();
    await a.getByRole("button", { name: "Cancel follow request" }).waitFor();
    await b.goto(`${BASE}/notifications`);
    await b.getByText("asked to follow you").waitFor();
    await b.getByRole("button", { name: "Accept" }).click();
    await b.getByText("Accepted.").waitFor();
    await a.reload();
    await a.getByRole("button", { name: "Unfollow" }).waitFor();
  });

  await step("sign out revokes the token", async () => {
    await b.getByRole("button", { name: "Sign out" }).click();
    await b.getByRole("button", { name: "Sign in" }).waitFor();
    const r = await api("GET", "/api/v1/accounts/verify_credentials", { token: bobToken });
    assert(r.status === 401, `the revoked token is refused (got ${r.status})`);
  });

  await browser.close();
  if (problems.length) throw new Error(`problems in the pages:\n${problems.join("\n")}`);
  console.log(`figures: ${JSON.stringify(figures)}`);
  console.log(`screenshots: ${screenshots.join(" ")}`);
}

main().catch((e) => {
  if (problems.length) console.log(`problems in the pages:\n${problems.join("\n")}`);
  console.error(e?.message ?? e);
  process.exit(1);
});
