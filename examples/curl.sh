#!/usr/bin/env bash
# An agent's whole flow through gitfleet's HTTP API, with curl and jq.
#
# Clones a repository into a sandbox, writes a file, looks at the status, pushes the change
# to the agent's own branch and releases the sandbox. Each step is one job: `POST /v1/jobs`
# enqueues it, `GET /v1/jobs/{id}?wait=60` waits for its end.
#
#   GITFLEET_URL=http://127.0.0.1:8080 GITFLEET_KEY=gfk_... \
#   REPO_URL=https://github.com/acme/app.git ./curl.sh
#
# `GITFLEET_KEY` is an API key with the `producer` role (`gitfleet keys create --org ORG
# --role producer`). `AGENT_ID` and `TASK_ID` name the agent branch
# (`agent-<AGENT_ID>-<TASK_ID>`); by default a new task each run. The last line printed is
# `commit <sha>`, the commit on the remote. Any error (an HTTP problem document, a job that
# ended dead) is printed to stderr and the exit status is 1.
set -euo pipefail
# A failing command inside $(...) fails the script too (bash 4.4+).
shopt -s inherit_errexit

: "${GITFLEET_URL:=http://127.0.0.1:8080}"
: "${GITFLEET_KEY:?is not set; see the top of this file}"
: "${REPO_URL:?is not set; see the top of this file}"
: "${AGENT_ID:=example}"
: "${TASK_ID:=sh-$(date +%s)}"
# One id per run; each job's Idempotency-Key is `<run>-<step>`.
RUN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

body=$(mktemp)
trap 'rm -f "$body"' EXIT

die() {
  echo "error: $*" >&2
  exit 1
}

# api METHOD PATH [JSON] [IDEMPOTENCY_KEY]: sends one request, prints the JSON answer.
#
# `--retry` sends a request again when it is answered 429 (over the key's rate) or 503
# (Redis or Postgres away for a moment), waiting as long as the gateway's `Retry-After`
# says (curl 7.66+), and when it times out. Sending a POST again is safe because every
# enqueue carries an Idempotency-Key: if the first one did get through, the gateway answers
# that job instead of a new one. A long poll holds the answer up to 60 s: `--max-time 75`.
api() {
  local method=$1 path=$2 json=${3-} key=${4-}
  local args=(--no-progress-meter --retry 5 --max-time 75 -X "$method"
    -H "Authorization: Bearer $GITFLEET_KEY" -o "$body" -w '%{http_code}')
  [[ -n $json ]] && args+=(-H 'Content-Type: application/json' --data-binary "$json")
  [[ -n $key ]] && args+=(-H "Idempotency-Key: $key")
  local status
  status=$(curl "${args[@]}" "$GITFLEET_URL$path") || die "$method $path: no answer from the gateway"
  if ((status >= 400)); then
    # Every error is an RFC 9457 problem document: `kind` says what went wrong, `detail`
    # says it for a person, `field` names the field of the request that is wrong.
    die "$method $path: $status $(jq -r '"\(.kind): \(.detail)" + (if .field then " (field \(.field))" else "" end)' "$body" 2>/dev/null || head -c 200 "$body")"
  fi
  cat "$body"
}

# run OP ARGS_JSON STEP: enqueues job OP, waits for it to end, prints its result.
run() {
  local op=$1 args=$2 step=$3 job id status
  job=$(api POST /v1/jobs "$(jq -cn --arg op "$op" --argjson args "$args" '{op: $op, args: $args}')" "$RUN-$step")
  read -r id status < <(jq -r '"\(.job_id) \(.status)"' <<<"$job")
  # One long poll answers as soon as the job ends, or after 60 s with the job as it is then
  # (still running: a slow clone); so ask again until it is over.
  while [[ $status != done && $status != dead && $status != cancelled ]]; do
    job=$(api GET "/v1/jobs/$id?wait=60")
    status=$(jq -r .status <<<"$job")
  done
  if [[ $status != done ]]; then
    die "$op job $id is $status after $(jq -r .attempts <<<"$job") attempt(s): $(jq -r '"\(.error.kind): \(.error.message)"' <<<"$job")"
  fi
  jq -c .result <<<"$job"
}

clone=$(run clone "$(jq -cn --arg url "$REPO_URL" --arg agent "$AGENT_ID" --arg task "$TASK_ID" \
  '{repo_url: $url, agent_id: $agent, task_id: $task}')" clone)
sandbox=$(jq -r .sandbox_id <<<"$clone")
echo "clone: sandbox $sandbox on $(jq -r .agent_branch <<<"$clone") at $(jq -r .head_sha <<<"$clone")"

# A sandbox holds a working copy on a worker until it is released: if a step fails, enqueue
# its release on the way out (without waiting for it).
release_after_error() {
  curl --no-progress-meter --retry 5 --max-time 20 -o /dev/null -H "Authorization: Bearer $GITFLEET_KEY" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: $RUN-release" \
    --data-binary "$(jq -cn --arg s "$sandbox" '{op: "release", args: {sandbox_id: $s}}')" \
    "$GITFLEET_URL/v1/jobs" && echo "release: enqueued for sandbox $sandbox after the error" >&2
}
trap release_after_error ERR

path=notes/from-curl.md
content="Written by agent $AGENT_ID for task $TASK_ID, from curl."$'\n'
written=$(run write_files "$(jq -cn --arg s "$sandbox" --arg p "$path" --arg c "$content" \
  '{sandbox_id: $s, files: [{path: $p, content: $c}]}')" write)
echo "write_files: $(jq -r .written <<<"$written") file(s) written"

status=$(run status "$(jq -cn --arg s "$sandbox" '{sandbox_id: $s}')" status)
echo "status: untracked $(jq -c .untracked <<<"$status"), modified $(jq -c .modified <<<"$status")"

pushed=$(run push "$(jq -cn --arg s "$sandbox" --arg m "Add $path (gitfleet curl example)" \
  '{sandbox_id: $s, message: $m}')" push)
commit=$(jq -r .commit_sha <<<"$pushed")
echo "push: $commit on $(jq -r .branch <<<"$pushed")"

trap - ERR
run release "$(jq -cn --arg s "$sandbox" '{sandbox_id: $s}')" release >/dev/null
echo "release: sandbox $sandbox released"
echo "commit $commit"
