// The live Workers page's rows come and go with the workers, in a real browser (Debian's
// chromium, driven by playwright-core). Started by
// gateway/tests/gateway/dashboard_fleet.rs, which hands it, in the environment:
//   GF_BASE       the dashboard's URL (http://127.0.0.1:PORT/ui)
//   GF_ADMIN_KEY  an admin's key
//   GF_WORKER     the worker running from the start
//   GF_CHROMIUM   the browser (default /usr/bin/chromium)
// and talks with it over stdin and stdout: it prints `ready` once the page is live, then
// reads `add <id>` (a worker started) and prints `seen`, then `gone <id>` (it stopped).
// Any failed check ends the run with a non-zero exit and says what was expected.

import assert from "node:assert/strict";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (the Rust test sets it)`);
  return v;
};
const base = env("GF_BASE");
const admin = env("GF_ADMIN_KEY");
const first = env("GF_WORKER");

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
/** The next line from the Rust test: its word and the worker id. */
async function told(word) {
  const { value } = await lines.next();
  const [said, id] = (value || "").split(" ");
  assert.equal(said, word, `the test said ${JSON.stringify(value)}`);
  return id;
}

let passed = 0;
const ok = (what) => { passed += 1; console.log(`ok ${passed} ${what}`); };

const browser = await chromium.launch({
  executablePath: process.env.GF_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  await page.goto(base + "/");
  await page.fill("#key", admin);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/signin")), page.click("form button[type=submit]")]);
  await page.goto(`${base}/workers`);
  await page.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
  assert.equal(await page.locator("tr[data-worker]").count(), 1, "one worker at first");
  await page.evaluate(() => { window.__samePage = "yes"; });
  console.log("ready");

  const added = await told("add");
  const row = page.locator(`tr[data-worker="${added}"]`);
  await row.waitFor({ timeout: 15000 });
  await page.waitForFunction((id) => document.querySelector(`tr[data-worker="${id}"] [data-field="state"]`).textContent === "running", added, { timeout: 15000 });
  assert.equal(await row.locator('[data-field="id"]').innerText(), added, "its id");
  assert.match(await row.locator('[data-field="busy"]').innerText(), /^0 of \d+$/, "its busy slots");
  assert.match(await row.locator('[data-field="heartbeat"]').innerText(), / ago$/, "its heartbeat's age");
  assert.match(await row.locator('[data-field="queues"]').innerText(), /jobs/, "its queues");
  assert.equal(await row.getByRole("button", { name: "Drain", exact: true }).count(), 1, "a Drain button");
  assert.match(await row.locator('form[data-drain="drain"]').getAttribute("action"), new RegExp(`/workers/${added}/drain$`), "that drains it");
  assert.equal(await row.locator('input[name="csrf"]').first().inputValue(), await page.inputValue('form[action$="/signout"] input[name=csrf]'), "with the session's CSRF token");
  assert.equal(await page.locator("tr[data-worker]").count(), 2);
  console.log("seen");
  ok("a worker that registered got a row on the open page: running, its slots, heartbeat, queues, a Drain button");

  const gone = await told("gone");
  assert.equal(gone, added);
  await row.waitFor({ state: "detached", timeout: 15000 });
  assert.equal(await page.locator(`tr[data-worker="${first}"]`).count(), 1, "the first stays");
  assert.equal(await page.evaluate(() => window.__samePage), "yes", "no reload");
  ok("a worker that stopped lost its row, without a reload");
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(`not ok: ${e.stack || e}`);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdin.destroy();
}
