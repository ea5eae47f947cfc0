/**
 * The TensorBoard projection: TFRecord framing (`tfrecord.ts`), the `Event` protos and the runs
 * the log gives (`events.ts`), and the projection behind the engine's port (`projection.ts`).
 */
export * from './events.ts';
export * from './projection.ts';
export * from './tfrecord.ts';
