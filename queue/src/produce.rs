//! Producing: one job, or many in one round trip, through the enqueue script.
//!
//! `lua/enqueue.lua` stores many jobs of one queue with the same options in one call, so a
//! batch costs Redis one script call per run of such jobs instead of one per job (a third of
//! the work per job; BENCHMARKS.md). Runs of a batch go to Redis as one pipeline.

use gitfleet_contract::envelope::validate_idempotency_key;
use gitfleet_contract::{EnqueueOptions, Enqueued, JobError, JobSpec, validate_queue_name};
use redis::{Cmd, RedisResult, Value};

use super::scripts::ENQUEUE;
use super::{CHUNK, Queue, QueueError};

/// What the queue answers a job enqueued on the own queue of a worker that is not running
/// (dead at once, `sandbox_not_found`): the error `lua/enqueue.lua` records.
pub fn worker_not_running(worker: &str) -> JobError {
    JobError::sandbox_not_found(format!(
        "worker {worker} is not running; its sandboxes are gone"
    ))
}

/// A job's answer from the queue.
type Answer = Result<Enqueued, QueueError>;

/// One call of the enqueue script: jobs of one queue with the same options, by their place
/// in the batch.
struct Call<'a> {
    queue: &'a str,
    options: &'a EnqueueOptions,
    /// (place in the batch, job id, payload)
    jobs: Vec<(usize, String, String)>,
}

impl Call<'_> {
    /// Whether a job of `queue` with `options` can join this call: same queue, same
    /// options, and no idempotency key (a key names one job).
    fn takes(&self, queue: &str, options: &EnqueueOptions) -> bool {
        self.queue == queue
            && options.idempotency_key.is_none()
            && (std::ptr::eq(self.options, options) || self.options == options)
    }
}

impl Queue {
    /// Enqueues one job on `queue`.
    pub async fn enqueue(
        &self,
        queue: &str,
        spec: &JobSpec,
        options: &EnqueueOptions,
    ) -> Result<Enqueued, QueueError> {
        self.enqueue_batch(&[(queue, spec, options)])
            .await?
            .pop()
            .ok_or_else(|| QueueError::Protocol("empty enqueue reply".into()))?
    }

    /// Enqueues many jobs on `queue`, up to a thousand per round trip. Each job gets its
    /// own answer: one bad job does not stop the others.
    pub async fn enqueue_many(
        &self,
        queue: &str,
        specs: &[JobSpec],
        options: &EnqueueOptions,
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
        if options.idempotency_key.is_some() {
            return Err(QueueError::invalid(
                "idempotency_key: one key cannot name a batch of jobs",
            ));
        }
        let jobs: Vec<(&str, &JobSpec, &EnqueueOptions)> =
            specs.iter().map(|spec| (queue, spec, options)).collect();
        self.enqueue_batch(&jobs).await
    }

    /// Enqueues jobs each with its own queue and options (an idempotency key each, say), up
    /// to a thousand per round trip: consecutive jobs of one queue with the same options
    /// are one script call. Each job gets its own answer, in order.
    pub async fn enqueue_batch(
        &self,
        jobs: &[(&str, &JobSpec, &EnqueueOptions)],
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(CHUNK) {
            let mut answers: Vec<Option<Answer>> = (0..chunk.len()).map(|_| None).collect();
            let mut calls: Vec<Call> = Vec::new();
            for (place, (queue, spec, options)) in chunk.iter().enumerate() {
                match self.checked_payload(queue, spec, options) {
                    Ok(payload) => {
                        let id = ulid::Ulid::new().to_string();
                        match calls.last_mut() {
                            Some(call) if call.takes(queue, options) => {
                                call.jobs.push((place, id, payload))
                            }
                            _ => calls.push(Call {
                                queue,
                                options,
                                jobs: vec![(place, id, payload)],
                            }),
                        }
                    }
                    Err(e) => answers[place] = Some(Err(e)),
                }
            }
            let cmds: Vec<Cmd> = calls.iter().map(|call| self.enqueue_cmd(call)).collect();
            let replies = self.run_script_cmds(&cmds).await?;
            if replies.len() != calls.len() {
                return Err(QueueError::Protocol("short pipeline reply".into()));
            }
            for (call, reply) in calls.iter().zip(replies) {
                for (place, answer) in answer_call(call, reply)? {
                    answers[place] = Some(answer);
                }
            }
            for answer in answers {
                out.push(answer.ok_or_else(|| {
                    QueueError::Protocol("a job of the batch got no answer".into())
                })?);
            }
        }
        Ok(out)
    }

