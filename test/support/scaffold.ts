/**
 * A SCAFFOLD-like custom aggregator for tests (Karimireddy et al. 2020, server side): it keeps a
 * control variate per node and a global one, plain numbers in its state, and corrects the average
 * of the replies with the global variate, so every round's parameters depend on the state carried
 * from all the rounds before. Registered as `scaffold`; state version 2 (`{ c, nodes, rounds }`),
 * with an upgrade from version 1 (`{ nodes }`, no global variate) unless `upgrade: false`.
 */
import type { Tensor } from '../../src/codec/tensors.ts';
import {
  fedAvg,
  type Aggregator,
  type AggregatorFactory,
  type AggregatorState,
} from '../../src/federated/aggregators.ts';

export const SCAFFOLD = 'scaffold';

type Variates = Record<string, number[]>;
type ScaffoldState = { c: Variates; nodes: Record<string, Variates>; rounds: number };
type Options = { stateVersion?: 1 | 2; upgrade?: boolean };

/** `config`: `scale` (of a node's drift in its variate), `eta` (server correction step). */
export function scaffold(config: Readonly<Record<string, unknown>>, options: Options = {}): Aggregator {
  const scale = Number(config.scale ?? 1);
  const eta = Number(config.eta ?? 0.1);
  const version = options.stateVersion ?? 2;
  const average = fedAvg();
  const aggregator: Aggregator = {
    name: SCAFFOLD,
    config: { scale, eta },
    stateVersion: version,
    initialState: () => (version === 1 ? { nodes: {} } : { c: {}, nodes: {}, rounds: 0 }),
    aggregate(replies, state, context) {
      const given = version === 1 ? { c: {}, rounds: 0, ...(state as { nodes: ScaffoldState['nodes'] }) } : state;
      const { c, nodes, rounds } = given as ScaffoldState;
      const avg = average.aggregate(replies, {}, context).params;
      const nextNodes: Record<string, Variates> = { ...nodes };
      const nextC: Variates = {};
      const sorted = [...replies].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
      const params: Record<string, Tensor> = {};
      for (const [name, tensor] of Object.entries(avg)) {
        const x = context.params[name]!.data as Float32Array | Float64Array;
        const cOld = c[name] ?? Array.from(x, () => 0);
        const sum = cOld.map(() => 0);
        for (const reply of sorted) {
          const y = reply.params[name]!.data as Float32Array | Float64Array;
          const ciOld = nodes[reply.node]?.[name] ?? cOld.map(() => 0);
          // + 0 turns -0 into 0, which is what the log records.
          const ciNew = ciOld.map((v, k) => v - cOld[k]! + (x[k]! - y[k]!) * scale + 0);
          nextNodes[reply.node] = { ...nextNodes[reply.node], [name]: ciNew };
          ciNew.forEach((v, k) => (sum[k]! += v - ciOld[k]!));
        }
        const cNew = cOld.map((v, k) => v + sum[k]! / sorted.length + 0);
        nextC[name] = cNew;
        params[name] = corrected(tensor, cNew, eta);
      }
      const next = version === 1 ? { nodes: nextNodes } : { c: nextC, nodes: nextNodes, rounds: rounds + 1 };
      return { params, state: next };
    },
  };
  if (version === 2 && options.upgrade !== false) {
    aggregator.upgradeState = (state: AggregatorState, from: number): AggregatorState => {
      if (from !== 1) throw new Error(`scaffold cannot upgrade a state of version ${from}`);
      return { c: {}, nodes: (state as { nodes: ScaffoldState['nodes'] }).nodes, rounds: 0 };
    };
  }
  return aggregator;
}

function corrected(tensor: Tensor, c: readonly number[], eta: number): Tensor {
  if (tensor.dtype !== 'float32' && tensor.dtype !== 'float64') throw new Error('scaffold takes float tensors');
  const data = tensor.data.map((v, k) => v - eta * c[k]!);
  return { dtype: tensor.dtype, shape: [...tensor.shape], data } as Tensor;
}

/** The registry entry: `registry: { aggregators: scaffoldRegistry() }`. */
export function scaffoldRegistry(options: Options = {}): Record<string, AggregatorFactory> {
  return { [SCAFFOLD]: (config) => scaffold(config, options) };
}
