#!/usr/bin/env python3
"""An agent's whole flow through gitfleet's HTTP API, with httpx.

Clones a repository into a sandbox, writes a file, looks at the status, pushes the change
to the agent's own branch and releases the sandbox. Each step is one job: `POST /v1/jobs`
enqueues it, `GET /v1/jobs/{id}?wait=60` waits for its end.

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    GITFLEET_URL=http://127.0.0.1:8080 GITFLEET_KEY=gfk_... \
    REPO_URL=https://github.com/acme/app.git .venv/bin/python gitfleet_example.py

`GITFLEET_KEY` is an API key with the `producer` role (`gitfleet keys create --org ORG
--role producer`). `AGENT_ID` and `TASK_ID` name the agent branch
(`agent-<AGENT_ID>-<TASK_ID>`); by default a new task each run. The last line printed is
`commit <sha>`, the commit on the remote. Any error (an HTTP problem document, a job that
ended dead) is printed to stderr and the exit status is 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import httpx

# A job is over once it is in one of these; until then, keep waiting.
FINAL = {"done", "dead", "cancelled"}
# How often a request answered 429 (over the key's rate) or 503 (Redis or Postgres away
# for a moment), or one that never got an answer, is sent again.
ATTEMPTS = 6


class GitfleetError(Exception):
    """What went wrong, worded for a person."""


class Gitfleet:
    """A small client of the gateway: retries, problem documents, jobs run to their end."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            # A long poll holds the answer up to 60 s; give it a little more.
            timeout=httpx.Timeout(10.0, read=75.0),
        )

    def request(self, method: str, path: str, **kwargs) -> dict:
        """Sends one request and answers its JSON body; raises GitfleetError on an error.

        429 and 503 are worth waiting out: the gateway says how long in `Retry-After`.
        Sending a POST again is safe because every enqueue carries an Idempotency-Key: if
        the first one did get through, the gateway answers that job instead of a new one.
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as e:
                if attempt == ATTEMPTS:
                    raise GitfleetError(f"{method} {path}: no answer from the gateway: {e}")
                wait = 1.0
                print(f"  {method} {path}: {e}; retrying in {wait:g} s", file=sys.stderr)
                time.sleep(wait)
                continue
            if response.status_code in (429, 503) and attempt < ATTEMPTS:
                wait = retry_after(response)
                print(
                    f"  {method} {path}: {response.status_code}; retrying in {wait:g} s",
                    file=sys.stderr,
                )
                time.sleep(wait)
                continue
            if response.is_error:
                raise GitfleetError(describe(method, path, response))
            return response.json()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def run(self, op: str, args: dict, idempotency_key: str) -> dict:
        """Enqueues job `op` with `args`, waits for it to end, answers its result."""
        job = self.request(
            "POST",
            "/v1/jobs",
            json={"op": op, "args": args},
            headers={"Idempotency-Key": idempotency_key},
        )
        job_id = job["job_id"]
        # One long poll answers as soon as the job ends, or after 60 s with the job as it
        # is then (still running: a slow clone); so ask again until it is over.
        while job["status"] not in FINAL:
            job = self.request("GET", f"/v1/jobs/{job_id}", params={"wait": 60})
        if job["status"] != "done":
            error = job.get("error") or {}
            raise GitfleetError(
                f"{op} job {job_id} is {job['status']} after {job['attempts']} attempt(s): "
                f"{error.get('kind', 'no error kind')}: {error.get('message', '')}"
            )
        return job["result"]


def retry_after(response: httpx.Response) -> float:
    """The seconds a 429 or 503 asks to wait (`Retry-After`), 1 if it does not say."""
    try:
        return max(float(response.headers.get("Retry-After", "1")), 0.0)
    except ValueError:
        return 1.0


def describe(method: str, path: str, response: httpx.Response) -> str:
    """An error answer in one line. The gateway's errors are RFC 9457 problem documents:
    `kind` says what went wrong, `detail` says it for a person, `field` names the field of
    the request that is wrong (when one is)."""
    try:
        problem = response.json()
    except ValueError:
        return f"{method} {path}: {response.status_code}: {response.text[:200]}"
    text = f"{method} {path}: {response.status_code} {problem.get('kind')}: {problem.get('detail')}"
    if problem.get("field"):
        text += f" (field {problem['field']})"
    return text


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise GitfleetError(f"{name} is not set; see the top of this file")
    return value


def main() -> None:
    url = env("GITFLEET_URL", "http://127.0.0.1:8080")
    key = env("GITFLEET_KEY")
    repo_url = env("REPO_URL")
    agent_id = env("AGENT_ID", "example")
    task_id = env("TASK_ID", f"py-{int(time.time())}")
    # One id per run; each job's Idempotency-Key is `<run>-<step>`.
    run = uuid.uuid4().hex
    gitfleet = Gitfleet(url, key)

    clone = gitfleet.run(
        "clone",
        {"repo_url": repo_url, "agent_id": agent_id, "task_id": task_id},
        f"{run}-clone",
    )
    sandbox = clone["sandbox_id"]
    print(f"clone: sandbox {sandbox} on {clone['agent_branch']} at {clone['head_sha']}")
    released = False
    try:
        path = "notes/from-python.md"
        content = f"Written by agent {agent_id} for task {task_id}, from Python.\n"
        written = gitfleet.run(
            "write_files",
            {"sandbox_id": sandbox, "files": [{"path": path, "content": content}]},
            f"{run}-write",
        )
        print(f"write_files: {written['written']} file(s) written")

        status = gitfleet.run("status", {"sandbox_id": sandbox}, f"{run}-status")
        print(
            f"status: untracked {json.dumps(status['untracked'])}, "
            f"modified {json.dumps(status['modified'])}"
        )

        pushed = gitfleet.run(
            "push",
            {"sandbox_id": sandbox, "message": f"Add {path} (gitfleet Python example)"},
            f"{run}-push",
        )
        print(f"push: {pushed['commit_sha']} on {pushed['branch']}")

        gitfleet.run("release", {"sandbox_id": sandbox}, f"{run}-release")
        released = True
        print(f"release: sandbox {sandbox} released")
        print(f"commit {pushed['commit_sha']}")
    finally:
        # A sandbox holds a working copy on a worker until it is released: give it back
        # even when a step failed.
        if not released:
            try:
                gitfleet.run("release", {"sandbox_id": sandbox}, f"{run}-release")
                print(f"release: sandbox {sandbox} released after the error", file=sys.stderr)
            except GitfleetError as e:
                print(f"release after the error failed too: {e}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except GitfleetError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
