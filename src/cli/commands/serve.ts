/**
 * `roundlog serve`: the HTTP service (`src/serve/`) on a root. Prints the URL it listens on as the
 * first line of stdout (with `--port 0`, the port the system chose), so a script or a test reads
 * it; then serves until SIGINT or SIGTERM, which close the server (requests in flight finish, live
 * event streams end, the log is closed) and exit 0. A second signal exits at once. Runs are left as
 * their clients left them: a client resumes its run on a server started again.
 */
import { promises as fs } from 'node:fs';
import { InvalidTokenFileError, ListenFailedError } from '../../serve/errors.ts';
import { DEFAULT_BODY_LIMIT, DEFAULT_MAX_PARAMS_BYTES, createServer } from '../../serve/server.ts';
import { UsageError, checkPathArgument, nonNegativeInt, positiveInt } from '../args.ts';
import { defineCommand, storeOptions } from '../command.ts';
import { SIGNAL_EXIT_CODES } from '../signals.ts';

/** The default port of `roundlog serve`. */
export const DEFAULT_PORT = 8080;
/** The largest --body-limit: a JSON body is parsed from one string (V8 strings stop near 512 MiB). */
export const MAX_BODY_LIMIT = 256 * 1024 * 1024;
/** The largest --max-params-bytes: 64 GiB. */
export const MAX_PARAMS_BYTES_LIMIT = 64 * 1024 ** 3;

export const serve = defineCommand({
  name: 'serve',
  describe:
    'serve the root over HTTP (record and read rounds from any language; API: GET /openapi.json); ' +
    'prints the URL as its first line',
  options: {
    host: { type: 'string', default: '127.0.0.1', describe: 'address to listen on; not loopback: needs --token-file' },
    port: {
      type: 'string',
      default: String(DEFAULT_PORT),
      describe: 'port (0: one the system chooses, printed)',
      coerce: nonNegativeInt('--port'),
    },
    'token-file': { type: 'string', describe: 'FILE holding the bearer token clients must send' },
    'body-limit': {
      type: 'string',
      default: String(DEFAULT_BODY_LIMIT),
      describe: 'largest JSON request body, in bytes',
      coerce: positiveInt('--body-limit'),
    },
    'max-params-bytes': {
      type: 'string',
      default: String(DEFAULT_MAX_PARAMS_BYTES),
      describe: 'largest parameters upload (safetensors), in bytes',
      coerce: positiveInt('--max-params-bytes'),
    },
    log: { type: 'boolean', default: false, describe: 'log every request (JSON lines on stderr)' },
    init: {
      type: 'boolean',
      default: false,
      describe: 'make --root a new root when it is missing or an empty folder (else it must be a root already)',
    },
  },
  examples: [
    ['roundlog serve --root runs --port 0', 'serve the root ./runs on a free port of 127.0.0.1'],
    ['roundlog serve --root var --init', 'serve ./var, made a new root if missing or empty'],
    ['roundlog serve --host 0.0.0.0 --token-file token.txt', 'serve the network, clients send the token'],
  ],
  run: async (args, { global, io }) => {
    const port = args.port as unknown as number;
    if (port > 65535) throw new UsageError('--port must be at most 65535');
    const bodyLimit = args['body-limit'] as unknown as number;
    if (bodyLimit > MAX_BODY_LIMIT) {
      throw new UsageError(
        `--body-limit must be at most ${MAX_BODY_LIMIT} (256 MiB): a JSON body is held as one string; ` +
          'parameters go through POST /v1/params, limited by --max-params-bytes',
      );
    }
    const maxParamsBytes = args['max-params-bytes'] as unknown as number;
    if (maxParamsBytes > MAX_PARAMS_BYTES_LIMIT) {
      throw new UsageError(`--max-params-bytes must be at most ${MAX_PARAMS_BYTES_LIMIT} (64 GiB)`);
    }
    const token =
      args['token-file'] === undefined
        ? null
        : await readToken(checkPathArgument('--token-file', args['token-file'], global.cwd));
    // A root is opened as every other command opens it (ROOT_NOT_FOUND, NOT_A_ROOT); with --init a
    // missing or empty folder becomes a new root, never a folder of other files.
    const init = args.init === true && (await missingOrEmpty(global.root));
    const app = await createServer({
      ...storeOptions(global),
      createRoot: init,
      host: args.host,
      token,
      bodyLimit,
      maxParamsBytes,
      logger: args.log,
      // A failure the client sees only as its code (or INTERNAL): its details go to stderr.
      onServerError: (error, request) =>
        io.err(`roundlog serve: ${request.method} ${request.url} failed: ${(error as Error)?.stack ?? String(error)}`),
    });
    let closing: Promise<void> | null = null;
    const stopped = new Promise<number>((resolve) => {
      const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
        if (closing !== null) process.exit(SIGNAL_EXIT_CODES[signal]);
        io.err(`roundlog serve: ${signal}: closing (requests in flight finish); send it again to stop at once`);
        closing = app.close().then(() => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve(0);
        });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    try {
      await app.listen({ host: args.host, port });
    } catch (error) {
      await app.close();
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') {
        throw new ListenFailedError(args.host, port, code);
      }
      throw error;
    }
    const address = app.server.address();
    const bound =
      typeof address === 'object' && address !== null ? address : { address: args.host, port, family: 'IPv4' };
    const hostPart = bound.family === 'IPv6' || bound.address.includes(':') ? `[${bound.address}]` : bound.address;
    io.out(`http://${hostPart}:${bound.port}`);
    io.err(
      `roundlog serve: root ${global.root}; API reference at http://${hostPart}:${bound.port}/openapi.json` +
        (token === null ? '' : '; clients send Authorization: Bearer <token>'),
    );
    return stopped;
  },
});

/** Whether `dir` does not exist or is an empty folder (anything else is left to the root's checks). */
async function missingOrEmpty(dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).length === 0;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** The token of a token file: its one non-empty line, trimmed; 16 to 4096 printable ASCII characters. */
async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidTokenFileError(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  // One token, one line: a second line is a mistake (two tokens, a comment) the server must not guess at.
  if (lines.length > 1) throw new InvalidTokenFileError(file, `holds ${lines.length} non-empty lines, not one`);
  const token = lines[0] ?? '';
  if (token.length < 16 || token.length > 4096) {
    throw new InvalidTokenFileError(file, `holds a token of ${token.length} characters`);
  }
  if (!/^[\x21-\x7e]+$/.test(token))
    throw new InvalidTokenFileError(file, 'holds a token with spaces or non-ASCII characters');
  return token;
}
