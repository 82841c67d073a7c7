// A short, stable name for a value too long or too free-form to be a file name or
// a link alias (a 255-byte container ID, an nft element key). FNV-1a over the UTF-8
// bytes, 64 bits as 16 hex digits: node:crypto would cost a one-shot plugin ~1.5 ms
// to load, and every reader of such a name also checks the identity stored with it.
const offset = 0xcbf29ce484222325n;
const prime = 0x100000001b3n;
const mask = 0xffffffffffffffffn;

export function digest(text: string): string {
  let hash = offset;
  for (const byte of Buffer.from(text, 'utf8')) hash = ((hash ^ BigInt(byte)) * prime) & mask;
  return hash.toString(16).padStart(16, '0');
}
