// The dashboard's job views in a real browser: Debian's chromium, driven by playwright-core.
// Started by gateway/tests/gateway/dashboard_jobs.rs against a real gateway, worker and git
// server on loopback, which hands it, in the environment:
//   GF_BASE          the dashboard's URL (http://127.0.0.1:PORT/ui)
//   GF_API           the gateway's URL (for the API calls this script makes itself)
//   GF_VIEWER_KEY, GF_OPERATOR_KEY   keys of organization acme
//   GF_CLONE_JOB     a clone that ran (its page shows its git steps)
//   GF_DEAD_CLONES   five dead clones (comma-separated) whose repositories exist now: the
//                    first three are retried by filter, the last two ticked
//   GF_DEAD_SLEEPS   two dead sleeps (another op), left alone
//   GF_DELAYED       two delayed echoes: the first is deleted, the second run now
//   GF_SEARCH_TEXT   text in the second clone's error message
//   GF_SCREENSHOTS   where to save the pictures
// Each step prints a line; any failed check ends the run with a non-zero exit.

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
const keys = { viewer: env("GF_VIEWER_KEY"), operator: env("GF_OPERATOR_KEY") };
const cloneJob = env("GF_CLONE_JOB");
const clones = env("GF_DEAD_CLONES").split(",");
const sleeps = env("GF_DEAD_SLEEPS").split(",");
const delayed = env("GF_DELAYED").split(",");
const searchText = env("GF_SEARCH_TEXT");
const shots = env("GF_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

let passed = 0;
const step = (what) => console.log(`-- ${what}`);
const ok = (what) => { passed += 1; console.log(`ok ${passed} ${what}`); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The API as the operator's key (not the browser's session). */
async function apiCall(method, path, body) {
  const res = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${keys.operator}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}
const status = async (id) => (await apiCall("GET", `/v1/jobs/${id}`)).body?.status;
async function waitStatus(id, want, ms = 60000) {
  const end = Date.now() + ms;
  let now;
  while (Date.now() < end) {
    now = await status(id);
    if (now === want) return;
    await sleep(200);
  }
  assert.fail(`job ${id} is ${now}, not ${want}`);
}

/** Reloads `page` until `check` holds (rows are written in the background). */
async function until(page, what, check, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) assert.fail(`waited for: ${what}`);
    await sleep(300);
    await page.reload();
  }
}

/** A POST from inside the page (same origin, the session's cookie): its status and text. */
async function postFromPage(page, path, fields) {
  return page.evaluate(async ({ url, fields }) => {
    const res = await fetch(url, { method: "POST", body: new URLSearchParams(fields), credentials: "same-origin", redirect: "manual" });
    return { status: res.status, text: await res.text() };
  }, { url: base + path, fields });
}

