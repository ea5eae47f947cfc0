/**
 * The actions query: who created, resumed, rewound, forked, changed settings of or pruned which
 * experiment, and when. A filter over the events query. Read only.
 */
import type { RoundLog } from '../projections/index.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { Actor, ExperimentEventType } from '../model/events.ts';
import { auditEvents, type AuditEvent, type AuditEventsResult } from './events.ts';

/** Events that record who did them. */
export const ACTION_TYPES = Object.freeze([
  'ExperimentCreated',
  'SettingsChanged',
  'Resumed',
  'Rewound',
  'Forked',
  'RoundsPruned',
] as const satisfies readonly ExperimentEventType[]);

export type ActionType = (typeof ACTION_TYPES)[number];

/** An event someone did, with who did it (`createdBy` of an `ExperimentCreated`, `by` of the others). */
export type AuditAction = Extract<AuditEvent, { type: ActionType }> & Readonly<{ by: Actor }>;

export type ActionsOptions = {
  /** Only these kinds of action. Default: every one (`ACTION_TYPES`). */
  types?: readonly ActionType[];
  experiments?: readonly string[];
  /** Only actions by these users. */
  users?: readonly string[];
  /** Only actions from these hosts. */
  hosts?: readonly string[];
  since?: Date;
  until?: Date;
};

export type ActionsResult = Readonly<{
  actions: readonly AuditAction[];
  lastPosition: bigint | null;
  /** Experiments whose history cannot be read past an event (see `AuditEventsResult.damaged`). */
  damaged: AuditEventsResult['damaged'];
}>;

export function isActionType(type: string): type is ActionType {
  return (ACTION_TYPES as readonly string[]).includes(type);
}

/** Who created, resumed, rewound, forked, changed settings of or pruned which experiment, and when; in log order. */
export async function auditActions(rl: RoundLog, options: ActionsOptions = {}): Promise<ActionsResult> {
  for (const type of options.types ?? []) {
    if (!isActionType(type)) {
      throw new InvalidArgumentError('types', `must name actions (${ACTION_TYPES.join(', ')})`, type);
    }
  }
  const { events, lastPosition, damaged } = await auditEvents(rl, {
    types: options.types ?? ACTION_TYPES,
    ...(options.experiments === undefined ? {} : { experiments: options.experiments }),
    ...(options.since === undefined ? {} : { since: options.since }),
    ...(options.until === undefined ? {} : { until: options.until }),
  });
  const actions: AuditAction[] = [];
  for (const event of events) {
    const action = asAction(event);
    if (action === null) continue;
    if (options.users !== undefined && !options.users.includes(action.by.user)) continue;
    if (options.hosts !== undefined && !options.hosts.includes(action.by.host)) continue;
    actions.push(action);
  }
  return { actions, lastPosition, damaged };
}

/** The action an event records, or null for an event nobody in particular did. */
export function asAction(event: AuditEvent): AuditAction | null {
  switch (event.type) {
    case 'ExperimentCreated':
      return { ...event, by: event.data.createdBy };
    case 'SettingsChanged':
    case 'Resumed':
    case 'Rewound':
    case 'Forked':
    case 'RoundsPruned':
      return { ...event, by: event.data.by } as AuditAction;
    default:
      return null;
  }
}
