import { statSync } from 'node:fs';

// How long a temporary file, or a record no owner can claim, must sit untouched before
// GC may take it for the leftover of a writer that died: far longer than any writer
// (ours, or the reference host-local) spends between creating and finishing one.
export const debrisGraceMs = 60_000;

export function olderThan(path: string, ageMs: number): boolean {
  try {
    return statSync(path).mtimeMs <= Date.now() - ageMs;
  } catch {
    return false;
  }
}