    /// Refuses a job whose payload (its op and args, as enqueued) is over
    /// `GITFLEET_MAX_PAYLOAD_BYTES`, as enqueueing it would: for a producer that checks a
    /// whole batch before any of it is enqueued.
    pub fn check_payload(&self, spec: &JobSpec) -> Result<(), QueueError> {
        self.payload(spec).map(drop)
    }

    /// The payload of `spec` as stored, if it is within the limit.
    fn payload(&self, spec: &JobSpec) -> Result<String, QueueError> {
        let payload = serde_json::to_string(spec)
            .map_err(|e| QueueError::invalid(format!("job cannot be encoded: {e}")))?;
        let limit = self.config.max_payload_bytes;
        if payload.len() > limit {
            return Err(QueueError::invalid(format!(
                "payload is {} bytes, over the limit of {limit} bytes",
                payload.len()
            )));
        }
        Ok(payload)
    }

    /// The payload of `spec` as stored, once the job and its options pass the checks the
    /// script would make (and those only the client can: the queue name, the args' shape).
    fn checked_payload(
        &self,
        queue: &str,
        spec: &JobSpec,
        options: &EnqueueOptions,
    ) -> Result<String, QueueError> {
        validate_queue_name(queue).map_err(QueueError::Invalid)?;
        spec.check_shape().map_err(QueueError::Invalid)?;
        let payload = self.payload(spec)?;
        if let Some(idem) = options.idempotency_key.as_deref() {
            validate_idempotency_key(idem).map_err(QueueError::Invalid)?;
        }
        if let Some(org) = options.org.as_deref().filter(|org| !org.is_empty()) {
            gitfleet_contract::validate_org_id(org).map_err(QueueError::Invalid)?;
        }
        Ok(payload)
    }

    /// The script call that enqueues `call`'s jobs (docs/queue.md gives the layout).
    fn enqueue_cmd(&self, call: &Call) -> Cmd {
        let (queue, options) = (call.queue, call.options);
        let idem = options.idempotency_key.as_deref().unwrap_or("");
        let org = options.org.as_deref().unwrap_or("");
        let routed = gitfleet_contract::own_queue_worker(queue).unwrap_or("");
        let k = &self.keys;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(ENQUEUE.get_hash())
            .arg(6 + call.jobs.len())
            .arg(k.ready(queue))
            .arg(k.delayed(queue))
            .arg(k.queues())
            .arg(k.workers())
            .arg(k.dead(queue))
            .arg(k.idempotency(org, if idem.is_empty() { "-" } else { idem }));
        for (_, id, _) in &call.jobs {
            cmd.arg(k.job(id));
        }
        cmd.arg(k.prefix())
            .arg(queue)
            .arg(org)
            .arg(options.delay.map(|d| d.as_millis() as u64).unwrap_or(0))
            .arg(options.max_attempts.unwrap_or(0))
            .arg(options.timeout.map(|d| d.as_millis() as u64).unwrap_or(0))
            .arg(idem)
            .arg(self.config.idempotency_ttl.as_secs().max(1))
            .arg(options.idempotency_fingerprint.as_deref().unwrap_or(""))
            .arg(self.config.max_payload_bytes)
            .arg(routed)
            .arg(self.config.dead_ttl.as_secs().max(1));
        for (_, _, payload) in &call.jobs {
            cmd.arg(payload);
        }
        cmd
    }

