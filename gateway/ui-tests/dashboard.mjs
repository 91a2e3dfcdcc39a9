// The dashboard in a real browser: Debian's chromium, driven by playwright-core (which
// never downloads a browser of its own). Started by gateway/tests/gateway/dashboard.rs
// against a real gateway, worker and git server on loopback, which hands it, in the
// environment:
//   GF_BASE        the dashboard's URL (http://127.0.0.1:PORT/ui)
//   GF_VIEWER_KEY, GF_OPERATOR_KEY, GF_ADMIN_KEY   keys of organization acme (admin: any)
//   GF_DEAD_JOB    an acme job that died (a clone of a repository made since), to retry
//   GF_DELAYED_JOB an acme job due in an hour, to cancel
//   GF_OTHER_JOB   a job of another organization (globex)
//   GF_LIVE_MS     the gateway's live interval
//   GF_SCREENSHOTS where to save a picture of every view
//   GF_CHROMIUM    the browser (default /usr/bin/chromium)
// Each step prints a line; any failed check ends the run with a non-zero exit and says
// what was expected.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (the Rust test sets it)`);
  return v;
};
const base = env("GF_BASE");
const keys = { viewer: env("GF_VIEWER_KEY"), operator: env("GF_OPERATOR_KEY"), admin: env("GF_ADMIN_KEY") };
const deadJob = env("GF_DEAD_JOB");
const delayedJob = env("GF_DELAYED_JOB");
const otherJob = env("GF_OTHER_JOB");
const liveMs = Number(env("GF_LIVE_MS"));
const shots = env("GF_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

let passed = 0;
const step = (what) => console.log(`-- ${what}`);
const ok = (what) => { passed += 1; console.log(`ok ${passed} ${what}`); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: process.env.GF_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in a container: chromium's own sandbox needs user namespaces it may not have.
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});

const desktop = { viewport: { width: 1280, height: 860 }, colorScheme: "light" };

/** A POST from inside the page (same origin, with the session cookie): its status. */
async function postFromPage(page, path, fields) {
  return page.evaluate(async ({ url, fields }) => {
    const res = await fetch(url, {
      method: "POST",
      body: new URLSearchParams(fields),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    });
    return res.status;
  }, { url: base + path, fields });
}

async function stats(page) {
  return page.evaluate(async (url) => (await fetch(url, { credentials: "same-origin" })).json(), base + "/live/stats");
}

async function signIn(context, key, shot) {
  const page = await context.newPage();
  await page.goto(base + "/");
  assert.match(new URL(page.url()).pathname, /\/signin$/, "a page without a session goes to sign-in");
  if (shot) await page.screenshot({ path: join(shots, shot) });
  await page.fill("#key", key);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/signin")), page.click("form button[type=submit]")]);
  assert.equal(await page.locator("h1").first().innerText(), "Overview");
  return page;
}

async function waitLive(page) {
  await page.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
}

