import { useState } from 'react';
import type { Image } from '../api/types';
import { shownImages } from '../images/gallery';

/** A listing's pictures: the chosen one large (the main one at first), the others as thumbnails to pick from. */
export function Gallery({ images, title }: { images: readonly Image[]; title: string }) {
  const shown = shownImages(images);
  const [chosen, setChosen] = useState<string | null>(null);
  const current = shown.find((i) => i.id === chosen) ?? shown[0];
  if (!current) {
    return (
      <div className="gallery">
        <div className="gallery-empty">No pictures</div>
      </div>
    );
  }
  return (
    <div className="gallery">
      {/* width and height give the box its proportions before the file arrives. */}
      <img className="gallery-main" src={current.url} alt={title} width={current.width ?? undefined}
        height={current.height ?? undefined} />
      {shown.length > 1 ? (
        <ul className="gallery-thumbs" aria-label="Pictures">
          {shown.map((img, i) => (
            <li key={img.id}>
              <button type="button" className="gallery-pick" aria-pressed={img.id === current.id}
                aria-label={`Show picture ${i + 1} of ${shown.length}`} onClick={() => setChosen(img.id)}>
                <img src={img.thumb_url ?? img.url} alt="" loading="lazy" decoding="async" width={72} height={72} />
              </button>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
