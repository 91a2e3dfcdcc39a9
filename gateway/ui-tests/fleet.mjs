// The dashboard's fleet views in a real browser: Debian's chromium, driven by
// playwright-core. Started by gateway/tests/gateway/dashboard_fleet.rs against a real
// gateway, worker, scheduler replica and git server on loopback, which hands it, in the
// environment:
//   GF_BASE          the dashboard's URL (http://127.0.0.1:PORT/ui)
//   GF_API           the gateway's URL, for checks through the API (http://127.0.0.1:PORT)
//   GF_VIEWER_KEY, GF_OPERATOR_KEY   keys of organization acme; GF_ADMIN_KEY an admin's
//   GF_WORKER        the one worker's id
//   GF_SANDBOX       a live sandbox of acme; GF_OTHER_SANDBOX one of globex
//   GF_SPARE_SANDBOX another live sandbox of acme, released through the API
//   GF_LIVE_MS       the gateway's live interval
//   GF_ACME_JOB      an acme job running on the worker; GF_OTHER_JOB a globex one
//   GF_REPO          the repository both sandboxes are clones of
//   GF_SCREENSHOTS   where to save a picture of every view
//   GF_CHROMIUM      the browser (default /usr/bin/chromium)
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
const api = env("GF_API");
const keys = { viewer: env("GF_VIEWER_KEY"), operator: env("GF_OPERATOR_KEY"), admin: env("GF_ADMIN_KEY") };
const worker = env("GF_WORKER");
const ourSandbox = env("GF_SANDBOX");
const theirSandbox = env("GF_OTHER_SANDBOX");
const spareSandbox = env("GF_SPARE_SANDBOX");
const liveMs = Number(env("GF_LIVE_MS"));
const acmeJob = env("GF_ACME_JOB");
const otherJob = env("GF_OTHER_JOB");
const repo = env("GF_REPO");
const shots = env("GF_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

let passed = 0;
const step = (what) => console.log(`-- ${what}`);
const ok = (what) => { passed += 1; console.log(`ok ${passed} ${what}`); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A request to the API with `key`: its status and JSON body. */
async function call(key, method, path, body) {
  const res = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json, text };
}

/** Polls `check` (true when done) until it holds or `ms` pass; fails saying `what`. */
async function until(what, ms, check) {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    const r = await check();
    if (r === true) return;
    last = r;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}

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
    const res = await fetch(url, { method: "POST", body: new URLSearchParams(fields), credentials: "same-origin" });
    return res.status;
  }, { url: base + path, fields });
}

async function signIn(key) {
  const context = await browser.newContext(desktop);
  const page = await context.newPage();
  await page.goto(base + "/");
  await page.fill("#key", key);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/signin")), page.click("form button[type=submit]")]);
  assert.equal(await page.locator("h1").first().innerText(), "Overview");
  return { context, page };
}

/** Page script: keeps every live update the page's stream delivers, as sent, in
 * `window.__ticks` (the page's own EventSource, wrapped). */
function keepTicks() {
  const Real = window.EventSource;
  if (!Real || Real.__kept) return;
  window.__ticks = [];
  function Kept(url, options) {
    const source = new Real(url, options);
    source.addEventListener("tick", (e) => window.__ticks.push(e.data));
    return source;
  }
  Kept.prototype = Real.prototype;
  Object.assign(Kept, { CONNECTING: Real.CONNECTING, OPEN: Real.OPEN, CLOSED: Real.CLOSED, __kept: true });
  window.EventSource = Kept;
}

async function waitLive(page) {
  await page.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
}

/** Waits until the page has applied `n` more live updates. */
async function moreTicks(page, n) {
  const seq = () => page.evaluate(() => Number(document.body.dataset.liveSeq || 0));
  const from = await seq();
  await until(`${n} more live updates`, 15000, async () => (await seq()) >= from + n || `at ${await seq()}, from ${from}`);
}

async function stats(page) {
  return page.evaluate(async (url) => (await fetch(url, { credentials: "same-origin" })).json(), base + "/live/stats");
}

