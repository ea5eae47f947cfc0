/** Helpers of the audit tests: a CSV reader (the `roundlog` command is in test/support/cli.ts). */

/** Parses CSV (RFC 4180: quoted fields, doubled quotes, line breaks inside quotes) into records keyed by the header. */
export function parseCsv(text: string): Array<Record<string, string>> {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  const [header, ...records] = rows;
  if (header === undefined) return [];
  return records.map((r) => {
    if (r.length !== header.length)
      throw new Error(`CSV record with ${r.length} fields, header has ${header.length}: ${JSON.stringify(r)}`);
    return Object.fromEntries(header.map((h, i) => [h, r[i]!]));
  });
}
