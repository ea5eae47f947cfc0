/** Typed errors of the experiment engine: history, resume, breakpoints. */
import { RoundlogError, shownText } from '../errors.ts';
import { resumeCommand, type RemoteRun, type RunOwner } from './events.ts';

/** A stream holds an event this release does not know (a newer release wrote it, or it was damaged). */
export class UnknownEventError extends RoundlogError {
  readonly code = 'UNKNOWN_EVENT' as const;
  constructor(
    readonly stream: string,
    readonly revision: bigint,
    readonly eventType: string,
    /** The experiment's folder, when the reader knows whose stream it is. */
    readonly experiment: string | null = null,
  ) {
    const of = experiment === null ? '' : ` (experiment ${experiment})`;
    super(
      `event ${revision} of stream ${JSON.stringify(stream)}${of} ` +
        `is a ${JSON.stringify(eventType)}, ` +
        'which this release of roundlog ' +
        `cannot read; upgrade roundlog to the release that wrote it`,
    );
  }
}

/**
 * An event of a known type and version whose data does not have that event's shape (a field of the
 * wrong type, missing, too long or nested too deep): the log was damaged, or other tooling wrote
 * it. Nothing reads it as if whole.
 */
export class InvalidEventDataError extends RoundlogError {
  readonly code = 'INVALID_EVENT_DATA' as const;
  constructor(
    readonly stream: string,
    readonly revision: bigint,
    readonly eventType: string,
    /** The field's path in the event's data (`data.round`, `data.nodes[2].node`). */
    readonly field: string,
    readonly problem: string,
    /** The experiment's folder, when the reader knows whose stream it is. */
    readonly experiment: string | null = null,
  ) {
    const of = experiment === null ? '' : `experiment ${experiment}, `;
    super(
      `event ${revision} of stream ${JSON.stringify(stream)} ` +
        `(${of}a ${eventType}) cannot be read: ${field} ${problem}. ` +
        'The log is damaged or was written by other tooling: nothing reads this history past it and nothing is ' +
        "appended after it; run 'roundlog verify' to check the whole root, and restore the log from a backup",
    );
  }
}

/** No experiment answers to the name, id or path given. */
export class ExperimentNotFoundError extends RoundlogError {
  readonly code = 'EXPERIMENT_NOT_FOUND' as const;
  constructor(
    readonly experiment: string,
    readonly root: string,
  ) {
    super(
      `no experiment ${shownText(experiment)} in the roundlog root ${root}; ` +
        "run 'roundlog ls' to list the experiments",
    );
  }
}

/**
 * A record of an experiment's history is damaged: its state cannot be known past it, so nothing
 * reads it as if whole and nothing is appended after it.
 */
export class ExperimentHistoryDamagedError extends RoundlogError {
  readonly code = 'EXPERIMENT_HISTORY_DAMAGED' as const;
  constructor(
    readonly experiment: string,
    readonly stream: string,
    /** The damaged file and the byte offset of the damaged record in it. */
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
    cause?: unknown,
  ) {
    super(
      `the history of experiment ${experiment} (stream ${JSON.stringify(stream)}) is damaged: ${file} at byte ` +
        `offset ${offset}: ${reason}. Its state is unknown past that record and nothing is appended after it; ` +
        `restore that file from a backup, or run 'roundlog verify' to list every damaged record`,
      { cause },
    );
  }
}

/**
 * A record of the registry stream (`roundlog.experiments`) cannot be read: damaged bytes, data of
 * the wrong shape, or an event this release does not know. Reads find the experiments from their
 * own streams; a creation, which would append to the registry after the damage, is refused.
 */
export class RegistryDamagedError extends RoundlogError {
  readonly code = 'REGISTRY_DAMAGED' as const;
  constructor(
    readonly stream: string,
    /** The damaged file and the byte offset of the record; null when the record is whole (`revision`). */
    readonly file: string | null,
    readonly offset: number | null,
    /** The revision of the unreadable event in the registry stream, when known. */
    readonly revision: bigint | null,
    readonly reason: string,
    cause?: unknown,
  ) {
    super(
      `cannot create an experiment: the registry of experiments (stream ${JSON.stringify(stream)}) is damaged: ` +
        `${registryDamageAt(file, offset, revision)}: ${reason}. Nothing is appended after damage and the ` +
        `committed log is never rewritten; the existing experiments are read from their own histories and can ` +
        `still be resumed. Run 'roundlog verify' to list every damaged record, then restore the log from a ` +
        `backup, or start new experiments in another root`,
      { cause },
    );
  }
}

