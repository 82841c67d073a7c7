// A caller's value as error messages show it: JSON-quoted, so that control characters
// and quotes stay visible, and cut short, so that a 10 kB value does not come back
// whole in every answer (or every log line).
export const quotedLength = 64;

export function quote(value: unknown, max = quotedLength): string {
  if (value === undefined) return 'nothing';
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  // Cut on code points: half a surrogate pair would print as an escape.
  const points = Array.from(text.slice(0, max * 2 + 2));
  const shown = points.length > max ? `${points.slice(0, max).join('')}…` : text;
  return typeof value === 'string' ? JSON.stringify(shown) : shown;
}
