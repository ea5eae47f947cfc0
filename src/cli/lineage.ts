/** CLI commands: see each command's help line. */
import type { Io } from './args.ts';

export type Command = (args: string[], io: Io) => Promise<number>;

/** Commands this module adds to `roundlog`, by name. */
export const commands: Record<string, Command> = {};

/** Lines for `roundlog help`, one per command. */
export const help: string[] = [];
