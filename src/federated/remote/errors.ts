/**
 * The errors of nodes as processes: what a node refuses (a training plan it has not approved), what
 * a researcher refuses (a node's Hello), and what a node's folder or dataset file can be wrong with.
 */
import { RoundlogError } from '../../errors.ts';
import { resumeCommand, type DatasetFingerprint, type RemoteRun } from '../../model/events.ts';

/** `sha256 <hex> (<format> <rows>×<columns>[, <option> <value>...])`. */
export function describeFingerprint(fingerprint: DatasetFingerprint): string {
  const options = Object.entries(fingerprint.options ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `, ${name} ${value}`)
    .join('');
  return `sha256 ${fingerprint.sha256} (${fingerprint.format} ${fingerprint.rows}×${fingerprint.columns}${options})`;
}

/**
 * The fields in which two fingerprints differ: `format`, `sha256`, `rows`, `columns`, and
 * `options.<name>` for each loader option both carry with other values. An option only one side
 * carries was reported by a build that did not report it (a log written before options were
 * recorded, an older node): it is not compared (`fingerprints.ts` says why).
 */
export function fingerprintDifferences(a: DatasetFingerprint, b: DatasetFingerprint): string[] {
  const fields = (['format', 'sha256', 'rows', 'columns'] as const).filter((field) => a[field] !== b[field]);
  const options = b.options ?? {};
  const differing = Object.entries(a.options ?? {})
    .filter(([name, value]) => Object.hasOwn(options, name) && options[name] !== value)
    .map(([name]) => `options.${name}`)
    .sort();
  return [...fields, ...differing];
}

/** The `roundlog node start` option that sets loader option `name` (`splitSeed`: `--split-seed`). */
export function loaderOptionFlag(name: string): string {
  return `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** A path as a shell word: quoted when it holds anything but plain path characters. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The command a node's operator runs to approve the plan file `planFile` on the node of `nodeDir`. */
export function approveCommand(nodeDir: string | null, planFile = '<plan file>'): string {
  const file = planFile === '<plan file>' ? planFile : shellWord(planFile);
  return `roundlog node approve ${file}${nodeDir === null ? '' : ` --node-dir ${shellWord(nodeDir)}`}`;
}

/**
 * A node was asked to train with a plan whose digest is not in its approval list, or whose
 * approved closure changed since (node side). The message says which plan and digest was asked
 * for, what the node has approved, what changed, and the command that approves the plan.
 */
export class PlanNotApprovedError extends RoundlogError {
  readonly code = 'PLAN_NOT_APPROVED' as const;
  constructor(
    readonly node: string,
    /** The plan as the experiment records it: `<module>#<export>`. */
    readonly plan: string,
    /** The digest the request named (of the plan's local module closure). */
    readonly sha256: string,
    readonly nodeDir: string,
    /**
     * The plan file to approve: the approved file of that digest, else the plan's module path as
     * the researcher records it.
     */
    readonly planFile: string,
    /** The digests the node's approval list holds. */
    readonly approved: readonly string[],
    /** The files of the approved closure of that digest that changed since (empty when it was not approved). */
    readonly changed: readonly string[],
    /** Why, in words: nothing approved, other plans approved, or what changed. */
    readonly reason: string,
  ) {
    super(
      `node ${JSON.stringify(node)} has not approved training plan ${plan} (digest ${sha256} asked for): ` +
        `${reason}. Review the plan and the local files it imports, then run on the node: ` +
        `${approveCommand(nodeDir, planFile)}`,
    );
  }
}

/**
 * A node refused to train a round because the round's training plan is not approved there
 * (researcher side). Nothing of the round is committed.
 */
export class NodePlanNotApprovedError extends RoundlogError {
  readonly code = 'PLAN_NOT_APPROVED' as const;
  constructor(
    /** The experiment's folder name. */
    readonly experiment: string,
    readonly node: string,
    readonly round: number,
    readonly plan: string,
    readonly sha256: string,
    /** What the node said: the plan and digest asked for, what it has approved, the command to run there. */
    readonly nodeMessage: string,
    /** The node processes the round ran on: the retry command names them. */
    readonly remote: RemoteRun | null = null,
  ) {
    super(
      `node ${JSON.stringify(node)} refused round ${round} of experiment ${experiment}: training plan ${plan} ` +
        `(digest ${sha256}) is not approved there. The node says: ${nodeMessage}. Nothing of this ` +
        `round was committed: once the node approved the plan, run '${resumeCommand(experiment, remote)}' to retry it`,
    );
  }
}

