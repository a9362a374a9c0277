import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';

export interface AsyncState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: (d: T) => void;
}

interface Loaded<T> {
  key: string;
  data: T | undefined;
  error: unknown;
}

/** Runs `load` when `deps` (primitives) change, and on reload; keeps the last data while reloading. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): AsyncState<T> {
  const [tick, setTick] = useState(0);
  const key = JSON.stringify([...deps, tick]);
  const [state, setState] = useState<Loaded<T>>({ key: '', data: undefined, error: null });
  const loadRef = useRef(load);
  useLayoutEffect(() => {
    loadRef.current = load;
  });

  useEffect(() => {
    const ctl = new AbortController();
    loadRef.current(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ key, data, error: null });
      },
      (error: unknown) => {
        if (!ctl.signal.aborted) setState((s) => ({ key, data: s.data, error }));
      },
    );
    return () => ctl.abort();
  }, [key]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  const setData = useCallback((data: T) => setState((s) => ({ ...s, data, error: null })), []);
  return { data: state.data, error: state.key === key ? state.error : null, loading: state.key !== key, reload, setData };
}