try {
  // ------------------------------------------------------------------ viewer
  step("a viewer signs in and sees no action; the server refuses a forged one");
  const viewerCtx = await browser.newContext(desktop);
  const vp = await signIn(viewerCtx, keys.viewer, "signin.png");
  assert.match(await vp.locator(".badge").innerText(), /viewer · acme/);
  const cookies = await viewerCtx.cookies();
  const session = cookies.find((c) => c.name === "gitfleet_session");
  assert.ok(session, `a session cookie: ${JSON.stringify(cookies)}`);
  assert.equal(session.httpOnly, true, "the session cookie is HttpOnly");
  assert.equal(session.sameSite, "Strict", "the session cookie is SameSite=Strict");
  assert.equal(session.path, new URL(base).pathname, "the cookie's path is the dashboard's");
  for (const key of Object.values(keys)) {
    assert.ok(!cookies.some((c) => c.value.includes(key.slice(4))), "no key in a cookie");
    assert.ok(!(await vp.content()).includes(key.slice(4)), "no key in a page");
  }
  ok("viewer signed in with an HttpOnly, SameSite=Strict cookie; no key in a cookie or page");

  const vr = await vp.goto(`${base}/jobs/${deadJob}`);
  assert.equal(vr.status(), 200);
  assert.equal(await vp.locator('article [data-field="status"]').first().innerText(), "dead");
  assert.equal(await vp.locator("form.js-action").count(), 0, "no action form for a viewer");
  assert.equal(await vp.getByRole("button", { name: "Retry" }).count(), 0, "no Retry button for a viewer");
  await vp.screenshot({ path: join(shots, "job-viewer.png"), fullPage: true });
  const viewerCsrf = await vp.inputValue('form[action$="/signout"] input[name=csrf]');
  assert.equal(await postFromPage(vp, `/jobs/${deadJob}/retry`, { csrf: viewerCsrf }), 403, "a viewer's retry is refused");
  assert.equal(await postFromPage(vp, `/jobs/${delayedJob}/cancel`, { csrf: viewerCsrf }), 403, "a viewer's cancel is refused");
  await vp.reload();
  assert.equal(await vp.locator('article [data-field="status"]').first().innerText(), "dead", "still dead");
  ok("viewer: no Retry/Cancel buttons, and a forged retry or cancel with its own CSRF token is 403");
  await viewerCtx.close();

  // ---------------------------------------------------------------- operator
  step("an operator signs in; every view, light and dark, laptop and phone");
  const opCtx = await browser.newContext(desktop);
  const op = await signIn(opCtx, keys.operator);
  assert.match(await op.locator(".badge").innerText(), /operator · acme/);
  await waitLive(op);
  await op.screenshot({ path: join(shots, "overview.png"), fullPage: true });
  await op.goto(`${base}/jobs`);
  assert.ok((await op.locator(`tr[data-job="${deadJob}"]`).count()) === 1, "the dead job is listed");
  assert.equal(await op.locator(`tr[data-job="${otherJob}"]`).count(), 0, "another organization's job is not listed");
  await op.screenshot({ path: join(shots, "jobs.png"), fullPage: true });
  await op.goto(`${base}/jobs?status=dead`);
  assert.ok((await op.locator(`tr[data-job="${deadJob}"]`).count()) === 1, "the state filter lists the dead job");
  assert.equal(await op.locator('tbody [data-field="status"]').filter({ hasNotText: "dead" }).count(), 0, "only dead jobs");
  ok("operator: overview and jobs (filter by state; another organization's job left out)");

  const darkCtx = await browser.newContext({ ...desktop, colorScheme: "dark", storageState: await opCtx.storageState() });
  const dark = await darkCtx.newPage();
  await dark.goto(`${base}/`);
  await dark.screenshot({ path: join(shots, "overview-dark.png"), fullPage: true });
  const bg = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, "rgb(246, 247, 249)", "dark mode has a dark background");
  await darkCtx.close();
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, storageState: await opCtx.storageState() });
  const phone = await phoneCtx.newPage();
  await phone.goto(`${base}/jobs/${deadJob}`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `a job's page fits a phone's width (overflow ${overflow}px)`);
  await phone.screenshot({ path: join(shots, "job-phone.png"), fullPage: true });
  await phoneCtx.close();
  ok("dark mode and a phone's width render");

  step("an action without the CSRF token is refused");
  await op.goto(`${base}/jobs/${deadJob}`);
  assert.equal(await postFromPage(op, `/jobs/${deadJob}/retry`, {}), 403, "no token: 403");
  assert.equal(await postFromPage(op, `/jobs/${deadJob}/retry`, { csrf: "0".repeat(64) }), 403, "a wrong token: 403");
  const plain = await op.request.post(`${base}/jobs/${deadJob}/retry`, { form: {}, maxRedirects: 0 });
  assert.equal(plain.status(), 403, "a plain form post without the token: 403");
  assert.match(await plain.text(), /CSRF/);
  await op.reload();
  assert.equal(await op.locator('article [data-field="status"]').first().innerText(), "dead", "still dead");
  ok("operator: a retry without (or with a wrong) CSRF token is 403 and changes nothing");

  step("a dead job is retried from its page and turns done without a reload");
  const list = await opCtx.newPage();
  await list.goto(`${base}/jobs`);
  await waitLive(list);
  await waitLive(op);
  await op.screenshot({ path: join(shots, "job-dead.png"), fullPage: true });
  const retry = op.getByRole("button", { name: "Retry" });
  assert.equal(await retry.isVisible(), true, "the operator has a Retry button on a dead job");
  await op.evaluate(() => { window.__samePage = "yes"; });
  await list.evaluate(() => { window.__samePage = "yes"; });
  await retry.click();
  await op.waitForFunction(() => document.querySelector('article [data-field="status"]').textContent === "done", null, { timeout: 60000 });
  await list.waitForFunction((id) => document.querySelector(`tr[data-job="${id}"] [data-field="status"]`).textContent === "done", deadJob, { timeout: 30000 });
  assert.equal(await op.evaluate(() => window.__samePage), "yes", "the job's page was not reloaded");
  assert.equal(await list.evaluate(() => window.__samePage), "yes", "the list was not reloaded");
  assert.equal(await retry.isVisible(), false, "no Retry on a job that is done");
  assert.match(await op.locator('[data-field="result"]').innerText(), /sandbox_id/, "its result is shown live");
  await op.screenshot({ path: join(shots, "job-done.png"), fullPage: true });
  ok("retried from its page: the page and the list show done, live, without a reload");

  step("one query set per interval, however many pages listen; none when nobody does");
  const third = await opCtx.newPage();
  await third.goto(`${base}/`);
  await waitLive(third);
  const before = await stats(op);
  assert.ok(before.subscribers >= 3, `three pages listen: ${JSON.stringify(before)}`);
  const waitMs = 3000;
  await sleep(waitMs);
  const after = await stats(op);
  const ran = after.query_sets - before.query_sets;
  const most = Math.ceil(waitMs / liveMs) + 2;
  assert.ok(ran >= 1 && ran <= most, `${ran} query sets in ${waitMs} ms with ${after.subscribers} pages (at most ${most})`);
  console.log(`   ${ran} query sets in ${waitMs} ms for ${after.subscribers} live pages (interval ${liveMs} ms)`);
  await list.close();
  await third.close();
  await op.goto(`${base}/jobs/${otherJob}`);
  ok(`${ran} query sets for ${after.subscribers} live pages in ${waitMs} ms`);

  step("another organization's job id shows not found");
  const nf = await op.goto(`${base}/jobs/${otherJob}`);
  assert.equal(nf.status(), 404);
  assert.equal(await op.locator("h1").innerText(), "Not found");
  assert.ok(!(await op.content()).includes("globex"), "nothing of the other organization");
  await op.screenshot({ path: join(shots, "not-found.png") });
  let idle = await stats(op);
  for (let i = 0; i < 20 && (idle.subscribers > 0 || idle.running); i += 1) {
    await sleep(liveMs);
    idle = await stats(op);
  }
  assert.equal(idle.subscribers, 0, `nobody listens: ${JSON.stringify(idle)}`);
  assert.equal(idle.running, false, `the live task stopped: ${JSON.stringify(idle)}`);
  await sleep(liveMs * 3);
  const still = await stats(op);
  assert.equal(still.query_sets, idle.query_sets, "no query while nobody watches");
  ok("another organization's job is a 404 page; the live task stopped when nobody watched");

  step("a delayed job is cancelled from its page");
  await op.goto(`${base}/jobs/${delayedJob}`);
  await waitLive(op);
  assert.equal(await op.locator('article [data-field="status"]').first().innerText(), "delayed");
  await op.evaluate(() => { window.__samePage = "yes"; });
  await op.getByRole("button", { name: "Cancel" }).click();
  await op.waitForFunction(() => document.querySelector('article [data-field="status"]').textContent === "cancelled", null, { timeout: 30000 });
  assert.equal(await op.evaluate(() => window.__samePage), "yes");
  ok("cancelled from its page, shown live");

  step("the paused indicator shows when the stream drops, and goes when it is back");
  await op.route("**/live", (route) => route.abort());
  await op.evaluate(() => window.stop());
  await op.waitForSelector('#live[data-state="paused"]', { timeout: 10000 });
  assert.equal(await op.locator("#live").innerText(), "paused");
  await op.screenshot({ path: join(shots, "paused.png") });
  await op.unroute("**/live");
  await waitLive(op);
  ok("the stream dropped: paused shown; back: live again");

  step("sign out ends the session everywhere");
  const stale = (await opCtx.cookies()).find((c) => c.name === "gitfleet_session");
  await op.goto(`${base}/`);
  await Promise.all([op.waitForURL((u) => u.pathname.endsWith("/signin")), op.getByRole("button", { name: "Sign out" }).click()]);
  const replay = await browser.newContext(desktop);
  await replay.addCookies([stale]);
  const rp = await replay.newPage();
  await rp.goto(`${base}/`);
  assert.match(new URL(rp.url()).pathname, /\/signin$/, "the old cookie no longer signs in");
  await replay.close();
  ok("signed out: the old session cookie no longer works");

  // ------------------------------------------------------------------ admin
  step("an admin sees every organization, with a filter");
  const adminCtx = await browser.newContext(desktop);
  const ad = await signIn(adminCtx, keys.admin);
  await ad.goto(`${base}/jobs`);
  assert.equal(await ad.locator(`tr[data-job="${otherJob}"]`).count(), 1, "the admin lists globex's job");
  await ad.goto(`${base}/jobs?org=acme`);
  assert.equal(await ad.locator(`tr[data-job="${otherJob}"]`).count(), 0, "filtered to acme");
  assert.equal(await ad.locator(`tr[data-job="${deadJob}"]`).count(), 1);
  const other = await ad.goto(`${base}/jobs/${otherJob}`);
  assert.equal(other.status(), 200, "an admin opens any organization's job");
  await ad.goto(`${base}/jobs`);
  await ad.screenshot({ path: join(shots, "jobs-admin.png"), fullPage: true });
  await adminCtx.close();
  ok("admin: every organization, and the organization filter");

  await opCtx.close();
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(`not ok: ${e.stack || e}`);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