    /// Runs enqueue-script calls as one pipeline, loading the script if Redis lost it
    /// (a restart empties the script cache).
    async fn run_script_cmds(&self, cmds: &[Cmd]) -> Result<Vec<RedisResult<Value>>, QueueError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for cmd in cmds {
                pipe.add_command(cmd.clone());
            }
            let replies: Vec<RedisResult<Value>> = pipe.query_async(&mut conn).await?;
            let noscript = replies.iter().any(|r| {
                matches!(r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
            });
            if noscript && attempt == 0 {
                ENQUEUE.load_async(&mut conn).await?;
                continue;
            }
            return Ok(replies);
        }
        unreachable!("the loop returns on its second pass")
    }
}

/// Each job of `call` with its answer, from the script's reply (see `lua/enqueue.lua`):
/// `[1, status, enqueued_at, (index, error)...]` or `[0, status, enqueued_at, job_id]`, or an
/// error reply for the whole call.
fn answer_call(call: &Call, reply: RedisResult<Value>) -> Result<Vec<(usize, Answer)>, QueueError> {
    let protocol = |what: &str| QueueError::Protocol(format!("enqueue script answered {what}"));
    let items = match reply {
        Ok(Value::Array(items)) => items,
        Ok(other) => return Err(protocol(&format!("{other:?}"))),
        Err(e) => {
            // A refusal of the whole call is every job's answer.
            let err = QueueError::from_script(e);
            let mut answers: Vec<_> = call.jobs[1..]
                .iter()
                .map(|(place, _, _)| (*place, Err(copy_error(&err))))
                .collect();
            answers.push((call.jobs[0].0, Err(err)));
            return Ok(answers);
        }
    };
    use redis::FromRedisValue;
    let int = |v: &Value| i64::from_redis_value_ref(v).ok();
    let text = |v: &Value| String::from_redis_value_ref(v).ok();
    let (Some(created), Some(status)) = (items.first().and_then(int), items.get(1).and_then(text))
    else {
        return Err(protocol("no created flag and status"));
    };
    let status = status.parse().map_err(QueueError::Protocol)?;
    let enqueued_at = items
        .get(2)
        .and_then(int)
        .and_then(gitfleet_contract::time_from_micros);
    if created == 0 {
        let (Some((place, _, _)), Some(existing)) =
            (call.jobs.first(), items.get(3).and_then(text))
        else {
            return Err(protocol("a found job without its id"));
        };
        return Ok(vec![(
            *place,
            Ok(Enqueued {
                job_id: existing,
                status,
                created: false,
                enqueued_at,
            }),
        )]);
    }
    let mut refused = std::collections::HashMap::new();
    for pair in items.get(3..).unwrap_or_default().chunks(2) {
        let (Some(index), Some(message)) = (pair.first().and_then(int), pair.get(1).and_then(text))
        else {
            return Err(protocol("a refusal without its index and error"));
        };
        refused.insert(index as usize, message);
    }
    Ok(call
        .jobs
        .iter()
        .enumerate()
        .map(|(i, (place, id, _))| {
            let answer = match refused.remove(&(i + 1)) {
                Some(message) => Err(refusal(&message)),
                None => Ok(Enqueued {
                    job_id: id.clone(),
                    status,
                    created: true,
                    enqueued_at,
                }),
            };
            (*place, answer)
        })
        .collect())
}

/// A job's refusal inside a call's reply, `"<code>: <detail>"`, as the error the same
/// refusal as an error reply would be.
fn refusal(message: &str) -> QueueError {
    match message.split_once(": ") {
        Some(("invalid_input", detail)) => QueueError::invalid(detail.trim()),
        _ => QueueError::Protocol(format!("enqueue script refused a job: {message}")),
    }
}

/// The same error for another job of a call refused as a whole.
fn copy_error(err: &QueueError) -> QueueError {
    match err {
        QueueError::Invalid(e) => QueueError::Invalid(e.clone()),
        other => QueueError::Protocol(other.to_string()),
    }
}
