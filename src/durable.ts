/** Small file-system steps that must survive a crash once they return: fsync of data and of folder entries. */
import { promises as fs } from 'node:fs';

/** Makes the folder's entries (created, renamed, removed names) durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `file` (it must not exist) with `data`, fsynced before returning. */
export async function createFileDurably(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.open(file, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
