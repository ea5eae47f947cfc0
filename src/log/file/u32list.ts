/** A growable list of u32 values in a typed array: the in-memory index of a segment. */
export class U32List {
  private data: Uint32Array;
  length = 0;

  constructor(capacity = 1024) {
    this.data = new Uint32Array(capacity);
  }

  static from(values: Uint32Array): U32List {
    const list = new U32List(Math.max(16, values.length));
    list.data.set(values);
    list.length = values.length;
    return list;
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new Uint32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }

  pushAll(values: Uint32Array): void {
    if (this.length + values.length > this.data.length) {
      const grown = new Uint32Array(Math.max(this.data.length * 2, this.length + values.length));
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    this.data.set(values, this.length);
    this.length += values.length;
  }

  get(index: number): number {
    return this.data[index]!;
  }

  /** A copy of `[start, end)`. */
  slice(start: number, end: number): Uint32Array {
    return this.data.slice(start, end);
  }

  [Symbol.iterator](): Iterator<number> {
    return this.data.subarray(0, this.length)[Symbol.iterator]();
  }
}
