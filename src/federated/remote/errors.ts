/**
 * The errors of nodes as processes: what a node refuses (a training plan it has not approved), what
 * a researcher refuses (a node's Hello), and what a node's folder or dataset file can be wrong with.
 */
import { RoundlogError } from '../../errors.ts';
import type { DatasetFingerprint } from '../../model/events.ts';

/** `sha256 <hex> (<format> <rows>×<columns>)`. */
export function describeFingerprint(fingerprint: DatasetFingerprint): string {
  return `sha256 ${fingerprint.sha256} (${fingerprint.format} ${fingerprint.rows}×${fingerprint.columns})`;
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
  ) {
    super(
      `node ${JSON.stringify(node)} refused round ${round} of experiment ${experiment}: training plan ${plan} ` +
        `(digest ${sha256}) is not approved there. The node says: ${nodeMessage}. Nothing of this ` +
        `round was committed: once the node approved the plan, run 'roundlog resume ${experiment}' to retry it`,
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
  ) {
    super(
      `node ${JSON.stringify(node)} holds another dataset than experiment ${experiment} recorded for it ` +
        `(${recordedRound === null ? `when round ${round} started` : `in round ${recordedRound}`}): ` +
        `${describeFingerprint(recorded)} then, ${describeFingerprint(now)} now; round ${round} was refused ` +
        `and nothing of it was committed. Restart the node with its former data file, leave it out ` +
        `(the experiment's nodes), or, if the new data is meant, resume with onDatasetChange: 'record' ` +
        `(the change is recorded in the round)`,
    );
  }
}