const browser = await chromium.launch({
  executablePath: process.env.GF_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
const desktop = { viewport: { width: 1280, height: 860 }, colorScheme: "light" };

async function signIn(key) {
  const context = await browser.newContext(desktop);
  const page = await context.newPage();
  await page.goto(base + "/");
  await page.fill("#key", key);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/signin")), page.click("form button[type=submit]")]);
  return { context, page };
}

const row = (page, id) => page.locator(`tr[data-job="${id}"]`);

try {
  // ------------------------------------------------------------------ viewer
  step("a viewer sees the dead view without buttons; its forged actions are refused");
  const v = await signIn(keys.viewer);
  const vp = v.page;
  await vp.goto(`${base}/dead`);
  assert.equal(await vp.locator("h1").innerText(), "Dead");
  assert.equal(await row(vp, clones[0]).count(), 1, "the viewer sees the dead jobs");
  assert.equal(await vp.locator("#all-matching").count(), 0, "no 'all matching' buttons for a viewer");
  assert.equal(await vp.locator("#selected-actions").count(), 0, "no 'selected' buttons for a viewer");
  assert.equal(await vp.locator('input[name="job"]').count(), 0, "no checkboxes for a viewer");
  assert.equal(await vp.locator("button[data-row]").count(), 0, "no row buttons for a viewer");
  assert.equal(await vp.locator('nav a[href$="/audit"]').count(), 0, "no audit link for a viewer");
  const csrf = await vp.inputValue('form[action$="/signout"] input[name=csrf]');
  const forgedAll = await postFromPage(vp, "/dead/all", { csrf, action: "retry", op: "clone", expect: "5" });
  assert.equal(forgedAll.status, 403, `a viewer's bulk retry is refused: ${forgedAll.status}`);
  assert.match(forgedAll.text, /role is viewer/);
  const forgedSel = await postFromPage(vp, "/dead/selected", { csrf, action: "retry", job: clones[0] });
  assert.equal(forgedSel.status, 403, "a viewer's retry of the selected is refused");
  const forgedRun = await postFromPage(vp, "/delayed/selected", { csrf, row: `run_now:${delayed[0]}` });
  assert.equal(forgedRun.status, 403, "a viewer's run-now is refused");
  const audit = await vp.goto(`${base}/audit`);
  assert.equal(audit.status(), 403, "the audit log is not a viewer's");
  for (const id of clones) assert.equal(await status(id), "dead", `clone ${id} is still dead`);
  assert.equal(await status(delayed[0]), "delayed");
  ok("viewer: no checkbox or button; forged bulk, selected and run-now POSTs with its CSRF token are 403 and change nothing");
  await v.context.close();

  // ---------------------------------------------------------------- operator
  const o = await signIn(keys.operator);
  const op = o.page;

  step("the jobs list: search by error text and by id, sort, the total");
  await op.goto(`${base}/jobs?q=${encodeURIComponent(searchText)}`);
  assert.equal(await row(op, clones[1]).count(), 1, "the search by error text finds the job");
  assert.equal(await op.locator("tbody tr[data-job]").count(), 1, "and only it");
  assert.match(await op.locator("#total").innerText(), /^1 job$/);
  assert.equal(await op.inputValue('input[name="q"]'), searchText, "the form keeps the search");
  await op.screenshot({ path: join(shots, "jobs-search.png"), fullPage: true });
  await op.goto(`${base}/jobs`);
  await op.fill('input[name="id"]', clones[3].slice(0, 20));
  await Promise.all([op.waitForURL(/id=/), op.click('form.filters button[type="submit"]')]);
  assert.equal(await row(op, clones[3]).count(), 1, "the search by the start of an id finds the job");
  assert.equal(await op.locator("tbody tr[data-job]").count(), 1);
  await op.goto(`${base}/jobs?q=ab`);
  assert.match(await op.locator(".flash.bad").innerText(), /3-200 characters/, "too short a search says why");
  await op.goto(`${base}/jobs`);
  const total = await op.locator("#total").innerText();
  assert.match(total, /^1[0-9] jobs$/, `the total is exact: ${total}`);
  await Promise.all([op.waitForURL(/sort=enqueued_asc/), op.click('a[data-sort="enqueued"]')]);
  const ids = await op.locator("tbody tr[data-job]").evaluateAll((rs) => rs.map((r) => r.dataset.job));
  const times = await op.locator('tbody td[data-col="enqueued"]').evaluateAll((cs) => cs.map((c) => c.textContent));
  assert.deepEqual(times, [...times].sort(), `oldest first: ${times}`);
  assert.equal(ids[0], cloneJob, "the first job enqueued leads");
  await Promise.all([op.waitForURL(/sort=finished_desc/), op.click('a[data-sort="finished"]')]);
  assert.equal(await row(op, delayed[0]).count(), 0, "sorting by finish time lists finished jobs only");
  ok(`search by text and by id, sorting, and the total (${total})`);

  step("a job's page shows its git steps");
  await op.goto(`${base}/jobs/${cloneJob}`);
  const steps = op.locator("#git-steps table.steps tbody tr[data-step]");
  assert.ok((await steps.count()) >= 1, "the clone's git steps are listed");
  const commands = await steps.evaluateAll((rs) => rs.map((r) => r.dataset.step));
  assert.ok(commands.some((c) => ["clone", "fetch", "ls-remote", "checkout"].includes(c)), `git commands: ${commands}`);
  const took = await steps.first().locator('[data-field="took"]').innerText();
  assert.match(took, /\d+ ms|\d+\.\d s/, `each step's duration: ${took}`);
  const stepsText = await op.locator("#git-steps").innerText();
  assert.ok(!stepsText.includes("git://") && !stepsText.includes("seed.git"), "no argument (no URL) among the steps");
  assert.match(stepsText, /the slowest: /);
  await op.locator("#git-steps").screenshot({ path: join(shots, "job-git-steps.png") });
  ok(`a clone's git steps: ${commands.join(", ")}`);

  step("the delayed view: delete one, run another now");
  await op.goto(`${base}/delayed`);
  assert.equal(await op.locator("h1").innerText(), "Delayed and retrying");
  for (const id of delayed) assert.equal(await row(op, id).count(), 1, `delayed job ${id} is listed`);
  const due = await row(op, delayed[0]).locator("td[data-due]").innerText();
  assert.match(due, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, `a delayed job's due time: ${due}`);
  await op.screenshot({ path: join(shots, "delayed.png"), fullPage: true });
  await Promise.all([op.waitForURL(/done=delete/), row(op, delayed[0]).locator('button[data-row="delete"]').click()]);
  assert.match(await op.locator("#flash").innerText(), /1 job deleted/);
  await until(op, "the deleted job leaves the list", async () => (await row(op, delayed[0]).count()) === 0);
  await Promise.all([op.waitForURL(/done=run_now/), row(op, delayed[1]).locator('button[data-row="run_now"]').click()]);
  assert.match(await op.locator("#flash").innerText(), /1 job sent to their queues to run now|sent to their queues/);
  await waitStatus(delayed[1], "done", 30000);
  const deletedNow = await apiCall("GET", `/v1/jobs/${delayed[0]}`);
  assert.notEqual(deletedNow.body?.status, "delayed", "the deleted job will not run");
  ok("a delayed job deleted from its row, another run now (and it ran)");

  step("a job's page has Delete and Run now where its state allows");
  await op.goto(`${base}/jobs/${sleeps[0]}`);
  assert.equal(await op.getByRole("button", { name: "Delete" }).isVisible(), true, "Delete on a dead job");
  assert.equal(await op.getByRole("button", { name: "Run now" }).isVisible(), false, "no Run now on a dead job");
  ok("a dead job's page: Retry and Delete, no Run now");

  step("the dead view: retry the ticked jobs");
  await op.goto(`${base}/dead`);
  for (const id of [...clones, ...sleeps]) assert.equal(await row(op, id).count(), 1, `dead job ${id} is listed`);
  await row(op, clones[3]).locator('input[name="job"]').check();
  await row(op, clones[4]).locator('input[name="job"]').check();
  await op.screenshot({ path: join(shots, "dead.png"), fullPage: true });
  await Promise.all([op.waitForURL(/done=retry/), op.click('button[data-selected="retry"]')]);
  assert.match(await op.locator("#flash").innerText(), /2 jobs retried/);
  await waitStatus(clones[3], "done");
  await waitStatus(clones[4], "done");
  for (const id of clones.slice(0, 3)) assert.equal(await status(id), "dead", "the others are not touched");
  ok("two ticked dead jobs retried; they ran to done");

  step("retry all matching a filter: the dry run's count, then the confirmation");
  await op.goto(`${base}/dead?op=clone`);
  await until(op, "the retried clones leave the dead list", async () => (await op.locator("tbody tr[data-job]").count()) === 3);
  await Promise.all([op.waitForURL(/\/dead\/confirm/), op.click('button[data-all="retry"]')]);
  assert.equal(await op.locator("#matched").innerText(), "3", "the dry run counts the three dead clones");
  assert.match(await op.locator(".confirm").innerText(), /op clone/);
  for (const id of clones.slice(0, 3)) assert.equal(await status(id), "dead", "a dry run changes nothing");
  await op.screenshot({ path: join(shots, "bulk-confirm.png"), fullPage: true });
  await Promise.all([op.waitForURL(/done=retry/), op.click("#confirm")]);
  assert.match(await op.locator("#flash").innerText(), /All matching: 3 jobs retried/);
  for (const id of clones.slice(0, 3)) await waitStatus(id, "done");
  for (const id of sleeps) assert.equal(await status(id), "dead", "the other op's dead jobs are untouched");
  ok("3 counted, confirmed, exactly those 3 retried and done; the sleeps untouched");

  step("a stale confirmation (more jobs match than counted) is refused, saying so");
  await op.goto(`${base}/dead?op=sleep`);
  await op.locator("input[data-pick-all]").check();
  const ticked = await op.locator('input[name="job"]').evaluateAll((bs) => bs.map((b) => b.checked));
  assert.deepEqual(ticked, [true, true], "the header's box ticks every row of the page");
  await Promise.all([op.waitForURL(/\/dead\/confirm/), op.click('button[data-all="retry"]')]);
  assert.equal(await op.locator("#matched").innerText(), "2");
  const made = await apiCall("POST", "/v1/jobs", { op: "sleep", args: { ms: 1000 }, timeout_secs: 0.05, max_attempts: 1 });
  assert.equal(made.status, 201);
  await waitStatus(made.body.job_id, "dead");
  const stale = await Promise.all([op.waitForResponse((r) => r.url().endsWith("/dead/all")), op.click("#confirm")]);
  assert.equal(stale[0].status(), 409, "the stale confirmation is refused");
  const refused = await op.locator("#refused").innerText();
  assert.match(refused, /3 jobs match now, more than the 2 expected; nothing was done/);
  assert.equal(await op.locator("#matched").innerText(), "3", "the page counts again");
  for (const id of [...sleeps, made.body.job_id]) assert.equal(await status(id), "dead", "nothing was done");
  ok(`stale confirmation refused: "${refused}"`);

  step("the audit log shows the bulk retry, from the dashboard");
  await op.goto(`${base}/audit?action=jobs.retry`);
  const entry = op.locator('tr[data-action="jobs.retry"][data-outcome="ok"]');
  await until(op, "the audit entry is written", async () => (await entry.count()) === 1);
  assert.equal(await entry.getAttribute("data-surface"), "ui");
  const links = await entry.locator("a[data-job-link]").evaluateAll((as) => as.map((a) => a.dataset.jobLink).sort());
  assert.deepEqual(links, clones.slice(0, 3).sort(), "the entry links the three jobs");
  assert.match(await entry.innerText(), /operator · acme/);
  assert.match(await entry.innerText(), /matched 3, acted on 3/);
  assert.equal(await op.locator('tr[data-action="jobs.retry"][data-outcome="conflict"]').count(), 1, "the stale one is logged as refused");
  await op.goto(`${base}/audit`);
  await until(op, "every entry is written", async () => (await op.locator('tr[data-action="job.retry"]').count()) >= 2);
  await op.screenshot({ path: join(shots, "audit.png"), fullPage: true });
  await entry.locator("a[data-job-link]").first().click();
  assert.match(new URL(op.url()).pathname, /\/jobs\/[0-9A-Z]{26}$/, "a job's link opens its page");
  ok("the audit log: the bulk retry with surface ui, its jobs linked; the refused one too");

  await o.context.close();
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(`not ok: ${e.stack || e}`);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