/** A file given to `roundlog node approve` is not a training plan module. */
export class PlanFileError extends RoundlogError {
  readonly code = 'INVALID_PLAN_FILE' as const;
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(
      `cannot approve ${file}: it ${reason}; a training plan is a module (.ts, .mts, .cts, .js, .mjs or .cjs) with ` +
        ` an export that has a train() function, e.g. examples/heart-disease/plan.ts`,
    );
  }
}

/** A node's folder cannot be created or used. */
export class NodeDirError extends RoundlogError {
  readonly code = 'INVALID_NODE_DIR' as const;
  constructor(
    readonly dir: string,
    readonly reason: string,
  ) {
    super(`the node folder ${dir} ${reason}: give --node-dir a folder this user can create and write`);
  }
}

/** The researcher refused a node's Hello (node side). */
export class NodeRefusedError extends RoundlogError {
  readonly code = 'NODE_REFUSED' as const;
  constructor(
    readonly node: string,
    readonly researcher: string,
    /** The refusal's code: PROTOCOL_VERSION_MISMATCH, DUPLICATE_NODE_ID, BAD_HELLO. */
    readonly refusal: string,
    readonly reason: string,
  ) {
    super(`the researcher at ${researcher} refused node ${JSON.stringify(node)}: ${refusal}: ${reason}`);
  }
}

/**
 * The researcher's address answered, `attempts` times in a row, as something else than a roundlog
 * researcher (an HTTP server, another gRPC service): most likely a wrong `--researcher` (node side).
 */
export class NotAResearcherError extends RoundlogError {
  readonly code = 'NOT_A_RESEARCHER' as const;
  constructor(
    readonly node: string,
    readonly researcher: string,
    readonly attempts: number,
    /** What the address answered, the last time. */
    readonly answer: string,
  ) {
    super(
      `node ${JSON.stringify(node)} gave up connecting to ${researcher}: ${attempts} attempts in a row found ` +
        `something else than a roundlog researcher there (${answer}). Check --researcher: it is the HOST:PORT ` +
        `the researcher listens on, as 'roundlog run ... --listen HOST:PORT' prints it ('listening for nodes on ...')`,
    );
  }
}

/** A node's dataset file cannot be read as its format says. */
export class NodeDatasetError extends RoundlogError {
  readonly code = 'INVALID_NODE_DATASET' as const;
  constructor(
    readonly file: string,
    /** 1-based line, or null for the whole file. */
    readonly line: number | null,
    readonly reason: string,
  ) {
    super(`dataset ${file}${line === null ? '' : ` line ${line}`}: ${reason}`);
  }
}

/**
 * A file a node reads (its dataset, its approval list, an approved plan) cannot be read: it does
 * not exist, is not readable, or a folder on its path is not one. Names the file, what it is to
 * the node, and what to do; the system's code (`ENOENT`, `EACCES`, ...) is `errno`.
 */
export class NodeFileError extends RoundlogError {
  readonly code = 'NODE_FILE_UNREADABLE' as const;
  constructor(
    readonly file: string,
    /** What the file is to the node: `the dataset file (--data)`, `the approval list`, ... */
    readonly role: string,
    readonly errno: string,
    /** What to do. */
    readonly action: string,
  ) {
    super(`${role} ${file} ${errnoReason(errno)}: ${action}`);
  }
}

function errnoReason(errno: string): string {
  switch (errno) {
    case 'ENOENT':
      return 'does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'cannot be read (permission denied)';
    case 'ENOTDIR':
      return 'cannot be reached: a part of its path is a file, not a folder';
    case 'ELOOP':
      return 'is a symbolic link, which a node does not follow';
    default:
      return `cannot be read (${errno})`;
  }
}

/** `error` as a `NodeFileError` when it is a system error of reading `file`; any other error as it is. */
export function nodeFileError(error: unknown, file: string, role: string, action: string): unknown {
  const errno = (error as NodeJS.ErrnoException | null)?.code;
  if (error instanceof RoundlogError || typeof errno !== 'string' || !/^E[A-Z]+$/.test(errno)) return error;
  return new NodeFileError(file, role, errno, action);
}

/** A node's approval list cannot be read. */
export class ApprovalListError extends RoundlogError {
  readonly code = 'INVALID_APPROVAL_LIST' as const;
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(
      `the node's approval list ${file} ${reason}; fix or remove it, then approve the plans again ` +
        `('roundlog node approve <plan file>')`,
    );
  }
}

