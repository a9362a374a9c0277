/**
 * The schema declares a file part as a (binary) string; in the browser it is a Blob, or an array
 * of them for a repeated part.
 */
export type FileParts<T> = { [K in keyof T]: T[K] extends readonly unknown[] ? readonly Blob[] : Blob };

/**
 * A multipart/form-data body for openapi-fetch: the part names are checked against the
 * operation's schema, and the parts go out as FormData (the browser sets the boundary).
 */
export function multipart<T extends Record<string, string | string[]>>(parts: FileParts<T>) {
  return {
    body: parts as unknown as T,
    bodySerializer: (): FormData => {
      const form = new FormData();
      for (const [name, value] of Object.entries(parts) as [string, Blob | readonly Blob[]][]) {
        for (const blob of Array.isArray(value) ? value : [value]) form.append(name, blob);
      }
      return form;
    },
  };
}