/** Where an unreadable registry record is: the file and byte offset, else the event's revision. */
export function registryDamageAt(file: string | null, offset: number | null, revision: bigint | null): string {
  if (file !== null) return `${file} at byte offset ${offset ?? 0}`;
  return revision === null ? 'an event of it' : `event ${revision} of it`;
}

/**
 * An experiment's history that cannot be read: a damaged record, an event this release does not
 * know, or data of the wrong shape. Commands over several experiments report that experiment as
 * damaged and go on with the others; commands on it refuse it.
 */
export type UnreadableHistoryError = ExperimentHistoryDamagedError | InvalidEventDataError | UnknownEventError;

export function isUnreadableHistory(error: unknown): error is UnreadableHistoryError {
  return (
    error instanceof ExperimentHistoryDamagedError ||
    error instanceof InvalidEventDataError ||
    error instanceof UnknownEventError
  );
}

/** Another process changed the experiment since this one read it. */
export class ConcurrentModificationError extends RoundlogError {
  readonly code = 'CONCURRENT_MODIFICATION' as const;
  constructor(
    readonly experiment: string,
    readonly expectedRevision: bigint | 'no_stream',
    readonly actualRevision: bigint | 'no_stream',
    cause?: unknown,
  ) {
    super(
      `experiment ${experiment} was changed by another process ` +
        `(expected its history at revision ${String(expectedRevision)}, ` +
        `found ${String(actualRevision)}); only one process may run an experiment at a time: stop the other one, ` +
        `then load the experiment again`,
      { cause },
    );
  }
}

/** Asked for the state at a round the experiment has not completed. */
export class RoundNotFoundError extends RoundlogError {
  readonly code = 'ROUND_NOT_FOUND' as const;
  constructor(
    readonly experiment: string,
    readonly round: number,
    readonly roundCurrent: number,
  ) {
    super(
      roundCurrent === 0
        ? `experiment ${experiment} has no rounds yet: no round is completed, so there is no round ${round}`
        : `experiment ${experiment} has no completed round ${round} on its current branch ` +
            `(${roundCurrent} round${roundCurrent === 1 ? '' : 's'} completed, ` +
            `indexes 0 to ${roundCurrent - 1})`,
    );
  }
}

/** No breakpoint to load where one was asked for. */
export class NoBreakpointError extends RoundlogError {
  readonly code = 'NO_BREAKPOINT' as const;
  constructor(
    /** The experiment (its folder name) or folder with nothing to resume; `(none in <root>)`: no experiment. */
    readonly experiment: string,
    readonly newest: string | null,
    /**
     * Why: `rounds-without-breakpoint` (rounds completed, none saved a breakpoint), `no-round` (no
     * round completed yet), `no-experiment` (the root has none), `no-folder` (a folder holding no
     * breakpoint folder, and no experiment folder of the log).
     */
    readonly reason:
      'rounds-without-breakpoint' | 'no-round' | 'no-experiment' | 'no-folder' = 'rounds-without-breakpoint',
  ) {
    super(noBreakpointMessage(experiment, newest, reason));
  }
}

function noBreakpointMessage(experiment: string, newest: string | null, reason: NoBreakpointError['reason']): string {
  switch (reason) {
    case 'no-experiment':
      return (
        `no breakpoint to resume: ${experiment.replace(/^\(none in (.*)\)$/, 'the root $1')} has no experiment; ` +
        'start one with roundlog run <definition> or Experiment.create'
      );
    case 'no-round':
      return `experiment ${experiment} has no breakpoint: it has completed no round yet`;
    case 'no-folder':
      return (
        `${experiment} holds no breakpoint folder (breakpoint_*) and is no experiment folder of this root's log: ` +
        'pass a breakpoint folder or an experiment folder (roundlog ls lists them)'
      );
    case 'rounds-without-breakpoint':
      return (
        `experiment ${experiment} has no breakpoint: it completed rounds without saving one, ` +
        'so it cannot start again from its initial parameters either' +
        (newest === null
          ? '; no experiment in this root has one either'
          : `; the newest breakpoint in this root is ${newest}: pass its path to loadBreakpoint to continue from it`)
      );
  }
}

