// An agent's whole flow through gitfleet's HTTP API, with Node's built-in fetch (Node 18+,
// no dependencies, no build step; the types are JSDoc, checked by any TypeScript editor).
//
// Clones a repository into a sandbox, writes a file, looks at the status, pushes the change
// to the agent's own branch and releases the sandbox. Each step is one job: `POST /v1/jobs`
// enqueues it, `GET /v1/jobs/{id}?wait=60` waits for its end.
//
//   GITFLEET_URL=http://127.0.0.1:8080 GITFLEET_KEY=gfk_... \
//   REPO_URL=https://github.com/acme/app.git node gitfleet_example.mjs
//
// `GITFLEET_KEY` is an API key with the `producer` role (`gitfleet keys create --org ORG
// --role producer`). `AGENT_ID` and `TASK_ID` name the agent branch
// (`agent-<AGENT_ID>-<TASK_ID>`); by default a new task each run. The last line printed is
// `commit <sha>`, the commit on the remote. Any error (an HTTP problem document, a job that
// ended dead) is printed to stderr and the exit status is 1.

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

/** A job is over once it is in one of these; until then, keep waiting. */
const FINAL = new Set(["done", "dead", "cancelled"]);
/** How often a request answered 429 (over the key's rate) or 503 (Redis or Postgres away
 * for a moment), or one that never got an answer, is sent again. */
const ATTEMPTS = 6;

/**
 * @typedef {"waiting" | "delayed" | "running" | "done" | "dead" | "cancelled"} JobStatus
 * @typedef {{kind: string, message: string}} JobError
 * @typedef {{job_id: string, op: string, status: JobStatus, attempts: number,
 *            result: any, error: JobError | null}} Job
 * @typedef {{type: string, title: string, status: number, detail: string, kind: string,
 *            field?: string}} Problem  An RFC 9457 problem document: every error answer.
 */

/** What went wrong, worded for a person. */
class GitfleetError extends Error {}

class Gitfleet {
  /**
   * @param {string} url  the gateway, e.g. http://127.0.0.1:8080
   * @param {string} key  an API key (`gfk_...`)
   */
  constructor(url, key) {
    this.url = url.replace(/\/+$/, "");
    this.key = key;
  }

  /**
   * Sends one request and answers its JSON body; throws GitfleetError on an error.
   *
   * 429 and 503 are worth waiting out: the gateway says how long in `Retry-After`.
   * Sending a POST again is safe because every enqueue carries an Idempotency-Key: if the
   * first one did get through, the gateway answers that job instead of a new one.
   *
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, headers?: Record<string, string>}} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, options = {}) {
    for (let attempt = 1; ; attempt++) {
      /** @type {Response} */
      let response;
      try {
        response = await fetch(this.url + path, {
          method,
          headers: {
            authorization: `Bearer ${this.key}`,
            ...(options.body === undefined ? {} : { "content-type": "application/json" }),
            ...options.headers,
          },
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
          // A long poll holds the answer up to 60 s; give it a little more.
          signal: AbortSignal.timeout(75_000),
        });
      } catch (e) {
        if (attempt === ATTEMPTS) {
          throw new GitfleetError(`${method} ${path}: no answer from the gateway: ${e}`);
        }
        console.error(`  ${method} ${path}: ${e}; retrying in 1 s`);
        await sleep(1000);
        continue;
      }
      if ((response.status === 429 || response.status === 503) && attempt < ATTEMPTS) {
        const wait = retryAfter(response);
        await response.body?.cancel();
        console.error(`  ${method} ${path}: ${response.status}; retrying in ${wait} s`);
        await sleep(wait * 1000);
        continue;
      }
      if (!response.ok) {
        throw new GitfleetError(await describe(method, path, response));
      }
      return response.json();
    }
  }

  /**
   * Enqueues job `op` with `args`, waits for it to end, answers its result.
   *
   * @param {string} op
   * @param {Record<string, unknown>} args
   * @param {string} idempotencyKey
   * @returns {Promise<any>}
   */
  async run(op, args, idempotencyKey) {
    /** @type {Job} */
    let job = await this.request("POST", "/v1/jobs", {
      body: { op, args },
      headers: { "idempotency-key": idempotencyKey },
    });
    // One long poll answers as soon as the job ends, or after 60 s with the job as it is
    // then (still running: a slow clone); so ask again until it is over.
    while (!FINAL.has(job.status)) {
      job = await this.request("GET", `/v1/jobs/${job.job_id}?wait=60`);
    }
    if (job.status !== "done") {
      const kind = job.error?.kind ?? "no error kind";
      throw new GitfleetError(
        `${op} job ${job.job_id} is ${job.status} after ${job.attempts} attempt(s): ` +
          `${kind}: ${job.error?.message ?? ""}`,
      );
    }
    return job.result;
  }
}

