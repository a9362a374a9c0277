//! What every job handler receives: the process's [`Services`] and the push wake-ups.

use std::ops::Deref;

use shared::{config::Settings, jobs, queue, services::Services};

use crate::wake::PushWakeups;

/// Shared state handed to job handlers as `Data<JobContext>`. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    /// Connections, clients and settings, as every process has them.
    pub services: Services,
    /// Wake-ups announced by producers after each push, per queue.
    pub wakeups: PushWakeups,
}

impl JobContext {
    /// Connects to Postgres and Redis. Both are needed by every job, so a wrong URL or an
    /// unreachable server stops start-up here instead of failing each job later.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let services = Services::connect(settings).await?;
        let queues = jobs::names()
            .into_iter()
            .map(|job| queue::queue_name(&services.settings.redis_prefix, job))
            .collect();
        let wakeups = PushWakeups::start(services.redis_client.clone(), queues);
        Ok(Self { services, wakeups })
    }
}

impl Deref for JobContext {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
