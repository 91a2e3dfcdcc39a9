//! Producing: one job, or many in one round trip, through the enqueue script.

use gitfleet_contract::envelope::validate_idempotency_key;
use gitfleet_contract::{EnqueueOptions, Enqueued, JobError, JobSpec, validate_queue_name};
use redis::{Cmd, RedisResult};

use super::scripts::ENQUEUE;
use super::{CHUNK, Queue, QueueError};

/// What `lua/enqueue.lua` answers: job id, status, created (1) or found by its idempotency
/// key (0), enqueue time in Unix microseconds (nil for a record gone).
type ScriptReply = (String, String, i64, Option<i64>);

/// What the queue answers a job enqueued on the own queue of a worker that is not running
/// (dead at once, `sandbox_not_found`): the error `lua/enqueue.lua` records.
pub fn worker_not_running(worker: &str) -> JobError {
    JobError::sandbox_not_found(format!(
        "worker {worker} is not running; its sandboxes are gone"
    ))
}

impl Queue {
    /// Enqueues one job on `queue`.
    pub async fn enqueue(
        &self,
        queue: &str,
        spec: &JobSpec,
        options: &EnqueueOptions,
    ) -> Result<Enqueued, QueueError> {
        let cmd = self.enqueue_cmd(queue, spec, options)?;
        let reply = self.run_script_cmds(&[cmd]).await?;
        reply
            .into_iter()
            .next()
            .ok_or_else(|| QueueError::Protocol("empty pipeline reply".into()))?
    }

    /// Enqueues many jobs on `queue`, a pipeline of up to a thousand per round trip. Each
    /// job gets its own answer: one bad job does not stop the others.
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

    /// Enqueues jobs each with its own queue and options (an idempotency key each, say), a
    /// pipeline of up to a thousand per round trip. Each job gets its own answer.
    pub async fn enqueue_batch(
        &self,
        jobs: &[(&str, &JobSpec, &EnqueueOptions)],
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(CHUNK) {
            let mut cmds = Vec::with_capacity(chunk.len());
            let mut slots = Vec::with_capacity(chunk.len());
            for (queue, spec, options) in chunk {
                match self.enqueue_cmd(queue, spec, options) {
                    Ok(cmd) => {
                        slots.push(None);
                        cmds.push(cmd);
                    }
                    Err(e) => slots.push(Some(e)),
                }
            }
            let mut replies = self.run_script_cmds(&cmds).await?.into_iter();
            for slot in slots {
                out.push(match slot {
                    Some(err) => Err(err),
                    None => replies
                        .next()
                        .ok_or_else(|| QueueError::Protocol("short pipeline reply".into()))?,
                });
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

    fn enqueue_cmd(
        &self,
        queue: &str,
        spec: &JobSpec,
        options: &EnqueueOptions,
    ) -> Result<Cmd, QueueError> {
        validate_queue_name(queue).map_err(QueueError::Invalid)?;
        spec.check_shape().map_err(QueueError::Invalid)?;
        let payload = self.payload(spec)?;
        let limit = self.config.max_payload_bytes;
        let idem = options.idempotency_key.as_deref().unwrap_or("");
        if !idem.is_empty() {
            validate_idempotency_key(idem).map_err(QueueError::Invalid)?;
        }
        let org = options.org.as_deref().unwrap_or("");
        if !org.is_empty() {
            gitfleet_contract::validate_org_id(org).map_err(QueueError::Invalid)?;
        }
        let id = ulid::Ulid::new().to_string();
        let routed = gitfleet_contract::own_queue_worker(queue).unwrap_or("");
        let k = &self.keys;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(ENQUEUE.get_hash())
            .arg(7)
            .arg(k.job(&id))
            .arg(k.ready(queue))
            .arg(k.delayed(queue))
            .arg(k.queues())
            .arg(k.workers())
            .arg(k.idempotency(org, if idem.is_empty() { "-" } else { idem }))
            .arg(k.dead(queue))
            .arg(&id)
            .arg(queue)
            .arg(payload)
            .arg(options.delay.map(|d| d.as_millis() as u64).unwrap_or(0))
            .arg(options.max_attempts.unwrap_or(0))
            .arg(options.timeout.map(|d| d.as_millis() as u64).unwrap_or(0))
            .arg(idem)
            .arg(self.config.idempotency_ttl.as_secs().max(1))
            .arg(limit)
            .arg(routed)
            .arg(self.config.dead_ttl.as_secs().max(1))
            .arg(k.prefix())
            .arg(org)
            .arg(options.idempotency_fingerprint.as_deref().unwrap_or(""));
        Ok(cmd)
    }

    /// Runs enqueue-script calls as one pipeline, loading the script if Redis lost it
    /// (a restart empties the script cache).
    async fn run_script_cmds(
        &self,
        cmds: &[Cmd],
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
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
            let replies: Vec<RedisResult<ScriptReply>> = pipe.query_async(&mut conn).await?;
            let noscript = replies.iter().any(|r| {
                matches!(r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
            });
            if noscript && attempt == 0 {
                ENQUEUE.load_async(&mut conn).await?;
                continue;
            }
            return Ok(replies
                .into_iter()
                .map(|r| match r {
                    Ok((job_id, status, created, enqueued_at)) => Ok(Enqueued {
                        job_id,
                        status: status.parse().map_err(QueueError::Protocol)?,
                        created: created == 1,
                        enqueued_at: enqueued_at.and_then(gitfleet_contract::time_from_micros),
                    }),
                    Err(e) => Err(QueueError::from_script(e)),
                })
                .collect());
        }
        unreachable!("the loop returns on its second pass")
    }
}
