/**
 * A small real tmpfs for tests of a full file system: mounted (as root) in a temporary folder,
 * filled to the last byte on demand, unmounted at the end. Where it cannot be mounted (not root,
 * no mount permission) `mountTmpfs` returns the reason, so the test can be skipped saying why.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type Tmpfs = { dir: string; fill(): string; unfill(): void; unmount(): void };

export function mountTmpfs(sizeBytes: number): Tmpfs | string {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'mounting a tmpfs needs root';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'roundlog-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return `mount -t tmpfs failed: ${(error as Error).message.split('\n')[0]}`;
  }
  const filler = path.join(dir, 'filler');
  return {
    dir,
    /** Writes a filler file until the file system answers ENOSPC; returns its path. */
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(4096, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        closeSync(fd);
      }
      // Smaller than a page may still fit at the end of the last one: fill that too.
      const fdSmall = openSync(filler, 'a');
      try {
        for (;;) writeSync(fdSmall, Buffer.alloc(1));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        closeSync(fdSmall);
      }
      return filler;
    },
    unfill() {
      unlinkSync(filler);
    },
    unmount() {
      execFileSync('umount', [dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
