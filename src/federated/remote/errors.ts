/**
 * The errors of nodes as processes: what a node refuses (a training plan it has not approved), what
 * a researcher refuses (a node's Hello), and what a node's folder or dataset file can be wrong with.
 */
import { RoundlogError } from '../../errors.ts';

/** The command a node's operator runs to approve a plan file. */
export function approveCommand(nodeDir: string | null): string {
  return `roundlog node approve <plan file>${nodeDir === null ? '' : ` --node-dir ${nodeDir}`}`;
}

/** A node was asked to train with a plan whose hash is not in its approval list (node side). */
export class PlanNotApprovedError extends RoundlogError {
  readonly code = 'PLAN_NOT_APPROVED' as const;
  constructor(
    readonly node: string,
    /** The plan as the experiment records it: `<module>#<export>`. */
    readonly plan: string,
    readonly sha256: string,
    readonly nodeDir: string,
    /** Why: not listed, or the approved file changed since. */
    readonly reason: string,
  ) {
    super(
      `node ${JSON.stringify(node)} has not approved training plan ${plan} (sha256 ${sha256}): ${reason}; ` +
        `review the plan's source, then run '${approveCommand(nodeDir)}'`,
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
    /** What the node said. */
    readonly nodeMessage: string,
  ) {
    super(
      `node ${JSON.stringify(node)} refused round ${round} of experiment ${experiment}: training plan ${plan} ` +
        `(sha256 ${sha256}) is not approved there (${nodeMessage}); on that node, run ` +
        `'roundlog node approve <plan file> --node-dir <its folder>' once the plan is reviewed; nothing of this ` +
        `round was committed: run 'roundlog resume ${experiment}' to retry it`,
    );
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
