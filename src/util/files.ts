import { closeSync, fstatSync, ftruncateSync, openSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';

// Removes a file that may already be gone. rmSync({ force: true }) walks it as a tree
// in JavaScript (lstat, then unlink): one unlink is all a file needs.
export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

// Rewrites a small file's content where it lies, truncating only what a shorter
// content leaves behind: on ext4, opening with O_TRUNC frees the file's block and
// costs ~0.16 ms, writing over it ~0.007 ms. Only for files whose readers accept any
// mix of old and new bytes (a kill between the write and the truncation leaves one).
export function overwriteInPlace(path: string, content: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    writeFileSync(path, content);
    return;
  }
  try {
    const written = writeSync(fd, content, 0);
    if (fstatSync(fd).size > written) ftruncateSync(fd, written);
  } finally {
    closeSync(fd);
  }
}
