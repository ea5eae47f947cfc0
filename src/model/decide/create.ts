/**
 * Create an experiment: the first events of its stream, appended at once: `ExperimentCreated`,
 * then a `SettingsChanged` carrying the retention policy when one is given, then `ForkedFrom`
 * for a fork.
 */
import { checkRoundLimit, checkSeed } from './checks.ts';
import type { BlobRef } from '../../blobs/types.ts';
import { InvalidArgumentError } from '../../errors.ts';
import type {
  ExperimentCreated,
  ExperimentEvent,
  FederatedSetup,
  ForkedFrom,
  ImportedFrom,
  Retention,
} from '../events.ts';
import { ExperimentExistsError, FolderNameReservedError } from '../errors.ts';
import { experimentFolderName, isReservedFolderName } from '../names.ts';
import type { ExperimentState } from '../state.ts';
import { recordable } from '../values.ts';
import type { DecideContext } from './context.ts';

/**
 * The experiment to create. Allocated by the caller: `experimentId`, `number` (from the registry
 * stream) and `folder` (the given name, or `Experiment_NNNN` of the number), `seed` (drawn when
 * the user gave none), `initialParams` (already in the blob store).
 */
export type CreateExperiment = {
  experimentId: string;
  number: number;
  /** A plain folder name under `<root>/experiments`. */
  folder: string;
  /** Default null: no limit. */
  roundLimit?: number | null;
  seed: number;
  /** Default false. */
  saveBreakpoints?: boolean;
  /** Default null. */
  initialParams?: BlobRef | null;
  /** The caller's own settings; default null. */
  config?: unknown;
  /** Default null. */
  federated?: FederatedSetup | null;
  /** Default null. */
  importedFrom?: ImportedFrom | null;
  /** A retention policy (checked by the caller), recorded as a `SettingsChanged`; default none. */
  retention?: Retention | null;
  /** A fork's lineage, recorded as its `ForkedFrom`; default none. */
  forkedFrom?: ForkedFrom | null;
  /** The roundlog release creating it. */
  roundlogVersion: string;
  /** Folders of the root's other experiments: `folder` must not be one of them. Default none. */
  foldersInUse?: readonly string[];
};

/**
 * Decides the first events of an experiment's stream.
 *
 * Errors: `ExperimentExistsError` (the stream already has an `ExperimentCreated`),
 * `InvalidArgumentError` for `roundLimit` (not a non-negative integer or null), `seed` (not a safe
 * integer), `folder` (not a plain folder name, or the folder of another experiment);
 * `FolderNameReservedError` for a `folder` of the `Experiment_<digits>` form other than `number`'s;
 * `UnrecordableValueError` naming the path of a value in `config` or `federated` that the log and
 * the breakpoint's JSON cannot both hold.
 */
export function decideCreate(
  state: ExperimentState,
  command: CreateExperiment,
  context: DecideContext,
): readonly ExperimentEvent[] {
  if (state.created !== null) throw new ExperimentExistsError(state.created.experimentId, state.folder);
  const roundLimit = checkRoundLimit(command.roundLimit ?? null);
  checkSeed(command.seed);
  checkFolderName(command.folder);
  if (isReservedFolderName(command.folder) && command.folder !== experimentFolderName(command.number)) {
    throw new FolderNameReservedError('folder', command.folder);
  }
  if (command.foldersInUse?.includes(command.folder)) {
    const rule = 'must not be the folder of another experiment of this root';
    throw new InvalidArgumentError('folder', rule, command.folder);
  }
  const created: ExperimentCreated = {
    v: 1,
    experimentId: command.experimentId,
    number: command.number,
    folder: command.folder,
    roundLimit,
    seed: command.seed,
    saveBreakpoints: command.saveBreakpoints ?? false,
    initialParams: command.initialParams ?? null,
    // Checked and copied: the breakpoint manifest carries this event (`recordable`).
    config: recordable(command.config ?? null, 'config'),
    federated: recordable(command.federated ?? null, 'federated'),
    createdBy: context.actor,
    roundlogVersion: command.roundlogVersion,
    importedFrom: command.importedFrom ?? null,
  };
  const events: ExperimentEvent[] = [{ type: 'ExperimentCreated', data: created }];
  if (command.retention) {
    events.push({ type: 'SettingsChanged', data: { v: 1, retention: command.retention, by: context.actor } });
  }
  if (command.forkedFrom) events.push({ type: 'ForkedFrom', data: command.forkedFrom });
  return events;
}

/** The longest folder name an experiment may have (characters). */
export const MAX_FOLDER_NAME = 100;
/** What a folder name may hold: a letter, a digit or `_` first; then also `-`, `.` and spaces. */
const FOLDER_NAME = /^[\p{L}\p{N}_][\p{L}\p{N}._ -]*$/u;

/** The rule a folder name breaks, or null for a good one (the rule `checkFolderName` states). */
export function folderNameProblem(folder: unknown): string | null {
  if (typeof folder !== 'string' || folder.length === 0) return 'must be a plain folder name, not empty';
  if (folder.length > MAX_FOLDER_NAME) {
    return `must be a plain folder name of at most ${MAX_FOLDER_NAME} characters (it has ${folder.length})`;
  }
  if (folder === 'superseded') {
    return "must be a plain folder name other than 'superseded' (the area where rewound breakpoints go)";
  }
  if (!FOLDER_NAME.test(folder)) {
    return (
      'must be a plain folder name (no path separator, not hidden): letters, digits, _ and - ' +
      '(then also . and spaces), starting with a letter, a digit or _'
    );
  }
  return null;
}

/**
 * A plain folder name: not empty, at most `MAX_FOLDER_NAME` characters, letters, digits, `_`,
 * `-`, `.` and spaces only (so no path separator), not hidden, not starting with `-`, not
 * `superseded` (the area of an experiment folder where rewound breakpoints go).
 */
export function checkFolderName(folder: string): void {
  const problem = folderNameProblem(folder);
  if (problem !== null) throw new InvalidArgumentError('folder', problem, folder);
}