/** A breakpoint folder is damaged, or disagrees with the log. */
export class BreakpointCorruptError extends RoundlogError {
  readonly code = 'BREAKPOINT_CORRUPT' as const;
  constructor(
    readonly folder: string,
    readonly file: string,
    readonly reason: string,
    /** The experiment whose log knows the folder (its folder name), or null for a folder the log does not know. */
    readonly experiment: string | null = null,
  ) {
    super(
      `breakpoint ${folder} is not usable: ${file}: ${reason}. ` +
        (experiment === null
          ? 'Resume from another breakpoint folder (roundlog resume <folder>), or copy this one again from ' +
            'where it came from'
          : `Write it again from the log with 'roundlog project --rebuild ${experiment}' (the log is the truth; ` +
            'the folder is only its projection), or resume from another breakpoint (roundlog ls lists them)'),
    );
  }
}

/**
 * A breakpoint folder was not written because a blob it needs does not verify in the store (its
 * bytes no longer hash to its name); nothing of the folder is left.
 */
export class BreakpointBlobDamagedError extends RoundlogError {
  readonly code = 'BREAKPOINT_BLOB_DAMAGED' as const;
  constructor(
    /** The experiment's folder name. */
    readonly experiment: string,
    readonly round: number,
    readonly sha256: string,
    /** What the blob is in the folder: its file name. */
    readonly file: string,
    /** Where the store holds the damaged bytes (a file, or an upload stream). */
    readonly stored: string,
    cause?: unknown,
  ) {
    super(
      `breakpoint folder of round ${round} of experiment ${experiment} not written: its ${file} is blob ${sha256}, ` +
        `which is damaged in the blob store (${stored} does not hash to it). Run 'roundlog verify --repair' to ` +
        'heal it from a good copy (it names the blob if there is none), then run the command again (the ' +
        `experiment's breakpoint folders: 'roundlog project ${experiment}')`,
      { cause },
    );
  }
}

/** The training plan's source (or a local file it imports) differs from the one the experiment recorded. */
export class TrainingPlanChangedError extends RoundlogError {
  readonly code = 'TRAINING_PLAN_CHANGED' as const;
  constructor(
    readonly module: string,
    readonly recorded: string,
    readonly actual: string,
    /** How the caller accepts the change: the library's option (default) or the command line's flag. */
    accept: 'acceptPlanChange: true' | '--accept-plan-change' = 'acceptPlanChange: true',
  ) {
    super(
      `the training plan ${module} changed since the experiment recorded it (the plan file or a local file ` +
        `it imports; digest ${recorded.slice(0, 12)}… then, ` +
        `${actual.slice(0, 12)}… now); restore the recorded version, or pass ${accept} to continue with ` +
        `the new one (the change is recorded in the experiment's history)`,
    );
  }
}

/** A node failed or timed out during a round; nothing of that round was committed. */
export class NodeFailedError extends RoundlogError {
  readonly code = 'NODE_FAILED' as const;
  constructor(
    /** The experiment's folder name. */
    readonly experiment: string,
    readonly node: string,
    readonly round: number,
    readonly reason: string,
    cause?: unknown,
    /** The node processes the round ran on (the retry command names them); null: in-process nodes. */
    readonly remote: RemoteRun | null = null,
  ) {
    super(
      `node ${JSON.stringify(node)} failed in round ${round} of experiment ${experiment}: ${reason}; nothing of ` +
        `this round was committed: run '${resumeCommand(experiment, remote)}' to retry it`,
      { cause },
    );
  }
}

/** The round's parameters were deleted by retention; its events remain. */
export class RoundPrunedError extends RoundlogError {
  readonly code = 'ROUND_PRUNED' as const;
  constructor(
    readonly experiment: string,
    readonly round: number,
    readonly prunedAt: Date,
  ) {
    super(
      `round ${round} of experiment ${experiment} was pruned by retention on ${prunedAt.toISOString()}: ` +
        'its parameters ' +
        `are deleted (its events remain in the history); replay or load a round that retention kept`,
    );
  }
}

/** A round named by `superseded` or `position` is not in the experiment's history. */
export class RoundNotInHistoryError extends RoundlogError {
  readonly code = 'ROUND_NOT_IN_HISTORY' as const;
  constructor(
    readonly experiment: string,
    readonly round: number,
    readonly position: bigint | null,
    /** The superseded rounds the history does have: index and log position of their `RoundCompleted`. */
    readonly superseded: ReadonlyArray<Readonly<{ round: number; position: bigint }>>,
  ) {
    const asked =
      position === null ? `no superseded round ${round}` : `no round ${round} completed at log position ${position}`;
    const have =
      superseded.length === 0
        ? 'it has no superseded round'
        : `its superseded rounds are ${superseded.map((r) => `${r.round} (position ${r.position})`).join(', ')}`;
    super(
      `experiment ${experiment} has ${asked}; ${have}. ` +
        'Without --superseded or --position, --round names a round of the current branch',
    );
  }
}

