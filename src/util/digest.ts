// A short, stable name for a value too long or too free-form to be a file name or
// a link alias (a 255-byte container ID, an nft element key). FNV-1a over the UTF-8
// bytes, 64 bits as 16 hex digits: node:crypto would cost a one-shot plugin ~1.5 ms
// to load, and every reader of such a name also checks the identity stored with it.
//
// The 64-bit state is kept as two 32-bit halves in plain numbers (BigInt arithmetic
// per byte took ~10 µs per name, and a DEL names a dozen): the FNV prime is
// 2^40 + 0x1b3, so hash * prime = (hash << 40) + hash * 0x1b3, modulo 2^64.
export function digest(text: string): string {
  let high = 0xcbf29ce4;
  let low = 0x84222325;
  for (const byte of Buffer.from(text, 'utf8')) {
    low ^= byte;
    const lowProduct = (low >>> 0) * 0x1b3;
    high = (Math.imul(high, 0x1b3) + ((low << 8) >>> 0) + Math.floor(lowProduct / 0x100000000)) >>> 0;
    low = lowProduct >>> 0;
  }
  return `${high.toString(16).padStart(8, '0')}${low.toString(16).padStart(8, '0')}`;
}
