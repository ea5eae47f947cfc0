/** Every `roundlog` command, in the order `roundlog help` lists them. */
import type { Command } from '../command.ts';
import { audit } from './audit.ts';
import { demo } from './demo.ts';
import { exportCommand } from './export.ts';
import { ls, resume, run } from './experiments.ts';
import { history } from './history.ts';
import { fork, replay, rewind } from './lineage.ts';
import { events, streams } from './log.ts';
import { gc, project, verify } from './maintenance.ts';
import { node } from './node.ts';
import { serve } from './serve.ts';

export const COMMANDS: readonly Command[] = [
  run,
  resume,
  ls,
  demo,
  streams,
  events,
  history,
  audit,
  replay,
  rewind,
  fork,
  exportCommand,
  serve,
  node,
  project,
  gc,
  verify,
];