/**
 * A round was started or recorded when the experiment had already run its round limit (the number
 * of rounds it may run). Nothing was recorded; rounds a log already holds past the limit are read as
 * they are.
 */
export class RoundLimitReachedError extends RoundlogError {
  readonly code = 'ROUND_LIMIT_REACHED' as const;
  constructor(
    readonly experiment: string,
    /** The round that would have been started or recorded (`roundCurrent()`). */
    readonly round: number,
    readonly roundLimit: number,
  ) {
    super(
      `experiment ${experiment} has run its round limit of ${roundLimit} round${roundLimit === 1 ? '' : 's'}: ` +
        `round ${round} cannot be started or recorded. Raise the limit first (\`Experiment.setRoundLimit(n)\`, ` +
        `\`run({ rounds, increase: true })\`, or append \`decideChangeSettings(state, { roundLimit: n })\` ` +
        'to its handle), or fork it. Nothing was recorded',
    );
  }
}

/** A command for an existing experiment reached a stream with no `ExperimentCreated`. */
export class ExperimentNotCreatedError extends RoundlogError {
  readonly code = 'EXPERIMENT_NOT_CREATED' as const;
  constructor(
    /** The command refused, e.g. `'rewind'`. */
    readonly command: string,
  ) {
    super(
      `cannot ${command}: the history given has no ExperimentCreated event, so there is no experiment to act on; ` +
        `create the experiment first, or open it by an id or folder that 'roundlog ls' lists`,
    );
  }
}

/** A creation reached a stream that already holds an experiment. */
export class ExperimentExistsError extends RoundlogError {
  readonly code = 'EXPERIMENT_EXISTS' as const;
  constructor(
    readonly experimentId: string,
    readonly folder: string,
  ) {
    super(
      `experiment ${experimentId} (${folder}) already exists: its history starts with an ExperimentCreated; ` +
        `create the new experiment under a new id`,
    );
  }
}

/**
 * A value given to be recorded (a round's state or metrics, an experiment's config, training
 * arguments) that the log and the breakpoint's JSON cannot both hold as it is. Nothing was recorded.
 */
export class UnrecordableValueError extends RoundlogError {
  readonly code = 'UNRECORDABLE_VALUE' as const;
  constructor(
    /** Where the value is, e.g. `state.optimizer.step` or `metrics.loss`. */
    readonly path: string,
    /** What it is, e.g. `a bigint`, `NaN`, `a Map`, `a cycle back to state.model`. */
    readonly kind: string,
    /** What to do instead. */
    readonly hint: string,
  ) {
    super(
      `${path} is ${kind}, which cannot be recorded: the log and the breakpoint's JSON both hold only null, ` +
        `booleans, finite numbers, well-formed strings, arrays without holes and plain objects ` +
        `(at most ${MAX_RECORDABLE_KEYS} keys each, ${MAX_RECORDABLE_DEPTH} levels deep); ${hint}. ` +
        'Nothing was recorded',
    );
  }
}

/** How deep a recorded value may nest (objects and arrays inside each other). */
export const MAX_RECORDABLE_DEPTH = 64;

/**
 * How many keys one recorded object may have: the value codec writes every object as a msgpack
 * map16 (a 16-bit count), the encoding every log already holds. Arrays have no such limit.
 */
export const MAX_RECORDABLE_KEYS = 0xffff;

/**
 * A resume from a breakpoint older than the experiment's last round, without asking to rewind:
 * it would supersede the later rounds. Nothing was recorded.
 */
export class RewindNotRequestedError extends RoundlogError {
  readonly code = 'REWIND_NOT_REQUESTED' as const;
  constructor(
    readonly experiment: string,
    /** The breakpoint's round (its index `R`), and its folder name. */
    readonly round: number,
    readonly breakpoint: string,
    /** Rounds completed on the current branch: the last is `roundCurrent - 1`. */
    readonly roundCurrent: number,
    /** The rounds the resume would supersede. */
    readonly supersededRounds: readonly number[],
  ) {
    const count = supersededRounds.length;
    super(
      `resuming experiment ${experiment} from ${breakpoint} would supersede ${count} round${count === 1 ? '' : 's'} ` +
        `(${describeRounds(supersededRounds)}; ${roundCurrent} rounds are completed, the last is round ` +
        `${roundCurrent - 1}): they would stay in the history, their folders moved to superseded/, and the ` +
        `next round would be round ${round + 1} again. To continue from the last round, resume the experiment ` +
        `folder (or its latest breakpoint). To go back to round ${round}, ask for it: roundlog resume <path> ` +
        `--rewind, Experiment.loadBreakpoint(path, { rewind: true }), ` +
        `or roundlog rewind ${experiment} --round ${round} --reason TEXT`,
    );
  }
}