/**
 * The seconds a 429 or 503 asks to wait (`Retry-After`), 1 if it does not say.
 * @param {Response} response
 */
function retryAfter(response) {
  const secs = Number(response.headers.get("retry-after") ?? "1");
  return Number.isFinite(secs) && secs >= 0 ? secs : 1;
}

/**
 * An error answer in one line. The gateway's errors are RFC 9457 problem documents: `kind`
 * says what went wrong, `detail` says it for a person, `field` names the field of the
 * request that is wrong (when one is).
 *
 * @param {string} method
 * @param {string} path
 * @param {Response} response
 */
async function describe(method, path, response) {
  const text = await response.text();
  /** @type {Problem} */
  let problem;
  try {
    problem = JSON.parse(text);
  } catch {
    return `${method} ${path}: ${response.status}: ${text.slice(0, 200)}`;
  }
  const field = problem.field ? ` (field ${problem.field})` : "";
  return `${method} ${path}: ${response.status} ${problem.kind}: ${problem.detail}${field}`;
}

/**
 * @param {string} name
 * @param {string} [fallback]
 */
function env(name, fallback) {
  const value = process.env[name] || fallback;
  if (!value) {
    throw new GitfleetError(`${name} is not set; see the top of this file`);
  }
  return value;
}

async function main() {
  const gitfleet = new Gitfleet(env("GITFLEET_URL", "http://127.0.0.1:8080"), env("GITFLEET_KEY"));
  const repoUrl = env("REPO_URL");
  const agentId = env("AGENT_ID", "example");
  const taskId = env("TASK_ID", `js-${Date.now()}`);
  // One id per run; each job's Idempotency-Key is `<run>-<step>`.
  const run = randomUUID();

  const clone = await gitfleet.run(
    "clone",
    { repo_url: repoUrl, agent_id: agentId, task_id: taskId },
    `${run}-clone`,
  );
  const sandbox = clone.sandbox_id;
  console.log(`clone: sandbox ${sandbox} on ${clone.agent_branch} at ${clone.head_sha}`);
  let released = false;
  try {
    const path = "notes/from-typescript.md";
    const content = `Written by agent ${agentId} for task ${taskId}, from TypeScript.\n`;
    const written = await gitfleet.run(
      "write_files",
      { sandbox_id: sandbox, files: [{ path, content }] },
      `${run}-write`,
    );
    console.log(`write_files: ${written.written} file(s) written`);

    const status = await gitfleet.run("status", { sandbox_id: sandbox }, `${run}-status`);
    console.log(`status: untracked ${JSON.stringify(status.untracked)}, modified ${JSON.stringify(status.modified)}`);

    const pushed = await gitfleet.run(
      "push",
      { sandbox_id: sandbox, message: `Add ${path} (gitfleet TypeScript example)` },
      `${run}-push`,
    );
    console.log(`push: ${pushed.commit_sha} on ${pushed.branch}`);

    await gitfleet.run("release", { sandbox_id: sandbox }, `${run}-release`);
    released = true;
    console.log(`release: sandbox ${sandbox} released`);
    console.log(`commit ${pushed.commit_sha}`);
  } finally {
    // A sandbox holds a working copy on a worker until it is released: give it back even
    // when a step failed.
    if (!released) {
      try {
        await gitfleet.run("release", { sandbox_id: sandbox }, `${run}-release`);
        console.error(`release: sandbox ${sandbox} released after the error`);
      } catch (e) {
        console.error(`release after the error failed too: ${e instanceof Error ? e.message : e}`);
      }
    }
  }
}

try {
  await main();
} catch (e) {
  if (!(e instanceof GitfleetError)) throw e;
  console.error(`error: ${e.message}`);
  process.exitCode = 1;
}
