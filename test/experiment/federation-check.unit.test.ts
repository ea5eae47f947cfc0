/**
 * Checking a federation (what a definition's `federation()` returns, or `Experiment.create`'s and
 * `loadBreakpoint`'s option) reads the nodes' and datasets' ids and tags only: a dataset's `data`,
 * which may be a getter loading the node's data, is read by training alone, after `RoundStarted`.
 */
import test from 'ava';
import { checkDefinitionFederation, checkFederation } from '../../src/federated/options-schema.ts';
import { InvalidDefinitionError } from '../../src/federated/errors.ts';

function federationCounting(): { federation: unknown; reads: () => number } {
  let reads = 0;
  const dataset = {
    id: 'heart',
    tags: ['cleveland'],
    get data() {
      reads += 1;
      return [1, 2, 3];
    },
  };
  return { federation: { nodes: [{ id: 'hospital-a', datasets: [dataset] }] }, reads: () => reads };
}

test('checking a federation never reads a dataset’s data', (t) => {
  const counted = federationCounting();
  checkFederation(counted.federation, 'options.federation');
  checkDefinitionFederation(counted.federation, 'experiment.ts', 'definition', '/w/experiment.ts');
  t.is(counted.reads(), 0);
});

test('a dataset without tags is still refused, naming the field', (t) => {
  const federation = { nodes: [{ id: 'hospital-a', datasets: [{ id: 'heart', data: [] }] }] };
  const error = t.throws(() => checkDefinitionFederation(federation, 'experiment.ts', 'definition', '/w/e.ts'), {
    instanceOf: InvalidDefinitionError,
  });
  t.regex(error!.message, /definition\.federation\(\)\.nodes\[0\]\.datasets\[0\]\.tags/);
});