/** `round 2`, `rounds 3-9`, `rounds 1, 3-5`: consecutive indexes as ranges. */
function describeRounds(rounds: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < rounds.length; i++) {
    let j = i;
    while (j + 1 < rounds.length && rounds[j + 1] === rounds[j]! + 1) j++;
    parts.push(j === i ? String(rounds[i]) : `${rounds[i]}-${rounds[j]}`);
    i = j;
  }
  return `${rounds.length === 1 ? 'round' : 'rounds'} ${parts.join(', ')}`;
}

/** The experiment is run by a live process (its run lease); only one process may run it. */
export class ExperimentRunningError extends RoundlogError {
  readonly code = 'EXPERIMENT_RUNNING' as const;
  constructor(
    readonly experiment: string,
    readonly owner: RunOwner,
    readonly since: Date,
    readonly lastSeen: Date,
  ) {
    super(
      `experiment ${experiment} is running: process ${owner.pid} on host ${owner.host} (user ${owner.user}) ` +
        `has run it since ${since.toISOString()} (last sign of life ${lastSeen.toISOString()}); ` +
        'stop that process first, or if you know it is gone, take the run over with --take-over ' +
        '(library: takeOver: true), which is recorded',
    );
  }
}

/** This process no longer holds the experiment's run: another process took it over, or the run ended. */
export class RunNotOwnedError extends RoundlogError {
  readonly code = 'RUN_NOT_OWNED' as const;
  constructor(
    readonly experiment: string,
    readonly runId: string,
    /** The run that holds the experiment now, or null when none does. */
    readonly current: Readonly<{ runId: string; owner: RunOwner }> | null,
  ) {
    super(
      `this process's run ${runId} of experiment ${experiment} is over: ` +
        (current === null
          ? 'no run holds the experiment now; load it again to run it'
          : `process ${current.owner.pid} on host ${current.owner.host} took it over (run ${current.runId}); ` +
            'stop here and let that process run it'),
    );
  }
}

/**
 * A folder name chosen for an experiment (`fork --name`, `createExperiment({ folder })`) of the
 * `Experiment_<digits>` form: those names are the numbering's (the folder of the experiment with
 * that number), so a chosen one would take the folder of an experiment created later.
 */
export class FolderNameReservedError extends RoundlogError {
  readonly code = 'FOLDER_NAME_RESERVED' as const;
  constructor(
    /** The option that named it (`name`, `folder`). */
    readonly option: string,
    readonly folder: string,
  ) {
    super(
      `${option} ${JSON.stringify(folder)} has the form Experiment_<digits>, which roundlog keeps for the ` +
        `folders it numbers itself (the folder of the experiment with that number); choose another name ` +
        `(e.g. ${JSON.stringify(`fork_${folder.slice('Experiment_'.length)}`)}), ` +
        'or leave it out to get the next numbered folder',
    );
  }
}

/** The longest metric name a new round may record, in UTF-16 code units (JavaScript string length). */
export const MAX_METRIC_NAME_LENGTH = 256;

/**
 * A metric name a new round may not record: empty, holding a control character (U+0000–U+001F,
 * U+007F–U+009F: a newline, a tab, ...), or longer than `MAX_METRIC_NAME_LENGTH`. Such a name is a
 * TensorBoard tag no one can tell apart or type, and `roundlog audit metric` cannot be asked for it.
 * Checked for the round's metrics, each node's and each reply's. Nothing was recorded; rounds
 * already in a log are read as they are.
 */
export class InvalidMetricNameError extends RoundlogError {
  readonly code = 'INVALID_METRIC_NAME' as const;
  constructor(
    readonly experiment: string,
    readonly round: number,
    /** The name as given. */
    readonly metric: string,
    /** Where it is: `metrics`, `nodes[0].metrics` (node `hospital-a`), `replies[1].metrics`. */
    readonly where: string,
    /** What is wrong with it. */
    readonly rule: string,
  ) {
    super(
      `metric name ${shownText(metric)} in ${where} of round ${round} of experiment ${experiment} ${rule}; ` +
        `a metric name must be 1 to ${MAX_METRIC_NAME_LENGTH} characters without control characters ` +
        '(it becomes a TensorBoard tag and the name `roundlog audit metric` is asked for): rename it. ' +
        'Nothing was recorded',
    );
  }
}
