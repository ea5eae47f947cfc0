/** `roundlog streams` and `events`: the raw log, stream by stream. */
import { StreamNotFoundError } from '../../log/errors.ts';
import { nonNegativeInt, table, toJson } from '../args.ts';
import { defineCommand, withRoundLog } from '../command.ts';
import { timeline } from '../output.ts';

export const streams = defineCommand({
  name: 'streams',
  describe: 'list the streams of the log with their last revision',
  options: { json: { type: 'boolean', default: false, describe: 'print JSON' } },
  readsRoot: true,
  run: async (args, { global, io }) => {
    const { streams } = await withRoundLog(global, (rl) => rl.withReader((log) => log.listStreams()));
    if (args.json) {
      io.out(toJson(streams));
      return 0;
    }
    const rows = streams.map((s) => [
      s.stream,
      String(s.lastRevision + 1n),
      String(s.firstPosition),
      String(s.lastPosition),
    ]);
    for (const line of table(['stream', 'events', 'first position', 'last position'], rows)) io.out(line);
    return 0;
  },
});

export const events = defineCommand({
  name: 'events',
  describe: 'print the events of a stream',
  positionals: {
    stream: {
      type: 'string',
      demandOption: true,
      describe: 'a stream name (see roundlog streams), or an experiment (folder, id or path)',
    },
  },
  options: {
    json: { type: 'boolean', default: false, describe: 'print JSON' },
    from: { type: 'string', describe: 'the first revision to print (R)', coerce: nonNegativeInt('--from') },
    limit: { type: 'string', describe: 'print at most N events', coerce: nonNegativeInt('--limit') },
  },
  needs: 'a stream name (see roundlog streams)',
  readsRoot: true,
  run: async (args, { global, io }) => {
    const options = {
      fromRevision: args.from === undefined ? ('start' as const) : BigInt(args.from),
      ...(args.limit === undefined ? {} : { maxCount: args.limit }),
    };
    const { events } = await withRoundLog(global, async (rl) => {
      try {
        return await rl.withReader((log) => log.readStream(args.stream, options));
      } catch (error) {
        // Not a stream name: an experiment named as every other command names it (folder, id, path).
        if (!(error instanceof StreamNotFoundError)) throw error;
        const handle = await rl.openExperiment(args.stream).catch(() => null);
        if (handle === null) throw error;
        return rl.withReader((log) => log.readStream(handle.stream, options));
      }
    });
    if (args.json) io.out(toJson(events));
    else for (const line of timeline(events)) io.out(line);
    return 0;
  },
});
