import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { api, unwrap } from '../api/client';
import type { Job } from '../api/types';
import { isFinalJobStatus } from '../lib/format';
import { sleep } from '../lib/sleep';

export interface JobOptions {
  /** Seconds the server may hold each request (0–30). */
  wait?: number | undefined;
  /** Shortest gap between two polls, for a server that answers at once. */
  minIntervalMs?: number | undefined;
  onFinal?: ((job: Job) => void) | undefined;
}

export interface JobState {
  job: Job | null;
  error: unknown;
  /** True while the job is not final and polling goes on. */
  polling: boolean;
  retry: () => void;
}

interface Seen {
  key: string;
  job: Job | null;
  error: unknown;
  done: boolean;
}

/** Long-polls `GET /jobs/{id}?wait=N` until the job is final; stops on a final state or an error. */
export function useJob(jobId: string | null | undefined, options: JobOptions = {}): JobState {
  const wait = Math.min(30, Math.max(0, options.wait ?? 25));
  const minInterval = options.minIntervalMs ?? 500;
  const [attempt, setAttempt] = useState(0);
  const key = `${jobId ?? ''}#${attempt}`;
  const [seen, setSeen] = useState<Seen>({ key: '', job: null, error: null, done: false });
  const onFinal = useRef(options.onFinal);
  useLayoutEffect(() => {
    onFinal.current = options.onFinal;
  });

  useEffect(() => {
    if (!jobId) return;
    const ctl = new AbortController();
    void (async () => {
      while (!ctl.signal.aborted) {
        const started = Date.now();
        let job: Job;
        try {
          job = await unwrap(
            api.GET('/api/v1/jobs/{id}', { params: { path: { id: jobId }, query: { wait } }, signal: ctl.signal }),
          );
        } catch (error) {
          if (!ctl.signal.aborted) setSeen((s) => ({ key, job: s.key === key ? s.job : null, error, done: true }));
          return;
        }
        if (ctl.signal.aborted) return;
        const done = isFinalJobStatus(job.status);
        setSeen({ key, job, error: null, done });
        if (done) {
          onFinal.current?.(job);
          return;
        }
        await sleep(minInterval - (Date.now() - started), ctl.signal);
      }
    })();
    return () => ctl.abort();
  }, [jobId, key, wait, minInterval]);

  const retry = useCallback(() => setAttempt((a) => a + 1), []);
  const mine = seen.key === key;
  return {
    job: mine ? seen.job : null,
    error: mine ? seen.error : null,
    polling: Boolean(jobId) && !(mine && seen.done),
    retry,
  };
}
