import { api, unwrap } from '../api/client';
import type { ClientConfig } from '../api/types';
import { useAsync } from './useAsync';

let cached: Promise<ClientConfig> | null = null;

export function loadConfig(): Promise<ClientConfig> {
  cached ??= unwrap(api.GET('/api/v1/config')).catch((e: unknown) => {
    cached = null;
    throw e;
  });
  return cached;
}

export function useConfig() {
  return useAsync(() => loadConfig(), []);
}
