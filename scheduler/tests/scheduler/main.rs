//! Integration tests of the scheduler: the binary's start-up and shutdown, and the schedule
//! seam that later sweeps plug into. They need PostgreSQL and Redis on 127.0.0.1.

mod backlog;
mod helpers;
mod leader;
mod lifecycle;
mod requeue;
mod schedule;
