import { useCallback, useId, useRef, useState, type ChangeEvent, type FormEvent } from 'react';
import type { Image, ImageStatus } from '../api/types';
import { refusal, type Refusal } from '../images/gallery';
import { useListingImages } from '../images/useListingImages';
import { formatBytes } from '../lib/format';
import { ErrorAlert } from './ui';

const ACCEPT = 'image/jpeg,image/png,image/webp';
/** A chosen file, with a key of its own (the same file may be chosen twice). */
interface Picked {
  key: number;
  file: File;
}

const STATUS_WORDS: Record<ImageStatus, string> = { pending: 'processing', ready: 'ready', failed: 'failed' };

/** A ref for an <img> previewing a local file: its object URL lives as long as the element shows that file. */
function usePreview(file: Blob) {
  return useCallback(
    (img: HTMLImageElement | null) => {
      if (!img) return;
      const url = URL.createObjectURL(file);
      img.src = url;
      return () => URL.revokeObjectURL(url);
    },
    [file],
  );
}

function Chosen({ file, refused, onRemove, disabled }: { file: File; refused: string | null; onRemove: () => void; disabled: boolean }) {
  const preview = usePreview(file);
  return (
    <li className={refused ? 'image-tile refused' : 'image-tile'} aria-label={file.name}>
      <img ref={preview} className="thumb" alt={`Preview of ${file.name}`} width={96} height={96} />
      <div className="image-name" title={file.name}>{file.name}</div>
      <div className="muted">{formatBytes(file.size)}</div>
      {refused ? <small className="field-error">{refused}</small> : null}
      <button type="button" className="secondary" disabled={disabled} onClick={onRemove} aria-label={`Remove ${file.name}`}>
        Remove
      </button>
    </li>
  );
}

interface TileProps {
  image: Image;
  index: number;
  count: number;
  title: string;
  busy: boolean;
  onMain: () => void;
  onMove: (by: number) => void;
  onDelete: () => void;
}

function Tile({ image, index, count, title, busy, onMain, onMove, onDelete }: TileProps) {
  const n = index + 1;
  return (
    <li className="image-tile" aria-label={`Picture ${n}`}>
      {image.thumb_url ? (
        <img className="thumb" src={image.thumb_url} alt={`${title}, picture ${n}`} loading="lazy" decoding="async"
          width={96} height={96} />
      ) : (
        <span className="thumb thumb-empty" aria-hidden="true" />
      )}
      <div>
        <span className={`status status-${image.status}`}>{STATUS_WORDS[image.status]}</span>
        {image.is_main ? <span className="status status-main">main</span> : null}
      </div>
      <div className="actions">
        {!image.is_main && image.status === 'ready' ? (
          <button type="button" className="secondary" disabled={busy} aria-label={`Make picture ${n} the main one`}
            onClick={onMain}>
            Make main
          </button>
        ) : null}
        <button type="button" className="secondary" disabled={busy || index === 0} aria-label={`Move picture ${n} left`}
          onClick={() => onMove(-1)}>
          ←
        </button>
        <button type="button" className="secondary" disabled={busy || index === count - 1}
          aria-label={`Move picture ${n} right`} onClick={() => onMove(1)}>
          →
        </button>
        <button type="button" className="secondary" disabled={busy} aria-label={`Delete picture ${n}`}
          onClick={onDelete}>
          Delete
        </button>
      </div>
    </li>
  );
}

/**
 * The seller's pictures of a listing: choose files (previewed before anything is sent), upload
 * them, follow their processing, and delete, reorder or pick the main one.
 */
export function ImageManager({ listingId, title, initial }: { listingId: string; title: string; initial: readonly Image[] }) {
  const pictures = useListingImages(listingId, initial);
  const inputId = useId();
  const [chosen, setChosen] = useState<Picked[]>([]);
  const [refused, setRefused] = useState<(Refusal & { of: number | null }) | null>(null);
  const picks = useRef(0);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const { images } = pictures;

  const act = useCallback((fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    fn()
      .catch((e: unknown) => setError(e))
      .finally(() => setBusy(false));
  }, []);

  function choose(e: ChangeEvent<HTMLInputElement>) {
    const files = Array.from(e.target.files ?? []);
    // Cleared so that choosing the same file again is a change too.
    e.target.value = '';
    if (files.length === 0) return;
    const picked = files.map((file) => ({ key: (picks.current += 1), file }));
    setChosen((c) => [...c, ...picked]);
    setRefused(null);
  }

  function drop(key: number) {
    setChosen((c) => c.filter((p) => p.key !== key));
    if (refused?.of === key) setRefused(null);
  }

  async function upload(e: FormEvent) {
    e.preventDefault();
    if (chosen.length === 0) return;
    setBusy(true);
    setError(null);
    setRefused(null);
    const sent = chosen;
    try {
      await pictures.upload(sent.map((p) => p.file));
      setChosen((c) => c.filter((p) => !sent.includes(p)));
    } catch (err) {
      const r = refusal(err, sent.map((p) => p.file.name));
      setRefused({ ...r, of: r.file === null ? null : (sent[r.file]?.key ?? null) });
    } finally {
      setBusy(false);
    }
  }

  const pendingCount = images.filter((i) => i.status === 'pending').length;
  return (
    <section className="pictures" aria-labelledby={`${inputId}-heading`}>
      <h2 id={`${inputId}-heading`}>Pictures</h2>
      {images.length === 0 ? (
        <p className="muted">No pictures yet.</p>
      ) : (
        <ul className="image-grid" aria-label="Pictures">
          {images.map((img, i) => (
            <Tile key={img.id} image={img} index={i} count={images.length} title={title} busy={busy}
              onMain={() => act(() => pictures.makeMain(img.id))} onMove={(by) => act(() => pictures.move(img.id, by))}
              onDelete={() => act(() => pictures.remove(img.id))} />
          ))}
        </ul>
      )}
      {pictures.processing ? (
        <p className="muted" role="status">
          Processing {pendingCount === 1 ? '1 picture' : `${pendingCount} pictures`}…
        </p>
      ) : null}
      {pictures.stalled ? (
        <p className="muted" role="status">
          Still processing.{' '}
          <button type="button" className="link" onClick={pictures.retry}>Check again</button>
        </p>
      ) : null}
      {images.some((i) => i.status === 'failed') ? (
        <p className="muted">A failed picture could not be processed: delete it and upload another file.</p>
      ) : null}
      <ErrorAlert error={error} />

      <form className="upload" onSubmit={(e) => void upload(e)}>
        <div className="field">
          <label htmlFor={inputId}>Add pictures</label>
          <input id={inputId} type="file" accept={ACCEPT} multiple onChange={choose} disabled={busy}
            aria-describedby={`${inputId}-hint`} />
          <small id={`${inputId}-hint`} className="hint">
            JPEG, PNG or WebP. The first picture is the main one.
          </small>
        </div>
        {chosen.length > 0 ? (
          <ul className="image-grid" aria-label="Chosen files">
            {chosen.map((p) => (
              <Chosen key={p.key} file={p.file} disabled={busy} refused={refused?.of === p.key ? refused.text : null}
                onRemove={() => drop(p.key)} />
            ))}
          </ul>
        ) : null}
        {refused ? (
          <p className="error" role="alert">
            {refused.text}
          </p>
        ) : null}
        <button type="submit" disabled={busy || chosen.length === 0}>
          {chosen.length > 1 ? `Upload ${chosen.length} pictures` : 'Upload picture'}
        </button>
      </form>
    </section>
  );
}