/** The live state of the worker's row as the page shows it now. */
const liveState = (page) => page.evaluate((id) => document.querySelector(`tr[data-worker="${id}"] [data-field="state"]`)?.textContent, worker);

const csrfOf = (page) => page.inputValue('form[action$="/signout"] input[name=csrf]');
const row = (page, attr, id) => page.locator(`tr[data-${attr}="${id}"]`);
const field = (page, attr, id, name) => row(page, attr, id).locator(`[data-field="${name}"]`).first();

/** The worker as the API lists it. */
async function workerNow() {
  const r = await call(keys.admin, "GET", "/v1/workers");
  return r.body.workers.find((w) => w.worker_id === worker);
}

/** The sandbox's row in the registry, as the API lists it. */
async function sandboxRow(key, id) {
  const r = await call(key, "GET", "/v1/sandboxes?limit=500");
  return r.body.sandboxes.find((s) => s.sandbox_id === id);
}

try {
  // ------------------------------------------------------------------ viewer
  step("a viewer sees the fleet views of its organization, with no action");
  const v = await signIn(keys.viewer);
  const vp = v.page;
  assert.ok(await vp.locator('nav a[href$="/workers"]').count() === 1, "the nav has Workers");
  assert.equal(await vp.locator('nav a[href$="/orgs"]').count(), 0, "no Organizations in a viewer's nav");
  await vp.goto(`${base}/workers`);
  assert.equal(await row(vp, "worker", worker).count(), 1, "the worker is listed");
  assert.equal(await row(vp, "worker", worker).locator(`a[href$="/jobs/${acmeJob}"]`).count(), 1, "acme's running job is linked");
  assert.ok(!(await vp.content()).includes(otherJob), "globex's running job is not shown to acme");
  assert.match(await row(vp, "worker", worker).innerText(), /1 of another organization/);
  assert.equal(await vp.getByRole("button", { name: "Drain", exact: true }).count(), 0, "no Drain button for a viewer");
  await vp.goto(`${base}/sandboxes`);
  assert.equal(await row(vp, "sandbox", ourSandbox).count(), 1, "acme's sandbox is listed");
  assert.equal(await row(vp, "sandbox", theirSandbox).count(), 0, "globex's sandbox is not");
  assert.equal(await vp.getByRole("button", { name: "Release" }).count(), 0, "no Release button for a viewer");
  await vp.goto(`${base}/repositories`);
  assert.equal(await row(vp, "repo", repo).count(), 1, "the repository is listed");
  for (const page of ["schedule", "orgs"]) {
    const r = await vp.goto(`${base}/${page}`);
    assert.equal(r.status(), 403, `${page}: a viewer is not allowed`);
    assert.equal(await vp.locator("h1").innerText(), "Not allowed");
    assert.equal(await vp.getByRole("button", { name: "Run now" }).count(), 0);
  }
  ok("viewer: workers (its jobs only), sandboxes (its own), repositories; no buttons; schedule and organizations 403");

  step("a viewer's live Workers and Sandboxes pages are sent its organization's jobs and sandboxes only");
  await v.context.addInitScript(keepTicks);
  await vp.goto(`${base}/workers`);
  await waitLive(vp);
  await until("three updates with the workers' rows", 15000, async () => {
    const n = await vp.evaluate(() => window.__ticks.filter((d) => JSON.parse(d).worker_rows).length);
    return n >= 3 || `${n} so far`;
  });
  let sent = (await vp.evaluate(() => window.__ticks)).join("\n");
  assert.ok(sent.includes(acmeJob), "acme's running job is in the updates");
  assert.ok(!sent.includes(otherJob), "globex's running job id is never sent to acme's viewer");
  assert.ok(!(await vp.content()).includes(otherJob), "nor shown");
  assert.match(await row(vp, "worker", worker).innerText(), /1 of another organization/, "the live row still counts it");
  assert.equal(await vp.getByRole("button", { name: "Drain", exact: true }).count(), 0, "no Drain button after live updates");
  await vp.goto(`${base}/sandboxes`);
  await waitLive(vp);
  await until("three updates with the sandboxes' rows", 15000, async () => {
    const n = await vp.evaluate(() => window.__ticks.filter((d) => JSON.parse(d).sandbox_rows).length);
    return n >= 3 || `${n} so far`;
  });
  sent = (await vp.evaluate(() => window.__ticks)).join("\n");
  assert.ok(sent.includes(ourSandbox), "acme's live sandbox is in the first look's rows");
  assert.ok(!sent.includes(theirSandbox), "globex's sandbox is never sent to acme's viewer");
  ok("viewer: live updates carry acme's running job and sandboxes, never globex's");

  step("a viewer's forged actions, with its own valid CSRF token, are refused and change nothing");
  await vp.goto(`${base}/workers`);
  const vcsrf = await csrfOf(vp);
  assert.equal(await postFromPage(vp, `/workers/${worker}/drain`, { csrf: vcsrf }), 403, "drain");
  assert.equal(await postFromPage(vp, `/sandboxes/${ourSandbox}/release`, { csrf: vcsrf }), 403, "release");
  assert.equal(await postFromPage(vp, "/schedule/priority/run", { csrf: vcsrf }), 403, "run now");
  const still = await workerNow();
  assert.equal(still.drain_requested_at, null, `not drained: ${JSON.stringify(still)}`);
  assert.ok((await sandboxRow(keys.operator, ourSandbox)).status !== "terminated", "the sandbox is still live");
  ok("viewer: forged drain, release and run now are 403; the worker and the sandbox are as they were");
  await v.context.close();

  // ---------------------------------------------------------------- operator
  step("an operator releases its organization's sandbox from the Sandboxes page");
  const o = await signIn(keys.operator);
  const op = o.page;
  await op.goto(`${base}/workers`);
  assert.equal(await op.getByRole("button", { name: "Drain", exact: true }).count(), 0, "no Drain button for an operator");
  const ocsrf = await csrfOf(op);
  assert.equal(await postFromPage(op, `/workers/${worker}/drain`, { csrf: ocsrf }), 403, "an operator's drain is refused");
  const orgs = await op.goto(`${base}/orgs`);
  assert.equal(orgs.status(), 403, "an organization's key is not allowed on Organizations");
  assert.equal(await op.locator("h1").innerText(), "Not allowed");
  assert.match(await op.locator(".error-page").innerText(), /needs admin/);
  await op.screenshot({ path: join(shots, "orgs-not-allowed.png") });
  // Another organization's sandbox: not found, as in the API.
  assert.equal(await postFromPage(op, `/sandboxes/${theirSandbox}/release`, { csrf: ocsrf }), 404, "globex's sandbox is not found");
  // Without the CSRF token (a plain form post, and a wrong token): refused.
  const plain = await op.request.post(`${base}/sandboxes/${ourSandbox}/release`, { form: {}, maxRedirects: 0 });
  assert.equal(plain.status(), 403, "no token: 403");
  assert.match(await plain.text(), /CSRF/);
  assert.equal(await postFromPage(op, `/sandboxes/${ourSandbox}/release`, { csrf: "0".repeat(64) }), 403, "a wrong token: 403");
  assert.equal(await postFromPage(op, `/workers/${worker}/drain`, {}), 403, "no token on drain: 403");
  assert.ok((await sandboxRow(keys.operator, ourSandbox)).status !== "terminated", "still live");

  step("an operator's open Sandboxes page follows a release made through the API, without a reload");
  await op.goto(`${base}/sandboxes`);
  await waitLive(op);
  await op.evaluate(() => { window.__samePage = "yes"; });
  assert.notEqual(await field(op, "sandbox", spareSandbox, "status").innerText(), "terminated");
  assert.equal(await row(op, "sandbox", spareSandbox).getByRole("button", { name: "Release" }).count(), 1);
  await moreTicks(op, 2);
  const released = await call(keys.operator, "DELETE", `/v1/sandboxes/${spareSandbox}`);
  assert.equal(released.status, 200, released.text);
  await op.waitForFunction((id) => document.querySelector(`tr[data-sandbox="${id}"] [data-field="status"]`).textContent === "terminated", spareSandbox, { timeout: 30000 });
  assert.equal(await op.evaluate(() => window.__samePage), "yes", "no reload");
  assert.match(await row(op, "sandbox", spareSandbox).getAttribute("class"), /\bended\b/, "marked ended");
  assert.equal(await row(op, "sandbox", spareSandbox).getByRole("button", { name: "Release" }).count(), 0, "its Release button went");
  assert.notEqual(await field(op, "sandbox", ourSandbox, "status").innerText(), "terminated", "the other stays live");
  ok("the open Sandboxes page showed the release (terminated, no Release button) without a reload");

  await op.goto(`${base}/sandboxes`);
  const ours = row(op, "sandbox", ourSandbox);
  assert.match(await ours.innerText(), /agent-a1-t1/, "its agent branch is shown");
  assert.match(await ours.innerText(), /acme/);
  await op.screenshot({ path: join(shots, "sandboxes.png"), fullPage: true });
  await Promise.all([
    op.waitForURL((u) => u.searchParams.get("done") === "released", { timeout: 45000 }),
    ours.getByRole("button", { name: "Release" }).click(),
  ]);
  assert.match(await op.locator("#flash").innerText(), /released: its release job \S+ is done/);
  await until("the registry shows the sandbox terminated", 30000, async () => {
    const s = await sandboxRow(keys.operator, ourSandbox);
    return s.status === "terminated" || JSON.stringify(s);
  });
  assert.equal((await call(keys.operator, "DELETE", `/v1/sandboxes/${ourSandbox}`)).status, 404, "no live sandbox left to release");
  await op.goto(`${base}/sandboxes?status=terminated`);
  assert.equal(await field(op, "sandbox", ourSandbox, "status").innerText(), "terminated");
  assert.equal(await row(op, "sandbox", ourSandbox).getByRole("button", { name: "Release" }).count(), 0, "no Release on a terminated sandbox");
  const bad = await op.goto(`${base}/sandboxes?status=lost`);
  assert.equal(bad.status(), 400, "a bad filter is a 400 page");
  assert.match(await op.locator(".flash.bad").innerText(), /unknown sandbox status "lost"/);
  ok("operator: released from the page (the registry says terminated, the API finds no live sandbox); globex's is 404; no token 403; drain and organizations refused");
  await o.context.close();

  // ------------------------------------------------------------------ admin
  step("an admin sees organizations and their keys, never a secret");
  const a = await signIn(keys.admin);
  const ad = a.page;
  await ad.goto(`${base}/orgs`);
  assert.equal(await row(ad, "org", "acme").count(), 1, "acme is listed");
  assert.match(await row(ad, "org", "acme").innerText(), /\$25\.00/, "acme's budget");
  assert.equal(await row(ad, "org", "globex").count(), 1, "globex is listed");
  assert.equal(await field(ad, "org", "globex", "live").innerText(), "1", "globex has one live sandbox");
  for (const key of Object.values(keys)) {
    const id = key.slice(4, 20);
    assert.equal(await row(ad, "key", id).count(), 1, `key ${id} is listed`);
    assert.ok(!(await ad.content()).includes(key.slice(21)), "no key's secret in the page");
  }
  await ad.screenshot({ path: join(shots, "orgs.png"), fullPage: true });
  await ad.goto(`${base}/orgs?org=acme`);
  assert.equal(await row(ad, "org", "globex").count(), 0, "filtered to acme");
  assert.equal(await row(ad, "key", keys.admin.slice(4, 20)).count(), 0, "only acme's keys");
  const badOrg = await ad.goto(`${base}/orgs?org=-x`);
  assert.equal(badOrg.status(), 400, "a bad organization is a 400 page");
  ok("admin: organizations with budget, spend and live sandboxes; keys by id; the filter");

  step("an admin runs a scheduler task now and sees its run");
  await ad.goto(`${base}/schedule`);
  assert.equal(await ad.locator('[data-field="leader"]').innerText(), "ui-test-replica");
  await Promise.all([
    ad.waitForURL((u) => u.searchParams.get("done") === "run"),
    row(ad, "task", "priority").getByRole("button", { name: "Run now" }).click(),
  ]);
  assert.match(await ad.locator("#flash").innerText(), /Asked ui-test-replica to run priority now/);
  await until("the manual run of priority, ok", 30000, async () => {
    await ad.reload();
    const r = ad.locator('tr[data-run="priority"][data-trigger="manual"]');
    if (await r.count() === 0) return "no manual run yet";
    return (await r.first().locator('[data-field="outcome"]').innerText()) === "ok" || "not ok yet";
  });
  await ad.screenshot({ path: join(shots, "schedule.png"), fullPage: true });
  await ad.goto(`${base}/repositories`);
  assert.match(await field(ad, "repo", repo, "pinned").innerText(), /top 10 #1/, "the priority run pinned the repository");
  assert.equal(await field(ad, "repo", repo, "uses").innerText(), "3");
  await row(ad, "repo", repo).locator("summary").click();
  assert.equal(await row(ad, "repo", repo).locator(`tr[data-mirror="${worker}"]`).count(), 1, "the worker's mirror");
  await ad.screenshot({ path: join(shots, "repositories.png"), fullPage: true });
  const notPinned = await ad.goto(`${base}/repositories?pinned=no`);
  assert.equal(notPinned.status(), 200);
  assert.equal(await row(ad, "repo", repo).count(), 0, "not among the unpinned");
  await ad.goto(`${base}/`);
  assert.match(await ad.locator('[data-hit-rate="day"]').innerText(), /^\d+% \(\d+ of \d+\)$/, "the overview's cache hit rate");
  ok("admin: run now from the page, its manual run shown ok; the repository pinned; the overview's hit rate");

  step("an admin drains the worker from the Workers page: it stops taking jobs; undrained, it takes them");
  await ad.goto(`${base}/workers`);
  const w = row(ad, "worker", worker);
  assert.equal(await w.locator(`a[href$="/jobs/${otherJob}"]`).count(), 1, "an admin sees every organization's running job");
  assert.equal(await w.locator(`a[href$="/jobs/${acmeJob}"]`).count(), 1);
  assert.equal(await field(ad, "worker", worker, "state").innerText(), "running");
  // Without the token: refused, not drained.
  assert.equal(await postFromPage(ad, `/workers/${worker}/drain`, {}), 403, "no token: 403");
  assert.equal((await workerNow()).drain_requested_at, null, "not drained by a post without a token");
  await ad.screenshot({ path: join(shots, "workers.png"), fullPage: true });
  // Drained through the API while the page is open: the row follows without a reload.
  await waitLive(ad);
  await ad.evaluate(() => { window.__samePage = "yes"; });
  const drained = await call(keys.admin, "POST", `/v1/workers/${worker}/drain`);
  assert.equal(drained.status, 202, drained.text);
  // A job enqueued now, while the worker finishes the sleeps it holds, is not taken.
  const later = await call(keys.operator, "POST", "/v1/jobs", { op: "echo", args: { after: "drain" } });
  assert.equal(later.status, 201, later.text);
  await until("the open page says draining", 10000, async () => {
    const s = await liveState(ad);
    return s === "draining" || s;
  });
  assert.equal(await w.locator(`a[href$="/jobs/${acmeJob}"]`).count(), 1, "draining, it still runs what it holds");
  assert.equal(await w.getByRole("button", { name: "Drain", exact: true }).count(), 0, "no Drain on a draining worker");
  assert.equal(await w.getByRole("button", { name: "Undrain" }).count(), 1, "Undrain instead");
  assert.match(await field(ad, "worker", worker, "drain_asked").innerText(), /^drain asked /);
  await ad.screenshot({ path: join(shots, "workers-draining.png"), fullPage: true });
  // Then it holds nothing (drained).
  await until("the open page says drained", 60000, async () => {
    const s = await liveState(ad);
    return s === "drained" || s;
  });
  assert.match(await field(ad, "worker", worker, "busy").innerText(), /^0 of /);
  assert.equal(await w.locator(`a[href$="/jobs/${acmeJob}"]`).count(), 0, "its finished job is no longer listed");
  assert.equal((await call(keys.operator, "GET", `/v1/jobs/${acmeJob}`)).body.status, "done", "it finished the job it held");
  await ad.screenshot({ path: join(shots, "workers-drained.png"), fullPage: true });
  await sleep(1000);
  const waiting = await call(keys.operator, "GET", `/v1/jobs/${later.body.job_id}`);
  assert.equal(waiting.body.status, "waiting", `a job enqueued after the drain waits: ${waiting.text}`);
  const undrained = await call(keys.admin, "POST", `/v1/workers/${worker}/undrain`);
  assert.equal(undrained.status, 202, undrained.text);
  const done = await call(keys.operator, "GET", `/v1/jobs/${later.body.job_id}?wait=30`);
  assert.equal(done.body.status, "done", `undrained, it runs the job: ${done.text}`);
  await until("the open page says running", 15000, async () => {
    const s = await liveState(ad);
    return s === "running" || s;
  });
  assert.equal(await w.getByRole("button", { name: "Drain", exact: true }).count(), 1, "Drain again");
  assert.equal(await w.getByRole("button", { name: "Undrain" }).count(), 0);
  assert.equal(await field(ad, "worker", worker, "drain_asked").innerText(), "");
  assert.equal(await ad.evaluate(() => window.__samePage), "yes", "all of it without a reload");
  ok("drained through the API, the open page showed draining, then drained with no busy slot, then running once undrained; a job waited meanwhile");

  step("the Drain and Undrain buttons of the page");
  await Promise.all([
    ad.waitForURL((u) => u.searchParams.get("done") === "drain"),
    w.getByRole("button", { name: "Drain", exact: true }).click(),
  ]);
  assert.match(await ad.locator("#flash").innerText(), /asked to drain/);
  await until("the page says drained (it holds nothing)", 15000, async () => {
    const s = await liveState(ad);
    return s === "drained" || s;
  });
  await Promise.all([
    ad.waitForURL((u) => u.searchParams.get("done") === "undrain"),
    w.getByRole("button", { name: "Undrain" }).click(),
  ]);
  await until("the page says running", 15000, async () => {
    const s = await liveState(ad);
    return s === "running" || s;
  });
  assert.equal(await w.getByRole("button", { name: "Drain", exact: true }).count(), 1, "Drain again");
  ok("drained and undrained from the page's buttons");

  step("several open live pages cost one query set per interval");
  const more = [await a.context.newPage(), await a.context.newPage(), await a.context.newPage()];
  await more[0].goto(`${base}/workers`);
  await more[1].goto(`${base}/sandboxes`);
  await more[2].goto(`${base}/sandboxes`);
  for (const p of more) await waitLive(p);
  const before = await stats(ad);
  const waitMs = 3000;
  await sleep(waitMs);
  const after = await stats(ad);
  const ran = after.query_sets - before.query_sets;
  const most = Math.ceil(waitMs / liveMs) + 2;
  assert.ok(after.subscribers >= 4, `four pages listen: ${JSON.stringify(after)}`);
  assert.ok(after.workers_pages >= 2 && after.sandboxes_pages >= 2, `two Workers pages and two Sandboxes pages: ${JSON.stringify(after)}`);
  assert.ok(ran >= 1 && ran <= most, `${ran} query sets in ${waitMs} ms with ${after.subscribers} pages (at most ${most})`);
  console.log(`   ${ran} query sets in ${waitMs} ms for ${after.subscribers} live pages (interval ${liveMs} ms)`);
  for (const p of more) await p.close();
  ok(`${ran} query sets for ${after.subscribers} live pages in ${waitMs} ms`);

  step("the views on a phone and in dark mode");
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: "dark", storageState: await a.context.storageState() });
  const phone = await phoneCtx.newPage();
  for (const page of ["workers", "sandboxes", "repositories", "schedule", "orgs"]) {
    await phone.goto(`${base}/${page}`);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `${page} fits a phone's width (overflow ${overflow}px)`);
  }
  const bg = await phone.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, "rgb(246, 247, 249)", "dark mode has a dark background");
  await phone.goto(`${base}/workers`);
  await phone.screenshot({ path: join(shots, "workers-phone-dark.png"), fullPage: true });
  await phoneCtx.close();
  ok("every fleet view fits a phone's width; dark mode renders");

  await a.context.close();
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(`not ok: ${e.stack || e}`);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
