import { act, render, renderHook, screen, waitFor } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import { ErrorAlert } from '../components/ui';
import { deferred, envelope, json, type Deferred } from '../test/util';
import { useJob } from './useJob';

const JOB = '01a23364-88c8-7628-ac52-817403139b66';

function job(status: string, extra: Record<string, unknown> = {}) {
  return {
    id: JOB,
    kind: 'checkout',
    status,
    attempts: 1,
    result: null,
    error: null,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...extra,
  };
}

/** A server whose answers the test hands out one by one. */
function server() {
  const answers: Deferred<Response>[] = [];
  const urls: string[] = [];
  const fetch = vi.fn((req: Request) => {
    urls.push(req.url);
    const d = deferred<Response>();
    answers.push(d);
    return d.promise;
  });
  vi.stubGlobal('fetch', fetch);
  return {
    fetch,
    urls,
    async answer(i: number, res: Response) {
      await waitFor(() => expect(answers.length).toBeGreaterThan(i));
      await act(async () => {
        answers[i]?.resolve(res);
      });
    },
  };
}

describe('useJob', () => {
  it('long-polls from pending to final and then stops', async () => {
    const s = server();
    const onFinal = vi.fn();
    const { result } = renderHook(() => useJob(JOB, { wait: 25, minIntervalMs: 0, onFinal }));
    expect(result.current.polling).toBe(true);
    expect(result.current.job).toBeNull();

    await s.answer(0, json(200, job('queued')));
    expect(result.current.job?.status).toBe('queued');
    expect(result.current.polling).toBe(true);

    await s.answer(1, json(200, job('running')));
    expect(result.current.job?.status).toBe('running');

    await s.answer(2, json(200, job('succeeded', { result: { order_id: 'o1', client_secret: 'cs' } })));
    expect(result.current.job?.status).toBe('succeeded');
    expect(result.current.polling).toBe(false);
    expect(onFinal).toHaveBeenCalledTimes(1);
    expect(onFinal.mock.calls[0]?.[0]).toMatchObject({ status: 'succeeded' });

    // Stopped: no request after the final state.
    await act(async () => {
      await Promise.resolve();
    });
    expect(s.fetch).toHaveBeenCalledTimes(3);
    for (const u of s.urls) expect(u).toBe(`http://localhost:3000/api/v1/jobs/${JOB}?wait=25`);
  });

  it('waits between polls when the server answers at once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const fetch = vi.fn(async () => json(200, job('running')));
      vi.stubGlobal('fetch', fetch);
      const { unmount } = renderHook(() => useJob(JOB, { minIntervalMs: 1000 }));
      await act(async () => {
        await vi.advanceTimersByTimeAsync(0);
      });
      expect(fetch).toHaveBeenCalledTimes(1);
      await act(async () => {
        await vi.advanceTimersByTimeAsync(999);
      });
      expect(fetch).toHaveBeenCalledTimes(1);
      await act(async () => {
        await vi.advanceTimersByTimeAsync(1);
      });
      expect(fetch).toHaveBeenCalledTimes(2);
      unmount();
      await act(async () => {
        await vi.advanceTimersByTimeAsync(5000);
      });
      expect(fetch).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('shows the error envelope and stops', async () => {
    const s = server();
    function Watch() {
      const { job: j, error, polling } = useJob(JOB, { minIntervalMs: 0 });
      return (
        <div>
          <span data-testid="state">{polling ? 'polling' : 'stopped'}</span>
          <span data-testid="status">{j?.status ?? 'none'}</span>
          <ErrorAlert error={error} />
        </div>
      );
    }
    render(<Watch />);
    await s.answer(0, json(200, job('running')));
    expect(screen.getByTestId('status').textContent).toBe('running');
    await s.answer(1, envelope(404, 'not_found', 'no such job'));
    expect(screen.getByRole('alert').textContent).toBe('no such job');
    expect(screen.getByTestId('state').textContent).toBe('stopped');
    expect(s.fetch).toHaveBeenCalledTimes(2);
  });

  it('reports a failed job as final with its error', async () => {
    const s = server();
    const { result } = renderHook(() => useJob(JOB, { minIntervalMs: 0 }));
    await s.answer(0, json(200, job('failed', { error: { code: 'out_of_stock', message: 'sold out' } })));
    expect(result.current.polling).toBe(false);
    expect(result.current.job?.error?.message).toBe('sold out');
    expect(s.fetch).toHaveBeenCalledTimes(1);
  });

  it('does nothing without a job id', () => {
    const fetch = vi.fn();
    vi.stubGlobal('fetch', fetch);
    const { result } = renderHook(() => useJob(null));
    expect(result.current.polling).toBe(false);
    expect(fetch).not.toHaveBeenCalled();
  });
});
