/**
 * Fork an experiment from round R of its history: a new experiment that starts from R's
 * parameters and state, with the settings R ran under, the same federated setup, configuration and
 * seed (so its next rounds draw what the parent's did). The child's stream starts with an
 * `ExperimentCreated` whose `importedFrom` stands for R, then its retention, then a `ForkedFrom`;
 * the parent's stream gets a `Forked`.
 */
import type { ExperimentEvent, FederatedSetup } from '../events.ts';
import { chooseRound, type Branch, type RoundChoice } from '../rounds.ts';
import { initialState, type ExperimentState, type RoundRecord } from '../state.ts';
import { requireCreated, type DecideContext } from './context.ts';
import { decideCreate, type CreateExperiment } from './create.ts';

/** The parent's round to fork from, and what the caller computed of it. */
export type ForkSource = RoundChoice & {
  /** SHA-256 of the breakpoint manifest of the parent's round, as the projection writes it. */
  breakpointSha256: string;
};

/** The child's creation as it follows from the parent: everything but its id, number and folder. */
export type ForkCreation = Omit<
  CreateExperiment,
  'experimentId' | 'number' | 'folder' | 'roundlogVersion' | 'foldersInUse' | 'initialParams'
> & {
  /** A fork starts from `importedFrom.params`, never from initial parameters. */
  initialParams: null;
  record: RoundRecord;
  branch: Branch;
};

/**
 * What a fork of `parent` from the chosen round creates (`record` and `branch`: the round found).
 *
 * Errors: `ExperimentNotCreatedError`, and those of `chooseRound`: `InvalidArgumentError`,
 * `RoundNotFoundError`, `RoundNotInHistoryError`, `RoundPrunedError`.
 */
export function forkCreation(parent: ExperimentState, source: ForkSource): ForkCreation {
  const created = requireCreated(parent, 'fork');
  const { record, branch } = chooseRound(parent, source);
  const settings = record.settings;
  const federated: FederatedSetup | null =
    created.federated === null
      ? null
      : {
          ...created.federated,
          trainingPlan: settings.trainingPlan ?? created.federated.trainingPlan,
          trainingArgs: settings.trainingArgs,
        };
  const parentPosition = String(record.position);
  return {
    roundLimit: settings.roundLimit,
    seed: created.seed,
    saveBreakpoints: settings.saveBreakpoints,
    initialParams: null,
    config: created.config,
    federated,
    importedFrom: {
      experimentId: created.experimentId,
      folder: parent.folder,
      round: record.round,
      logPosition: parentPosition,
      breakpointSha256: source.breakpointSha256,
      params: record.params,
      state: record.state,
    },
    forkedFrom: {
      v: 1,
      parentId: created.experimentId,
      parentFolder: parent.folder,
      parentRound: record.round,
      parentPosition,
      // The fork goes on with the parent's node processes (absent in process, as before the field).
      ...(parent.remote === null ? {} : { remote: { listen: parent.remote.listen, nodes: [...parent.remote.nodes] } }),
    },
    retention: settings.retention,
    record,
    branch,
  };
}

/** The fork to create: the parent's round, and the child's id, number and folder (allocated by the caller). */
export type ForkExperiment = ForkSource &
  Pick<CreateExperiment, 'roundlogVersion' | 'foldersInUse'> & {
    childId: string;
    childNumber: number;
    childFolder: string;
  };

/**
 * Decides the first events of the child's stream (`parent` is the parent's state).
 *
 * Errors: those of `forkCreation`, and those of `decideCreate` for the child's folder.
 */
export function decideFork(
  parent: ExperimentState,
  command: ForkExperiment,
  context: DecideContext,
): readonly ExperimentEvent[] {
  const { record: _record, branch: _branch, ...creation } = forkCreation(parent, command);
  return decideCreate(
    initialState,
    {
      ...creation,
      experimentId: command.childId,
      number: command.childNumber,
      folder: command.childFolder,
      roundlogVersion: command.roundlogVersion,
      ...(command.foldersInUse === undefined ? {} : { foldersInUse: command.foldersInUse }),
    },
    context,
  );
}

/** The fork as the parent records it. */
export type RecordFork = {
  childId: string;
  childFolder: string;
  /** Index of the parent's round the child starts from. */
  round: number;
};

/**
 * Decides the parent's `Forked`. It depends on nothing else in the parent's state, so it can be
 * appended after whatever the parent committed meanwhile.
 *
 * Errors: `ExperimentNotCreatedError`.
 */
export function decideForked(
  parent: ExperimentState,
  command: RecordFork,
  context: DecideContext,
): readonly ExperimentEvent[] {
  requireCreated(parent, 'record a fork');
  const { childId, childFolder, round } = command;
  return [{ type: 'Forked', data: { v: 1, childId, childFolder, round, by: context.actor } }];
}
