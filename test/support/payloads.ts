/** Deterministic event payloads of varied size, so crash tests exercise small and large writes. */

export function eventPayload(stream: string, revision: bigint): Record<string, unknown> {
  const r = Number(revision);
  const size = r % 17 === 5 ? 200_000 : r % 5 === 0 ? 8_000 : 120;
  const filler = new Float32Array(size / 4);
  for (let i = 0; i < filler.length; i++) filler[i] = Math.sin(r * 31 + i);
  return { stream, revision: r, metrics: { loss: 1 / (r + 1) }, filler };
}
