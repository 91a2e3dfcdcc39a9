//! Integration tests of the queue layer against the real Redis on 127.0.0.1:6379
//! (`GITFLEET_TEST_REDIS_URL` to use another). Each test works under a key prefix of its
//! own and deletes it afterwards, so tests run side by side.

mod harness;

mod backlog;
mod producing;
mod retries;
mod waiting;
