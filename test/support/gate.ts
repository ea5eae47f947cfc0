/**
 * The child side of tests that stop a process at a known point of a round: a federation whose
 * nodes call a hook when their data is read for training (which the facade does only after the
 * round's `RoundStarted` is durable, and before anything else of the round is), and a blocking
 * read of one line from the parent, so a process can wait there to be released or SIGKILLed.
 * Also the hash of parameters such children print.
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import type { TensorSet } from '../../src/codec/tensors.ts';
import type { Federation } from '../../src/federated/training-plan.ts';

/**
 * Blocks the whole process until a line arrives on stdin (fd 0 is a blocking pipe in a child) and
 * returns it without its newline; null when stdin ends first.
 */
export function readLineSync(): string | null {
  const byte = Buffer.alloc(1);
  let line = '';
  for (;;) {
    let n: number;
    try {
      n = readSync(0, byte, 0, 1, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw error;
    }
    if (n === 0) return null;
    if (byte[0] === 0x0a) return line;
    line += String.fromCharCode(byte[0]!);
  }
}

/** `federation` with every dataset calling `onRead(<node id>)` each time its data is read, before giving it. */
export function onDataRead(federation: Federation, onRead: (node: string) => void): Federation {
  return {
    nodes: federation.nodes.map((node) => ({
      id: node.id,
      datasets: node.datasets.map((dataset) => ({
        id: dataset.id,
        tags: dataset.tags,
        get data() {
          onRead(node.id);
          return dataset.data;
        },
      })),
    })),
  };
}

/** SHA-256 over every tensor in name order: name, dtype, shape and element bytes. */
export function hashParameters(params: TensorSet): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(params).sort()) {
    const tensor = params[name]!;
    hash.update(`${name}\0${tensor.dtype}\0${tensor.shape.join(',')}\0`);
    hash.update(Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
  }
  return hash.digest('hex');
}