/**
 * A node id came back to an experiment with another dataset than the one an earlier round of the
 * experiment recorded for it (researcher side). Refused before the round starts (the default,
 * `onDatasetChange: 'refuse'`), or when the node connected again with other data while the round was
 * sending it its request: nothing of the round is trained on it or committed.
 */
export class NodeDatasetChangedError extends RoundlogError {
  readonly code = 'NODE_DATASET_CHANGED' as const;
  constructor(
    /** The experiment's folder name. */
    readonly experiment: string,
    readonly node: string,
    /** The round refused. */
    readonly round: number,
    /** The fingerprint recorded before, and the round that recorded it (null: the round being started). */
    readonly recorded: DatasetFingerprint,
    readonly recordedRound: number | null,
    /** The fingerprint the node reports now. */
    readonly now: DatasetFingerprint,
    /** The node processes the round ran on: the resume command names them. */
    readonly remote: RemoteRun | null = null,
    /** The fields that differ (`fingerprintDifferences`): `sha256`, `format`, `options.splitSeed`, ... */
    readonly fields: readonly string[] = fingerprintDifferences(recorded, now),
  ) {
    super(
      `node ${JSON.stringify(node)} holds another dataset than experiment ${experiment} recorded for it ` +
        `(${recordedRound === null ? `when round ${round} started` : `in round ${recordedRound}`}): ` +
        `${describeFingerprint(recorded)} then, ${describeFingerprint(now)} now (${fields.join(', ')} ` +
        `${fields.length === 1 ? 'differs' : 'differ'}); round ${round} was refused and nothing of it was ` +
        `committed. Restart the node ${restartAdvice(recorded, fields)}, leave it out ` +
        `(the experiment's nodes), or, if the new data is meant, run ` +
        `'${resumeCommand(experiment, remote)} --on-dataset-change record' (onDatasetChange: 'record' in ` +
        `code; the change is recorded in the round)`,
    );
  }
}

/**
 * A resume on in-process nodes of an experiment whose last run trained on node processes: its
 * rounds would go on with other nodes and other data without a word. Refused before anything is
 * recorded, with the command that resumes it on its node processes.
 */
export class RemoteNodesRequiredError extends RoundlogError {
  readonly code = 'REMOTE_NODES_REQUIRED' as const;
  constructor(
    /** The experiment's folder name. */
    readonly experiment: string,
    /** How its last run trained: the address its researcher listened on and the node ids. */
    readonly remote: RemoteRun,
  ) {
    super(
      `experiment ${experiment} last ran on node processes (--listen ${remote.listen} --nodes ` +
        `${remote.nodes.join(',')}), not on in-process nodes; resuming it in process would train its next ` +
        `rounds on other nodes and data. Run '${resumeCommand(experiment, remote)}' (the nodes connect with ` +
        `'roundlog node start --researcher ${remote.listen}'; another address or other nodes are recorded)`,
    );
  }
}

/** The researcher's server cannot listen where it was asked to (`listenForNodes`, `--listen`). */
export class ResearcherListenError extends RoundlogError {
  readonly code = 'RESEARCHER_LISTEN_FAILED' as const;
  constructor(
    /** `host:port` asked for. */
    readonly address: string,
    /** The system's error code: `EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`, ... */
    readonly reason: string,
    cause?: unknown,
  ) {
    const why =
      reason === 'EADDRINUSE'
        ? 'another process listens there already (EADDRINUSE): stop it, or listen on another port'
        : reason === 'EADDRNOTAVAIL'
          ? 'this machine has no such address (EADDRNOTAVAIL): listen on one of its own, or 127.0.0.1'
          : reason === 'EACCES'
            ? 'this user may not listen on that port (EACCES): take a port above 1023'
            : `${reason}: check the host and port`;
    super(`cannot listen for nodes on ${address}: ${why} (--listen HOST:PORT; port 0 takes a free one)`, { cause });
  }
}

/** How to restart a node as it was: its former file, format and loader options, as the fields say. */
function restartAdvice(recorded: DatasetFingerprint, fields: readonly string[]): string {
  const asBefore: string[] = [];
  if (fields.some((f) => f === 'sha256' || f === 'rows' || f === 'columns')) asBefore.push('its former data file');
  if (fields.includes('format')) asBefore.push(`--format ${recorded.format}`);
  for (const field of fields.filter((f) => f.startsWith('options.'))) {
    const name = field.slice('options.'.length);
    asBefore.push(`${loaderOptionFlag(name)} ${recorded.options?.[name] ?? ''}`.trimEnd());
  }
  return `with ${asBefore.length === 0 ? 'its former data file' : asBefore.join(' and ')} as before`;
}
