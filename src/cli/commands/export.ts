/**
 * `roundlog export`: one round's parameters as a file PyTorch and NumPy open (safetensors or .npz).
 * The work is in `src/projections/export.ts`; this module parses and prints.
 */
import path from 'node:path';
import {
  EXPORT_FORMATS,
  exportFormatNamedBy,
  exportFormatOf,
  exportRound,
  type ExportFormat,
} from '../../projections/index.ts';
import { UsageError, checkPathArgument, shownValue, toJson } from '../args.ts';
import { defineCommand, withRoundLog } from '../command.ts';
import { displayPath } from '../experiments.ts';
import { EXPERIMENT, NEEDS, ROUND_CHOICE, onePositional, roundChoice } from './lineage.ts';

export const exportCommand = defineCommand({
  name: 'export',
  describe:
    "write round R's parameters as one file PyTorch and NumPy open: safetensors or .npz " +
    '(any round of the log, with or without a breakpoint folder, superseded ones too)',
  positionals: { experiment: EXPERIMENT },
  options: {
    ...ROUND_CHOICE,
    out: { type: 'string', describe: 'FILE: the file to write, in an existing folder outside the root' },
    format: {
      type: 'string',
      describe:
        `${EXPORT_FORMATS.join('|')} (default: from the --out extension, .npz or else safetensors; ` +
        'must agree with a .npz or .safetensors extension)',
    },
    force: { type: 'boolean', default: false, describe: 'replace FILE if it exists (a regular file only)' },
  },
  needs: NEEDS,
  readsRoot: true,
  examples: [
    ['roundlog export Experiment_0000 --round 3 --out round3.safetensors', 'for safetensors.torch.load_file'],
    ['roundlog export Experiment_0000 --round 3 --position 57 --out old3.npz', 'a superseded round 3, for numpy.load'],
  ],
  run: async (args, { global, io, extra }) => {
    const experiment = onePositional('export', args.experiment, extra);
    const choice = roundChoice('export', args);
    if (args.out === undefined || args.out === '') {
      throw new UsageError('export needs --out FILE: the file to write (.safetensors or .npz)');
    }
    const out = checkPathArgument('--out', args.out, global.cwd);
    let format: ExportFormat = exportFormatOf(out);
    if (args.format !== undefined) {
      if (!(EXPORT_FORMATS as readonly string[]).includes(args.format)) {
        throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')} (got ${shownValue(args.format)})`);
      }
      format = args.format as ExportFormat;
      const named = exportFormatNamedBy(out);
      if (named !== null && named !== format) {
        throw new UsageError(
          `--format ${format} contradicts --out ${shownValue(path.basename(out))}, a .${extensionOf(named)} name: ` +
            `drop --format (the extension decides), or name the file .${extensionOf(format)}`,
        );
      }
    }
    const result = await withRoundLog(global, (rl) =>
      exportRound(rl, experiment, { ...choice, out, format, force: args.force }),
    );
    if (args.json) io.out(toJson(result));
    else {
      const branch = result.branch === 'current' ? 'current branch' : 'superseded';
      const how = result.method === 'copied' ? 'the stored file as it is' : `converted from ${result.params.encoding}`;
      io.out(
        `exported ${result.folder} round ${result.round} (${branch}, RoundCompleted at log position ` +
          `${result.logPosition}) as ${result.format}, ${how}`,
      );
      io.out(
        `  file        ${displayPath(result.path, global.cwd)} (${result.bytes} bytes, sha256 ${result.sha256})` +
          `${result.replaced ? ', replaced' : ''}`,
      );
      io.out(`  tensors     ${result.tensors.length}: ${tensorList(result.tensors)}`);
      if (result.widened.length > 0) {
        io.out(
          `  note        NumPy has no bfloat16: ${result.widened.join(', ')} written as float32 ` +
            '(exact: the same values)',
        );
      }
    }
    return 0;
  },
});

/** The file extension of a format (without the dot). */
function extensionOf(format: ExportFormat): string {
  return format === 'npz' ? 'npz' : 'safetensors';
}

/** `name dtype[shape]`, the first few of them. */
function tensorList(tensors: readonly { name: string; dtype: string; shape: readonly number[] }[]): string {
  const shown = tensors.slice(0, 4).map((t) => `${t.name} ${t.dtype}[${t.shape.join(', ')}]`);
  return tensors.length > shown.length
    ? `${shown.join(', ')}, ... (${tensors.length - shown.length} more)`
    : shown.join(', ');
}
